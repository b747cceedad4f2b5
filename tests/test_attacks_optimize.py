"""The best-iterate optimiser scan shared by the attacks: against a plain Python loop of the
same optax steps, the best (not the last) point, projections, non-finite steps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qjaxrob.attacks import optimize


def _loop(opt, f, x0, steps, project=None):
    """The reference: a Python loop over the points visited, min taken with NumPy."""
    x, state, seen = x0, opt.init(x0), []
    for _ in range(steps):
        v, g = jax.value_and_grad(f)(x)
        seen.append((float(v), np.asarray(x)))
        upd, state = opt.update(g, state, x)
        x = optax.apply_updates(x, upd)
        if project is not None:
            x = project(x, None)
    seen.append((float(f(x)), np.asarray(x)))
    return min(seen, key=lambda t: t[0])


@pytest.mark.parametrize("dim", [1, 4])
def test_best_iterate_equals_a_python_loop(rng, dim):
    """Adam with a large step on ``sum |x - c|`` oscillates: the last point is not the best."""
    c = jnp.asarray(rng.normal(size=dim))
    f = lambda x: jnp.sum(jnp.abs(x - c))
    x0 = jnp.asarray(rng.normal(size=dim)) + 3.0
    opt = optax.adam(0.7)
    x, v = jax.jit(lambda x0: optimize.best_iterate(opt, f, x0, 25))(x0)
    ref_v, ref_x = _loop(opt, f, x0, 25)
    np.testing.assert_allclose(v, ref_v, rtol=1e-6)
    np.testing.assert_allclose(x, ref_x, rtol=1e-6)
    last = optimize.init(opt, x0)
    for _ in range(25):
        last = optimize.step(opt, f, last)
    assert float(f(last.x)) > float(v)  # the scan returned an earlier, better point


def test_projection_and_keep_finite(rng):
    f = lambda x: jnp.sum((x - 5.0) ** 2)
    radius = 1.0
    ball = lambda x, _: x * jnp.minimum(1.0, radius / jnp.linalg.norm(x))
    x, v = optimize.best_iterate(optax.sgd(0.1), f, jnp.zeros(3), 200, project=ball)
    np.testing.assert_allclose(x, np.full(3, 1 / np.sqrt(3)), atol=1e-6)  # closest point
    ref_v, _ = _loop(optax.sgd(0.1), f, jnp.zeros(3), 200, project=ball)
    assert float(v) == pytest.approx(ref_v)
    # nan values never become the best point; a step to inf returns to the best point
    g = lambda x: jnp.where(x[0] > 0.5, jnp.nan, (x[0] - 1.0) ** 2)
    x, v = optimize.best_iterate(optax.sgd(0.3), g, jnp.zeros(1), 10,
                                 project=optimize.keep_finite)
    assert np.isfinite(float(v)) and 0.0 <= float(x[0]) <= 0.5
    s = optimize.step(optax.sgd(1.0), lambda x: jnp.sum(x) * jnp.inf, optimize.init(
        optax.sgd(1.0), jnp.ones(2)), project=optimize.keep_finite)
    assert np.all(np.isfinite(np.asarray(s.x)))
