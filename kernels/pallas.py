"""Pallas (Triton) variants of ``apply_matrix`` and ``apply_diagonal`` (same signatures).

Layout. A batch of states ``(B, 2**n)`` is viewed as ``(B, g0, 2, g1, ..., 2, gk)`` (the
gate's sorted wires as size-2 axes, the wires in between merged into groups; see
``kernels.dense.grouped_shape``) and split into real and imaginary planes (Triton has no
complex type). The grid is one-dimensional; program ``p`` owns one block of
``BLOCK / 2**k`` amplitudes per bit pattern: the block shape keeps the size-2 bit axes
whole, tiles the groups from the last (contiguous) one backwards, and squeezes batch and
group axes of tile 1 (``pl.Squeezed``), so all index arithmetic lives in the BlockSpec
index maps. Inside the kernel the ``2**k`` slices are read by indexing the *ref* with
constant bit indices (pointer arithmetic in Triton, never the ``slice`` primitive that the
Triton lowering lacks), combined with the matrix entries read as scalars from their ref,
and written back to the same places. Each program reads and writes only its own block, so
the planes are updated in place (``input_output_aliases``): one read and one write of the
state per application. The complex <-> planes conversion around each call is
``real``/``imag``/``complex`` on the whole state, which XLA's algebraic simplifier cancels
between consecutive calls (``real(complex(a, b)) = a``).

Autodiff. The kernels are one JAX primitive, ``pallas_apply``, with its own rules:

* JVP: ``d(M x) = M dx + dM x``; ``M dx`` is the primitive again, ``dM x`` one XLA
  contraction (so it transposes to the matrix cotangent ``sum ct_r x_c``: one contraction).
* Transpose (reverse mode): the map ``x -> M x`` transposes to ``ct -> M^T ct`` (JAX's
  complex convention transposes without conjugating; with conjugated cotangents this is
  the familiar ``M^dagger``), again the primitive, so backprop runs on Pallas as well.
* Batching (``vmap``): batch axes merge into the leading batch axis; a matrix shared by
  the batch is read once per program, a per-example matrix is indexed by the batch.

Higher derivatives (``jax.hessian``, grad of grad) compose from these rules.

Backends. ``pallas_call`` is compiled by Triton (``pltriton.CompilerParams``: explicit, so
Mosaic GPU is never picked) on CUDA/ROCm and runs in interpret mode elsewhere (CPU tests);
``interpret=True`` forces interpret mode everywhere. Gates wider than ``MAX_QUBITS`` (dense)
or ``MAX_DIAGONAL_QUBITS`` (diagonal) fall back to the XLA kernels.

Status: the Triton lowering (to Triton IR) is checked on CPU by the tests; compiling and
timing on a GPU is ``benchmarks/gpu.py`` (not yet run on a GPU).
"""

from __future__ import annotations

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from qjaxrob.kernels import dense, structured
from qjaxrob.kernels.dense import grouped_shape, sort_wires

__all__ = [
    "BLOCK",
    "MAX_DIAGONAL_QUBITS",
    "MAX_QUBITS",
    "NUM_WARPS",
    "apply_diagonal",
    "apply_matrix",
]

BLOCK = 4096
"""Amplitudes per program (all ``2**k`` bit patterns together)."""

NUM_WARPS = 4
"""Triton warps per program."""

MAX_QUBITS = 4
"""Widest dense gate handled here (``4**k`` complex multiply-adds are unrolled). At k=5 the
Triton lowering alone takes about 9 s, and 256 FLOP per amplitude (16 bytes moved) at
4.8 TB/s would need ~77 TFLOP/s, past an H200's ~67 FP32: compute-bound; k=4 needs ~38."""

MAX_DIAGONAL_QUBITS = 6
"""Widest diagonal gate handled here."""


# ---- the Pallas kernel ----------------------------------------------------------------
def _tiles(groups, k):
    """Power-of-two tile per group (last group first) so a block has ``BLOCK / 2**k``
    amplitudes per bit pattern (or the whole group range, if smaller)."""
    budget = max(1, BLOCK >> k)
    tiles = [1] * len(groups)
    for i in reversed(range(len(groups))):
        tiles[i] = min(groups[i], budget)
        budget //= tiles[i]
    return tiles


def _pallas_planes(mr, mi, xr, xi, *, sorted_wires, n, kind, interpret):
    """The kernel on real planes ``xr, xi`` of shape ``(B, 2**n)``; ``mr, mi`` of shape
    ``(Bm, d, d)`` (dense) or ``(Bm, d)`` (diagonal), ``Bm`` in ``{1, B}``."""
    batch, k, bm = xr.shape[0], len(sorted_wires), mr.shape[0]
    d = 2**k
    shape = grouped_shape(n, sorted_wires)
    groups = list(shape[0::2])
    tiles = _tiles(groups, k)
    counts = [g // t for g, t in zip(groups, tiles)]
    per_state = int(np.prod(counts))

    block = [pl.Squeezed()]
    for j, t in enumerate(tiles):
        block.append(pl.Squeezed() if t == 1 else t)
        if j < k:
            block.append(2)

    def state_index(p):
        b, rest = p // per_state, p % per_state
        idx = []
        for c in reversed(counts):
            idx.append(rest % c)
            rest = rest // c
        idx = idx[::-1]
        out = [b]
        for j, i in enumerate(idx):
            out.append(i)
            if j < k:
                out.append(0)
        return tuple(out)

    def op_index(p):
        b = p // per_state if bm > 1 else 0
        return (b,) + (0,) * (mr.ndim - 1)

    state_spec = pl.BlockSpec(tuple(block), state_index)
    op_spec = pl.BlockSpec((pl.Squeezed(),) + mr.shape[1:], op_index)
    bits = list(itertools.product((0, 1), repeat=k))
    squeezed = [t == 1 for t in tiles]

    def ref_index(b):
        idx = []
        for j, sq in enumerate(squeezed):
            if not sq:
                idx.append(slice(None))
            if j < k:
                idx.append(b[j])
        return tuple(idx)

    def kernel(mr_ref, mi_ref, xr_ref, xi_ref, or_ref, oi_ref):
        sr = [xr_ref[ref_index(b)] for b in bits]
        si = [xi_ref[ref_index(b)] for b in bits]
        for r, b in enumerate(bits):
            if kind == "diagonal":
                ar, ai = mr_ref[r], mi_ref[r]
                re, im = ar * sr[r] - ai * si[r], ar * si[r] + ai * sr[r]
            else:
                re = im = None
                for c in range(d):
                    ar, ai = mr_ref[r, c], mi_ref[r, c]
                    tr, ti = ar * sr[c] - ai * si[c], ar * si[c] + ai * sr[c]
                    re = tr if re is None else re + tr
                    im = ti if im is None else im + ti
            or_ref[ref_index(b)] = re
            oi_ref[ref_index(b)] = im

    view = (batch,) + shape
    out = jax.ShapeDtypeStruct(view, xr.dtype)
    o_r, o_i = pl.pallas_call(
        kernel,
        out_shape=(out, out),
        grid=(batch * per_state,),
        in_specs=[op_spec, op_spec, state_spec, state_spec],
        out_specs=(state_spec, state_spec),
        input_output_aliases={2: 0, 3: 1},
        interpret=interpret,
        compiler_params=pltriton.CompilerParams(num_warps=NUM_WARPS, num_stages=1),
        name=f"qjaxrob_{kind}{k}",
    )(mr, mi, xr.reshape(view), xi.reshape(view))
    return o_r.reshape(batch, -1), o_i.reshape(batch, -1)


def _run(state, op, *, sorted_wires, n, kind, interpret):
    """``pallas_apply`` on complex arrays: ``state (B, 2**n)``, ``op (Bm, d[, d])``."""
    real = jnp.finfo(state.dtype).dtype
    o_r, o_i = _pallas_planes(
        jnp.real(op).astype(real), jnp.imag(op).astype(real),
        jnp.real(state), jnp.imag(state),
        sorted_wires=sorted_wires, n=n, kind=kind, interpret=interpret)
    return jax.lax.complex(o_r, o_i).astype(state.dtype)


# ---- the primitive and its rules ------------------------------------------------------
pallas_apply_p = Primitive("qjaxrob_pallas_apply")
pallas_apply_p.def_impl(lambda state, op, **params: jax.jit(partial(pallas_apply_p.bind, **params))(state, op))
pallas_apply_p.def_abstract_eval(lambda state, op, **_: state)  # same shape and dtype
mlir.register_lowering(
    pallas_apply_p,
    mlir.lower_fun(lambda s, o, interpret, **kw: _run(s, o, interpret=True, **kw),
                   multiple_results=False))
for _platform in ("cuda", "rocm"):
    mlir.register_lowering(
        pallas_apply_p,
        mlir.lower_fun(lambda s, o, interpret, **kw: _run(s, o, interpret=interpret, **kw),
                       multiple_results=False),
        platform=_platform)


def _xla_apply(state, op, *, sorted_wires, n, kind, interpret):
    """The same map in plain XLA (for the ``dM x`` tangent): one einsum over the grouped
    view, linear in ``op``."""
    del interpret
    k = len(sorted_wires)
    batch = state.shape[0]
    x = state.reshape((batch,) + grouped_shape(n, sorted_wires))
    letters = "abcdefghijklmnopqrstuvw"
    groups, rows, cols = letters[: k + 1], letters[k + 1: 2 * k + 1], letters[2 * k + 1: 3 * k + 1]
    src = "".join(g + c for g, c in zip(groups, cols)) + groups[k]
    dst = "".join(g + r for g, r in zip(groups, rows)) + groups[k]
    shared = op.shape[0] == 1
    ob = "" if shared else "Z"
    op = op[0] if shared else op
    if kind == "diagonal":
        diag = op.reshape(op.shape[:-1] + (2,) * k)
        return jnp.einsum(f"{ob}{cols},Z{src}->Z{src}", diag, x).reshape(state.shape)
    m = op.reshape(op.shape[:-2] + (2,) * (2 * k))
    return jnp.einsum(f"{ob}{rows}{cols},Z{src}->Z{dst}", m, x).reshape(state.shape)


def _jvp(primals, tangents, **params):
    state, op = primals
    dstate, dop = tangents
    out = pallas_apply_p.bind(state, op, **params)
    tangent = None
    if type(dstate) is not ad.Zero:
        tangent = pallas_apply_p.bind(dstate, op, **params)
    if type(dop) is not ad.Zero:
        t = _xla_apply(state, dop, **params)
        tangent = t if tangent is None else tangent + t
    return out, tangent


def _transpose(ct, state, op, **params):
    if ad.is_undefined_primal(op):
        raise NotImplementedError("pallas_apply is linear in the state only")
    if type(ct) is ad.Zero:
        return ad.Zero(state.aval), None
    op_t = op if params["kind"] == "diagonal" else jnp.swapaxes(op, -1, -2)
    return pallas_apply_p.bind(ct, op_t, **params), None


def _batch(args, dims, **params):
    state, op = args
    sdim, odim = dims
    size = state.shape[sdim] if sdim is not None else op.shape[odim]
    if sdim is None:
        state = jnp.broadcast_to(state, (size,) + state.shape)
    else:
        state = jnp.moveaxis(state, sdim, 0)
    inner = state.shape[1]
    state = state.reshape((size * inner,) + state.shape[2:])
    if odim is None and op.shape[0] == 1:
        pass  # one operand shared by every state
    else:
        op = jnp.broadcast_to(op, (size,) + op.shape) if odim is None else jnp.moveaxis(op, odim, 0)
        op = jnp.broadcast_to(op, (size, inner) + op.shape[2:])
        op = op.reshape((size * inner,) + op.shape[2:])
    out = pallas_apply_p.bind(state, op, **params)
    return out.reshape((size, inner) + out.shape[1:]), 0


ad.primitive_jvps[pallas_apply_p] = _jvp
ad.primitive_transposes[pallas_apply_p] = _transpose
batching.primitive_batchers[pallas_apply_p] = _batch


# ---- public kernels -------------------------------------------------------------------
def _bind(state, op, wires, kind, interpret):
    n = state.ndim
    out = pallas_apply_p.bind(state.reshape(1, -1), op[None], sorted_wires=wires, n=n,
                              kind=kind, interpret=bool(interpret))
    return out.reshape(state.shape)


def apply_matrix(state, matrix, wires, *, interpret=None):
    """Same contract as :func:`qjaxrob.kernels.apply_matrix`: the ``(2**k, 2**k)``
    ``matrix`` applied to ``wires`` of the ``(2,)*n`` ``state`` (``wires[0]`` the matrix's
    most significant bit). ``interpret=True`` forces Pallas interpret mode."""
    wires = tuple(wires)
    if len(wires) > MAX_QUBITS:
        return dense.apply_matrix(state, matrix, wires)
    m, sw = sort_wires(matrix, wires)
    return _bind(state, m.astype(state.dtype), sw, "dense", interpret)


def apply_diagonal(state, diag, wires, *, interpret=None):
    """Same contract as :func:`qjaxrob.kernels.apply_diagonal`: the ``(2**k,)`` diagonal
    gate ``diag`` on ``wires`` (``wires[0]`` the most significant bit)."""
    wires = tuple(wires)
    if len(wires) > MAX_DIAGONAL_QUBITS:
        return structured.apply_diagonal(state, diag, wires)
    order = tuple(int(i) for i in np.argsort(wires))
    d = diag.reshape((2,) * len(wires)).transpose(order).reshape(-1)
    return _bind(state, d.astype(state.dtype), tuple(wires[i] for i in order), "diagonal",
                 interpret)
