"""Dense k-qubit matrix applied to chosen axes of a ``(2,)*n`` state tensor.

Slice-and-combine: the state is viewed as ``(g0, 2, g1, 2, ..., 2, gk)`` (the gate's wires,
sorted, as size-2 axes; the wires in between merged into groups), each output slice is a
linear combination of the ``2**k`` input slices, and the slices are stacked back. XLA fuses
the whole update into one elementwise loop: one read and one write of the state, with
``2**k`` complex multiply-adds per amplitude and no transpose. Low-rank grouped views also
give XLA a much simpler index space than the rank-n tensor. Matrices with more than
``SLICE_MAX_QUBITS`` qubits use ``tensordot`` followed by ``moveaxis``.

The update is one JAX primitive, ``slice_combine_p`` (bilinear in state and matrix, like
``kernels.pallas``'s): tracing it costs one equation instead of ``4**k`` products, and its
reverse-mode rule is the same kernel with the transposed matrix plus one contraction for
the matrix cotangent, not the transposes of ``2**k`` slices and ``4**k`` products, so
gradients trace and compile like a second forward pass.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from qjaxrob.kernels import inplace

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


def _combine_one(view, m, k: int):
    """Slice-and-combine of one ``(2**k, 2**k)`` matrix on a grouped view."""
    dim = 2**k
    slices = view_slices(view, k)
    rows = [sum(m[r, c] * slices[c] for c in range(dim)) for r in range(dim)]
    return stack_slices(rows, k)


def _combine(x, m, k: int):
    """``y = m x`` on a batch of grouped views: ``x`` is ``(B, g0, 2, g1, ..., 2, gk)``,
    ``m`` is ``(Bm, 2**k, 2**k)`` with ``Bm`` in ``{1, B}`` (one matrix for the batch,
    whose axis then joins the first group, or one per example)."""
    if m.shape[0] == 1:
        return _combine_one(x.reshape((-1,) + x.shape[2:]), m[0], k).reshape(x.shape)
    return jax.vmap(partial(_combine_one, k=k))(x, m)


_GEMM_MIN_TAIL = 256
"""Adjacent wires with a trailing group at least this long: batched GEMMs over the tail."""
_GRAM_MAX_TAIL = 2
"""Adjacent wires with a trailing group at most this long: one Gram matrix over the head."""
_ROWS_TAILS = (4, 16)
"""Adjacent wires (``k <= 2``) with a trailing group in this range (inclusive): each row's
outer products summed over the tail, then the rows summed (:func:`_rows_cotangent`)."""
_SPLIT = 4
"""Chunks of the longest group summed inside the elementwise product (more chunks cost
less alone but keep XLA from fusing a residual's ``dynamic-slice`` into the product)."""


def _matrix_cotangent(ct, x, k: int, shared: bool):
    """``sum ct_r x_c`` over every amplitude (and over the batch when the matrix is
    ``shared``): the cotangent of ``m`` in ``y = m x``, shape ``(Bm, 2**k, 2**k)``.

    ``ct`` and ``x`` are ``(B, g0, 2, g1, ..., 2, gk)``. No operand is transposed (XLA CPU
    copies operands into ``[batch, free, contracting]`` order for a general contraction,
    several times the cost of the forward kernel). Adjacent wires (inner groups of size 1)
    give each example the contiguous view ``(P, 2**k, R)``: a long tail ``R`` contracts as
    batched GEMMs over ``P``, a tail of one or two amplitudes (one matrix) as one Gram
    matrix over ``P`` (diagonal blocks kept), a tail of 4-16 amplitudes (``k <= 2``) as
    each row's outer products summed over the tail, then over ``P``
    (:func:`_rows_cotangent`); a shared matrix folds the batch into ``P``. Every other
    layout multiplies the two operands elementwise in one fused pass
    (:func:`_products_cotangent`). Each form reads each operand about once."""
    if shared:
        ct, x = (t.reshape((1, -1) + t.shape[2:]) for t in (ct, x))
    bm, groups, dim = x.shape[0], x.shape[1::2], 2**k
    head, tail = groups[0], groups[-1]
    gemm, gram = tail >= _GEMM_MIN_TAIL, tail <= _GRAM_MAX_TAIL and bm == 1
    rows = k <= 2 and _ROWS_TAILS[0] <= tail <= _ROWS_TAILS[1]
    if all(g == 1 for g in groups[1:-1]) and (gemm or gram or rows):
        c, v = (t.reshape(bm, head, dim, tail) for t in (ct, x))
        if gemm:
            return jax.lax.dot_general(c, v, (((3,), (3,)), ((0, 1), (0, 1)))).sum(1)
        if rows:
            return _rows_cotangent(c, v)
        c, v = (t.reshape(bm, head, dim * tail) for t in (ct, x))
        full = jax.lax.dot_general(c, v, (((1,), (1,)), ((0,), (0,))))
        return jnp.einsum("zarbr->zab", full.reshape(bm, dim, tail, dim, tail))
    return _products_cotangent(ct, x, k)


def _rows_cotangent(c, v):
    """:func:`_matrix_cotangent` of contiguous views ``c``, ``v`` ``(Bm, P, 2**k, R)``: the
    ``(Bm, P, 2**k, 2**k)`` outer products of each row summed over its short tail ``R`` in
    one fused pass, then summed over the rows ``P``. The barrier keeps the two sums apart:
    fused into one reduction over these layouts, XLA CPU takes up to ten times longer to
    compile it (``benchmarks/README.md``, "compile time of the matrix cotangent")."""
    per_row = (c[:, :, :, None] * v[:, :, None]).sum(-1)
    return jax.lax.optimization_barrier(per_row).sum(1)


def _products_cotangent(ct, x, k: int):
    """:func:`_matrix_cotangent` of any layout as one elementwise product and a reduction:
    the products ``ct_r x_c`` of shape ``(B, g0, 2, 2, g1, ..., 2, 2, gk)`` (row bit, then
    column bit, at each wire), with the longest group ``g`` split as ``(s, g / s)`` and
    its ``s`` chunks added inside the same fusion (``s`` sliced products, each used once,
    so XLA computes them in one loop instead of materializing the product tensor), then
    summed over the groups."""
    bm, groups = x.shape[0], list(x.shape[1::2])
    j = max(range(k + 1), key=lambda i: groups[i])
    s = math.gcd(_SPLIT, groups[j])  # a power of two

    def view(t, pair):
        shape = [bm]
        for i, g in enumerate(groups):
            shape += [s, g // s] if i == j else [g]
            if i < k:
                shape += pair
        return t.reshape(shape)

    c, v = view(ct, [2, 1]), view(x, [1, 2])
    axis = 1 + 3 * j  # the chunk axis
    prod = sum(jax.lax.index_in_dim(c, i, axis, False) * jax.lax.index_in_dim(v, i, axis, False)
               for i in range(s))
    group_axes = tuple(1 + 3 * i for i in range(k + 1))
    bits = prod.sum(group_axes)  # (Bm, r0, c0, r1, c1, ...)
    order = (0,) + tuple(1 + 2 * i for i in range(k)) + tuple(2 + 2 * i for i in range(k))
    return bits.transpose(order).reshape(bm, 2**k, 2**k)


slice_combine_p = Primitive("qjaxrob_slice_combine")
"""``y = m x`` on a batched grouped view (operands as in :func:`_combine`; static ``k``).
Bilinear: the JVP is ``P(dx, m) + P(x, dm)``; the transpose in ``x`` is ``P(ct, m^T)``
(JAX transposes complex maps without conjugating) and in ``m`` the contraction
:data:`matrix_cotangent_p` (:func:`_matrix_cotangent`), so a reverse pass costs one kernel
and one contraction per application instead of the transposes of ``4**k`` slices (pads);
batching folds vmapped axes into the leading batch axis."""
slice_combine_p.def_impl(
    lambda x, m, *, k: jax.jit(partial(slice_combine_p.bind, k=k))(x, m))
slice_combine_p.def_abstract_eval(lambda x, m, *, k: x)  # same shape and dtype
mlir.register_lowering(slice_combine_p, mlir.lower_fun(_combine, multiple_results=False))
mlir.register_lowering(slice_combine_p, inplace.lowering(_combine), platform="cpu")


def _transpose_state(ct, x, m, *, k):
    return slice_combine_p.bind(ct, jnp.swapaxes(m, 1, 2), k=k)


def _transpose_matrix(ct, x, m, *, k):
    shared = m.aval.shape[0] == 1 and x.shape[0] != 1
    return matrix_cotangent_p.bind(ct, x, k=k, shared=shared)


ad.defbilinear(slice_combine_p, _transpose_state, _transpose_matrix)


matrix_cotangent_p = Primitive("qjaxrob_matrix_cotangent")
"""``G = sum ct_r x_c`` (:func:`_matrix_cotangent`; static ``k`` and ``shared``) as one
primitive, bilinear in ``ct`` and ``x``: its transposes are the slice-combine kernels
``ct_bar = P(x, G_bar)`` and ``x_bar = P(ct, G_bar^T)``, so derivatives of a reverse pass
(second order, the inversion objective) are the same kernels again rather than the
transposes of the contraction's internal views."""


def _lower_cotangent(ct, x, *, k, shared):
    # ct is also read by _transpose_state; the barrier keeps XLA from fusing its producer
    # (the next gate's transpose kernel) into the contraction, recomputed per product.
    return _matrix_cotangent(jax.lax.optimization_barrier(ct), x, k, shared)


matrix_cotangent_p.def_impl(lambda ct, x, *, k, shared: jax.jit(
    partial(matrix_cotangent_p.bind, k=k, shared=shared))(ct, x))


def _cotangent_aval(ct, x, *, k, shared):
    """``(Bm, 2**k, 2**k)``, varying over the manual mesh axes (``shard_map``) that either
    operand varies over, so reverse passes inside ``shard_map`` type-check."""
    return x.update(shape=(1 if shared else x.shape[0], 2**k, 2**k),
                    manual_axis_type=x.mat.update(varying=ct.mat.varying | x.mat.varying))


matrix_cotangent_p.def_abstract_eval(_cotangent_aval)
mlir.register_lowering(matrix_cotangent_p,
                       mlir.lower_fun(_lower_cotangent, multiple_results=False))


def _cotangent_transpose_ct(g, ct, x, *, k, shared):
    return slice_combine_p.bind(x, g, k=k)


def _cotangent_transpose_x(g, ct, x, *, k, shared):
    return slice_combine_p.bind(ct, jnp.swapaxes(g, 1, 2), k=k)


ad.defbilinear(matrix_cotangent_p, _cotangent_transpose_ct, _cotangent_transpose_x)


def _batch_cotangent(args, dims, *, k, shared):
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    ct, x = (jnp.broadcast_to(a, (size,) + a.shape) if d is None else jnp.moveaxis(a, d, 0)
             for a, d in zip(args, dims))
    inner = x.shape[1]
    flat = (t.reshape((size * inner,) + t.shape[2:]) for t in (ct, x))
    g = matrix_cotangent_p.bind(*flat, k=k, shared=False).reshape(size, inner, 2**k, 2**k)
    return (g.sum(1, keepdims=True) if shared else g), 0


batching.primitive_batchers[matrix_cotangent_p] = _batch_cotangent


def _batch(args, dims, *, k):
    x, m = args
    bx, bm = dims
    size = x.shape[bx] if bx is not None else m.shape[bm]
    x = jnp.broadcast_to(x, (size,) + x.shape) if bx is None else jnp.moveaxis(x, bx, 0)
    inner = x.shape[1]
    flat = x.reshape((size * inner,) + x.shape[2:])
    if bm is not None or m.shape[0] != 1:  # per-example matrices
        m = jnp.broadcast_to(m, (size,) + m.shape) if bm is None else jnp.moveaxis(m, bm, 0)
        m = jnp.broadcast_to(m, (size, inner) + m.shape[2:]).reshape((size * inner,) + m.shape[2:])
    return slice_combine_p.bind(flat, m, k=k).reshape(x.shape), 0


batching.primitive_batchers[slice_combine_p] = _batch


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
    return slice_combine_p.bind(x[None], m[None].astype(state.dtype), k=k).reshape(state.shape)
