"""Dense k-qubit matrix applied to chosen axes of a ``(2,)*n`` state tensor.

One- and two-qubit matrices use slice-and-combine: the output is a linear combination of
the 2 (or 4) slices of the state along the gate's axes, which XLA fuses into a single
elementwise loop (one read and one write of the state). Larger matrices use
``tensordot`` followed by ``moveaxis``.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["apply_matrix"]


def _take(state, axis: int, index: int):
    return state[(slice(None),) * axis + (index,)]


def _apply_1q(state, m, w):
    s0, s1 = _take(state, w, 0), _take(state, w, 1)
    return jnp.stack([m[0, 0] * s0 + m[0, 1] * s1, m[1, 0] * s0 + m[1, 1] * s1], axis=w)


def _apply_2q(state, m, a, b):
    # Work with a < b internally; swap the matrix's tensor factors if needed.
    if a > b:
        m = m.reshape(2, 2, 2, 2).transpose(1, 0, 3, 2).reshape(4, 4)
        a, b = b, a
    # After removing axis a, axis b shifts down by one.
    slices = []
    for i in range(2):
        si = _take(state, a, i)
        for j in range(2):
            slices.append(_take(si, b - 1, j))
    rows = [sum(m[r, c] * slices[c] for c in range(4)) for r in range(4)]
    inner = [jnp.stack([rows[2 * i], rows[2 * i + 1]], axis=b - 1) for i in range(2)]
    return jnp.stack(inner, axis=a)


def apply_matrix(state, matrix, wires):
    """Applies the ``(2**k, 2**k)`` ``matrix`` to ``wires`` of the ``(2,)*n`` ``state``.

    Args:
        state: complex array of shape ``(2,)*n``.
        matrix: complex array of shape ``(2**k, 2**k)``, same dtype as ``state``.
        wires: tuple of k distinct axes; ``wires[0]`` is the matrix's most significant bit.

    Returns:
        The updated state, shape ``(2,)*n``.
    """
    wires = tuple(wires)
    k = len(wires)
    if k == 1:
        return _apply_1q(state, matrix, wires[0])
    if k == 2:
        return _apply_2q(state, matrix, *wires)
    t = matrix.reshape((2,) * (2 * k))
    out = jnp.tensordot(t, state, axes=(tuple(range(k, 2 * k)), wires))
    return jnp.moveaxis(out, tuple(range(k)), wires)
