"""Barren-plateau diagnostics vs closed forms (Cerezo et al. 2021) and the expected
ordering of global vs local cost decay (McClean et al. 2018)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.errors import ParameterError
from qjaxrob.qml import landscape
from qjaxrob.qml.ansatze import hardware_efficient

NS = [2, 3, 4]


def product_rx(n):
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.rx(q, qjr.param(q))
    return c


@pytest.mark.parametrize("n", [2, 3])
def test_product_rx_variances_match_closed_forms(n):
    """Var[dC_G/dtheta_1] = (1/8)(3/8)^(n-1), Var[dC_L/dtheta_1] = 1/(8 n^2)."""
    key = jax.random.key(n)
    g = landscape.gradient_variance(key, product_rx(n), "global", 3000, dtype=jnp.complex128)
    loc = landscape.gradient_variance(key, product_rx(n), "local", 3000, dtype=jnp.complex128)
    np.testing.assert_allclose(g, (1 / 8) * (3 / 8) ** (n - 1), rtol=0.12)
    np.testing.assert_allclose(loc, 1 / (8 * n * n), rtol=0.12)


def test_costs_against_their_definitions(rng):
    c = hardware_efficient(3, 2)
    p = rng.normal(size=c.n_params)
    psi = np.asarray(qjr.statevector(c, p, dtype=jnp.complex128))
    prob = np.abs(psi) ** 2
    p0 = [prob.reshape(2, 2, 2).sum(axis=tuple(a for a in range(3) if a != q))[0]
          for q in range(3)]
    assert float(landscape.global_cost(c, p, dtype=jnp.complex128)) == pytest.approx(1 - prob[0])
    assert float(landscape.local_cost(c, p, dtype=jnp.complex128)) == pytest.approx(1 - np.mean(p0))


@pytest.fixture(scope="module")
def scaling():
    key = jax.random.key(0)
    glob = landscape.variance_scaling(key, NS, lambda n: hardware_efficient(n, 2 * n),
                                      "global", 160)
    loc = landscape.variance_scaling(
        key, NS, lambda n: hardware_efficient(n, 1, entangler="chain"), "local", 160)
    return glob, loc


@pytest.mark.slow
def test_global_cost_decays_faster_than_local(scaling):
    glob, loc = scaling
    assert np.all(np.diff(glob) < 0)  # deep HEA, global cost: monotone decay
    fg, fl = landscape.fit_decay(NS, glob), landscape.fit_decay(NS, loc)
    assert fg.slope < 0 and fl.slope < 0
    assert fg.slope < fl.slope - 0.2  # local decays much more slowly
    assert loc[-1] > glob[-1]
    assert glob[-1] / glob[0] < loc[-1] / loc[0]


def test_fit_decay_recovers_exact_rates():
    n = np.array([2, 3, 4, 6])
    fit = landscape.fit_decay(n, 0.3 * np.exp(-0.7 * n))
    assert fit.slope == pytest.approx(-0.7) and fit.intercept == pytest.approx(np.log(0.3))
    assert fit.r_squared == pytest.approx(1.0)
    assert landscape.fit_decay(n, 2.0 / n**2, "power").slope == pytest.approx(-2.0)


def test_r_squared_tells_the_laws_apart(rng):
    """Exact closed forms of the product-RX circuit: the global cost (3/8)^(n-1)/8 is
    exponential, the local cost 1/(8 n^2) a power law; each model fits its own law with
    R^2 = 1 and the other one worse. R^2 matches its definition on noisy data."""
    n = np.arange(2, 11)
    glob, loc = (1 / 8) * (3 / 8) ** (n - 1), 1 / (8 * n**2)
    assert landscape.fit_decay(n, glob, "exp").r_squared == pytest.approx(1.0)
    assert landscape.fit_decay(n, glob, "power").r_squared < 0.99
    assert landscape.fit_decay(n, loc, "power").r_squared == pytest.approx(1.0)
    assert landscape.fit_decay(n, loc, "exp").r_squared < 0.99
    v = np.exp(-0.5 * n + rng.normal(0, 0.3, n.size))
    fit = landscape.fit_decay(n, v)
    y = np.log(v)
    resid = y - (fit.slope * n + fit.intercept)
    assert fit.r_squared == pytest.approx(1 - resid @ resid / np.sum((y - y.mean()) ** 2))


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_cost_values_from_one_simulation_match_the_definitions(rng, dtype):
    for n in (1, 3, 4):
        c = hardware_efficient(n, 2)
        p = rng.normal(size=c.n_params).astype(np.finfo(np.dtype(dtype)).dtype)
        prob = np.abs(np.asarray(qjr.statevector(c, p.astype(np.float64),
                                                 dtype=jnp.complex128))) ** 2
        zs = np.array([1 - 2 * ((np.arange(2**n) >> (n - 1 - q)) & 1) for q in range(n)])
        want = [1 - prob[0], 0.5 * (1 - np.mean(zs @ prob))]
        tol = 1e-5 if dtype == jnp.complex64 else 1e-12
        got = landscape.cost_values(c, p, dtype=dtype)
        np.testing.assert_allclose(got, want, atol=tol)
        np.testing.assert_allclose(landscape.cost_values(c, p, ("local",), dtype=dtype),
                                   want[1:], atol=tol)


def test_tuple_of_costs_equals_each_cost_alone():
    """One simulation per draw for both costs gives the variances of each cost alone (same
    key, same draws)."""
    key, c = jax.random.key(3), hardware_efficient(3, 2)
    both = landscape.gradient_variance(key, c, ("global", "local"), 50, dtype=jnp.complex128)
    assert both.shape == (2, c.n_params)
    for i, cost in enumerate(("global", "local")):
        np.testing.assert_allclose(
            both[i], landscape.gradient_variance(key, c, cost, 50, dtype=jnp.complex128),
            rtol=1e-9)


def test_bad_arguments_name_the_value():
    with pytest.raises(ParameterError, match="'max'"):
        landscape.gradient_variance(jax.random.key(0), product_rx(2), "max")
    with pytest.raises(ParameterError, match="'max'"):
        landscape.gradient_variance(jax.random.key(0), product_rx(2), ("global", "max"))
    with pytest.raises(ParameterError, match=r"\(\)"):
        landscape.cost_values(product_rx(2), np.zeros(2), ())
    with pytest.raises(ParameterError, match="n_samples.*1"):
        landscape.gradient_variance(jax.random.key(0), product_rx(2), n_samples=1)
    with pytest.raises(ParameterError, match="-1"):
        landscape.fit_decay([2, 3], [0.1, -1.0])
    with pytest.raises(ParameterError, match="'linear'"):
        landscape.fit_decay([2, 3], [0.1, 0.05], "linear")
