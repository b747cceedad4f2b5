"""Path selection of the dense small-state path (qjaxrob.sim.dense): the default ``auto``
and both forced paths (``0`` engine, ``1`` dense) give the dense NumPy reference's values on
random circuits of 2-8 qubits (statevector) and 2-5 qubits (density matrix with channels)
at both dtypes, the same gradients (against finite differences; the dense path's full
Hessian against finite differences of its gradient), the same second-order
(gradient-of-a-gradient) objective, vmap over inputs through ``Circuit.repeat`` with noise,
and ``diff="adjoint"`` keeps working whatever the choice."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TOL, finite_diff
from reference import density_ref, expval_ref, statevector_ref
from test_dense import _inputs, _obs, hea, random_circuit

import qjaxrob as qjr
from qjaxrob.errors import ParameterError
from qjaxrob.sim import dense, measure

MODES = ("auto", "0", "1")


def _state(c, p, x, dtype, mixed, mode):
    dim = 2**c.n_qubits
    t = dense.final_tensor(c, p, x, dtype, mixed, dense=mode)
    return t.reshape(dim, dim) if mixed else t.reshape(dim)


def _expval_fn(c, obs, dtype, mixed, mode):
    def f(p, x):
        t = dense.final_tensor(c, p, x, dtype, mixed, dense=mode)
        return measure.observable_values(t, (obs,), mixed)[0]
    return f


# ---- values: every mode, several sizes, both dtypes ----------------------------------
@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
@pytest.mark.parametrize("n,seed,mixed", [(2, 20, False), (5, 21, False), (8, 22, False),
                                          (2, 23, True), (5, 24, True)])
def test_every_mode_matches_reference(n, seed, mixed, dtype):
    c = random_circuit(seed, n, n_ops=12 if mixed else 20, channels=mixed)
    p, x = _inputs(c, seed)
    want = density_ref(c, p, x) if mixed else statevector_ref(c, p, x)
    got = {}
    for mode in MODES:
        got[mode] = np.asarray(jax.jit(
            lambda p, x, mode=mode: _state(c, p, x, dtype, mixed, mode))(p, x))
        assert got[mode].dtype == np.dtype(dtype)
        np.testing.assert_allclose(got[mode], want, atol=TOL[dtype], err_msg=mode)
    np.testing.assert_allclose(got["0"], got["1"], atol=TOL[dtype])
    chosen = "1" if dense.use_dense(c, mixed, dense="auto") else "0"
    np.testing.assert_array_equal(got["auto"], got[chosen])


# ---- derivatives ------------------------------------------------------------------------
@pytest.mark.parametrize("n,seed,mixed", [(4, 31, False), (2, 32, True)])
def test_gradient_and_hessian_match_finite_differences(n, seed, mixed):
    """Gradients of both paths against finite differences of the reference; the dense
    path's full Hessian against finite differences of its gradient (the engine's second
    derivatives are tested with the engine)."""
    c = random_circuit(seed, n, n_ops=6 if mixed else 10, channels=mixed)
    obs = _obs(n)
    p, x = _inputs(c, seed)
    ref_grad = finite_diff(lambda v: expval_ref(c, obs, v, x, mixed), p)
    for mode in ("0", "1"):
        f = _expval_fn(c, obs, jnp.complex128, mixed, mode)
        grad = jax.jit(jax.grad(f))
        np.testing.assert_allclose(grad(p, x), ref_grad, atol=1e-7, err_msg=mode)
    hess = np.asarray(jax.jit(jax.hessian(f))(p, x))
    fd = finite_diff(lambda v: grad(v, x), p, h=1e-5)
    np.testing.assert_allclose(hess, fd, atol=1e-6)
    np.testing.assert_allclose(hess, hess.T, atol=1e-10)
    assert np.max(np.abs(hess)) > 1e-3  # not a trivial zero


def test_mixed_gradient_of_gradient_objective_agrees_across_paths():
    """The inversion objective's shape (distance of input gradients, then its gradient
    w.r.t. the input) on a noisy density-matrix circuit, both paths, vs finite differences."""
    c = hea(2, 2).depolarizing(1, 0.1).amplitude_damping(0, qjr.param(0) * 0.05 + 0.1)
    obs = _obs(2)
    p, x = _inputs(c, 33)
    out = {}
    for mode in ("0", "1"):
        f = _expval_fn(c, obs, jnp.complex128, True, mode)
        target = jax.grad(f, argnums=1)(p, x + 0.3)
        dist = lambda xx, f=f, target=target: jnp.sum(  # noqa: E731
            (jax.grad(f, argnums=1)(p, xx) - target) ** 2)
        out[mode] = jax.jit(jax.value_and_grad(dist))(x)
        if mode == "1":
            fd = finite_diff(jax.jit(dist), x, h=1e-5)
            np.testing.assert_allclose(out[mode][1], fd, atol=1e-7)
    np.testing.assert_allclose(out["1"][0], out["0"][0], rtol=1e-10)
    np.testing.assert_allclose(out["1"][1], out["0"][1], atol=1e-10)
    assert float(out["0"][0]) > 1e-6


def test_vmap_over_inputs_through_repeat_with_noise():
    dtype = jnp.complex128
    c = hea(3, 3).depolarizing(2, 0.05)
    obs = _obs(3)
    rng = np.random.default_rng(34)
    p = rng.uniform(-2, 2, c.n_params)
    xs = rng.uniform(-2, 2, (4, c.n_inputs))
    want = np.array([expval_ref(c, obs, p, xx, True) for xx in xs])
    batch = {}
    for mode in ("0", "1"):
        f = _expval_fn(c, obs, dtype, True, mode)
        batch[mode] = jax.jit(jax.vmap(f, (None, 0)))(p, xs)
        np.testing.assert_allclose(batch[mode], want, atol=10 * TOL[dtype], err_msg=mode)
        g = jax.jit(jax.vmap(jax.grad(f, argnums=1), (None, 0)))(p, xs)
        fd = finite_diff(lambda v: expval_ref(c, obs, p, v, True), xs[1])
        np.testing.assert_allclose(g[1], fd, atol=1e-7, err_msg=mode)
    np.testing.assert_allclose(batch["0"], batch["1"], atol=10 * TOL[dtype])


# ---- the public API: default, forced paths, adjoint, errors ------------------------------
def test_public_api_default_is_auto_and_adjoint_keeps_the_engine(monkeypatch):
    c = hea(3, 2)
    obs = _obs(3)
    p, x = _inputs(c, 35)
    want = finite_diff(lambda v: expval_ref(c, obs, v, x), p)
    monkeypatch.delenv(dense.ENV, raising=False)
    assert dense.dense_choice() == "auto"
    traced = []
    real = dense.dense_tensor
    monkeypatch.setattr(dense, "dense_tensor", lambda *a: traced.append(1) or real(*a))
    monkeypatch.setenv(dense.ENV, "1")
    jax.clear_caches()
    g = jax.grad(lambda q: qjr.expval(c, obs, q, x, dtype=jnp.complex128,
                                       diff="adjoint"))(jnp.asarray(p))
    np.testing.assert_allclose(g, want, atol=1e-7)
    assert not traced  # the adjoint method never takes the dense path
    jax.clear_caches()


def test_public_api_bad_environment_value_raises(monkeypatch):
    c = hea(2, 1)
    p, x = _inputs(c, 36)
    monkeypatch.setenv(dense.ENV, "dense")
    jax.clear_caches()
    with pytest.raises(ParameterError, match="QJAXROB_DENSE.*'dense'"):
        qjr.expval(c, qjr.Z(0), p, x)
    jax.clear_caches()


def test_switching_the_variable_mid_process_retraces(monkeypatch):
    """The choice is static in the compiled entry points: after a call on the engine,
    ``QJAXROB_DENSE=1`` takes the dense path on the next call (no ``clear_caches``), both
    equal the reference, and a bad value set after a trace still raises."""
    c = hea(3, 2)
    obs = _obs(3)
    p, x = _inputs(c, 37)
    want = expval_ref(c, obs, p, x)
    traced = []
    real = dense.dense_tensor
    monkeypatch.setattr(dense, "dense_tensor", lambda *a: traced.append(1) or real(*a))
    for value, dense_calls in (("0", 0), ("1", 1)):
        monkeypatch.setenv(dense.ENV, value)
        got = qjr.expval(c, obs, p, x, dtype=jnp.complex128)
        np.testing.assert_allclose(got, want, atol=TOL[jnp.complex128])
        assert len(traced) == dense_calls
    monkeypatch.setenv(dense.ENV, "yes")
    with pytest.raises(ParameterError, match="QJAXROB_DENSE.*'yes'"):
        qjr.expval(c, obs, p, x, dtype=jnp.complex128)
