"""qjaxrob.qubit compiles once per circuit structure: tapes that differ only in parameter
values (gate angles, Hamiltonian coefficients, the matrices of 1- and 2-wire
QubitUnitary gates) reuse one executable, counted with ``jax.monitoring``'s backend-compile
events; every result equals default.qubit's."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

qml = pytest.importorskip("pennylane")
from scipy.stats import unitary_group

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def compile_counter():
    """Yields a list whose length is the number of XLA compiles so far in the block."""
    events = []

    def listener(event, duration, **kwargs):
        if event == _COMPILE_EVENT:
            events.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def _qfunc(angles, u1, u2, coeff):
    qml.RX(angles[0], 0)
    qml.RY(angles[1], 1)
    qml.Rot(angles[2], angles[3], angles[4], wires=2)
    qml.CNOT([0, 1])
    qml.QubitUnitary(u1, wires=2)
    qml.QubitUnitary(u2, wires=[1, 2])
    qml.CRZ(angles[5], wires=[2, 0])
    return (qml.expval(qml.Hamiltonian([coeff, 0.5], [qml.Z(0) @ qml.Z(1), qml.X(2)])),
            qml.probs(wires=[0, 2]), qml.var(qml.Y(1)))


def _inputs(seed):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-np.pi, np.pi, 6), unitary_group.rvs(2, random_state=seed),
            unitary_group.rvs(4, random_state=seed + 100), float(rng.normal()))


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
@pytest.mark.parametrize("interface", ["numpy", "jax"])
def test_same_structure_compiles_once(dtype, interface):
    ours = qml.QNode(_qfunc, qml.device("qjaxrob.qubit", wires=3, dtype=dtype),
                     interface=interface)
    ref = qml.QNode(_qfunc, qml.device("default.qubit", wires=3))
    atol = 2e-5 if dtype == jnp.complex64 else 1e-10
    counts = []
    for seed in range(5):
        angles, u1, u2, coeff = _inputs(seed)
        if interface == "jax":
            angles = jnp.asarray(angles)
        with compile_counter() as compiles:
            got = ours(angles, u1, u2, coeff)
        counts.append(len(compiles))
        want = ref(np.asarray(angles), u1, u2, coeff)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), w, atol=atol)
        assert all(isinstance(g, jax.Array if interface == "jax" else np.ndarray)
                   for g in got)
    # the first tape may compile (unless an earlier test compiled this structure); the
    # other four, with new angles, coefficient and unitaries, compile nothing
    assert counts[1:] == [0, 0, 0, 0], counts


def test_a_new_structure_compiles():
    """The counter sees compiles: a structure not run before compiles at least once."""
    dev = qml.device("qjaxrob.qubit", wires=4)

    def fresh(a):
        for wire in range(4):
            qml.RY(a * (wire + 1), wire)
        qml.IsingXX(a, wires=[3, 1])
        return qml.expval(qml.Z(3) @ qml.Z(1))

    with compile_counter() as compiles:
        value = qml.QNode(fresh, dev)(0.37)
    ref = qml.QNode(fresh, qml.device("default.qubit", wires=4))(0.37)
    assert len(compiles) >= 1
    np.testing.assert_allclose(value, ref, atol=1e-6)


def test_non_unitary_matrices_are_still_refused():
    """A 1-wire QubitUnitary is decomposed into angles only when it is unitary; a matrix
    that is not is refused naming the operation, as before."""
    from qjaxrob.errors import ConversionError
    dev = qml.device("qjaxrob.qubit", wires=1)
    almost = np.array([[1, 0], [0, np.exp(0.3j) * (1 + 1e-3)]])

    def bad():
        qml.QubitUnitary(almost, wires=0)
        return qml.expval(qml.Z(0))

    with pytest.raises(ConversionError, match="QubitUnitary"):
        qml.QNode(bad, dev)()


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_constant_operations_enter_as_one_matrix_each(dtype):
    """Operations whose only parameters are concrete matrices (controlled unitaries, QFT,
    CH) run as one constant unitary each instead of their decompositions (hundreds of
    gates for QuantumMonteCarlo's), with default.qubit's state."""
    rng = np.random.default_rng(3)
    u2 = unitary_group.rvs(2, random_state=1)
    u4 = unitary_group.rvs(4, random_state=2)
    angles = rng.uniform(-np.pi, np.pi, 3)

    def qfunc():
        for wire, a in enumerate(angles):
            qml.RY(a, wire)
        qml.ctrl(qml.QubitUnitary(u4, wires=[2, 3]), control=[0, 1])
        qml.ControlledQubitUnitary(u2, wires=[3, 1, 0])
        qml.adjoint(qml.QFT(wires=[0, 2, 3]))
        qml.CH(wires=[1, 2])
        return qml.state()

    dev = qml.device("qjaxrob.qubit", wires=4, dtype=dtype)
    tape = qml.tape.make_qscript(qfunc)()
    (done,), _ = dev.preprocess_transforms()((tape,))
    assert len(done.operations) == len(tape.operations), [op.name for op in done.operations]
    got = qml.QNode(qfunc, dev)()
    want = qml.QNode(qfunc, qml.device("default.qubit", wires=4))()
    np.testing.assert_allclose(got, want, atol=2e-6 if dtype == jnp.complex64 else 1e-12)
