"""qjaxrob.qubit with mid-circuit measurements (``qml.measure``/``qml.cond``, run deferred)
and classical shadows with shots, against default.qubit's values and exact
statistics; postselection and other mcm methods refused with a qjaxrob error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qjaxrob.errors import ConversionError, ParameterError

qml = pytest.importorskip("pennylane")
from qjaxrob.interop.device import QjaxrobQubit


def _mcm_qfunc(a, b, c):
    qml.RX(a, 0)
    qml.CNOT([0, 1])
    m0 = qml.measure(0)
    qml.cond(m0, qml.RY)(b, wires=2)
    m1 = qml.measure(1, reset=True)
    qml.cond(m1 == 0, qml.RX)(c, wires=1)
    qml.Hadamard(2)
    return (qml.expval(qml.Z(2)), qml.probs(wires=[1, 2]), qml.expval(m0),
            qml.probs(op=[m0, m1]))


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_mid_circuit_measurements_match_default_qubit(dtype):
    rng = np.random.default_rng(7)
    ours = qml.QNode(_mcm_qfunc, QjaxrobQubit(wires=5, dtype=dtype))
    ref = qml.QNode(_mcm_qfunc, qml.device("default.qubit", wires=5))
    atol = 1e-5 if dtype == jnp.complex64 else 1e-12
    for _ in range(3):
        angles = rng.uniform(-np.pi, np.pi, 3)
        for got, want in zip(ours(*angles), ref(*angles)):
            np.testing.assert_allclose(got, want, atol=atol)


def test_mid_circuit_measurements_jit_grad_match_default_qubit():
    ours = qml.QNode(_mcm_qfunc, QjaxrobQubit(wires=5, dtype=jnp.complex128), interface="jax")
    ref = qml.QNode(_mcm_qfunc, qml.device("default.qubit", wires=5), interface="jax")

    def grad(node):
        return jax.jit(jax.grad(lambda p: node(*p)[0] + node(*p)[1][2]))

    p = jnp.array([0.4, -1.3, 2.1])
    np.testing.assert_allclose(grad(ours)(p), grad(ref)(p), atol=1e-10)


def test_mid_circuit_samples_follow_the_exact_distribution():
    """With shots the joint mcm outcome frequencies lie within 5 binomial sigmas of the
    exact probabilities."""
    shots = 4000
    angles = (1.1, 0.5, -0.8)
    exact = qml.QNode(_mcm_qfunc, qml.device("default.qubit", wires=5))(*angles)[3]
    node = qml.set_shots(qml.QNode(_mcm_qfunc, QjaxrobQubit(wires=5, seed=5)), shots)
    freq = node(*angles)[3]
    sigma = np.sqrt(exact * (1 - exact) / shots)
    assert np.all(np.abs(freq - exact) <= 5 * sigma + 1e-12), (freq, exact)


def _bell(x):
    qml.Hadamard(0)
    qml.CNOT([0, 1])
    qml.RZ(x, 1)
    return qml.classical_shadow(wires=[0, 1])


def test_classical_shadow_snapshots_have_the_bell_correlations():
    """For the Bell state (|00> + |11>)/sqrt(2) every snapshot measuring both qubits in Z
    or both in X gives equal bits, both in Y opposite bits (recipes 0, 1, 2 = X, Y, Z),
    exactly, with the jitted JAX key path too."""
    for dev, call in ((QjaxrobQubit(wires=2, seed=3), lambda n: n(0.0)),
                      (QjaxrobQubit(wires=2, seed=jax.random.key(3)),
                       lambda n: jax.jit(n)(0.0))):
        bits, recipes = np.asarray(call(qml.set_shots(qml.QNode(_bell, dev), 600)))
        assert bits.shape == recipes.shape == (600, 2)
        same = recipes[:, 0] == recipes[:, 1]
        assert same.sum() > 100
        for recipe, equal in ((0, True), (1, False), (2, True)):
            rows = same & (recipes[:, 0] == recipe)
            np.testing.assert_array_equal(bits[rows, 0] == bits[rows, 1], equal)
        # each recipe is drawn uniformly: counts within 5 binomial sigmas of 1/3
        counts = np.bincount(recipes.ravel(), minlength=3) / recipes.size
        assert np.all(np.abs(counts - 1 / 3) < 5 * np.sqrt(2 / 9 / recipes.size))


def test_shadow_expval_estimates_the_exact_value():
    """<X0 X1> on the Bell state rotated by RZ(x) is cos(x); the shadow estimator of a
    weight-2 Pauli has variance at most 9 per snapshot."""
    def qfunc(x):
        qml.Hadamard(0)
        qml.CNOT([0, 1])
        qml.RZ(x, 1)
        return qml.shadow_expval(qml.X(0) @ qml.X(1))

    shots = 3000
    for x in (0.3, 2.0):
        got = qml.set_shots(qml.QNode(qfunc, QjaxrobQubit(wires=2, seed=11)), shots)(x)
        assert abs(float(got) - np.cos(x)) < 5 * 3 / np.sqrt(shots)


def test_postselection_and_other_mcm_methods_are_refused():
    def post(x):
        qml.RX(x, 0)
        qml.measure(0, postselect=1)
        return qml.expval(qml.Z(1))

    dev = QjaxrobQubit(wires=2, seed=jax.random.key(0))
    with pytest.raises(ConversionError, match="postselect=1"):
        qml.QNode(post, dev)(0.3)
    with pytest.raises(ConversionError, match="postselect=1"):   # at trace time, not in a callback
        jax.jit(qml.set_shots(qml.QNode(post, dev, interface="jax"), 50))(0.3)

    def plain(x):
        qml.RX(x, 0)
        qml.measure(0)
        return qml.expval(qml.Z(0))

    node = qml.set_shots(qml.QNode(plain, dev, mcm_method="one-shot"), 50)
    with pytest.raises(ParameterError, match="one-shot"):
        node(0.3)


def test_traced_shadow_sampling_is_refused():
    """Shadows are sampled in NumPy: a traced state (the device called inside a trace
    without going through the QNode's callback) raises rather than failing deep inside."""
    dev = QjaxrobQubit(wires=1, seed=jax.random.key(0))
    tape = qml.tape.QuantumScript([], [qml.classical_shadow(wires=[0])], shots=10)
    with pytest.raises(ConversionError, match="classical shadows"):
        jax.jit(lambda s: dev._sampled(tape, s))(jnp.array([1.0, 0.0], jnp.complex64))
