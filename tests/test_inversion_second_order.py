"""The gradient-matching objective and its input gradient (a gradient of a gradient)
against an independent NumPy reference: the model's parameter gradient by exact
parameter-shift rules on ``tests/reference.py``'s simulator, the distance's ``x``-gradient
by central finite differences of that reference; on the dense path and the engine, at both
dtypes, vmapped over restarts; and the benchmark's alternative formulations
(``benchmarks.attacks.second_order_forms``) against the same reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from benchmarks.attacks import second_order_forms
from qjaxrob.attacks import inversion as inv
from qjaxrob.attacks.inversion.objective import objective
from qjaxrob.qml.train import cross_entropy
from qjaxrob.sim import dense
from tests.reference import embed, flat_ops, gate_matrix_ref, resolve

N, LAYERS, RESTARTS = 3, 2, 3


def _model(dtype, seed=5):
    enc = qjr.qml.angle_encoding(N)
    return qjr.qml.VQC(jax.random.key(seed), enc, qjr.qml.hardware_efficient(N, LAYERS), 2,
                       readout_wires=tuple(range(N)), dtype=dtype)


_MATS = {}


def _readout_ref(model, theta, x):
    """``<Z_w>`` of the readout wires (angle encoding: the inputs are ``x``) by the reference's gate matrices (memoised per gate
    and angle: a parameter shift or a feature step changes one gate)."""
    n = model.circuit.n_qubits
    psi = np.zeros(2**n, complex)
    psi[0] = 1
    for op, shift in flat_ops(model.circuit):
        vals = tuple(resolve(a, theta[shift:], x) for a in op.angles)
        key = (op.name, op.wires, vals)
        if key not in _MATS:
            _MATS[key] = embed(gate_matrix_ref(op.name, list(vals)), op.wires, n)
        psi = _MATS[key] @ psi
    prob = np.abs(psi) ** 2
    bits = (np.arange(2**n)[:, None] >> (n - 1 - np.asarray(model.readout_wires))) & 1
    return prob @ (1 - 2 * bits)


def _gradient_ref(model, x, y):
    """Flattened ``grad_(params, weights, bias)`` of the cross-entropy at one example: the
    readout's parameter derivatives by the pi/2 shift rule (every parameter is one RY/RZ
    angle), the linear layer's by hand."""
    theta = np.asarray(model.params, float)
    w, b = np.asarray(model.weights, float), np.asarray(model.bias, float)
    r = _readout_ref(model, theta, x)
    z = w @ r + b
    p = np.exp(z - z.max())
    p /= p.sum()
    dz = p - np.eye(len(z))[y]
    dr = np.empty((len(theta), len(r)))
    for j in range(len(theta)):
        e = np.zeros_like(theta)
        e[j] = np.pi / 2
        dr[j] = (_readout_ref(model, theta + e, x) - _readout_ref(model, theta - e, x)) / 2
    return np.concatenate([dr @ (w.T @ dz), np.outer(dz, r).ravel(), dz])


def _distance_ref(model, x, y, target):
    return float(np.sum((_gradient_ref(model, x, y) - target) ** 2))


def _distance_grad_ref(model, x, y, target, h=1e-5):
    out = np.empty(len(x))
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h
        out[i] = (_distance_ref(model, x + e, y, target)
                  - _distance_ref(model, x - e, y, target)) / (2 * h)
    return out


@pytest.fixture(scope="module")
def reference():
    """Restart points, the target gradient of a secret example and, per dtype's model, the
    reference distance and its ``x``-gradient at every point (float64 NumPy)."""
    rng = np.random.default_rng(3)
    secret, y = rng.uniform(0, 2 * np.pi, N), 1
    points = rng.uniform(0, 2 * np.pi, (RESTARTS, N))
    out = {}
    for dtype in (jnp.complex64, jnp.complex128):
        model = _model(dtype)
        target = _gradient_ref(model, secret, y)
        values = np.array([_distance_ref(model, p, y, target) for p in points])
        grads = np.array([_distance_grad_ref(model, p, y, target) for p in points])
        out[dtype] = (model, target, values, grads)
    return points, y, out


def _tol(dtype):
    return (2e-3, 5e-3) if dtype == jnp.complex64 else (1e-10, 1e-6)


def _check(values, grads, ref_values, ref_grads, dtype):
    vtol, gtol = _tol(dtype)
    np.testing.assert_allclose(np.asarray(values, float), ref_values, rtol=vtol, atol=0)
    scale = np.max(np.abs(ref_grads))
    np.testing.assert_allclose(np.asarray(grads, float).reshape(ref_grads.shape), ref_grads,
                               rtol=0, atol=gtol * scale)


def test_reference_gradient_is_the_shared_gradient(reference):
    """The parameter-shift reference equals ``shared_gradient`` (autodiff) at complex128."""
    points, y, out = reference
    model, *_ = out[jnp.complex128]
    got = inv.check_grads(model, inv.shared_gradient(model, points[:1], jnp.array([y])))
    np.testing.assert_allclose(np.asarray(got), _gradient_ref(model, points[0], y),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("path", ["1", "0"])
@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_objective_and_its_input_gradient(reference, monkeypatch, path, dtype):
    """What the attack optimises: ``value_and_grad`` of the distance, vmapped over restarts,
    on the dense path (``1``) and the engine (``0``)."""
    points, y, out = reference
    model, target, ref_values, ref_grads = out[dtype]
    monkeypatch.setenv(dense.ENV, path)  # read when the function below is traced
    real = model.params.dtype
    fl = objective(cross_entropy, model, jnp.asarray(target, real), "l2")
    label = jnp.array([y], jnp.int32)
    v, g = jax.jit(jax.vmap(jax.value_and_grad(lambda z: fl(z, label))))(
        jnp.asarray(points[:, None, :], real))
    _check(v, g, ref_values, ref_grads, dtype)


def test_benchmark_formulations(reference):
    """The benchmark's reverse-over-forward and forward-over-reverse forms give the same
    value and input gradient as the reference; ``gradient`` is the shared gradient
    (complex128; the objective above covers both dtypes)."""
    points, y, out = reference
    dtype = jnp.complex128
    model, target, ref_values, ref_grads = out[dtype]
    real = model.params.dtype
    forms = second_order_forms(model, jnp.asarray(target, real), jnp.array([y], jnp.int32))
    xs = jnp.asarray(points[:, None, :], real)
    for name in ("reverse_forward", "forward_reverse"):
        v, g = jax.jit(jax.vmap(forms[name]))(xs)
        _check(v, g, ref_values, ref_grads, dtype)
    got = jax.jit(jax.vmap(forms["gradient"]))(xs)
    want = np.array([_gradient_ref(model, p, y) for p in points])
    np.testing.assert_allclose(np.asarray(got, float), want, rtol=0,
                               atol=_tol(dtype)[0] * 10 * np.max(np.abs(want)) + 1e-12)
