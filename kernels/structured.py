"""Fast paths for structured gates, each one pass over the state.

* diagonal gates multiply the state elementwise by a broadcast diagonal;
* permutation gates (X, Y, CNOT, CY, SWAP, iSWAP, Toffoli and their products: monomial
  matrices, one nonzero per row) gather whole slices: output slice ``i`` is
  ``phases[i] * input slice perm[i]``, with ``perm`` static and no arithmetic when all
  phases are 1.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from qjaxrob.kernels.dense import grouped_shape, stack_slices

__all__ = ["apply_diagonal", "broadcast_diagonal", "apply_permutation", "monomial"]


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
    wires = tuple(wires)
    sw = tuple(sorted(wires))
    d = broadcast_diagonal(diag, wires, state.ndim)
    g = grouped_shape(state.ndim, sw)
    dshape = tuple(2 if i % 2 else 1 for i in range(len(g)))
    return (state.reshape(g) * d.reshape(dshape)).reshape(state.shape)


def monomial(matrix, atol: float = 1e-12):
    """``(perm, phases)`` if the constant ``(d, d)`` matrix has exactly one nonzero per row
    and column (``matrix[i, perm[i]] = phases[i]``), else ``None``. NumPy, static."""
    m = np.asarray(matrix)
    nz = np.abs(m) > atol
    if not (np.all(nz.sum(axis=1) == 1) and np.all(nz.sum(axis=0) == 1)):
        return None
    perm = np.argmax(nz, axis=1)
    return tuple(int(p) for p in perm), m[np.arange(m.shape[0]), perm]


def apply_permutation(state, perm, phases, wires):
    """Applies the monomial gate ``U[i, perm[i]] = phases[i]`` on ``wires``.

    Args:
        state: complex array of shape ``(2,)*n``.
        perm: static tuple of ``2**k`` ints (a permutation).
        phases: ``(2**k,)`` complex array (static NumPy or traced), or ``None`` for all ones.
        wires: k distinct axes; ``wires[0]`` is the most significant bit of ``i``.
    """
    wires = tuple(wires)
    k = len(wires)
    order = [int(i) for i in np.argsort(wires)]
    sw = tuple(wires[i] for i in order)

    def to_sorted(i):  # index bits in wires order -> bits in sorted order
        bits = [(i >> (k - 1 - j)) & 1 for j in range(k)]
        return tuple(bits[o] for o in order)

    x = state.reshape(grouped_shape(state.ndim, sw))
    dim = 2**k
    outs = [None] * dim
    for i in range(dim):
        idx = []
        for b in to_sorted(perm[i]):
            idx += [slice(None), b]
        s = x[tuple(idx)]
        if phases is not None:
            p = phases[i]
            if not (isinstance(phases, np.ndarray) and p == 1):
                s = s * jnp.asarray(p, state.dtype)
        ob = to_sorted(i)
        outs[int("".join(map(str, ob)), 2)] = s
    return stack_slices(outs, k).reshape(state.shape)
