"""from_qiskit: random Qiskit circuits (with parameters and affine expressions) give the
statevector, probabilities and expectation values that Qiskit's own Statevector gives,
after the documented bit reversal; parameter order, inputs and bad circuits."""

import sys

import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.errors import ConversionError, MissingDependencyError, QjrTypeError
from tests.reference import statevector_ref

qiskit = pytest.importorskip("qiskit")
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter, ParameterVector
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import SparsePauliOp, Statevector


def _qiskit_state(qc):
    """Qiskit's statevector in qjaxrob's order (wire 0 = most significant bit)."""
    return Statevector(qc).reverse_qargs().data


@pytest.mark.parametrize("seed", range(8))
def test_random_constant_circuits_match_statevector(seed):
    rng = np.random.default_rng(seed)
    qc = random_circuit(int(rng.integers(1, 5)), 6, max_operands=3, seed=seed)
    qc.remove_final_measurements()
    c = qjr.from_qiskit(qc)
    np.testing.assert_allclose(statevector_ref(c), _qiskit_state(qc), atol=1e-12)


def _random_parametric(rng, n, n_ops=14):
    a, b = Parameter("a"), Parameter("b")
    v = ParameterVector("v", 3)
    qc = QuantumCircuit(n)
    choices = [
        lambda q: qc.rx(2 * a + 0.3, q[0]),
        lambda q: qc.ry(v[0] - v[1], q[0]),
        lambda q: qc.rz(-b, q[0]),
        lambda q: qc.p(v[2] / 3, q[0]),
        lambda q: qc.u(a, b + 0.1, v[0], q[0]),
        lambda q: qc.h(q[0]),
        lambda q: qc.sx(q[0]),
        lambda q: qc.cx(q[0], q[1]),
        lambda q: qc.cz(q[0], q[1]),
        lambda q: qc.crx(b, q[0], q[1]),
        lambda q: qc.cp(a - b, q[0], q[1]),
        lambda q: qc.cu(v[1], a, 0.2, b, q[0], q[1]),
        lambda q: qc.rzz(v[2], q[0], q[1]),
        lambda q: qc.ryy(a + v[0], q[0], q[1]),
        lambda q: qc.rzx(0.5 * b, q[0], q[1]),
        lambda q: qc.ccx(q[0], q[1], q[2]),
    ]
    for _ in range(n_ops):
        i = int(rng.integers(len(choices) if n >= 3 else len(choices) - 1))
        if n == 1 and i >= 7:
            i = int(rng.integers(7))
        choices[i]([int(w) for w in rng.permutation(n)])
    qc.global_phase = a - 0.4
    return qc


@pytest.mark.parametrize("seed, n", [(0, 1), (1, 2), (2, 3), (3, 3), (4, 4)])
def test_random_parametric_circuits_match_statevector(seed, n):
    rng = np.random.default_rng(seed)
    qc = _random_parametric(rng, n)
    c = qjr.from_qiskit(qc)
    values = {p: float(x) for p, x in zip(qc.parameters, rng.uniform(-3, 3, qc.num_parameters))}
    params = np.array([values[p] for p in qc.parameters])   # the documented order
    ref = _qiskit_state(qc.assign_parameters(values))
    np.testing.assert_allclose(statevector_ref(c, params), ref, atol=1e-12)


def test_qjaxrob_simulation_matches_qiskit_statevector_and_expvals():
    rng = np.random.default_rng(7)
    qc = _random_parametric(rng, 3, n_ops=6)
    c = qjr.from_qiskit(qc)
    values = dict(zip(qc.parameters, rng.uniform(-3, 3, qc.num_parameters)))
    params = np.array([values[p] for p in qc.parameters])
    bound = qc.assign_parameters(values)
    sv = Statevector(bound)
    np.testing.assert_allclose(np.asarray(qjr.statevector(c, params, dtype=np.complex128)),
                               sv.reverse_qargs().data, atol=1e-12)
    # Qiskit labels are little-endian: "ZXI" is Z on qubit 2, X on qubit 1.
    labels = ["IIZ", "ZXI", "YIY", "XZX"]
    ours = [qjr.pauli("".join(reversed(label))) for label in labels]
    got = np.asarray(qjr.expval(c, ours, params, dtype=np.complex128))
    want = [sv.expectation_value(SparsePauliOp(label)).real for label in labels]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_qubit_k_is_wire_k():
    qc = QuantumCircuit(3)
    qc.x(0)
    c = qjr.from_qiskit(qc)
    assert c == qjr.Circuit(3).x(0)
    state = np.asarray(statevector_ref(c))
    assert state[0b100] == 1                      # wire 0 is the most significant bit
    assert Statevector(qc).data[0b001] == 1       # Qiskit's qubit 0 is the least


def test_registers_unitary_and_final_measurements():
    qr, anc, cr = QuantumRegister(2, "q"), QuantumRegister(1, "anc"), ClassicalRegister(3)
    qc = QuantumCircuit(qr, anc, cr)
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    u = np.linalg.qr(z)[0]
    qc.h(qr[0])
    qc.unitary(u, [qr[1], anc[0]])
    qc.barrier()
    qc.measure([0, 1, 2], [0, 1, 2])
    c = qjr.from_qiskit(qc)
    qc.remove_final_measurements()
    np.testing.assert_allclose(statevector_ref(c), _qiskit_state(qc), atol=1e-12)


def test_parameter_order_and_inputs():
    theta, alpha, x = Parameter("theta"), Parameter("alpha"), Parameter("x")
    qc = QuantumCircuit(1)
    qc.rx(theta, 0)
    qc.ry(x, 0)
    qc.rz(alpha, 0)
    assert [p.name for p in qc.parameters] == ["alpha", "theta", "x"]
    c = qjr.from_qiskit(qc)
    assert [op.angles[0] for op in c.ops] == [qjr.param(1), qjr.param(2), qjr.param(0)]
    c = qjr.from_qiskit(qc, inputs=[x])
    assert [op.angles[0] for op in c.ops] == [qjr.param(1), qjr.inp(0), qjr.param(0)]
    assert qjr.from_qiskit(qc, inputs="x") == c


def test_bad_circuits_name_the_instruction():
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.rx(abs(a * b), 1)
    with pytest.raises(ConversionError, match=r"instruction 1 \(rx on qubits \(1,\)\).*Abs"):
        qjr.from_qiskit(qc)
    qc = QuantumCircuit(1)
    qc.rx(a.sin().sign(), 0)
    with pytest.raises(ConversionError, match="uses sign"):
        qjr.from_qiskit(qc)
    qc = QuantumCircuit(1)
    qc.reset(0)
    with pytest.raises(ConversionError, match=r"instruction 0 \(reset.*'reset' is not supported"):
        qjr.from_qiskit(qc)
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    qc.x(0)
    with pytest.raises(ConversionError, match=r"instruction 1 \(x .*after its measurement"):
        qjr.from_qiskit(qc)
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(0)
    with pytest.raises(ConversionError, match="if_else"):
        qjr.from_qiskit(qc)
    qc = QuantumCircuit(1)
    qc.rx(a, 0)
    with pytest.raises(ConversionError, match=r"input 'nope' is not a parameter"):
        qjr.from_qiskit(qc, inputs=["nope"])
    with pytest.raises(QjrTypeError, match="QuantumCircuit"):
        qjr.from_qiskit("OPENQASM 2.0;")
    with pytest.raises(qjr.errors.ParameterError, match="params"):
        qjr.statevector(qjr.from_qiskit(qc))          # a parameter without a value


def test_missing_qiskit_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "qiskit", None)
    with pytest.raises(MissingDependencyError, match=r"qjaxrob\[qiskit\]"):
        qjr.from_qiskit(None)
