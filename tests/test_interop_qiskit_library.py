"""from_qiskit against Qiskit's own semantics over its circuit library: every converted circuit
(EfficientSU2, RealAmplitudes, TwoLocal, PauliFeatureMap and ZZFeatureMap, QFT,
PauliEvolutionGate, random circuits on 2-6 qubits) gives Qiskit's ``Statevector`` (bit
reversed: Qiskit's qubit 0 is the least significant bit, qjaxrob's wire 0 the most), from a
random product input state and random parameter values; what has no exact form is refused."""

import warnings

import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.errors import ConversionError

qiskit = pytest.importorskip("qiskit")
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit import library as lib
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Operator, SparsePauliOp, Statevector


def _prep(rng, n):
    """A random product state (U gates), so errors that vanish on |0...0> show."""
    qc = QuantumCircuit(n)
    for q in range(n):
        qc.u(*rng.uniform(-np.pi, np.pi, 3), q)
    return qc


def assert_matches_qiskit(qc, rng, inputs=()):
    """qjaxrob's statevector of ``prep + qc`` equals Qiskit's, parameters bound at random."""
    full = _prep(rng, qc.num_qubits).compose(qc)
    c = qjr.from_qiskit(full, inputs=inputs)
    values = {p: float(v) for p, v in zip(full.parameters,
                                          rng.uniform(-np.pi, np.pi, full.num_parameters))}
    names = [p if isinstance(p, str) else p.name for p in inputs]
    x = np.array([values[next(p for p in full.parameters if p.name == n)] for n in names])
    params = np.array([v for p, v in values.items() if p.name not in names])
    got = np.asarray(qjr.statevector(c, params if c.n_params else None,
                                     x if c.n_inputs else None, dtype=np.complex128))
    want = Statevector(full.assign_parameters(values)).reverse_qargs().data
    np.testing.assert_allclose(got, want, atol=1e-10)
    return c


@pytest.mark.parametrize("n", [2, 4])
def test_variational_forms(n):
    rng = np.random.default_rng(n)
    assert_matches_qiskit(lib.efficient_su2(n, reps=2), rng)
    assert_matches_qiskit(lib.real_amplitudes(n, reps=2, entanglement="full"), rng)
    assert_matches_qiskit(lib.n_local(n, ["ry", "rz"], "cz", entanglement="circular", reps=2),
                          rng)
    assert_matches_qiskit(lib.n_local(n, "rx", "crx", entanglement="linear", reps=1), rng)
    assert_matches_qiskit(lib.excitation_preserving(n, reps=1), rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        two_local = lib.TwoLocal(n, ["ry", "rz"], "cx", "linear", reps=2)
    assert_matches_qiskit(two_local, rng)


@pytest.mark.parametrize("n", [2, 4])
def test_feature_maps(n):
    """One-qubit Pauli terms have affine angles (the data as an input); the ZZ terms of
    PauliFeatureMap/ZZFeatureMap have products of inputs, converted as angle expressions."""
    rng = np.random.default_rng(10 + n)
    fm = lib.pauli_feature_map(n, reps=2, paulis=["Z", "Y", "X"])
    c = assert_matches_qiskit(fm, rng, inputs=[p.name for p in fm.parameters])
    assert c.n_inputs == n and c.n_params == 0
    assert_matches_qiskit(lib.z_feature_map(n, reps=2), rng)
    for fm in (lib.zz_feature_map(n), lib.pauli_feature_map(n, paulis=["Z", "ZZ"])):
        c = assert_matches_qiskit(fm, rng, inputs=[p.name for p in fm.parameters])
        assert any(a.source == "expr" for op in c.ops for a in op.angles)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_qft(n):
    rng = np.random.default_rng(20 + n)
    gate = QuantumCircuit(n)
    gate.append(lib.QFTGate(n), range(n))
    assert_matches_qiskit(gate, rng)
    inverse = QuantumCircuit(n)
    inverse.append(lib.QFTGate(n).inverse(), range(n))
    assert_matches_qiskit(inverse, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert_matches_qiskit(lib.QFT(n, approximation_degree=1, do_swaps=False), rng)


@pytest.mark.parametrize("n, seed", [(2, 0), (2, 1), (3, 2), (4, 3), (4, 4), (5, 5), (6, 6)])
def test_random_circuits(n, seed):
    rng = np.random.default_rng(100 * n + seed)
    qc = random_circuit(n, 5, max_operands=4 if n >= 4 else n, seed=1000 * n + seed)
    assert_matches_qiskit(qc, rng)


# ---- PauliEvolutionGate: the exact exponential, not its Trotter definition ---------------------
def _evolution(n, operator, time):
    qc = QuantumCircuit(n)
    qc.append(lib.PauliEvolutionGate(operator, time=time), range(n))
    return qc


def test_pauli_evolution_commuting_terms_with_a_parametric_time():
    """exp(-i t H) with commuting terms (and an identity term: a global phase) equals
    Qiskit's exact operator for any t, with t a parameter or an input."""
    rng = np.random.default_rng(7)
    t = Parameter("t")
    for n, labels in ((2, ["ZZ", "XX", "YY", "II"]), (3, ["ZZI", "IZZ", "ZIZ", "ZII"]),
                      (4, ["XXYY", "YYXX", "ZZZZ", "IIII", "ZZII"])):
        op = SparsePauliOp(labels, rng.normal(size=len(labels)))
        assert_matches_qiskit(_evolution(n, op, 0.5 * t - 0.2), rng, inputs=["t"] if n % 2 else ())
        # against the exact matrix exponential too, not only Qiskit's Statevector
        value = 0.83
        c = qjr.from_qiskit(_evolution(n, op, t))
        h = Operator(op).reverse_qargs().data
        w, v = np.linalg.eigh(h)
        psi0 = np.zeros(2**n)
        psi0[0] = 1
        want = v @ (np.exp(-1j * value * w) * (v.conj().T @ psi0))
        got = qjr.statevector(c, np.array([value]), dtype=np.complex128)
        np.testing.assert_allclose(got, want, atol=1e-10)


def test_pauli_evolution_non_commuting_terms():
    """A bound time is converted exactly (through the exact unitary, not the Trotter
    definition, whose error is ~0.1 here); a parametric one is refused, naming the terms."""
    rng = np.random.default_rng(8)
    op = SparsePauliOp(["XX", "ZI", "IY"], [0.3, 0.7, -0.4])
    qc = _evolution(2, op, 0.9)
    assert_matches_qiskit(qc, rng)
    trotter = Statevector(qc.decompose()).reverse_qargs().data
    exact = np.asarray(qjr.statevector(qjr.from_qiskit(qc), dtype=np.complex128))
    assert np.max(np.abs(trotter - exact)) > 0.05      # the definition is not the gate
    grouped = _evolution(2, [SparsePauliOp(["XX"], [0.3]), SparsePauliOp(["ZI", "IZ"], [0.5, 1])],
                         1.3)
    assert_matches_qiskit(grouped, rng)
    with pytest.raises(ConversionError, match=r"instruction 0 \(PauliEvolution.*non-commuting "
                                              r"terms XX and ZI.*bind the time"):
        qjr.from_qiskit(_evolution(2, op, Parameter("t")))
