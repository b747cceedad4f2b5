"""qjr.defenses.smoothing: the Clopper-Pearson bound against SciPy, CERTIFY on a linear base
classifier whose smoothed radius is known exactly (soundness, growth with sigma at a fixed
margin, abstention), vmap/chunking invariance, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import beta, norm

from qjaxrob import defenses
from qjaxrob.defenses import smoothing
from qjaxrob.errors import ParameterError, QjrTypeError

W = np.array([3.0, -4.0]) / 5.0  # unit normal of the decision boundary w.x = 0


def linear(x):
    """Base classifier: class 1 when w.x > 0 (distance to the boundary = |w.x|)."""
    return (jnp.dot(jnp.asarray(W, x.dtype), x) > 0).astype(jnp.int32)


def test_clopper_pearson_matches_scipy():
    n = np.array([10, 100, 10_000])[:, None, None]
    k = (np.linspace(0, 1, 7)[None, :, None] * n).astype(int)
    alpha = np.array([0.001, 0.05])[None, None, :]
    want = np.nan_to_num(beta.ppf(alpha, k, n - k + 1))
    got = np.asarray(defenses.clopper_pearson_lower(k, n, alpha))
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert np.all(np.diff(got, axis=1) > 0) and np.all(got[:, 0] == 0.0)


def test_clopper_pearson_bad_input():
    with pytest.raises(ParameterError, match="alpha"):
        defenses.clopper_pearson_lower(3, 10, 1.0)
    with pytest.raises(ParameterError, match="k must"):
        defenses.clopper_pearson_lower(11, 10, 0.01)
    with pytest.raises(ParameterError, match="n must"):
        defenses.clopper_pearson_lower(0, 0, 0.01)


def _certify_batch(keys, xs, sigma, **kw):
    return jax.vmap(lambda k, x: smoothing.certify(k, linear, x, sigma, n_classes=2, **kw))(
        keys, xs)


def test_certify_is_sound_and_grows_with_sigma_at_fixed_margin():
    """x at distance m * sigma from the boundary: the same draws give the same counts for
    every sigma, so the radius is exactly proportional to sigma; the exact smoothed radius
    of a linear classifier is the distance |w.x| and the certified one never exceeds it."""
    margins = np.array([0.8, 1.5, 2.5])
    keys = jax.random.split(jax.random.key(7), margins.size)
    radii = []
    for sigma in (0.25, 0.5, 1.0):
        xs = jnp.asarray(margins[:, None] * sigma * W[None])
        res = _certify_batch(keys, xs, sigma, n=2000)
        np.testing.assert_array_equal(res.prediction, [1, 1, 1])
        assert np.all(res.radius > 0) and np.all(res.radius < margins * sigma)
        want = sigma * norm.ppf(np.asarray(res.p_lower))
        np.testing.assert_allclose(res.radius, want, rtol=1e-9)
        # p_lower is a lower bound of Phi(m) = P(class 1), close to it with n = 2000
        assert np.all(res.p_lower < norm.cdf(margins)) and np.all(
            res.p_lower > norm.cdf(margins) - 0.05)
        radii.append(np.asarray(res.radius))
    np.testing.assert_allclose(radii[1], 2 * radii[0], rtol=1e-9)
    np.testing.assert_allclose(radii[2], 4 * radii[0], rtol=1e-9)
    # the other side of the boundary is certified as class 0
    res = _certify_batch(keys, -jnp.asarray(margins[:, None] * W[None]), 1.0, n=2000)
    np.testing.assert_array_equal(res.prediction, [0, 0, 0])


def test_certify_abstains_without_a_significant_margin():
    xs = jnp.asarray(np.array([0.0, 0.01, 0.03])[:, None] * W[None])
    keys = jax.random.split(jax.random.key(3), 3)
    res = _certify_batch(keys, xs, 1.0, n=2000)
    np.testing.assert_array_equal(res.prediction, [-1, -1, -1])
    np.testing.assert_array_equal(res.radius, [0, 0, 0])
    assert np.all(res.p_lower <= 0.5)
    assert np.all(res.counts.sum(-1) == 2000)


def test_chunked_sampling_matches_one_vmap():
    x = jnp.asarray(1.2 * W)
    key = jax.random.key(11)
    a = smoothing.certify(key, linear, x, 1.0, n_classes=2, n=2000)
    b = smoothing.certify(key, linear, x, 1.0, n_classes=2, n=2000, batch_size=300)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.radius == b.radius and int(a.counts.sum()) == 2000


def test_certify_bad_input():
    x = jnp.asarray(W)
    key = jax.random.key(0)
    with pytest.raises(ParameterError, match="sigma"):
        smoothing.certify(key, linear, x, 0.0, n_classes=2)
    with pytest.raises(ParameterError, match="alpha"):
        smoothing.certify(key, linear, x, 1.0, n_classes=2, alpha=1.5)
    with pytest.raises(ParameterError, match="n0"):
        smoothing.certify(key, linear, x, 1.0, n_classes=2, n0=0)
    with pytest.raises(ParameterError, match="n_classes"):
        smoothing.certify(key, linear, x, 1.0, n_classes=1)
    with pytest.raises(QjrTypeError, match="n_classes"):
        smoothing.certify(key, linear, x, 1.0, n_classes=2.0)
    with pytest.raises(ParameterError, match="key"):
        smoothing.certify(0, linear, x, 1.0, n_classes=2)
    with pytest.raises(ParameterError, match="classify"):
        smoothing.certify(key, "linear", x, 1.0, n_classes=2)


def test_certify_refuses_classes_outside_the_range():
    """A base classifier answering a class >= n_classes or < 0 was counted nowhere (dropped)
    and certified on the rest; now it is an error naming the class, eagerly and under vmap."""
    key = jax.random.key(1)
    x = jnp.asarray(W)
    for shift, bad in ((2, "2|3"), (-1, "-1")):
        def shifted(v, shift=shift):
            return linear(v) + shift
        with pytest.raises(ParameterError, match=rf"outside 0\.\.1 .*got class ({bad})"):
            smoothing.certify(key, shifted, x, 1.0, n_classes=2, n=200)
        with pytest.raises(Exception, match=r"outside 0\.\.1"):
            jax.block_until_ready(jax.vmap(
                lambda k, v: smoothing.certify(k, shifted, v, 1.0, n_classes=2, n=200))(
                    jax.random.split(key, 2), jnp.stack([x, -x])))
        with pytest.raises(Exception, match=r"outside 0\.\.1"):
            jax.block_until_ready(smoothing.noise_counts(key, shifted, x, 1.0, 100, 2))
    # one rare out-of-range answer among many is still caught
    def rare(v):
        return jnp.where(jnp.dot(jnp.asarray(W, v.dtype), v) > 3.0, 7, linear(v))
    with pytest.raises(ParameterError, match="got class 7"):
        smoothing.certify(key, rare, x, 1.0, n_classes=2, n=5000)
    # a classifier giving logits or float classes is refused before sampling
    with pytest.raises(ParameterError, match="one integer class"):
        smoothing.certify(key, lambda v: jnp.stack([v[0], -v[0]]), x, 1.0, n_classes=2)
    with pytest.raises(ParameterError, match="one integer class"):
        smoothing.certify(key, lambda v: jnp.sum(v), x, 1.0, n_classes=2)
    # in-range classifiers (int or bool) still certify
    ok = smoothing.certify(key, lambda v: jnp.dot(jnp.asarray(W, v.dtype), v) > 0, x, 1.0,
                           n_classes=2, n=200)
    assert int(ok.counts.sum()) == 200
