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
    assert landscape.fit_decay(n, 2.0 / n**2, "power").slope == pytest.approx(-2.0)


def test_bad_arguments_name_the_value():
    with pytest.raises(ParameterError, match="'max'"):
        landscape.gradient_variance(jax.random.key(0), product_rx(2), "max")
    with pytest.raises(ParameterError, match="n_samples.*1"):
        landscape.gradient_variance(jax.random.key(0), product_rx(2), n_samples=1)
    with pytest.raises(ParameterError, match="-1"):
        landscape.fit_decay([2, 3], [0.1, -1.0])
    with pytest.raises(ParameterError, match="'linear'"):
        landscape.fit_decay([2, 3], [0.1, 0.05], "linear")
