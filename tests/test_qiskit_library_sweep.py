"""No silent conversion over Qiskit's whole circuit library and random circuits: every
circuit ``from_qiskit`` converts gives Qiskit's own ``Statevector`` (from a random product
input state, parameters left unbound in the conversion and bound at random values), and
every one it cannot express raises a ``qjaxrob.errors`` error. The library is enumerated
at collection time (each name of ``qiskit.circuit.library`` that builds from a qubit count
or from nothing), plus the gates and circuits that need arguments, listed by hand.
The converted circuits are simulated by the dense reference (tests/reference.py), an
independent implementation, so the sweep stays fast."""

import warnings

import numpy as np
import pytest
from reference import statevector_ref

import qjaxrob as qjr
from qjaxrob.errors import ConversionError, QjrError

pytest.importorskip("qiskit")
from qiskit import QuantumCircuit
from qiskit.circuit import Instruction, Parameter, ParameterVector
from qiskit.circuit import library as lib
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import SparsePauliOp, Statevector, random_unitary

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::PendingDeprecationWarning",
                                        "ignore::scipy.sparse.SparseEfficiencyWarning")
MAX_QUBITS = 6


def _as_circuit(obj):
    if isinstance(obj, QuantumCircuit):
        return obj
    if isinstance(obj, Instruction) and not obj.num_clbits:
        qc = QuantumCircuit(obj.num_qubits)
        qc.append(obj, range(obj.num_qubits))
        return qc
    return None


def _enumerated():
    """Library names that build from ``(2,)``, ``(3,)`` or ``()`` into a circuit or gate."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(dir(lib)):
            obj = getattr(lib, name)
            if name.startswith("_") or not callable(obj) or name == "get_standard_gate_name_mapping":
                continue
            for args in ((2,), (3,), ()):
                try:
                    qc = _as_circuit(obj(*args))
                    qc.data     # a blueprint circuit builds (or fails) here
                except Exception:  # noqa: BLE001 - any constructor that wants other arguments
                    continue
                if qc is not None and 0 < qc.num_qubits <= MAX_QUBITS and not qc.num_clbits:
                    out[name] = (lambda obj=obj, args=args: _as_circuit(obj(*args)))
                break
    return out


def _h(labels, coeffs):
    return SparsePauliOp(labels, coeffs)


a = ParameterVector("a", 4)
t = Parameter("t")
BY_HAND = {  # gates and circuits that need arguments
    "U2Gate": lambda: lib.U2Gate(a[0], a[1]),
    "U3Gate": lambda: lib.U3Gate(a[0], a[1] * a[2], 0.3),
    "UGate": lambda: lib.UGate(a[0], -a[1], a[2] + 1),
    "CU3Gate": lambda: lib.CU3Gate(a[0], a[1], a[2]),
    "CUGate": lambda: lib.CUGate(a[0], a[1], a[2], a[3]),
    "RGate": lambda: lib.RGate(a[0], a[1]),
    "RVGate": lambda: lib.RVGate(0.3, -0.7, 1.1),
    "GR": lambda: lib.GR(3, 0.4, -1.1),
    "GRX": lambda: lib.GRX(3, 0.4),
    "GRY": lambda: lib.GRY(3, -0.8),
    "GRZ": lambda: lib.GRZ(3, 1.3),
    "GMS": lambda: lib.GMS(3, [[0, 0.3, 0.5], [0, 0, 0.7], [0, 0, 0]]),
    "MSGate": lambda: lib.MSGate(3, a[0]),
    "MCPhaseGate": lambda: lib.MCPhaseGate(a[0], 3),
    "MCU1Gate": lambda: lib.MCU1Gate(a[0], 2),
    "MCMTGate": lambda: lib.MCMTGate(lib.RYGate(a[0]), 2, 2),
    "MCXGate": lambda: lib.MCXGate(4),
    "DiagonalGate": lambda: lib.DiagonalGate(list(np.exp(1j * np.linspace(0, 3, 8)))),
    "UCRYGate": lambda: lib.UCRYGate([0.1, 0.5, -0.3, 1.2]),
    "UCRZGate": lambda: lib.UCRZGate([0.1, 0.5]),
    "UCGate": lambda: lib.UCGate([random_unitary(2, seed=k).data for k in range(2)]),
    "PermutationGate": lambda: lib.PermutationGate([2, 0, 3, 1]),
    "PauliGate": lambda: lib.PauliGate("XYZ"),
    "UnitaryGate": lambda: lib.UnitaryGate(random_unitary(8, seed=1)),
    "Isometry": lambda: lib.Isometry(random_unitary(4, seed=2).data[:, :2], 0, 0),
    "HamiltonianGate": lambda: lib.HamiltonianGate(_h(["XZ", "YY"], [0.4, 0.9]).to_matrix(), 0.7),
    "LinearFunction": lambda: lib.LinearFunction([[1, 1, 0], [0, 1, 0], [1, 0, 1]]),
    "GraphStateGate": lambda: lib.GraphStateGate([[0, 1, 1], [1, 0, 0], [1, 0, 0]]),
    "iqp": lambda: lib.iqp([[6, 5, 3], [5, 4, 5], [3, 5, 1]]),
    "hidden_linear_function": lambda: lib.hidden_linear_function([[1, 1, 0], [1, 0, 1], [0, 1, 1]]),
    "fourier_checking": lambda: lib.fourier_checking([1, -1, -1, -1], [1, 1, -1, -1]),
    "IntegerComparatorGate": lambda: lib.IntegerComparatorGate(2, 2),
    "PauliEvolutionGate": lambda: lib.PauliEvolutionGate(_h(["ZZ", "XX", "YY"], [0.3, 0.5, -0.2]), t),
    "PauliEvolutionGate_noncommuting": lambda: lib.PauliEvolutionGate(_h(["ZZ", "XI"], [0.3, 0.5]), 0.8),
    "PauliEvolutionGate_parametric_noncommuting": lambda: lib.PauliEvolutionGate(_h(["ZZ", "XI"], [0.3, 0.5]), t),
    "phase_estimation": lambda: lib.phase_estimation(2, _as_circuit(lib.CU1Gate(0.7))),
    "grover_operator": lambda: lib.grover_operator(_as_circuit(lib.CZGate())),
    "qaoa_ansatz": lambda: lib.qaoa_ansatz(_h(["ZZI", "IZZ"], [1.0, 0.5]), reps=2),
    "evolved_operator_ansatz": lambda: lib.evolved_operator_ansatz([_h(["XX"], [1.0]), _h(["ZI", "IZ"], [1.0, 0.5])]),
    "hamiltonian_variational_ansatz": lambda: lib.hamiltonian_variational_ansatz(_h(["XX", "ZZ"], [1.0, 0.5])),
    "unitary_overlap": lambda: lib.unitary_overlap(lib.real_amplitudes(2, reps=1), lib.efficient_su2(2, reps=1)),
    "n_local": lambda: lib.n_local(3, ["ry", "rz"], "crz", reps=2),
    "zz_feature_map": lambda: lib.zz_feature_map(3, reps=2, entanglement="full"),
    "pauli_feature_map": lambda: lib.pauli_feature_map(3, paulis=["Z", "XY", "ZZZ"]),
    "StatePreparation": lambda: lib.StatePreparation(random_unitary(8, seed=3).data[:, 0]),
    "Initialize": lambda: lib.Initialize(random_unitary(4, seed=4).data[:, 0]),
    "Reset": lambda: lib.Reset(),
    "WeightedSumGate": lambda: lib.WeightedSumGate(2, [1, 2]),
}
CASES = {**_enumerated(), **{k: v for k, v in BY_HAND.items() if hasattr(lib, k.split("_non")[0].split("_par")[0])}}
MUST_CONVERT = ("QFT", "QFTGate", "EfficientSU2", "RealAmplitudes", "TwoLocal", "ZZFeatureMap",
                "ZFeatureMap", "PauliFeatureMap", "zz_feature_map", "pauli_feature_map",
                "PauliEvolutionGate", "PauliEvolutionGate_noncommuting", "qaoa_ansatz",
                "CU3Gate", "RCCXGate", "RC3XGate", "C3SXGate", "C4XGate", "iqp", "grover_operator")


def _check(qc, rng):
    """Exact or refused; returns ``"converted"`` or ``"refused"``."""
    n = qc.num_qubits
    prep = QuantumCircuit(n)
    for q in range(n):
        prep.u(*rng.uniform(-np.pi, np.pi, 3), q)
    full = prep.compose(qc)
    try:
        c = qjr.from_qiskit(full)
    except QjrError as exc:
        assert isinstance(exc, ConversionError), exc
        return "refused"
    values = rng.uniform(-np.pi, np.pi, full.num_parameters)
    assert c.n_params == full.num_parameters
    want = Statevector(full.assign_parameters(values)).reverse_qargs().data
    np.testing.assert_allclose(statevector_ref(c, values), want, atol=1e-9)
    return "converted"


@pytest.mark.parametrize("name", sorted(CASES))
def test_library_circuit_converts_exactly_or_is_refused(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    qc = _as_circuit(CASES[name]())
    assert not qc.num_clbits and qc.num_qubits <= MAX_QUBITS, (
        f"{name}: {qc.num_qubits} qubits, {qc.num_clbits} clbits: the sweep builds every case "
        f"measurement-free within {MAX_QUBITS} qubits")
    outcome = _check(qc, rng)
    if name in MUST_CONVERT:
        assert outcome == "converted"


def test_the_library_sweep_is_broad():
    assert len(CASES) >= 150
    assert set(MUST_CONVERT) <= set(CASES)


@pytest.mark.parametrize("seed", range(14))
def test_random_circuits_convert_exactly_or_are_refused(seed):
    """Random circuits at 2-8 qubits, with measurements, resets and conditionals in a third
    of them (refused, or measurements at the end dropped)."""
    rng = np.random.default_rng(seed)
    n = 2 + seed % 7
    extras = {"measure": True, "conditional": True, "reset": True} if seed % 3 == 0 else {}
    qc = random_circuit(n, 4 if n < 7 else 2, max_operands=min(n, 3), seed=seed, **extras)
    if extras:
        try:
            qjr.from_qiskit(qc)
        except ConversionError:
            return
        qc = qc.remove_final_measurements(inplace=False)
    _check(qc, rng)
