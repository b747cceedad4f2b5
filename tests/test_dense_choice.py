"""Batch-aware path choice of the dense small-state path (qjaxrob.sim.dense): the batch
probe (``batch_sizes``) reports the ``jax.vmap`` sizes over params/x through every nesting
of vmap, grad, jit and Hessians, the derivative probe (``differentiated``) whether the call
is differentiated, and both stay out of the values and derivatives; under
``QJAXROB_DENSE=auto`` the public API takes the path the cost model prices lower for the
batch the call runs in and for whether it is differentiated (asserted on the path traced,
not on time), a ``vmap`` outside a ``jit`` falls back to the unbatched choice, and batched
values and gradients equal the dense NumPy reference at both dtypes whichever path is
taken."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TOL, finite_diff
from reference import expval_ref
from test_dense import hea

import qjaxrob as qjr
from qjaxrob.sim import dense


def _probed(seen):
    """``f(p, x) = sum(sin(p) * x)`` (analytic derivatives) that records the batch probe."""
    def f(p, x):
        seen.append(dense.batch_sizes(p, x))
        return jnp.sum(jnp.sin(p) * x)
    return f


P, XS, PS = jnp.linspace(0.1, 0.9, 3), jnp.linspace(-1, 1, 15).reshape(5, 3), None


@pytest.mark.parametrize("name,build,want", [
    ("eager", lambda f, p, xs, ps: f(p, xs[0]), (1, 1)),
    ("jit", lambda f, p, xs, ps: jax.jit(f)(p, xs[0]), (1, 1)),
    ("grad(vmap x)", lambda f, p, xs, ps: jax.grad(
        lambda q: jnp.mean(jax.vmap(f, (None, 0))(q, xs)))(p), (5, 1)),
    ("jit(grad(vmap x))", lambda f, p, xs, ps: jax.jit(jax.grad(
        lambda q, v: jnp.mean(jax.vmap(f, (None, 0))(q, v))))(p, xs), (5, 1)),
    ("vmap p (grad)", lambda f, p, xs, ps: jax.vmap(jax.grad(f), (0, None))(ps, xs[0]), (4, 4)),
    ("vmap p (vmap x)", lambda f, p, xs, ps: jax.vmap(jax.vmap(f, (None, 0)), (0, None))(ps, xs),
     (20, 4)),
    ("hessian", lambda f, p, xs, ps: jax.hessian(f)(p, xs[0]), (1, 1)),
    ("vmap p (hessian)", lambda f, p, xs, ps: jax.vmap(jax.hessian(f), (0, None))(ps, xs[0]),
     (4, 4)),
    ("hessian(vmap x)", lambda f, p, xs, ps: jax.hessian(
        lambda q: jnp.sum(jax.vmap(f, (None, 0))(q, xs)))(p), (5, 1)),
    ("jit(vmap p (grad(grad)))", lambda f, p, xs, ps: jax.jit(jax.vmap(jax.grad(
        lambda q, v: jnp.sum(jax.grad(f)(q, v))), (0, None)))(ps, xs[0]), (4, 4)),
    ("vmap x (jit): not visible", lambda f, p, xs, ps: jax.vmap(jax.jit(f), (None, 0))(p, xs),
     None),
])
def test_batch_probe_through_transforms(name, build, want):
    ps = jnp.stack([P + 0.1 * i for i in range(4)])
    seen = []
    got = build(_probed(seen), P, XS, ps)
    ref = build(lambda p, x: jnp.sum(jnp.sin(p) * x), P, XS, ps)
    np.testing.assert_allclose(got, ref, atol=1e-6)  # the probe never changes a value
    if want is None:  # traced before the vmap batches it: nothing seen or unbatched
        assert all(s == (1, 1) for s in seen), seen
    else:
        assert seen and all(s == want for s in seen), (name, seen)


def test_probe_derivatives_are_analytic():
    seen = []
    f = _probed(seen)
    g = jax.grad(lambda q: jnp.mean(jax.vmap(f, (None, 0))(q, XS)))(P)
    np.testing.assert_allclose(g, np.cos(P) * np.mean(XS, axis=0), atol=1e-6)
    h = jax.hessian(f)(P, XS[0])
    np.testing.assert_allclose(h, np.diag(-np.sin(P) * XS[0]), atol=1e-6)


def _marked(seen):
    """``f(p, x) = sum(sin(p) * x)`` that records the derivative probe."""
    def f(p, x):
        seen.append(dense.differentiated(p, x))
        return jnp.sum(jnp.sin(p) * x)
    return f


@pytest.mark.parametrize("name,build,want", [
    ("eager", lambda f, p, x: f(p, x), False),
    ("jit", lambda f, p, x: jax.jit(f)(p, x), False),
    ("vmap x", lambda f, p, x: jax.vmap(f, (None, 0))(p, jnp.stack([x, 2 * x])), False),
    ("grad", lambda f, p, x: jax.grad(f)(p, x), True),
    ("grad in x", lambda f, p, x: jax.grad(f, 1)(p, x), True),
    ("jit(grad)", lambda f, p, x: jax.jit(jax.grad(f))(p, x), True),
    ("vmap(grad)", lambda f, p, x: jax.vmap(jax.grad(f), (None, 0))(p, jnp.stack([x, x])),
     True),
    ("grad(vmap)", lambda f, p, x: jax.grad(
        lambda q: jnp.sum(jax.vmap(f, (None, 0))(q, jnp.stack([x, x]))))(p), True),
    ("jvp", lambda f, p, x: jax.jvp(lambda q: f(q, x), (p,), (p,))[1], True),
    ("linearize", lambda f, p, x: jax.linearize(lambda q: f(q, x), p)[0], True),
    ("hessian", lambda f, p, x: jax.hessian(f)(p, x), True),
    ("stop_gradient", lambda f, p, x: jax.grad(
        lambda q: f(jax.lax.stop_gradient(q), x) + jnp.sum(q))(p), False),
])
def test_derivative_probe_through_transforms(name, build, want):
    seen = []
    got = build(_marked(seen), P, XS[0])
    ref = build(lambda p, x: jnp.sum(jnp.sin(p) * x), P, XS[0])
    np.testing.assert_allclose(got, ref, atol=1e-6)  # the probe never changes a value
    assert seen and all(s == want for s in seen), (name, seen)


def _traced_paths(monkeypatch):
    """A list that records, per trace, whether the dense path was traced."""
    paths = []
    real_dense, real_engine = dense.dense_tensor, dense.engine.final_tensor
    monkeypatch.setattr(dense, "dense_tensor",
                        lambda *a: paths.append("dense") or real_dense(*a))
    monkeypatch.setattr(dense.engine, "final_tensor",
                        lambda *a, **k: paths.append("engine") or real_engine(*a, **k))
    return paths


def _paths_of(paths, fn, *args):
    jax.clear_caches()
    paths.clear()
    jax.eval_shape(fn, *args)
    return set(paths)


def _fwd(c, dtype=jnp.complex128):
    return lambda p, x: qjr.expval(c, qjr.Z(0), p, x, dtype=dtype)


def _mean_grad(c, dtype=jnp.complex128):
    f = _fwd(c, dtype)
    return jax.grad(lambda p, xs: jnp.mean(jax.vmap(f, (None, 0))(p, xs)))


def test_auto_takes_the_dense_path_for_the_batched_row_only(monkeypatch):
    """benchmarks/peers.py's batched gradient row (n = 10, L = 4, B = 256: ``vmap`` over
    inputs inside ``grad``) runs dense under auto; one unbatched forward of 6-10 qubits
    keeps the engine; every traced call follows the cost model for its batch."""
    monkeypatch.setenv(dense.ENV, "auto")
    paths = _traced_paths(monkeypatch)
    for n in (6, 8, 10):
        c = hea(n, 4)
        p, xs = jnp.zeros(c.n_params), jnp.zeros((256, n))
        assert _paths_of(paths, _fwd(c), p, xs[0]) == {"engine"}
        assert not dense.use_dense(c, False, batch=1)
        want = "dense" if dense.use_dense(c, False, batch=256, shared=True) else "engine"
        assert _paths_of(paths, _mean_grad(c), p, xs) == {want}
        ps = jnp.zeros((32, c.n_params))
        want = "dense" if dense.use_dense(c, False, batch=32) else "engine"
        assert _paths_of(paths, jax.vmap(jax.grad(_fwd(c)), (0, None)), ps, xs[0]) == {want}
        want = ("dense" if dense.use_dense(c, False, batch=256, shared=True, derivative=False)
                else "engine")
        assert _paths_of(paths, jax.vmap(_fwd(c), (None, 0)), p, xs) == {want}
    assert dense.use_dense(hea(10, 4), False, batch=256, shared=True)
    # the same batch evaluated without a derivative is priced by COST_FORWARD
    assert not dense.use_dense(hea(10, 4), False, batch=256, shared=True, derivative=False)
    jax.clear_caches()


def test_forced_paths_ignore_the_batch(monkeypatch):
    paths = _traced_paths(monkeypatch)
    c = hea(10, 4)
    p, xs = jnp.zeros(c.n_params), jnp.zeros((256, 10))
    for value, want in (("0", "engine"), ("1", "dense")):
        monkeypatch.setenv(dense.ENV, value)
        assert _paths_of(paths, _mean_grad(c), p, xs) == {want}
        assert _paths_of(paths, _fwd(c), p, xs[0]) == {want}
    jax.clear_caches()


def _flip_case():
    """The smallest ``(n, B)`` of the encoded HEA (L = 2) whose unbatched call runs on the
    engine and whose shared batch of ``B`` runs dense under the cost model."""
    for n in range(4, 11):
        c = hea(n, 2)
        for b in (2, 4, 8, 16, 32, 64):
            if not dense.use_dense(c, False) and dense.use_dense(c, False, batch=b, shared=True):
                return c, b
    pytest.fail("no circuit where the batch changes the path: the cost model lost its batch term")


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_batched_values_and_gradients_match_reference(monkeypatch, dtype):
    monkeypatch.setenv(dense.ENV, "auto")
    paths = _traced_paths(monkeypatch)
    c, b = _flip_case()
    n = c.n_qubits
    rng = np.random.default_rng(n + b)
    p, xs = rng.uniform(-2, 2, c.n_params), rng.uniform(-2, 2, (b, n))
    real = jnp.float64 if dtype == jnp.complex128 else jnp.float32
    pj, xj = jnp.asarray(p, real), jnp.asarray(xs, real)
    f = _fwd(c, dtype)
    jax.clear_caches()
    paths.clear()
    vals = jax.jit(jax.vmap(f, (None, 0)))(pj, xj)
    forward = dense.use_dense(c, False, batch=b, shared=True, derivative=False)
    assert set(paths) == {"dense" if forward else "engine"}
    want = [expval_ref(c, qjr.Z(0), p, x) for x in xs]
    np.testing.assert_allclose(vals, want, atol=10 * TOL[dtype])
    paths.clear()
    g = jax.jit(_mean_grad(c, dtype))(pj, xj)
    assert set(paths) == {"dense"}
    fd = finite_diff(lambda v: np.mean([expval_ref(c, qjr.Z(0), v, x) for x in xs]), p)
    np.testing.assert_allclose(g, fd, atol=1e-6 if dtype == jnp.complex128 else 2e-4)
    assert _paths_of(paths, f, pj, xj[0]) == {"engine"}  # unbatched: the engine
    one = f(pj, xj[0])
    np.testing.assert_allclose(one, want[0], atol=10 * TOL[dtype])
    jax.clear_caches()


def test_vmap_outside_jit_falls_back_to_the_unbatched_choice(monkeypatch):
    """``jax.vmap(jax.jit(f))`` traces ``f`` unbatched: the unbatched path, the same values."""
    monkeypatch.setenv(dense.ENV, "auto")
    paths = _traced_paths(monkeypatch)
    c, b = _flip_case()
    rng = np.random.default_rng(7)
    p, xs = rng.uniform(-2, 2, c.n_params), rng.uniform(-2, 2, (b, c.n_qubits))
    jax.clear_caches()
    paths.clear()
    got = jax.vmap(jax.jit(_fwd(c)), (None, 0))(jnp.asarray(p), jnp.asarray(xs))
    assert set(paths) == {"engine"}
    np.testing.assert_allclose(got, [expval_ref(c, qjr.Z(0), p, x) for x in xs],
                               atol=10 * TOL[jnp.complex128])
    jax.clear_caches()
