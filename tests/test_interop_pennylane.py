"""from_pennylane and the qjaxrob.qubit device against PennyLane's default.qubit: random
tapes give the same state; QNodes give the same values and, under jax.jit, the same
jax.grad; shots, other interfaces and bad input."""

import importlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.errors import ConversionError, MissingDependencyError, ParameterError
from tests.reference import statevector_ref

qml = pytest.importorskip("pennylane")
from qjaxrob.interop.device import QjaxrobQubit

# (constructor, number of wires, number of angles); the last group needs decomposition.
GATES = [
    (qml.Hadamard, 1, 0), (qml.S, 1, 0), (qml.T, 1, 0), (qml.SX, 1, 0),
    (lambda wires: qml.adjoint(qml.S(wires)), 1, 0), (qml.PauliY, 1, 0),
    (qml.RX, 1, 1), (qml.RY, 1, 1), (qml.RZ, 1, 1), (qml.PhaseShift, 1, 1),
    (qml.Rot, 1, 3), (qml.U3, 1, 3), (qml.U2, 1, 2),
    (qml.CNOT, 2, 0), (qml.CZ, 2, 0), (qml.CY, 2, 0), (qml.SWAP, 2, 0), (qml.ISWAP, 2, 0),
    (qml.CRX, 2, 1), (qml.CRY, 2, 1), (qml.CRZ, 2, 1), (qml.ControlledPhaseShift, 2, 1),
    (qml.IsingXX, 2, 1), (qml.IsingYY, 2, 1), (qml.IsingZZ, 2, 1), (qml.Toffoli, 3, 0),
    (qml.CSWAP, 3, 0),
    (qml.MultiRZ, 3, 1), (qml.CH, 2, 0), (qml.CRot, 2, 3), (qml.IsingXY, 2, 1),
    (lambda wires: qml.PauliRot(0.4, "XYZ", wires), 3, 0), (qml.SISWAP, 2, 0),
]


def _random_ops(rng, wires, n_ops):
    ops = [qml.BasisState(np.array([1] + [0] * (len(wires) - 1)), wires=wires)]
    pool = [g for g in GATES if g[1] <= len(wires)]
    for _ in range(n_ops):
        make, k, n_angles = pool[int(rng.integers(len(pool)))]
        w = [wires[int(i)] for i in rng.permutation(len(wires))[:k]]
        angles = [float(a) for a in rng.uniform(-np.pi, np.pi, n_angles)]
        ops.append(make(*angles, wires=w) if n_angles else make(wires=w if k > 1 else w[0]))
    ops.append(qml.GlobalPhase(0.3))
    return ops


@pytest.mark.parametrize("seed, n", [(0, 1), (1, 2), (2, 3), (3, 3), (4, 4)])
def test_random_tapes_match_default_qubit_state(seed, n):
    rng = np.random.default_rng(seed)
    tape = qml.tape.QuantumScript(_random_ops(rng, list(range(n)), 12), [qml.state()])
    c, params = qjr.from_pennylane(tape)
    ref = qml.device("default.qubit", wires=n).execute(tape)
    np.testing.assert_allclose(statevector_ref(c, np.asarray(params)), ref, atol=1e-12)


def test_qfunc_with_wire_labels_and_parameter_order():
    def qfunc(a, b):
        qml.RX(a, wires="x")
        qml.CNOT(wires=["x", "y"])
        qml.Rot(b, 2 * a, 0.5, wires="y")
        return qml.expval(qml.Z("y"))

    c, params = qjr.from_pennylane(qfunc, 0.3, b=-0.7, wires=["y", "x"])
    assert c == (qjr.Circuit(2).rx(1, qjr.param(0)).cnot(1, 0).rz(0, qjr.param(1))
                 .ry(0, qjr.param(2)).rz(0, qjr.param(3)))
    np.testing.assert_allclose(params, [0.3, -0.7, 0.6, 0.5])
    node = qml.QNode(qfunc, qml.device("default.qubit", wires=["y", "x"]))
    c_node, p_node = qjr.from_pennylane(node, 0.3, b=-0.7, wires=["y", "x"])
    assert c_node == c
    np.testing.assert_allclose(p_node, params)
    with pytest.raises(ConversionError, match=r"non-integer wire labels \['x', 'y'\]"):
        qjr.from_pennylane(qfunc, 0.3, b=-0.7)


def test_from_pennylane_errors():
    broadcast = qml.tape.QuantumScript([qml.RX(np.array([0.1, 0.2]), 0)], [qml.expval(qml.Z(0))])
    with pytest.raises(ConversionError, match="batch size 2"):
        qjr.from_pennylane(broadcast)
    mcm = qml.tape.QuantumScript([qml.measurements.MidMeasureMP(0)], [qml.expval(qml.Z(0))])
    with pytest.raises(ConversionError, match=r"MidMeasure\(wires=\[0\].*not supported with qjaxrob"):
        qjr.from_pennylane(mcm)
    tape = qml.tape.QuantumScript([qml.RX(0.1, 5)], [])
    with pytest.raises(ConversionError, match=r"wire not in \[0, 1\]"):
        qjr.from_pennylane(tape, wires=[0, 1])
    with pytest.raises(qjr.errors.QjrTypeError, match="int"):
        qjr.from_pennylane(3)


def test_missing_pennylane_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pennylane", None)
    with pytest.raises(MissingDependencyError, match=r"qjaxrob\[pennylane\]"):
        qjr.from_pennylane(lambda: None)


# ---- the device ---------------------------------------------------------------------------
N = 3


def _circuit_fn(seed):
    """A random layered circuit of trainable gates; returns a quantum function of params."""
    rng = np.random.default_rng(seed)
    layout = [(GATES[int(rng.integers(6, 13))], int(rng.integers(N))) for _ in range(2 * N)]
    pairs = [tuple(int(w) for w in rng.permutation(N)[:2]) for _ in range(N)]
    coeffs = rng.normal(size=3)

    def qfunc(params):
        k = 0
        for (make, _, n_angles), w in layout:
            make(*params[k: k + n_angles], wires=w)
            k += n_angles
        for a, b in pairs:
            qml.CNOT(wires=[a, b])
            qml.IsingZZ(params[k], wires=[b, a])
        qml.MultiRZ(params[0] * 0.5, wires=list(range(N)))
        h = coeffs[0] * qml.Z(0) @ qml.X(2) + coeffs[1] * qml.Y(1) + coeffs[2] * qml.Identity(0)
        return qml.expval(h), qml.probs(wires=[2, 0]), qml.var(qml.X(1) @ qml.Z(2))

    n_params = sum(g[2] for g, _ in layout) + 1
    return qfunc, n_params


def _values_and_grads(dev, qfunc, p, weights):
    """One jit: all measurement values, the gradient of their weighted sum and of the
    first (energy) measurement, for a QNode with the JAX interface."""
    node = qml.QNode(qfunc, dev, interface="jax")      # diff_method="best" -> backprop

    def flat(p):
        e, pr, v = node(p)
        return jnp.concatenate([jnp.atleast_1d(e), pr, jnp.atleast_1d(v)])

    def run(p):
        return flat(p), jax.grad(lambda p: flat(p) @ weights)(p), jax.grad(lambda p: flat(p)[0])(p)

    return jax.jit(run)(p)


@pytest.fixture(scope="module")
def reference():
    qfunc, n_params = _circuit_fn(11)
    rng = np.random.default_rng(5)
    p = jnp.asarray(rng.uniform(-np.pi, np.pi, n_params))
    weights = jnp.asarray(rng.normal(size=6))
    return qfunc, p, weights, _values_and_grads(qml.device("default.qubit", wires=N), qfunc, p, weights)


def test_device_is_registered():
    dev = qml.device("qjaxrob.qubit", wires=2)
    assert isinstance(dev, QjaxrobQubit) and dev.name == "qjaxrob.qubit"
    with pytest.raises(ParameterError, match="'nope'"):
        qml.device("qjaxrob.qubit", wires=2, diff="nope")


def test_device_values_and_jit_grad_match_default_qubit(reference):
    qfunc, p, weights, (values, grad, _) = reference
    got_values, got_grad, _ = _values_and_grads(qml.device("qjaxrob.qubit", wires=N), qfunc, p, weights)
    np.testing.assert_allclose(got_values, values, atol=1e-10)
    np.testing.assert_allclose(got_grad, grad, atol=1e-10)


def test_adjoint_option_gives_the_same_energy_gradient(reference):
    qfunc, p, _, (values, _, energy_grad) = reference
    node = qml.QNode(qfunc, qml.device("qjaxrob.qubit", wires=N, diff="adjoint"), interface="jax")
    value, grad = jax.jit(jax.value_and_grad(lambda p: node(p)[0]))(p)
    np.testing.assert_allclose(value, values[0], atol=1e-10)
    np.testing.assert_allclose(grad, energy_grad, atol=1e-10)


def test_autograd_interface_gradients_match_default_qubit():
    """diff_method="best" with autograd: backprop through JAX (autograd_bridge)."""
    from pennylane import numpy as pnp

    def qfunc(a):
        qml.RY(a[0], 0)
        qml.CRX(a[1], wires=[0, 1])
        return qml.expval(qml.Z(1) @ qml.X(0))

    a = pnp.array([0.4, -1.3], requires_grad=True)
    ours = qml.QNode(qfunc, qml.device("qjaxrob.qubit", wires=2))
    ref = qml.QNode(qfunc, qml.device("default.qubit", wires=2))
    np.testing.assert_allclose(ours(a), ref(a), atol=1e-12)
    np.testing.assert_allclose(qml.grad(ours)(a), qml.grad(ref)(a), atol=1e-10)


def test_jax_interface_with_parameter_shift_and_trainable_coefficients():
    def qfunc(a, c):
        qml.RY(a, 0)
        qml.CNOT(wires=[0, 1])
        return qml.expval(c[0] * qml.Z(1) + c[1] * qml.X(0) @ qml.X(1) + 0.25 * qml.Y(0))

    # The state is cos(a/2)|00> + sin(a/2)|11>: E = c0 cos(a) + c1 sin(a).
    a, c = jnp.array(0.4), jnp.array([0.5, -2.0])
    energy = c[0] * np.cos(a) + c[1] * np.sin(a)
    de_da = -c[0] * np.sin(a) + c[1] * np.cos(a)
    dev = qml.device("qjaxrob.qubit", wires=2)
    shift = qml.QNode(qfunc, dev, interface="jax", diff_method="parameter-shift")
    np.testing.assert_allclose(jax.jit(jax.value_and_grad(shift))(a, c), (energy, de_da), atol=1e-10)
    backprop = qml.QNode(qfunc, dev, interface="jax")
    value, (ga, gc) = jax.jit(jax.value_and_grad(backprop, (0, 1)))(a, c)
    np.testing.assert_allclose([value, ga, *gc], [energy, de_da, np.cos(a), np.sin(a)], atol=1e-10)


def _bell():
    qml.Hadamard("a")
    qml.CNOT(wires=["a", "b"])
    qml.RY(0.7, wires="c")
    return qml.sample(wires=["a", "b"]), qml.expval(qml.Z("c")), qml.probs(wires="c")


def test_shots_with_wire_labels():
    dev = qml.device("qjaxrob.qubit", wires=["a", "b", "c"], seed=42)
    samples, ez, pc = qml.set_shots(qml.QNode(_bell, dev), 4000)()
    assert samples.shape == (4000, 2) and set(np.unique(samples)) <= {0, 1}
    np.testing.assert_array_equal(samples[:, 0], samples[:, 1])
    assert abs(samples[:, 0].mean() - 0.5) < 5 * 0.5 / np.sqrt(4000)
    assert abs(ez - np.cos(0.7)) < 5 / np.sqrt(4000)
    np.testing.assert_allclose(pc.sum(), 1.0)
    again = qml.set_shots(qml.QNode(_bell, qml.device("qjaxrob.qubit", wires=["a", "b", "c"],
                                                      seed=42)), 4000)()
    np.testing.assert_array_equal(again[0], samples)


def test_shots_under_jit_with_a_jax_key():
    dev = qml.device("qjaxrob.qubit", wires=["a", "b", "c"], seed=jax.random.key(0))
    samples, ez, _ = jax.jit(qml.set_shots(qml.QNode(_bell, dev, interface="jax"), 2000))()
    np.testing.assert_array_equal(samples[:, 0], samples[:, 1])
    assert abs(ez - np.cos(0.7)) < 5 / np.sqrt(2000)


def test_device_rejects_what_it_cannot_do():
    dev = qml.device("qjaxrob.qubit", wires=2)

    def wide():
        qml.CNOT(wires=[0, 2])
        return qml.expval(qml.Z(0))

    with pytest.raises(qml.exceptions.WireError, match="2"):
        qml.QNode(wide, dev)()

    def shots_backprop(a):
        qml.RX(a, 0)
        return qml.expval(qml.Z(0))

    node = qml.set_shots(qml.QNode(shots_backprop, dev, interface="jax",
                                   diff_method="backprop"), 10)
    with pytest.raises(qml.exceptions.QuantumFunctionError, match="backprop"):
        node(jnp.array(0.1))


def test_device_without_pennylane_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pennylane", None)
    monkeypatch.delitem(sys.modules, "qjaxrob.interop.device", raising=False)
    with pytest.raises(MissingDependencyError,
                       match=r"qjaxrob.qubit device .*qjaxrob\[pennylane\]"):
        importlib.import_module("qjaxrob.interop.device")


@pytest.mark.slow
def test_autograd_backprop_goes_through_jax():
    """Backprop is declared for JAX and autograd/NumPy (torch: no, PennyLane falls back):
    autograd gradients, Hessians and state gradients come from jax.vjp and match the
    closed forms and default.qubit."""
    from pennylane import numpy as pnp
    from pennylane.devices import ExecutionConfig
    from pennylane.math import Interface
    dev = QjaxrobQubit(wires=2, dtype=jnp.complex128)
    for interface, want in ((Interface.JAX, True), (Interface.JAX_JIT, True),
                            (Interface.NUMPY, True), (Interface.AUTOGRAD, True),
                            (Interface.TORCH, False)):
        config = ExecutionConfig(gradient_method="backprop", interface=interface)
        assert dev.supports_derivatives(config) is want

    def qfunc(x, y):
        qml.RX(x, 0)
        qml.RY(y, 1)
        qml.CNOT([0, 1])
        return qml.expval(qml.Z(1)), qml.probs(wires=[0])

    ours = qml.QNode(qfunc, dev, diff_method="backprop")
    ref = qml.QNode(qfunc, qml.device("default.qubit", wires=2), diff_method="backprop")
    x, y = pnp.array(0.37, requires_grad=True), pnp.array(-1.1, requires_grad=True)

    def cost(node):
        return lambda a, b: node(a, b)[0] + 0.5 * node(a, b)[1][1]

    np.testing.assert_allclose(qml.grad(cost(ours))(x, y), qml.grad(cost(ref))(x, y),
                               atol=1e-10)
    # <Z_1> = cos x cos y: Hessian [[-c c, s s], [s s, -c c]] with c c = cos x cos y
    hess = qml.jacobian(qml.grad(lambda p: ours(p[0], p[1])[0]))(
        pnp.array([0.37, -1.1], requires_grad=True))
    cc, ss = np.cos(0.37) * np.cos(-1.1), np.sin(0.37) * np.sin(-1.1)
    np.testing.assert_allclose(np.array(hess, dtype=float), [[-cc, ss], [ss, -cc]], atol=1e-9)

    def state_fn(a):
        qml.RX(a, 0)
        qml.RY(2 * a, 1)
        return qml.state()

    got = qml.grad(lambda a: pnp.abs(qml.QNode(state_fn, dev, diff_method="backprop")(a)[2]) ** 2)
    want = qml.grad(lambda a: pnp.abs(qml.QNode(state_fn, qml.device("default.qubit", wires=2),
                                               diff_method="backprop")(a)[2]) ** 2)
    assert np.isclose(got(x), want(x), atol=1e-10)


def test_samples_come_from_a_renormalised_state():
    """A complex64 state whose norm misses 1 by more than PennyLane's sampler allows
    (deep circuits: 2.5e-6) is renormalised in float64 before sampling."""
    dev = QjaxrobQubit(wires=2, seed=3, dtype=jnp.complex64)
    tape = qml.tape.QuantumScript([], [qml.probs(wires=[0, 1])], shots=4000)
    psi = np.array([0.6, 0.0, 0.0, 0.8], np.complex64) * np.float32(1 + 4e-6)
    probs = dev._sampled(tape, psi.reshape(2, 2))
    assert np.all(np.abs(probs - [0.36, 0, 0, 0.64]) < 5 * np.sqrt(0.25 / 4000))

    def deep():
        qml.Hadamard(0)
        qml.FermionicDoubleExcitation(0.4, wires1=[0, 1], wires2=[2, 3])
        return qml.probs(wires=[0])

    deep_dev = QjaxrobQubit(wires=4, seed=4, dtype=jnp.complex64)
    p = qml.set_shots(qml.QNode(deep, deep_dev), 2000)()
    assert abs(float(p[0]) - 0.5) < 5 * np.sqrt(0.25 / 2000)


def test_operations_without_a_decomposition_run_through_their_matrix():
    """DoubleExcitationPlus/Minus and BlockEncode (no PennyLane decomposition) run as
    constant unitaries and agree with default.qubit."""
    a_mat = np.array([[0.2, 0.1], [0.3, -0.4]])

    def qfunc():
        qml.Hadamard(0)
        qml.RY(0.3, 2)
        qml.CNOT([0, 1])
        qml.DoubleExcitationPlus(0.4, wires=[0, 1, 2, 3])
        qml.DoubleExcitationMinus(-0.7, wires=[3, 1, 2, 0])
        qml.BlockEncode(a_mat, wires=[1, 2])
        return qml.state()

    got = qml.QNode(qfunc, QjaxrobQubit(wires=4, dtype=jnp.complex128))()
    want = qml.QNode(qfunc, qml.device("default.qubit", wires=4))()
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_errors_under_jit_with_shots_are_raised_as_themselves():
    """Under jax.jit with shots PennyLane runs the device inside a host callback; the
    device checks the circuit at trace time so errors are not wrapped as JaxRuntimeError."""
    dev = QjaxrobQubit(wires=2, seed=jax.random.PRNGKey(0))
    almost = np.array([[1, 0], [0, np.exp(0.3j) * (1 + 1e-3)]])  # not unitary to 1e-6

    def bad_matrix(x):
        qml.RX(x, 0)
        qml.QubitUnitary(almost, wires=1)
        return qml.expval(qml.Z(0))

    def state(x):
        qml.RX(x, 0)
        return qml.state()

    node = qml.set_shots(qml.QNode(bad_matrix, dev, interface="jax"), 100)
    with pytest.raises(ConversionError, match="QubitUnitary"):
        jax.jit(node)(0.3)
    node = qml.set_shots(qml.QNode(state, dev, interface="jax"), 100)
    with pytest.raises(qml.exceptions.DeviceError, match="state"):
        jax.jit(node)(0.3)


@pytest.mark.slow
def test_broadcast_tape_runs_as_one_vmapped_program():
    """A broadcast batch (AngleEmbedding of a batch + StronglyEntanglingLayers) is one
    execution, not one tape per element, with default.qubit's values and gradients;
    broadcasts that cannot be vmapped (shots, broadcast matrices) are expanded."""
    rng = np.random.default_rng(11)
    x, w = jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=(1, 3, 3)))

    def qfunc(x, w):
        qml.AngleEmbedding(x, wires=range(3))
        qml.StronglyEntanglingLayers(w, wires=range(3))
        return qml.expval(qml.Z(0) @ qml.X(2)), qml.probs(wires=[1]), qml.var(qml.Y(1))

    dev = QjaxrobQubit(wires=3, dtype=jnp.complex128)
    ours = qml.QNode(qfunc, dev, interface="jax")
    ref = qml.QNode(qfunc, qml.device("default.qubit", wires=3), interface="jax")
    with qml.Tracker(dev) as tracker:
        got = ours(x, w)
    assert tracker.totals["executions"] == 1
    for a, b in zip(got, ref(x, w)):
        assert np.shape(a) == np.shape(b) and np.shape(a)[0] == 4
        np.testing.assert_allclose(a, b, atol=1e-12)

    def loss(node):
        return jax.grad(lambda w: jnp.sum(node(x, w)[0] ** 2))

    np.testing.assert_allclose(loss(ours)(w), loss(ref)(w), atol=1e-10)

    def matrices(t):
        qml.QubitUnitary(jnp.stack([qml.matrix(qml.RY(a, 0)) for a in t]), wires=0)
        return qml.expval(qml.Z(0))

    t = jnp.array([0.1, 0.9, 2.0])
    with qml.Tracker(dev) as tracker:
        vals = qml.QNode(matrices, dev)(t)
    assert tracker.totals["executions"] == 3
    np.testing.assert_allclose(vals, np.cos(t), atol=1e-12)
