"""The JAX contract of the compiled simulator: trace counts (one trace for new parameter
values, the same trace work for depth L and 2L through Circuit.repeat), adjoint ==
backprop to 1e-10 in complex128, and second-order derivatives against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.sim import dense, engine
from qjaxrob.qml import hardware_efficient
from helpers import finite_diff
from reference import expval_ref


@pytest.fixture(params=["0", "1"])
def count_blocks(request, monkeypatch):
    """Counts the matrices built while tracing on either path (``QJAXROB_DENSE=0``: the
    engine's fused blocks; ``=1``: the dense path's gate groups); they are built at trace
    time only, so the count is zero for a cached compilation."""
    monkeypatch.setenv(dense.ENV, request.param)
    calls = []
    module, name = (engine, "block_apply_args") if request.param == "0" else (dense, "group_matrix")
    real = getattr(module, name)

    def counting(block, *args):
        calls.append(block)
        return real(block, *args)

    monkeypatch.setattr(module, name, counting)
    return calls


def _fresh_expval(c):
    return jax.jit(lambda p: qjr.expval(c, qjr.Z(0), p, dtype=jnp.complex128))


def test_one_trace_for_new_parameter_values(count_blocks, rng):
    jax.clear_caches()
    c = hardware_efficient(5, 3)
    f = _fresh_expval(c)
    values = []
    for _ in range(3):
        p = rng.uniform(-3, 3, c.n_params)
        values.append((float(f(jnp.asarray(p))), expval_ref(c, qjr.Z(0), p)))
    first = len(count_blocks)
    assert first > 0
    for got, want in values:
        assert abs(got - want) < 1e-10
    f(jnp.asarray(rng.uniform(-3, 3, c.n_params)))
    assert len(count_blocks) == first


def test_trace_work_is_independent_of_depth(count_blocks, rng):
    jax.clear_caches()
    counts = []
    for layers in (4, 8):
        c = hardware_efficient(5, layers)
        before = len(count_blocks)
        p = rng.uniform(-3, 3, c.n_params)
        got = float(_fresh_expval(c)(jnp.asarray(p)))
        assert abs(got - expval_ref(c, qjr.Z(0), p)) < 1e-10
        counts.append(len(count_blocks) - before)
    assert counts[0] == counts[1] > 0


def _mixed_circuit():
    block = (qjr.Circuit(4).ry(0, qjr.param(0)).rz(1, qjr.param(1)).cnot(0, 1)
             .crx(1, 2, qjr.param(2) * 0.5 + 0.1).rx(3, qjr.inp(0)).rzz(2, 3, qjr.param(1))
             .u3(3, qjr.param(2), qjr.inp(1), 0.3).cz(3, 0))
    return qjr.Circuit(4).h(2).ry(1, qjr.inp(1)) + qjr.Circuit.repeat(block, 3) \
        + qjr.Circuit(4).iswap(0, 2).phase(1, qjr.param(0))


def test_adjoint_equals_backprop(rng):
    c = _mixed_circuit()
    obs = [qjr.Z(0) @ qjr.X(3), qjr.Y(1) + 0.3 * qjr.Z(2)]
    p, x = jnp.asarray(rng.uniform(-2, 2, c.n_params)), jnp.asarray(rng.uniform(-2, 2, 2))

    def loss(p, x, diff):
        v = qjr.expval(c, obs, p, x, dtype=jnp.complex128, diff=diff)
        return v[0] + 2.0 * v[1]

    bp = jax.grad(loss, argnums=(0, 1))(p, x, "backprop")
    adj = jax.grad(loss, argnums=(0, 1))(p, x, "adjoint")
    np.testing.assert_allclose(adj[0], bp[0], atol=1e-10)
    np.testing.assert_allclose(adj[1], bp[1], atol=1e-10)


@pytest.mark.slow
def test_grad_of_grad_and_hessian_match_finite_differences(rng):
    c = _mixed_circuit()
    obs = qjr.Z(0) @ qjr.Z(2) + 0.5 * qjr.X(1)
    p, x = jnp.asarray(rng.uniform(-2, 2, c.n_params)), jnp.asarray(rng.uniform(-2, 2, 2))

    def f(p):
        return qjr.expval(c, obs, p, x, dtype=jnp.complex128)

    g = jax.jit(jax.grad(f))
    hess = jax.jit(jax.hessian(f))(p)
    np.testing.assert_allclose(hess, finite_diff(g, p, h=1e-5), atol=1e-7)
    np.testing.assert_allclose(hess, hess.T, atol=1e-10)
    # d/dt d/dt f along params[0], via jax.grad(jax.grad(...)) of a scalar function
    d2 = jax.grad(jax.grad(lambda t: f(p.at[0].set(t))))(p[0])
    assert abs(d2 - hess[0, 0]) < 1e-10
    # mixed second derivative d/dx (d/dparams f), as used by gradient-inversion attacks
    mixed = jax.jacobian(lambda xx: jax.grad(
        lambda pp: qjr.expval(c, obs, pp, xx, dtype=jnp.complex128))(p))(x)
    gx = jax.jit(lambda xx: jax.grad(lambda pp: qjr.expval(c, obs, pp, xx, dtype=jnp.complex128))(p))
    np.testing.assert_allclose(mixed, finite_diff(gx, x, h=1e-5), atol=1e-7)


def test_compilation_cache_folder_and_switch(monkeypatch, tmp_path):
    """qjaxrob.cache: $QJAXROB_CACHE_DIR overrides the per-user folder, "off" disables it
    (as the test suite does), and enable() points JAX's persistent cache at the folder."""
    from qjaxrob import cache

    assert cache.cache_dir() is None  # tests/conftest.py turns it off
    assert cache.enable() is None
    monkeypatch.delenv(cache.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "qjaxrob" / "jax"
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "mine"))
    updates = {}
    monkeypatch.setattr(jax.config, "update", lambda name, value: updates.update({name: value}))
    assert cache.enable() == tmp_path / "mine" and (tmp_path / "mine").is_dir()
    assert updates["jax_compilation_cache_dir"] == str(tmp_path / "mine")
    assert updates["jax_persistent_cache_min_compile_time_secs"] == cache.MIN_COMPILE_SECONDS
