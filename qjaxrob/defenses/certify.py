"""Certified robustness of quantum classifiers against perturbations of the input state.

A classifier maps a state ``rho`` to class probabilities ``y_k = Tr(A_k rho)`` (Heisenberg
effects ``A_k`` of the circuit + measurement, :func:`qjaxrob.defenses.channel_effects`) and
predicts ``A = argmax_k y_k``; ``p_A`` is the top probability and ``p_B`` the runner-up.
Each certificate below says the prediction cannot change for any perturbed state within a
radius (strictly inside it: the conditions are strict inequalities).

* :func:`dp_certified` -- from (epsilon, delta)-DP on ``eta``-neighbours, robust on the
  trace-distance ball of radius ``eta`` if
  ``y_A > e^{2 epsilon} max_{k != A} y_k + (1 + e^epsilon) delta`` (Lecuyer, Atlidakis,
  Geambasu, Hsu, Jana, IEEE S&P 2019, as used by Du et al., PRR 3, 023153, 2021).
  :func:`dp_radius` solves it for ``eta`` with Guan et al.'s tight
  ``epsilon(eta) = ln(1 + eta (kappa - 1))`` and ``delta = 0``:
  ``eta < (sqrt(p_A / p_B) - 1) / (kappa - 1)``.
* :func:`trace_distance_radius` -- any POVM: ``|Tr(M (rho - sigma))| <= T(rho, sigma)``, so
  ``T < (p_A - p_B) / 2`` keeps the class (tight for binary projective classifiers).
  :func:`channel_trace_radius` uses the effects: robust if for every ``B != A``
  ``T < (y_A - y_B) / (lambda_max - lambda_min)(A_A - A_B)`` (for global depolarizing noise
  the spread is ``2 (1 - p)``, giving ``y_A - y_B > 2 (1 - p) T``).
* :func:`hypothesis_testing_radius` -- infidelity radius
  ``1 - F(rho, sigma) < 1/2 (1 - sqrt(p_A p_B) - sqrt((1 - p_A)(1 - p_B)))``
  (Weber, Liu, Li, Zhang, Zhao, "Optimal provable robustness of quantum classification via
  quantum hypothesis testing", npj Quantum Inf. 7, 76, 2021); ``F`` is the squared
  (Uhlmann) fidelity, ``|<psi|phi>|^2`` for pure states.

Inputs are probability vectors over the last axis (a leading batch is fine); concrete
inputs are checked (entries in [0, 1], summing to 1 within ``PROB_ATOL``), traced ones are
not. All functions are pure and compose with ``jit``/``vmap``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from qjaxrob.defenses.qdp import check_effects, concrete
from qjaxrob.errors import ParameterError, ProbabilityError

__all__ = [
    "PROB_ATOL", "top_two", "dp_certified", "dp_radius", "trace_distance_radius",
    "channel_trace_radius", "hypothesis_testing_radius",
]

PROB_ATOL = 1e-5
"""Probability vectors must sum to 1 within this tolerance (float32 simulations do)."""


def check_probs(probs, name="probs"):
    """``probs`` as an array of probability vectors over its last axis (checked if concrete)."""
    v = concrete(probs)
    if v is not None:
        if v.ndim < 1 or v.shape[-1] < 2:
            raise ParameterError(f"{name} needs >= 2 classes on its last axis, got shape {v.shape}")
        if not np.issubdtype(v.dtype, np.number) or np.iscomplexobj(v):
            raise ParameterError(f"{name} must be real, got dtype {v.dtype}")
        if np.any(~np.isfinite(v)) or np.any(v < -PROB_ATOL) or np.any(v > 1 + PROB_ATOL):
            raise ProbabilityError(f"{name} entries must lie in [0, 1], got {v!r}")
        total = v.sum(axis=-1)
        if np.any(np.abs(total - 1) > PROB_ATOL):
            bad = total[np.abs(total - 1) > PROB_ATOL].ravel()[0]
            raise ProbabilityError(
                f"{name} must sum to 1 (within {PROB_ATOL}), got a sum of {bad!r}")
    return jnp.asarray(probs)


def top_two(probs):
    """``(A, p_A, p_B)``: predicted class, its probability and the runner-up's; batch shape."""
    probs = check_probs(probs)
    top = jnp.sort(probs, axis=-1)
    return jnp.argmax(probs, axis=-1), top[..., -1], top[..., -2]


def dp_certified(probs, epsilon, delta=0.0):
    """Whether an (epsilon, delta)-DP classifier is certified on its ``eta``-ball:
    ``y_A > e^{2 epsilon} y_B + (1 + e^epsilon) delta`` (Lecuyer et al. 2019; Du et al. 2021).
    Boolean, batch shape of ``probs``."""
    e, d = concrete(epsilon), concrete(delta)
    if e is not None and np.any(~(e >= 0)):
        raise ParameterError(f"epsilon must be >= 0, got {epsilon!r}")
    if d is not None and np.any(~((d >= 0) & (d <= 1))):
        raise ParameterError(f"delta must lie in [0, 1], got {delta!r}")
    _, pa, pb = top_two(probs)
    return pa > jnp.exp(2 * epsilon) * pb + (1 + jnp.exp(epsilon)) * delta


def dp_radius(probs, kappa_value):
    """The largest trace distance ``eta`` certified through DP (delta = 0) for a channel
    with Guan's ``kappa``: ``(sqrt(p_A / p_B) - 1) / (kappa - 1)``, capped at 1 (every
    state; also for ``kappa = 1`` or ``p_B = 0``), 0 when ``kappa`` is infinite.
    Certified for every ``T(rho, sigma) <`` the radius. Batch shape of ``probs``."""
    k = concrete(kappa_value)
    if k is not None and np.any(~(k >= 1)):
        raise ParameterError(f"kappa must be >= 1, got {kappa_value!r}")
    _, pa, pb = top_two(probs)
    kappa_value = jnp.asarray(kappa_value, pa.dtype)
    ratio = jnp.sqrt(pa / jnp.where(pb > 0, pb, 1.0))
    num = jnp.where(pb > 0, ratio - 1, jnp.inf)
    den = kappa_value - 1
    r = jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.where(num > 0, jnp.inf, 0.0))
    return jnp.clip(jnp.nan_to_num(r, nan=0.0, posinf=1.0), 0.0, 1.0)


def trace_distance_radius(probs):
    """``(p_A - p_B) / 2``: every state within that trace distance keeps the class (any
    measurement). Batch shape of ``probs``."""
    _, pa, pb = top_two(probs)
    return (pa - pb) / 2


def channel_trace_radius(effects, probs):
    """Trace-distance radius from the effects ``A_k`` (shape ``(K, d, d)``) that produced
    ``probs`` (shape ``(..., K)``): ``min_{B != A} (y_A - y_B) / spread(A_A - A_B)``,
    ``spread = lambda_max - lambda_min``; capped at 1. Never smaller than
    :func:`trace_distance_radius` since ``spread <= 2``. Concrete effects are checked to be
    a POVM first (:func:`qjaxrob.defenses.qdp.check_effects`)."""
    probs = check_probs(probs)
    shape = np.shape(effects)
    if len(shape) != 3 or shape[0] != probs.shape[-1]:
        raise ParameterError(
            f"effects must have shape (K, d, d) with K = {probs.shape[-1]} classes, got "
            f"{shape}"
        )
    effects = check_effects(effects)
    herm = (effects + jnp.conj(jnp.swapaxes(effects, -1, -2))) / 2
    diff = herm[:, None] - herm[None, :]  # (K, K, d, d): A_a - A_b
    lam = jnp.linalg.eigvalsh(diff)
    spread = lam[..., -1] - lam[..., 0]  # (K, K)
    a = jnp.argmax(probs, axis=-1)
    pa = jnp.take_along_axis(probs, a[..., None], axis=-1)
    gap = pa - probs  # (..., K)
    sp = spread[a]  # (..., K)
    k = probs.shape[-1]
    others = jnp.arange(k) != a[..., None]
    safe = jnp.where(sp > 0, sp, 1.0)
    r = jnp.where(sp > 0, gap / safe, jnp.where(gap > 0, jnp.inf, 0.0))
    r = jnp.min(jnp.where(others, r, jnp.inf), axis=-1)
    return jnp.clip(r, 0.0, 1.0)


def hypothesis_testing_radius(p_a, p_b):
    """Infidelity radius ``1/2 (1 - sqrt(p_a p_b) - sqrt((1 - p_a)(1 - p_b)))`` of Weber et
    al., npj Quantum Inf. 7, 76 (2021): a classifier with top-class probability ``p_a`` and
    runner-up ``p_b`` at ``sigma`` keeps its class for every ``rho`` with
    ``1 - F(rho, sigma)`` below it. Needs ``0 <= p_b <= p_a <= 1`` and ``p_a + p_b <= 1``
    (checked when concrete; traced ``p_a <= p_b`` gives 0). Broadcasts."""
    a, b = concrete(p_a), concrete(p_b)
    for v, name in ((a, "p_a"), (b, "p_b")):
        if v is not None and np.any(~((v >= 0) & (v <= 1))):
            raise ProbabilityError(f"{name} must lie in [0, 1], got {v!r}")
    if a is not None and b is not None:
        if np.any(a + b > 1 + PROB_ATOL):
            raise ProbabilityError(f"p_a + p_b must be <= 1, got {a!r} + {b!r}")
        if np.any(a < b):
            raise ProbabilityError(f"p_a must be >= p_b (top class first), got {a!r} < {b!r}")
    p_a, p_b = jnp.asarray(p_a), jnp.asarray(p_b)
    r = 0.5 * (1 - jnp.sqrt(p_a * p_b) - jnp.sqrt(jnp.clip((1 - p_a) * (1 - p_b), 0.0)))
    return jnp.where(p_a > p_b, jnp.maximum(r, 0.0), 0.0)

