"""Sliding-window runs (qjaxrob/lower/ring.py) in the adjoint method's backward walk: the
grouping, values and gradients against the dense reference and backprop (both dtypes, wrap-
around windows, runs starting anywhere, vmap, Hessians), and a backward program whose size
does not grow with the qubit count."""

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TOL
from reference import expval_ref

import qjaxrob as qjr
from qjaxrob import backend
from qjaxrob.kernels import inplace
from qjaxrob.lower.interpreter import Program
from qjaxrob.lower.pipeline import Scan
from qjaxrob.lower.ring import window_runs, window_wire
from qjaxrob.sim import adjoint
from qjaxrob.sim.adjoint import _backward, _lowered

TWO_QUBIT = ("crx", "cry", "crz", "rxx", "ryy", "rzz")


@pytest.fixture(autouse=True)
def _short_runs(monkeypatch):
    """Group runs from 8 windows (the default starts at 18, beyond the reference's sizes);
    the compiled entry points are cleared around each test so no other test reuses them."""
    monkeypatch.setattr(adjoint, "RING_MIN_BLOCKS", 8)
    jax.clear_caches()
    yield
    jax.clear_caches()


@pytest.fixture(params=["xla", "in place"])
def gate_kernels(request, monkeypatch):
    """Both kernel sets of the walk: XLA's, and every dense gate in place
    (:mod:`qjaxrob.kernels.inplace` with its size threshold at 0), where the windows' scan
    takes two windows per iteration."""
    if request.param == "in place":
        assert inplace.available(), inplace.status()
        monkeypatch.setattr(inplace, "MIN_STATE_BYTES", 0)
    return request.param


def _hea(n, layers, ring=True):
    """RY+RZ on every wire, then CNOTs on (q, q+1) (and (n-1, 0) for a ring), repeated."""
    block = qjr.Circuit(n)
    for q in range(n):
        block = block.ry(q, qjr.param(2 * q)).rz(q, qjr.param(2 * q + 1))
    for q in range(n if ring else n - 1):
        block = block.cnot(q, (q + 1) % n)
    return qjr.Circuit.repeat(block, layers)


def _windows(rng, n, start, count):
    """Random parameterised 2-qubit gates on windows ``start, start+1, ...`` (mod ``n``),
    either orientation, with single-wire rotations in between and input angles."""
    c = qjr.Circuit(n).h(start)
    k = 0
    for j in range(count):
        a, b = (start + j) % n, (start + j + 1) % n
        if rng.integers(2):
            a, b = b, a
        c = c.gate(TWO_QUBIT[rng.integers(len(TWO_QUBIT))], [a, b], qjr.param(k) * 0.7 - 0.2)
        c = c.rx(b, qjr.inp(j % 2) * 1.3 + 0.1).rz(a, qjr.param(k + 1))
        k += 2
    return c


def _grouped(circuit):
    low = _lowered(circuit, backend.kernel_choice(None), 24, backward=True)
    nodes = low.nodes
    while len(nodes) == 1 and isinstance(nodes[0], Scan):
        nodes = nodes[0].body.nodes
    return [nd for nd in nodes if isinstance(nd, Program) and nd.start >= 0]


def test_window_wire_and_runs():
    assert window_wire((3, 4), 9) == 3
    assert window_wire((0, 8), 9) == 8
    assert window_wire((2, 4), 9) is None
    assert window_wire((0, 1), 2) is None  # orientation ambiguous on 2 wires
    assert window_wire((1,), 9) is None
    runs = _grouped(_hea(9, 2))
    assert len(runs) == 1 and runs[0].start == 0 and len(runs[0].blocks) == 9
    # an open chain: 8 windows, the last block on (7, 8); too short a chain stays unrolled
    assert [len(r.blocks) for r in _grouped(_hea(9, 2, ring=False))] == [8]
    assert _grouped(_hea(7, 2, ring=False)) == []
    # the forward pass's lowering is not grouped
    fwd = _lowered(_hea(9, 2), backend.kernel_choice(None), 24)
    assert not any(isinstance(nd, Program) for nd in fwd.nodes[0].body.nodes)


def test_window_runs_breaks_on_gaps():
    class B:  # a stand-in block: only wires matter
        def __init__(self, *w):
            self.wires = w

    nodes = [B(0, 1), B(1, 2), B(2, 3), B(4, 5), B(5, 6), B(6, 7), B(0, 7), B(0, 1)]
    out = window_runs(tuple(nodes), 8, 3, lambda b: True, lambda bl, s: ("run", s, len(bl)))
    assert out == (("run", 0, 3), ("run", 4, 5))
    assert window_runs(tuple(nodes), 8, 0, lambda b: True, None) == tuple(nodes)


def _check(c, obs, p, x, dtype):
    def loss(diff):
        def f(q, y):
            return qjr.expval(c, obs, q, y, dtype=dtype, diff=diff)
        return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

    va, ga = loss("adjoint")(p, x)
    vb, gb = loss("backprop")(p, x)
    tol = 20 * TOL[dtype]
    np.testing.assert_allclose(va, expval_ref(c, obs, np.asarray(p, float), np.asarray(x, float)),
                               atol=tol)
    np.testing.assert_allclose(va, vb, atol=tol)
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(a, b, atol=tol)
    return ga


@pytest.mark.parametrize("n, start, count, dtype", [
    (6, 3, 10, jnp.complex128), (6, 3, 10, jnp.complex64), (8, 0, 8, jnp.complex128),
    (9, 5, 13, jnp.complex64)])
def test_windows_match_reference_and_backprop(n, start, count, dtype, gate_kernels):
    rng = np.random.default_rng(n + start)
    c = _windows(rng, n, start, count)
    runs = _grouped(c)
    assert [(r.start, len(r.blocks)) for r in runs] == [(start, count)]
    real = jnp.finfo(dtype).dtype
    p = jnp.asarray(rng.uniform(-2, 2, c.n_params), real)
    x = jnp.asarray(rng.uniform(-2, 2, c.n_inputs), real)
    obs = qjr.Z(start) @ qjr.X((start + 2) % n) + 0.5 * qjr.Y((start + 1) % n)
    gp, gx = _check(c, obs, p, x, dtype)
    if n == 6 and dtype == jnp.complex128:
        # directional central differences of the dense reference, params and inputs
        h = 1e-6
        for d in rng.normal(size=(2, c.n_params + c.n_inputs)):
            dp, dx = d[: c.n_params], d[c.n_params:]
            up = expval_ref(c, obs, np.asarray(p) + h * dp, np.asarray(x) + h * dx)
            down = expval_ref(c, obs, np.asarray(p) - h * dp, np.asarray(x) - h * dx)
            np.testing.assert_allclose(np.dot(gp, dp) + np.dot(gx, dx), (up - down) / (2 * h),
                                       atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
def test_hea_ring_vmapped_over_seeds(dtype, gate_kernels):
    c = _hea(8, 1)
    real = jnp.finfo(dtype).dtype
    ps = jax.random.uniform(jax.random.key(3), (3, c.n_params), real, -2, 2)
    obs = qjr.Z(0) @ qjr.Z(5) + 0.3 * qjr.X(7)

    def grads(diff):
        g = jax.grad(lambda q: qjr.expval(c, obs, q, dtype=dtype, diff=diff))
        return jax.jit(jax.vmap(g))(ps)

    np.testing.assert_allclose(grads("adjoint"), grads("backprop"), atol=20 * TOL[dtype])
    values = jax.jit(jax.vmap(lambda q: qjr.expval(c, obs, q, dtype=dtype, diff="adjoint")))(ps)
    np.testing.assert_allclose(values, [expval_ref(c, obs, np.asarray(q, float)) for q in ps],
                               atol=20 * TOL[dtype])


@pytest.mark.slow
def test_hessian_through_windows():
    c = _hea(8, 1)
    p = jax.random.uniform(jax.random.key(4), (c.n_params,), jnp.float64, -2, 2)

    def hess(diff):
        return jax.jit(jax.hessian(
            lambda q: qjr.expval(c, qjr.Z(1), q, dtype=jnp.complex128, diff=diff)))(p)

    np.testing.assert_allclose(hess("adjoint"), hess("backprop"), atol=1e-9)


def _equations(jaxpr) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        count += 1
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            count += _equations(sub)
    return count


def _backward_size(n, grouped):
    c = _hea(n, 3)
    low = _lowered(c, backend.kernel_choice(None), 24, backward=grouped)
    p, x = jnp.zeros(c.n_params), jnp.zeros(0)
    pair = jnp.zeros((2,) + (2,) * n, jnp.complex128)
    closed = jax.make_jaxpr(lambda pr, q: _backward(low, pr, q, x, jnp.complex128))(pair, p)
    return _equations(closed.jaxpr)


def test_backward_program_size_flat_in_qubits():
    grouped = _backward_size(9, True), _backward_size(13, True)
    unrolled = _backward_size(9, False), _backward_size(13, False)
    assert grouped[0] == grouped[1]
    assert unrolled[1] > unrolled[0] > grouped[0]


@pytest.mark.slow
def test_default_threshold_groups_from_18_qubits(monkeypatch):
    """With the library's threshold a 17-qubit HEA layer stays unrolled and an 18-qubit one
    is one sliding-window run, whose adjoint gradient equals backprop's."""
    from qjaxrob.lower import ring

    monkeypatch.setattr(adjoint, "RING_MIN_BLOCKS", ring.RING_MIN_BLOCKS)
    assert _grouped(_hea(17, 2)) == []
    c = _hea(18, 2)
    assert [(r.start, len(r.blocks)) for r in _grouped(c)] == [(0, 18)]
    p = jnp.asarray(np.random.default_rng(3).uniform(-2, 2, c.n_params))
    grads = [jax.jit(jax.grad(lambda q, d=d: qjr.expval(c, qjr.Z(0) @ qjr.Z(9), q,
                                                        dtype=jnp.complex128, diff=d)))(p)
             for d in ("adjoint", "backprop")]
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-10)
