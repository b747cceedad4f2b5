"""Dense k-qubit matrix applied to chosen axes of a ``(2,)*n`` state tensor.

Slice-and-combine: the state is viewed as ``(g0, 2, g1, 2, ..., 2, gk)`` (the gate's wires,
sorted, as size-2 axes; the wires in between merged into groups), each output slice is a
linear combination of the ``2**k`` input slices, and the slices are stacked back. XLA fuses
the whole update into one elementwise loop: one read and one write of the state, with
``2**k`` complex multiply-adds per amplitude and no transpose. Low-rank grouped views also
give XLA a much simpler index space than the rank-n tensor. Matrices with more than
``SLICE_MAX_QUBITS`` qubits use ``tensordot`` followed by ``moveaxis``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "apply_matrix", "grouped_shape", "grouped_slices", "view_slices", "sort_wires",
    "stack_slices",
    "SLICE_MAX_QUBITS",
]

SLICE_MAX_QUBITS = 3
"""Largest k handled by slice-and-combine (it costs 4**k terms at trace time)."""


def grouped_shape(n: int, sorted_wires) -> tuple[int, ...]:
    """``(g0, 2, g1, 2, ..., 2, gk)`` for ``sorted_wires`` of a ``(2,)*n`` tensor."""
    shape, prev = [], -1
    for w in sorted_wires:
        shape += [2 ** (w - prev - 1), 2]
        prev = w
    return tuple(shape + [2 ** (n - prev - 1)])


def sort_wires(matrix, wires):
    """``(matrix', sorted_wires)``: the ``(2**k, 2**k)`` matrix with its tensor factors
    reordered so that it acts on ``sorted(wires)`` (no-op if already sorted)."""
    wires = tuple(wires)
    k = len(wires)
    order = tuple(int(i) for i in np.argsort(wires))
    if order == tuple(range(k)):
        return matrix, wires
    t = matrix.reshape((2,) * (2 * k)).transpose(order + tuple(k + i for i in order))
    return t.reshape(2**k, 2**k), tuple(wires[i] for i in order)


def view_slices(view, k: int):
    """The ``2**k`` slices of a grouped view ``(g0, 2, g1, ..., 2, gk)`` at every setting
    of its k size-2 axes (index = those bits, first most significant), each of shape
    ``(g0, ..., gk)``. :func:`stack_slices` is the inverse."""
    out = []
    for i in range(2**k):
        idx = []
        for b in _bits(i, k):
            idx += [slice(None), b]
        out.append(view[tuple(idx)])
    return out


def grouped_slices(t, sorted_axes):
    """:func:`view_slices` of the ``(2,)*N`` tensor ``t`` viewed on ``sorted_axes``."""
    return view_slices(t.reshape(grouped_shape(t.ndim, sorted_axes)), len(sorted_axes))


def stack_slices(outputs, k: int):
    """Stacks ``2**k`` slices of shape ``(g0, ..., gk)`` (index = the k output bits, first
    bit most significant) into the grouped view ``(g0, 2, g1, ..., 2, gk)``."""
    def build(prefix):
        j = len(prefix)
        if j == k:
            return outputs[int("".join(map(str, prefix)) or "0", 2)]
        return jnp.stack([build(prefix + (0,)), build(prefix + (1,))], axis=j + 1)

    return build(())


def _bits(i: int, k: int):
    return tuple((i >> (k - 1 - j)) & 1 for j in range(k))


def _einsum_apply(x, m, k: int):
    """``m`` applied to the gate axes of the grouped view ``x`` as one ``einsum``."""
    groups = "abcd"[: k + 1]
    rows, cols = "efg"[:k], "hij"[:k]
    src = "".join(g + c for g, c in zip(groups, cols)) + groups[k]
    dst = "".join(g + r for g, r in zip(groups, rows)) + groups[k]
    return jnp.einsum(f"{rows}{cols},{src}->{dst}", m.reshape((2,) * (2 * k)), x)


def _combine(x, m, k: int):
    dim = 2**k
    slices = view_slices(x, k)
    rows = [sum(m[r, c] * slices[c] for c in range(dim)) for r in range(dim)]
    return stack_slices(rows, k)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _sliced(x, m, k):
    return _combine(x, m, k)


@partial(_sliced.defjvp, symbolic_zeros=True)
def _sliced_jvp(k, primals, tangents):
    """Tangent ``M dx + dM x``. The ``dM x`` term is an einsum so that reverse mode
    transposes it into one contraction over the state (not ``4**k`` separate reductions)."""
    x, m = primals
    dx, dm = tangents
    out = _sliced(x, m, k)
    zero = jax.custom_derivatives.SymbolicZero
    tangent = jnp.zeros_like(out) if isinstance(dx, zero) else _sliced(dx, m, k)
    if not isinstance(dm, zero):
        tangent = tangent + _einsum_apply(x, dm, k)
    return out, tangent


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
    if k > SLICE_MAX_QUBITS:
        t = matrix.reshape((2,) * (2 * k))
        out = jnp.tensordot(t, state, axes=(tuple(range(k, 2 * k)), wires))
        return jnp.moveaxis(out, tuple(range(k)), wires)
    m, sw = sort_wires(matrix, wires)
    x = state.reshape(grouped_shape(state.ndim, sw))
    return _sliced(x, m, k).reshape(state.shape)
