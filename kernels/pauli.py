"""Pauli strings applied to, and measured on, ``(2,)*n`` states without dense matrices.

X flips the state along its axis, Z multiplies by (1, -1) along it, and
Y = i X Z multiplies by (-i, i) after the flip. The one parity-sign table every reader of
Z masks uses: ``(-1)**popcount(i & z)`` with bit ``n-1-w`` of ``z`` for wire ``w`` (wire 0
the most significant bit of the basis index ``i``), in NumPy for static tables
(:func:`sign_table`) or traced (:func:`parity_signs`, :func:`z_expval`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.kernels.dense import grouped_shape

__all__ = ["apply_pauli", "parity_signs", "pauli_expval", "sign_table", "z_expval"]


def sign_table(z_masks, n: int) -> np.ndarray:
    """``(W, 2**n)`` int8 NumPy table ``(-1)**popcount(i & z_k)`` of the Z masks ``z_masks``
    (bit ``n-1-w`` = wire w), built at trace time."""
    basis = np.arange(2**n)
    z = np.asarray(z_masks, np.int64).reshape(-1)
    parity = np.bitwise_count(basis[None, :] & z[:, None]) & 1
    return (1 - 2 * parity).astype(np.int8)


def parity_signs(idx, z, dtype):
    """Traced ``(-1)**popcount(idx & z)`` in ``dtype`` (``idx``, ``z`` integer arrays that
    broadcast): the sign table of :func:`sign_table` for masks known only at run time."""
    return (1 - 2 * (jax.lax.population_count(idx & z) & 1)).astype(dtype)


def z_expval(p, wires):
    """``sum_i (-1)**(parity of i's bits on wires) p_i`` for a real ``(2,)*n`` tensor ``p``
    (probabilities): the expectation of the Z string on ``wires``, on the grouped view of
    the wires (any ``n``, no ``2**n`` table)."""
    ws = sorted(set(wires))
    if not ws:
        return jnp.sum(p)
    k = len(ws)
    signs = parity_signs(jnp.arange(2**k, dtype=jnp.int32), 2**k - 1, p.dtype)
    return jnp.sum(p.reshape(grouped_shape(p.ndim, ws)) * signs.reshape([1, 2] * k + [1]))


def _axis_vector(values, axis: int, n: int, dtype):
    shape = [1] * n
    shape[axis] = 2
    return jnp.asarray(values, dtype).reshape(shape)


def apply_pauli(state, letters: str, wires):
    """Applies the Pauli string ``letters`` (from "IXYZ") on ``wires`` to ``state``."""
    n = state.ndim
    for letter, w in zip(letters, wires):
        if letter == "X":
            state = jnp.flip(state, axis=w)
        elif letter == "Z":
            state = state * _axis_vector([1, -1], w, n, state.dtype)
        elif letter == "Y":
            state = jnp.flip(state, axis=w) * _axis_vector([-1j, 1j], w, n, state.dtype)
    return state


def pauli_expval(state, letters: str, wires):
    """``<psi| P |psi>`` (real) for the Pauli string ``letters`` on ``wires``.

    Z-only strings are computed from ``|psi|^2`` with the parity signs (:func:`z_expval`).
    """
    active = [(l, w) for l, w in zip(letters, wires) if l != "I"]
    if not active:
        return jnp.sum(jnp.abs(state) ** 2)
    if all(l == "Z" for l, _ in active):
        return z_expval(jnp.abs(state) ** 2, [w for _, w in active])
    ls, ws = zip(*active)
    return jnp.real(jnp.vdot(state, apply_pauli(state, "".join(ls), ws)))
