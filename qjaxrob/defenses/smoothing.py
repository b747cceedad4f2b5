"""Randomized smoothing over encoding noise (Cohen, Rosenfeld, Kolter, ICML 2019).

A base classifier ``f`` (``classify(x) -> int class`` for ONE classical example ``x``) is
smoothed with Gaussian noise on its inputs -- for angle encodings, Gaussian jitter of the
encoding rotation angles: ``g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c)``. If the top
class ``A`` has ``P(A) >= p_lower > 1/2`` then ``g`` is constant on the L2 ball of radius
``sigma * Phi^{-1}(p_lower)`` (Cohen et al., Theorem 1 with ``p_B = 1 - p_A``).

:func:`certify` is Cohen et al.'s CERTIFY: ``n0`` noisy samples pick the candidate class,
``n`` fresh ones estimate its probability, ``p_lower`` is the one-sided Clopper-Pearson
lower confidence bound at level ``1 - alpha`` (:func:`clopper_pearson_lower`), and the
result abstains (prediction ``-1``, radius 0) when ``p_lower <= 1/2``. With probability at
least ``1 - alpha`` a returned class and radius are correct. Sampling is one ``vmap`` over
the noise draws (in chunks of ``batch_size`` via ``lax.map`` to bound memory) with explicit
keys; ``certify`` itself composes with ``jax.vmap`` over examples and keys.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, ndtri

from qjaxrob.checks import check_int, check_key, check_positive_int, check_real
from qjaxrob.defenses.qdp import concrete
from qjaxrob.errors import ParameterError

__all__ = ["SmoothingCertificate", "clopper_pearson_lower", "noise_counts", "certify"]


class SmoothingCertificate(NamedTuple):
    """Result of :func:`certify` (one example; leading axes under ``vmap``).

    Attributes:
        prediction: the smoothed class, or ``-1`` (abstain); int.
        radius: certified L2 radius ``sigma * Phi^{-1}(p_lower)``; 0 when abstaining.
        p_lower: Clopper-Pearson lower bound of the top class's probability.
        counts: ``(n_classes,)`` class counts of the ``n`` certification samples.
    """

    prediction: jax.Array
    radius: jax.Array
    p_lower: jax.Array
    counts: jax.Array


def clopper_pearson_lower(k, n, alpha):
    """One-sided ``1 - alpha`` lower confidence bound of a binomial proportion from ``k``
    successes in ``n`` trials: the ``alpha`` quantile of ``Beta(k, n - k + 1)`` (Clopper &
    Pearson, Biometrika 1934); 0 when ``k = 0``. Found by bisection on the regularized
    incomplete beta function (60 halvings), so it is traceable. Broadcasts over ``k``."""
    kv, nv, av = concrete(k), concrete(n), concrete(alpha)
    if av is not None and np.any(~((av > 0) & (av < 1))):
        raise ParameterError(f"alpha must lie in (0, 1), got {alpha!r}")
    if nv is not None and np.any(~(nv >= 1)):
        raise ParameterError(f"n must be >= 1, got {n!r}")
    if kv is not None and nv is not None and np.any(~((kv >= 0) & (kv <= nv))):
        raise ParameterError(f"k must lie in [0, n], got k={k!r}, n={n!r}")
    dtype = jnp.result_type(float)
    return _cp_lower(jnp.asarray(k, dtype), jnp.asarray(n, dtype), jnp.asarray(alpha, dtype))


@jax.jit
def _cp_lower(k, n, alpha):
    dtype = k.dtype
    a = jnp.maximum(k, 1.0)  # k = 0 is handled below; keep betainc's arguments valid
    b = n - k + 1

    def halve(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) / 2
        below = betainc(a, b, mid) < alpha
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    shape = jnp.broadcast_shapes(k.shape, n.shape, alpha.shape)
    lo, _ = jax.lax.fori_loop(0, 60, halve, (jnp.zeros(shape, dtype), jnp.ones(shape, dtype)))
    return jnp.where(k > 0, lo, 0.0)


def _counts(key, classify, x, sigma, n, n_classes, batch_size):
    """``(counts, bad, value)``: class counts of the noisy copies, whether some prediction
    lies outside ``0..n_classes-1``, and the first such prediction (0 if none)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    noise = jax.random.normal(key, (n,) + x.shape, x.dtype)
    noise = noise * jnp.asarray(sigma, noise.dtype)

    def one(z):
        return jnp.asarray(classify(x + z), jnp.int32)

    if batch_size is None or batch_size >= n:
        preds = jax.vmap(one)(noise)
    else:
        preds = jax.lax.map(one, noise, batch_size=batch_size)
    outside = (preds < 0) | (preds >= n_classes)
    counts = jnp.zeros((n_classes,), jnp.int32).at[preds].add(1, mode="drop")
    return counts, jnp.any(outside), preds[jnp.argmax(outside)]


def _outside_message(n_classes):
    return f"classify returned a class outside 0..{n_classes - 1} (n_classes={n_classes})"


def noise_counts(key, classify, x, sigma, n: int, n_classes: int, batch_size=None):
    """Class counts of ``classify(x + sigma * z)`` over ``n`` draws ``z ~ N(0, I)``, shape
    ``(n_classes,)``; the draws run as one ``vmap`` (chunks of ``batch_size`` if given).
    A prediction outside ``0..n_classes-1`` fails at run time (``equinox.error_if``)."""
    counts, bad, _ = _counts(key, classify, x, sigma, n, n_classes, batch_size)
    return eqx.error_if(counts, bad, _outside_message(n_classes))


@eqx.filter_jit
def _certify(key, classify, x, sigma, alpha, n0, n, n_classes, batch_size):
    k0, k1 = jax.random.split(key)
    counts0, bad0, value0 = _counts(k0, classify, x, sigma, n0, n_classes, batch_size)
    counts, bad1, value1 = _counts(k1, classify, x, sigma, n, n_classes, batch_size)
    guess = jnp.argmax(counts0)
    p_lower = clopper_pearson_lower(counts[guess], n, alpha)
    abstain = p_lower <= 0.5
    radius = jnp.where(abstain, 0.0, sigma * ndtri(jnp.where(abstain, 0.75, p_lower)))
    cert = SmoothingCertificate(jnp.where(abstain, -1, guess), radius, p_lower, counts)
    return cert, bad0 | bad1, jnp.where(bad0, value0, value1)


def _check_classifier(classify, x):
    """``classify`` must map one example to one integer class (checked on shapes only)."""
    try:
        out = jax.eval_shape(classify, jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(float)))
    except Exception as exc:  # noqa: BLE001 - whatever the user's function raises
        raise ParameterError(f"classify cannot be traced on one example of shape "
                             f"{jnp.shape(x)}: {exc}") from exc
    integer = hasattr(out, "dtype") and (jnp.issubdtype(out.dtype, jnp.integer)
                                         or out.dtype == jnp.bool_)
    if not integer or out.shape != ():
        raise ParameterError(
            f"classify must return one integer class per example (shape (), integer dtype), "
            f"got {getattr(out, 'shape', out)} {getattr(out, 'dtype', '')}".rstrip()
        )


def certify(key, classify, x, sigma, *, n_classes: int, n0: int = 100, n: int = 10_000,
            alpha: float = 0.001, batch_size: int | None = None) -> SmoothingCertificate:
    """Cohen et al.'s CERTIFY for one example (module docstring).

    Args:
        key: PRNG key (split into the selection and the estimation draws).
        classify: ``x -> int`` class of the base classifier for ONE example (e.g.
            ``lambda x: jnp.argmax(model(x))``), an integer scalar in ``0..n_classes-1``;
            traced under ``vmap``.
        x: the example, shape ``(n_features,)``.
        sigma: noise standard deviation (> 0, same units as ``x``; radians for angle
            encodings).
        n_classes: number of classes (>= 2).
        n0, n: selection and estimation sample counts.
        alpha: failure probability of the certificate, in (0, 1).
        batch_size: evaluate the noisy copies in chunks of this size (memory bound).

    Returns:
        :class:`SmoothingCertificate`.

    Raises:
        ParameterError: ``classify`` does not return one integer class, or returned a
            class outside ``0..n_classes-1`` (under ``jit``/``vmap`` that check fails at
            run time through ``equinox.error_if``).
    """
    key = check_key(key, "certify")
    if not callable(classify):
        raise ParameterError(f"classify must be a function x -> class, got {classify!r}")
    if concrete(sigma) is not None:
        check_real(sigma, "sigma", low=0.0, low_open=True)
    if concrete(alpha) is not None:
        check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    n0, n = check_positive_int(n0, "n0"), check_positive_int(n, "n")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    _check_classifier(classify, x)
    real = jnp.result_type(float)
    cert, bad, value = _certify(key, classify, jnp.asarray(x), jnp.asarray(sigma, real),
                                jnp.asarray(alpha, real), n0, n, n_classes, batch_size)
    if concrete(bad) is None:  # under jit/vmap: fail when it runs
        return eqx.error_if(cert, bad, _outside_message(n_classes))
    if bool(bad):
        raise ParameterError(f"{_outside_message(n_classes)}: got class {int(value)}")
    return cert
