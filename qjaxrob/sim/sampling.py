"""Sampling: finite-shot estimates of Pauli sums and computational-basis samples
(traceable, not jitted; the entry points in :mod:`qjaxrob.simulate` jit them).

Shot estimates measure every Pauli term in its own eigenbasis with ``shots`` shots: a
+-1 outcome has ``P(+1) = (1 + <P>)/2``, so the count of +1 is
``Binomial(shots, (1 + <P>)/2)`` and the term's estimate is ``2 k / shots - 1`` (identity
terms are exact). Gradients of these estimates are parameter-shift rules
(:mod:`qjaxrob.sim.param_shift`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qjaxrob.sim.measure import coefficients, term_values

__all__ = ["sample_bits", "shot_values"]


def shot_values(t, observables, mixed: bool, key, shots):
    """Finite-shot estimates of ``observables`` (a tuple of ``PauliSum`` s) on the final
    tensor ``t``, shape ``(K,)``: term ``j`` of observable ``i`` draws its binomial count
    from ``fold_in(key, i)``; ``shots`` may be traced."""
    out = []
    for i, obs in enumerate(observables):
        vals = term_values(t, obs, mixed)
        p_plus = jnp.clip((1 + vals) / 2, 0.0, 1.0)
        counts = jax.random.binomial(jax.random.fold_in(key, i), shots, p_plus)
        identity = jnp.array([not w for _, w in obs.terms], bool)
        est = jnp.where(identity, 1.0, 2 * counts / shots - 1).astype(vals.dtype)
        out.append(jnp.dot(coefficients(obs, vals.dtype), est))
    return jnp.stack(out)


def sample_bits(key, p, shots: int, n: int):
    """``shots`` outcomes drawn from the flat probabilities ``p`` (``(2**n,)``, summing to
    about 1) by inverse-CDF sampling, as bits: ``(shots, n)`` int8, column k = wire k."""
    cdf = jnp.cumsum(p)
    u = jax.random.uniform(key, (shots,), dtype=cdf.dtype) * cdf[-1]
    idx = jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, p.shape[0] - 1)
    shifts = jnp.arange(n - 1, -1, -1, dtype=idx.dtype)
    return ((idx[:, None] >> shifts) & 1).astype(jnp.int8)
