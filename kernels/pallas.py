"""Pallas variants of ``apply_matrix`` and ``apply_diagonal`` (same signatures) for GPUs.

The state is viewed as ``(g0, 2, g1, ..., 2, gk)`` (``kernels.dense.grouped_shape``) and
split into real and imaginary parts (Triton has no complex type). One program handles
one index of ``g0`` and a tile of ``TILE`` entries of ``gk``, reading the ``2**k`` input
slices once and writing the ``2**k`` output slices once (complex products written out in
real arithmetic). Gates on more than two wires fall back to the XLA kernels.

``simulate`` selects these only when ``jax.default_backend() == "gpu"``; elsewhere they
run in Pallas interpret mode (for tests against the XLA kernels).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from qjaxrob.kernels import dense
from qjaxrob.kernels.dense import grouped_shape, sort_wires

__all__ = ["apply_matrix", "apply_diagonal", "TILE"]

TILE = 1024
"""Entries of the last group handled by one program."""


def _grid_specs(shape):
    tile = min(shape[-1], TILE)
    nd = len(shape)
    spec = pl.BlockSpec((1,) + shape[1:-1] + (tile,),
                        lambda i, j: (i,) + (0,) * (nd - 2) + (j,))
    return spec, (shape[0], shape[-1] // tile)


def _index(bits):
    idx = [slice(None)]
    for b in bits:
        idx += [b, slice(None)]
    return tuple(idx)


def _run(kernel, operands, x, interpret):
    """Calls ``kernel(*operand_refs, xr, xi, or, oi)`` over the grouped view ``x``."""
    spec, grid = _grid_specs(x.shape)
    real = jnp.finfo(x.dtype).dtype
    full = [pl.BlockSpec(o.shape, lambda i, j, nd=o.ndim: (0,) * nd) for o in operands]
    out = jax.ShapeDtypeStruct(x.shape, real)
    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    o_r, o_i = pl.pallas_call(
        kernel, out_shape=(out, out), grid=grid, in_specs=full + [spec, spec],
        out_specs=(spec, spec), interpret=interpret,
    )(*operands, jnp.real(x), jnp.imag(x))
    return jax.lax.complex(o_r, o_i).astype(x.dtype)


def apply_matrix(state, matrix, wires, *, interpret=None):
    """Same contract as :func:`qjaxrob.kernels.apply_matrix` (``(2,)*n`` state, ``(2**k,
    2**k)`` matrix, ``wires[0]`` the most significant bit)."""
    wires = tuple(wires)
    k = len(wires)
    if k > 2:
        return dense.apply_matrix(state, matrix, wires)
    m, sw = sort_wires(matrix, wires)
    x = state.reshape(grouped_shape(state.ndim, sw))
    bits = list(itertools.product((0, 1), repeat=k))
    real = jnp.finfo(state.dtype).dtype

    def kernel(mr_ref, mi_ref, xr_ref, xi_ref, or_ref, oi_ref):
        mr, mi = mr_ref[...], mi_ref[...]
        sr = [xr_ref[_index(b)] for b in bits]
        si = [xi_ref[_index(b)] for b in bits]
        for r, b in enumerate(bits):
            or_ref[_index(b)] = sum(mr[r, c] * sr[c] - mi[r, c] * si[c] for c in range(len(bits)))
            oi_ref[_index(b)] = sum(mr[r, c] * si[c] + mi[r, c] * sr[c] for c in range(len(bits)))

    ops = [jnp.real(m).astype(real), jnp.imag(m).astype(real)]
    return _run(kernel, ops, x, interpret).reshape(state.shape)


def apply_diagonal(state, diag, wires, *, interpret=None):
    """Same contract as :func:`qjaxrob.kernels.apply_diagonal` (``(2**k,)`` diagonal)."""
    wires = tuple(wires)
    k = len(wires)
    if k > 2:
        return dense.apply_matrix(state, jnp.diag(diag), wires)
    d, sw = sort_wires(jnp.diag(diag), wires)
    d = jnp.diagonal(d)
    x = state.reshape(grouped_shape(state.ndim, sw))
    bits = list(itertools.product((0, 1), repeat=k))
    real = jnp.finfo(state.dtype).dtype

    def kernel(dr_ref, di_ref, xr_ref, xi_ref, or_ref, oi_ref):
        dr, di = dr_ref[...], di_ref[...]
        for r, b in enumerate(bits):
            a, c = xr_ref[_index(b)], xi_ref[_index(b)]
            or_ref[_index(b)] = dr[r] * a - di[r] * c
            oi_ref[_index(b)] = dr[r] * c + di[r] * a

    ops = [jnp.real(d).astype(real), jnp.imag(d).astype(real)]
    return _run(kernel, ops, x, interpret).reshape(state.shape)
