"""Static tables shared by the programs that lowering builds: the statevector interpreter
(:mod:`qjaxrob.lower.interpreter`), gate fusion (:mod:`qjaxrob.lower.fusion`) and the
cut-fragment program (:mod:`qjaxrob.cutting.interpret`).

* **Angle slots.** Every angle reads one entry of ``z = [params, x, 0]``
  (:func:`slot_values`): ``params[i]`` for ``param(i)``, ``x[j]`` for ``inp(j)``, the trailing
  0 for constants, scaled and shifted (``scale * z[slot] + offset``). Tables cached before
  the sizes of ``params``/``x`` are known store a size-free code (:func:`angle_code`) that
  :func:`slot_index` resolves.
* **Blocks.** A gate is applied on a sorted block of ``k`` wires holding its own wires
  (:func:`block_of`: a narrower gate gets its nearest neighbours) and embedded in the
  block's ``2**k x 2**k`` matrix (:func:`embed`, NumPy or traced, batched).
* **Constant matrices** of ops that read neither ``params`` nor ``x`` are complex128 NumPy,
  cached per op (:func:`const_matrix`), computed without compiling anything.
* **Small products** of traced gate matrices (:func:`small_product`) are broadcast products
  and a sum, which XLA fuses with the ops that form the matrices.

Matrices put wire 0 of a gate (or block) on the most significant bit of their index.
"""

from __future__ import annotations

from functools import lru_cache

import jax.numpy as jnp
import numpy as np

from qjaxrob.ir.gates import GATES

__all__ = ["CONST_CODE", "SMALL_PRODUCT", "angle_code", "angle_rows", "angle_values", "block_of",
           "const_matrix", "embed", "embed_on", "slot_index", "slot_values", "small_product"]

SMALL_PRODUCT = 512
"""Most multiply-adds (``i * j * k`` of an ``(i, j) @ (j, k)`` product, ``j * k`` of a vector
times a matrix) that :func:`small_product` does as one fused broadcast product."""

CONST_CODE = np.iinfo(np.int32).min
"""The :func:`angle_code` of a constant angle."""


# ---- angle slots ------------------------------------------------------------------------
def angle_code(angle) -> int:
    """A size-free code of an angle's source: ``param(i)`` -> ``i``, ``inp(j)`` ->
    ``-1 - j``, a constant -> :data:`CONST_CODE`."""
    if angle.source == "param":
        return angle.index
    if angle.source == "inp":
        return -1 - angle.index
    return CONST_CODE


def slot_index(code, n_params: int, n_inputs: int) -> np.ndarray:
    """Indices into ``z = [params, x, 0]`` (:func:`slot_values`) of :func:`angle_code` codes
    (NumPy, any shape)."""
    code = np.asarray(code)
    return np.where(code == CONST_CODE, n_params + n_inputs,
                    np.where(code >= 0, code, n_params - 1 - code)).astype(np.int32)


def slot_values(params, x, real):
    """``z = [params, x, 0]`` as one 1-D ``real`` array (the constant slot last)."""
    return jnp.concatenate([jnp.asarray(params, real).reshape(-1),
                            jnp.asarray(x, real).reshape(-1), jnp.zeros((1,), real)])


def angle_rows(rows, weight=1.0):
    """Static ``(codes, scale, offset)`` NumPy ``(m, a)`` tables of ``m`` rows of ``a``
    angles each: :func:`angle_code`, ``weight * scale`` (0 for constants) and
    ``weight * offset`` (``weight``: e.g. a per-row gate frequency, broadcastable)."""
    codes = np.array([[angle_code(a) for a in row] for row in rows], np.int64)
    scale = np.array([[a.scale if a.source != "const" else 0.0 for a in row] for row in rows])
    offset = np.array([[a.offset for a in row] for row in rows])
    return codes, weight * scale.reshape(codes.shape), weight * offset.reshape(codes.shape)


def angle_values(z, codes, scale, offset, n_params: int, n_inputs: int):
    """The angles ``scale * z[slot] + offset`` of :func:`angle_rows` tables, traced (``z``
    from :func:`slot_values`), shape of ``codes``."""
    real = z.dtype
    return (z[slot_index(codes, n_params, n_inputs)] * jnp.asarray(scale, real)
            + jnp.asarray(offset, real))


def embed_on(m, op_wires, block_wires, xp=np):
    """:func:`embed` of a gate on ``op_wires`` into the block of the sorted
    ``block_wires``."""
    return embed(m, tuple(block_wires.index(w) for w in op_wires), len(block_wires), xp)


# ---- blocks --------------------------------------------------------------------------------
def block_of(wires, n: int, k: int):
    """``(block, pos)``: the sorted block of ``k`` wires of an ``n``-qubit register holding
    ``wires`` (the nearest other wires fill it, the higher one first on a tie) and the
    positions of ``wires`` in it."""
    extra = sorted((w for w in range(n) if w not in wires),
                   key=lambda w: (abs(w - wires[0]), w < wires[0], w))
    block = tuple(sorted(tuple(wires) + tuple(extra[: k - len(wires)])))
    return block, tuple(block.index(w) for w in wires)


def embed(m, pos, k: int, xp=np):
    """``(..., d, d)`` matrices acting on block positions ``pos`` (``d = 2**len(pos)``) as
    ``(..., 2**k, 2**k)`` block matrices (identity on the other positions). ``xp``: ``np``
    (static tables) or ``jnp`` (traced matrices)."""
    j = len(pos)
    eye = xp.eye(2 ** (k - j), dtype=m.dtype)
    full = m[..., :, None, :, None] * eye[:, None, :]
    lead = m.shape[:-2]
    order = list(pos) + [p for p in range(k) if p not in pos]
    inv = list(np.argsort(order))
    t = full.reshape(lead + (2,) * (2 * k))
    nl = len(lead)
    axes = list(range(nl)) + [nl + i for i in inv] + [nl + k + i for i in inv]
    return t.transpose(axes).reshape(lead + (2**k, 2**k))


# ---- constant matrices ----------------------------------------------------------------------
@lru_cache(maxsize=4096)
def const_matrix(op) -> np.ndarray | None:
    """The complex128 NumPy matrix of ``op`` if it reads neither ``params`` nor ``x`` (a
    ``unitary``, an angle-free gate, a gate with constant angles), else ``None``. One-angle
    gates use the gate table's trig form ``A + cos(w t) B + sin(w t) C`` (no JAX call)."""
    if op.name == "unitary":
        return np.asarray(op.matrices[0].array, np.complex128)
    if not op.is_constant:
        return None
    trig = GATES[op.name].trig
    if trig is not None and len(op.angles) == 1:
        w, a, b, c = trig
        t = w * op.angles[0].offset
        return a + np.cos(t) * b + np.sin(t) * c
    return op.const_matrix()


def small_product(a, b):
    """``a @ b`` for a traced matrix or vector ``a`` (``(i, j)`` or ``(j,)``) and a matrix
    ``b`` (``(j, k)``). Up to :data:`SMALL_PRODUCT` multiply-adds it is a broadcast product
    summed over ``j``: XLA CPU runs every ``dot`` as a thunk of its own (a library call and a
    scheduling step, microseconds each), while the broadcast form joins the loop fusion of
    the ops that form ``a`` and ``b``. Larger products stay ``a @ b``."""
    rows = 1 if a.ndim == 1 else a.shape[0]
    if rows * b.shape[0] * b.shape[1] > SMALL_PRODUCT:
        return a @ b
    if a.ndim == 1:
        return jnp.sum(a[:, None] * b, axis=0)
    return jnp.sum(a[:, :, None] * b[None, :, :], axis=1)
