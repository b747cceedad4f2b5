"""Fast paths for structured gates: diagonal gates multiply the state elementwise."""

from __future__ import annotations

import numpy as np

__all__ = ["apply_diagonal", "broadcast_diagonal"]


def broadcast_diagonal(diag, wires, n: int):
    """Reshapes the ``(2**k,)`` diagonal on ``wires`` so it broadcasts against ``(2,)*n``."""
    wires = tuple(wires)
    k = len(wires)
    d = diag.reshape((2,) * k)
    order = tuple(int(i) for i in np.argsort(wires))
    if order != tuple(range(k)):
        d = d.transpose(order)
    shape = [1] * n
    for w in wires:
        shape[w] = 2
    return d.reshape(shape)


def apply_diagonal(state, diag, wires):
    """Multiplies ``state`` (shape ``(2,)*n``) by the diagonal gate ``diag`` (shape
    ``(2**k,)``, ``wires[0]`` the most significant bit) acting on ``wires``."""
    return state * broadcast_diagonal(diag, wires, state.ndim)
