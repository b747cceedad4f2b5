"""Measurement: values read off a final state or density tensor (traceable, not jitted).

Pauli-term expectations (:func:`term_values`, :func:`observable_values`), computational-basis
probabilities (:func:`probabilities`, :func:`marginal`). Z masks are read with the one
parity-sign table of :mod:`qjaxrob.kernels.pauli` (``sign_table``, ``parity_signs``).

Paths: words of ``I``/``Z`` letters only take one pass for the probabilities and then a
signed sum per word (:func:`_diagonal_values`); other words on pure states take one kernel
per term (``kernels.pauli_expval``), or beyond :data:`BATCHED_TERMS` terms one batched
``lax.map`` body (:func:`_batched_term_values`). Tensor layout as :mod:`qjaxrob.sim.engine`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.ir.observables import PauliSum, pauli_masks, split_word
from qjaxrob.kernels import (density_diagonal, density_pauli_expval, parity_signs, pauli_expval,
                             sign_table, z_expval)

__all__ = [
    "BATCHED_TERMS",
    "SIGN_TABLE_ENTRIES",
    "coefficients",
    "marginal",
    "observable_value",
    "observable_values",
    "probabilities",
    "term_values",
]


def marginal(p, wires, n):
    """Probabilities ``p`` (shape ``(2,)*n``) marginalised onto ``wires`` (in that order),
    flat ``(2**len(wires),)`` with ``wires[0]`` the most significant bit."""
    others = tuple(w for w in range(n) if w not in wires)
    m = jnp.sum(p, axis=others) if others else p
    kept = sorted(wires)
    order = tuple(kept.index(w) for w in wires)
    return jnp.transpose(m, order).reshape(-1)


BATCHED_TERMS = 8
"""Observables with more than this many Pauli terms are evaluated by one
batched contraction (:func:`_batched_term_values`) instead of one kernel per term: a
per-term Python loop makes the traced program (and its gradient) grow with every term, and
XLA's compile time grows faster than linearly in program size."""

_BATCH_ENTRIES = 2**22
"""Entries (terms x amplitudes) processed at once by the batched contraction."""


def _batched_term_values(t, words, mixed: bool):
    """``<P_k>`` for all words at once. With ``P = i**n_Y X^x Z^z`` (:func:`qjaxrob.ir.observables.pauli_masks`),
    ``P[i, i ^ x] = i**n_Y (-1)**|(i ^ x) & z|`` is the only nonzero of row i, so a state gives
    ``<psi|P|psi> = i**n_Y sum_i conj(psi_i) (-1)**|(i^x) & z| psi_{i^x}`` and a density
    matrix ``Tr(P rho) = i**n_Y sum_i (-1)**|(i^x) & z| rho[i^x, i]``. Evaluated by
    ``lax.map`` over the terms (one traced body, whatever their number; batches of
    ``_BATCH_ENTRIES`` entries bound the memory)."""
    n = t.ndim // 2 if mixed else t.ndim
    dim = 2**n
    flat = t.reshape(-1)
    xs, zs, phases = pauli_masks(words, n)
    idx = jnp.arange(dim, dtype=jnp.int32)

    def one(masks):
        x, z = masks
        j = idx ^ x
        sign = parity_signs(j, z, t.dtype)
        if mixed:
            return jnp.sum(sign * flat[j * dim + idx])
        return jnp.vdot(flat, sign * flat[j])

    batch = max(1, min(len(words), _BATCH_ENTRIES // dim))
    vals = jax.lax.map(one, (jnp.asarray(xs), jnp.asarray(zs)), batch_size=batch)
    return jnp.real(vals * jnp.asarray(phases, t.dtype))


SIGN_TABLE_ENTRIES = 2**16
"""Largest static sign table (diagonal words x basis states) of :func:`_diagonal_values`;
beyond it each word is one masked sum over the shared probabilities."""


def probabilities(t, mixed: bool):
    """The flat computational-basis probabilities of a state (``|psi_i|^2`` as
    ``re^2 + im^2``: smooth to every order, unlike ``abs``) or of a density tensor (its
    real diagonal), shape ``(2**n,)``."""
    if mixed:
        return density_diagonal(t).reshape(-1)
    flat = t.reshape(-1)
    return jnp.real(flat) ** 2 + jnp.imag(flat) ** 2


def _diagonal_values(t, words, mixed: bool):
    """``<P_k>`` of words made of ``I``/``Z`` letters only, shape ``(W,)``: one pass for the
    probabilities ``p``, then ``<Z^z> = sum_i (-1)**|i & z| p_i`` for every word at once,
    as one product with a static ``(W, 2**n)`` sign table when it has at most
    :data:`SIGN_TABLE_ENTRIES` entries (small registers, where the number of passes
    dominates), else one masked sum per word over the same ``p``: traced one by one for up
    to :data:`BATCHED_TERMS` words, beyond that one ``lax.map`` body over the masks (signs
    from ``popcount(i & z)``, as :func:`_batched_term_values`)."""
    n = t.ndim // 2 if mixed else t.ndim
    p = probabilities(t, mixed)
    _, zs, _ = pauli_masks(words, n)
    if len(words) * 2**n <= SIGN_TABLE_ENTRIES:
        return jnp.asarray(sign_table(zs, n), p.dtype) @ p
    if len(words) <= BATCHED_TERMS:
        p = p.reshape((2,) * n)
        return jnp.stack([z_expval(p, [w for w, _ in word]) for word in words])
    idx = jnp.arange(2**n, dtype=jnp.int32)

    def one(z):
        return jnp.sum(parity_signs(idx, z, p.dtype) * p)

    batch = max(1, min(len(words), _BATCH_ENTRIES // 2**n))
    return jax.lax.map(one, jnp.asarray(zs), batch_size=batch)


def _all_term_values(t, words, mixed: bool):
    real = jnp.finfo(t.dtype).dtype
    if not words:
        return jnp.zeros((0,), real)
    n = t.ndim // 2 if mixed else t.ndim
    diagonal = np.array([all(letter in "IZ" for _, letter in w) for w in words])
    if diagonal.any():
        vals = _diagonal_values(t, tuple(w for w, d in zip(words, diagonal) if d), mixed)
        if diagonal.all():
            return vals.astype(real)
        rest = _all_term_values(t, tuple(w for w, d in zip(words, diagonal) if not d), mixed)
        order = np.argsort(np.concatenate([np.flatnonzero(diagonal), np.flatnonzero(~diagonal)]))
        return jnp.concatenate([vals.astype(real), rest])[order]
    if len(words) > BATCHED_TERMS and (4**n if mixed else 2**n) < 2**31:
        return _batched_term_values(t, words, mixed).astype(real)
    kernel = density_pauli_expval if mixed else pauli_expval
    return jnp.stack([kernel(t, *split_word(w)) for w in words]).astype(real)


def term_values(t, obs: PauliSum, mixed: bool):
    """The expectation of every Pauli term of ``obs`` on the final tensor ``t``, shape
    ``(n_terms,)``, real."""
    return _all_term_values(t, tuple(w for _, w in obs.terms), mixed)


def coefficients(obs: PauliSum, real_dtype):
    """The real coefficients of ``obs``'s terms, shape ``(n_terms,)``."""
    return jnp.array([c.real for c, _ in obs.terms], real_dtype)


def observable_values(t, observables, mixed: bool):
    """``<O_k>`` for a tuple of ``PauliSum`` s on one final tensor, shape ``(K,)``: every
    term of every observable is evaluated in one :func:`term_values`-style pass, then
    summed per observable with its coefficients."""
    words = tuple(w for o in observables for _, w in o.terms)
    vals = _all_term_values(t, words, mixed)
    owner = np.repeat(np.arange(len(observables)), [len(o.terms) for o in observables])
    coeffs = np.array([c.real for o in observables for c, _ in o.terms])
    weighted = vals * jnp.asarray(coeffs, vals.dtype)
    return jax.ops.segment_sum(weighted, jnp.asarray(owner, jnp.int32), len(observables))


def observable_value(t, obs: PauliSum, mixed: bool):
    """``<O>`` on a final tensor (real scalar): the coefficient-weighted term values."""
    return observable_values(t, (obs,), mixed)[0]
