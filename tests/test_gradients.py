"""Gradients w.r.t. params and x against the parameter-shift rule and central finite
differences (complex128), and the adjoint method against backprop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from helpers import finite_diff
from reference import expval_ref

OBS = qjr.Z(0) @ qjr.Z(2) + 0.7 * qjr.X(1) - 0.4 * qjr.Y(2)


def _circuit():
    """Every parameterised gate once; each param used by exactly one rotation-type gate so
    the two-term parameter-shift rule applies (generators with eigenvalues +-1/2)."""
    c = qjr.Circuit(3).h(0).h(1)
    c = c.rx(0, qjr.param(0)).ry(1, qjr.param(1)).rz(2, qjr.param(2))
    c = c.rxx(0, 1, qjr.param(3)).ryy(1, 2, qjr.param(4)).rzz(0, 2, qjr.param(5))
    c = c.cnot(0, 1).u3(2, qjr.param(6), qjr.param(7), qjr.param(8))
    return c.ry(0, qjr.inp(0) * 1.5 + 0.2).rx(2, qjr.inp(1))


@pytest.fixture(scope="module")
def setup():
    c = _circuit()
    rng = np.random.default_rng(5)
    return c, rng.uniform(-np.pi, np.pi, c.n_params), rng.uniform(-np.pi, np.pi, c.n_inputs)


def test_param_gradient_matches_parameter_shift(setup):
    c, p, x = setup
    g = np.asarray(jax.grad(lambda q: qjr.expval(c, OBS, q, x, dtype=jnp.complex128))(p))
    shift = np.zeros_like(g)
    for i in range(len(p)):
        e = np.zeros_like(p)
        e[i] = np.pi / 2
        shift[i] = (expval_ref(c, OBS, p + e, x) - expval_ref(c, OBS, p - e, x)) / 2
    np.testing.assert_allclose(g, shift, atol=1e-10)


def test_param_and_input_gradients_match_finite_differences(setup):
    c, p, x = setup
    f = lambda q, y: qjr.expval(c, OBS, q, y, dtype=jnp.complex128)  # noqa: E731
    gp, gx = jax.grad(f, argnums=(0, 1))(p, x)
    np.testing.assert_allclose(gp, finite_diff(lambda q: expval_ref(c, OBS, q, x), p), atol=1e-8)
    np.testing.assert_allclose(gx, finite_diff(lambda y: expval_ref(c, OBS, p, y), x), atol=1e-8)


@pytest.mark.slow
def test_adjoint_equals_backprop_including_repeat_and_inputs(setup):
    c, p, x = setup
    block = qjr.Circuit(3).ry(0, qjr.param(0)).crz(0, 1, qjr.param(1) * 2.0).rx(2, qjr.inp(0))
    c2 = c + qjr.Circuit.repeat(block, 3, param_offset=c.n_params)
    p2 = np.concatenate([p, np.linspace(0.1, 0.9, c2.n_params - c.n_params)])
    obs = [OBS, qjr.X(0)]

    def f(diff):
        return lambda q, y: jnp.sum(jnp.array([1.0, -2.0]) * qjr.expval(
            c2, obs, q, y, dtype=jnp.complex128, diff=diff))

    back = jax.grad(f("backprop"), argnums=(0, 1))(p2, x)
    adj = jax.grad(f("adjoint"), argnums=(0, 1))(p2, x)
    np.testing.assert_allclose(adj[0], back[0], atol=1e-10)
    np.testing.assert_allclose(adj[1], back[1], atol=1e-10)
    assert float(f("adjoint")(p2, x)) == pytest.approx(float(f("backprop")(p2, x)), abs=1e-12)


@pytest.mark.slow
def test_second_order_backprop_matches_finite_differences(setup):
    c, p, x = setup
    f = lambda q: qjr.expval(c, OBS, q, x, dtype=jnp.complex128)  # noqa: E731
    h = np.asarray(jax.hessian(f)(p))
    g = jax.grad(f)
    fd = np.stack([finite_diff(lambda q: np.asarray(g(q))[i], p, h=1e-5) for i in range(len(p))])
    np.testing.assert_allclose(h, fd, atol=1e-7)
    np.testing.assert_allclose(h, h.T, atol=1e-10)


def test_gradient_w_r_t_x_of_gradient_w_r_t_params(setup):
    """Mixed second derivative d/dx (dL/dparams), as gradient-inversion attacks need."""
    c, p, x = setup
    dl_dp = lambda y: jax.grad(lambda q: qjr.expval(c, OBS, q, y, dtype=jnp.complex128))(p)  # noqa: E731
    mixed = np.asarray(jax.jacobian(dl_dp)(x))
    fd = finite_diff(lambda y: np.asarray(dl_dp(y))[0], x, h=1e-5)
    np.testing.assert_allclose(mixed[0], fd, atol=1e-7)
