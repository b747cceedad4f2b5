"""Static gate fusion for the statevector path (a compiler pass over the ``Circuit`` IR).

At trace time, each maximal run of gates between ``Repeat`` nodes is grouped greedily into
``Block`` s of at most ``max_qubits`` wires (wider gates stay alone). A gate
joins earlier blocks only where that is legal (a block moves past later gates only if no
later gate touches its wires) and the cost model (``KERNEL_COST``) says the merged block
is no more expensive than the parts. Runs of gates on the same wires therefore collapse
into one gate, and 1-qubit gates next to 2-qubit gates are absorbed into them.

Each block is classified statically as ``"diagonal"`` (all members diagonal; traced
angles allowed), ``"permutation"`` (all members constant and the product a monomial
matrix: X, Y, CNOT, CY, SWAP, iSWAP, Toffoli, CZ, S, T...) or ``"dense"``, and applied
with the cheapest kernel. Matrices of blocks with traced angles are built at run time
from the angles, so fused circuits stay differentiable to any order. ``Repeat`` bodies
are fused separately (the scan is kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.ir.circuit import Op
from qjaxrob.ir.gates import GATES
from qjaxrob.kernels import monomial
from qjaxrob.lower.tables import embed_on, small_product

__all__ = ["Block", "fuse", "block_apply_args", "op_matrix", "DEFAULT_MAX_QUBITS", "KERNEL_COST"]

DEFAULT_MAX_QUBITS = 2
"""Largest fused block on CPU: wider blocks (3 wires: 64-term slice-and-combine kernels) do
not speed up the forward pass and make backprop gradients and their compile slower
(``benchmarks/README.md`` has the measurements)."""

KERNEL_COST = {"diagonal": 0.75, "permutation": 0.8, 1: 1.0, 2: 1.4, 3: 2.1, 4: 6.0, 5: 12.0}
"""Relative time of one kernel application (``k`` = dense k-qubit; dense 1-qubit = 1) on
CPU, from ``python -m benchmarks.peers --kernels``. Every kernel up to 3 qubits is about
one pass over the state; tensordot (k >= 4) also transposes. k=5 is extrapolated."""


@dataclass(frozen=True)
class Block:
    """A fused group of gates on ``wires`` (sorted), applied as one kernel.

    Attributes:
        wires: the block's wires in increasing order; the block matrix's first tensor
            factor is ``wires[0]``.
        ops: member gates in application order.
        kind: ``"diagonal"``, ``"permutation"`` or ``"dense"``.
        perm, phases: for permutation blocks, the static monomial ``U[i, perm[i]] = phases[i]``.
    """

    wires: tuple[int, ...]
    ops: tuple[Op, ...]
    kind: str
    perm: tuple[int, ...] = ()
    phases: tuple[complex, ...] = ()


def _make_block(wires, ops) -> Block:
    wires = tuple(sorted(wires))
    kinds = {op.kind for op in ops}
    if kinds == {"diagonal"}:
        return Block(wires, ops, "diagonal")
    if "dense" not in kinds and all(op.is_constant for op in ops):
        m = np.eye(2 ** len(wires), dtype=np.complex128)
        for op in ops:
            m = embed_on(op.const_matrix(), op.wires, wires) @ m
        mono = monomial(m)
        if mono is not None:
            perm, phases = mono
            return Block(wires, ops, "permutation", perm, tuple(complex(p) for p in phases))
    return Block(wires, ops, "dense")


def _cost(block: Block, table: dict) -> float:
    return table[block.kind if block.kind != "dense" else len(block.wires)]


def _fuse_run(ops, max_qubits: int, table: dict):
    """Greedy fusion of a run of gates. For each gate, two merges are priced and the
    better one taken if it does not raise the cost: (a) into the latest block on its
    wires, together with every other latest block (all must be able to move there), when
    the union has at most ``max_qubits`` wires; (b) as a new block at the end, absorbing
    the latest blocks that lie within the gate's own wires and can move to the end.
    ``table`` prices blocks (the shape of ``KERNEL_COST``)."""
    blocks: list[Block | None] = []
    last: dict[int, int] = {}

    def free(c):  # block c is the last block on all of its wires: it may move later
        return all(last[w] == c for w in blocks[c].wires)

    for op in ops:
        alone = _make_block(op.wires, (op,))
        cands = sorted({last[w] for w in op.wires if w in last})
        options = []
        union = set(op.wires).union(*(blocks[c].wires for c in cands))
        if cands and len(union) <= max_qubits and all(free(c) for c in cands[:-1]):
            options.append((cands, cands[-1], union))
        inner = [c for c in cands if set(blocks[c].wires) <= set(op.wires) and free(c)]
        if inner and len(op.wires) <= max_qubits:
            options.append((inner, None, set(op.wires)))
        best = None
        for members, target, wires in options:
            merged = _make_block(wires, sum((blocks[c].ops for c in members), ()) + (op,))
            saving = (sum(_cost(blocks[c], table) for c in members) + _cost(alone, table)
                      - _cost(merged, table))
            if saving >= 0 and (best is None or saving > best[0]):
                best = (saving, members, target, merged)
        if best is None:
            blocks.append(alone)
            last.update((w, len(blocks) - 1) for w in op.wires)
            continue
        _, members, target, merged = best
        moved = set(op.wires)
        for c in members:
            if c != target:
                moved.update(blocks[c].wires)
                blocks[c] = None
        if target is None:
            blocks.append(merged)
            target = len(blocks) - 1
        else:
            blocks[target] = merged
        last.update((w, target) for w in moved)
    return [b for b in blocks if b is not None]


@lru_cache(maxsize=1024)
def fuse(ops: tuple, max_qubits: int = DEFAULT_MAX_QUBITS, cost: tuple | None = None) -> tuple:
    """Fuses the gates of ``ops`` (a circuit's op tuple) into ``Block`` s.

    ``Repeat`` and ``Roll`` nodes are kept in place (their bodies are fused when walked); cut
    markers are dropped (no-ops for state simulation); channel ops are kept as barriers so
    the statevector path can report them. ``max_qubits <= 1`` only merges same-wire runs.
    ``cost``: the kernel cost table as hashable ``(key, cost)`` pairs (keys as in
    ``KERNEL_COST``; e.g. :func:`qjaxrob.backend.fusion_policy`'s ``cost``), ``None`` for
    ``KERNEL_COST``.
    """
    out, run = [], []
    table = KERNEL_COST if cost is None else dict(cost)

    def flush():
        out.extend(_fuse_run(run, max(1, max_qubits), table))
        run.clear()

    for op in ops:
        if not isinstance(op, Op) or op.is_channel:  # Repeat / Roll nodes, channels
            flush()
            out.append(op)
        elif not op.is_marker:
            run.append(op)
    flush()
    return tuple(out)


def op_matrix(op, params, x, dtype):
    """``("diagonal", d)`` or ``("dense", U)`` for a gate or unitary op, built from the
    (possibly traced) angles at run time; the kind always agrees with ``op.kind`` (a
    diagonal ``unitary`` yields its diagonal), so block kinds and operands match."""
    if op.name == "unitary":
        m = op.matrices[0].array
        if op.kind == "diagonal":
            return "diagonal", jnp.asarray(np.diag(m), dtype)
        return "dense", jnp.asarray(m, dtype)
    spec = GATES[op.name]
    values = tuple(a.resolve(params, x) for a in op.angles)
    if spec.diag_fn is not None:
        return "diagonal", spec.diag_fn(values, dtype)
    return "dense", spec.matrix_fn(values, dtype)


MAX_TABLE_ENTRIES = 2**14
"""Largest constant table (monomials x matrix entries) of one chunk of a traced block
(:class:`_Recipe`); a block whose members need more is split into chunks multiplied at
run time."""


@dataclass(frozen=True)
class _Chunk:
    """A run of a block's members whose product is ``table^T @ monomials``: ``members``
    give feature vectors ``f_1 .. f_T`` (``("trig", t, keep)``: entries ``keep`` of
    ``[1, cos u_t, sin u_t]``; ``("op", op)``: the entries of ``op``'s traced matrix),
    the monomials are their outer product (``f_T`` fastest) and ``table`` ``(P, d*d)``
    (``(P, d)`` for diagonal blocks) holds, for each monomial, the product of the
    embedded basis matrices and of the constant members between them (NumPy)."""

    members: tuple
    table: np.ndarray


@dataclass(frozen=True)
class _Recipe:
    """Static recipe of a traced block's operand (built once per block, cached): the
    product of its ``chunks`` (usually one) in application order, and the angles
    ``u_t = scale_t * source_t[index_t] + offset_t`` of its one-angle members
    (``GateSpec.trig``, ``matrix = A + cos(w t) B + sin(w t) C``)."""

    chunks: tuple
    sources: tuple        # per trig member: "param" or "inp"
    index: np.ndarray     # (T,) int
    scale: np.ndarray     # (T,) float
    offset: np.ndarray    # (T,) float


@lru_cache(maxsize=4096)
def _recipe(block: Block) -> _Recipe:
    wires, diagonal = block.wires, block.kind == "diagonal"
    d = 2 ** len(wires)
    entries = d if diagonal else d * d

    def flat(m):
        return np.diag(m) if diagonal else m

    def units(op):  # the embedded unit matrices E_ab (or diagonals) of op's entries
        j = 2 ** len(op.wires)
        if diagonal:
            return [flat(embed_on(np.diag(np.eye(j)[a]), op.wires, wires)) for a in range(j)]
        return [embed_on(np.eye(j * j)[a].reshape(j, j), op.wires, wires)
                for a in range(j * j)]

    chunks, members, trig = [], [], []
    table = np.ones((1, d)) if diagonal else np.eye(d)[None]
    for op in block.ops:
        if op.is_constant:
            c = flat(embed_on(op.const_matrix(), op.wires, wires))
            table = table * c if diagonal else c @ table
            continue
        spec = GATES.get(op.name)
        if spec is not None and spec.trig is not None:
            w, *abc = spec.trig
            basis = [flat(embed_on(m, op.wires, wires)) for m in abc]
            keep = tuple(i for i, m in enumerate(basis) if np.any(m))
            angle = op.angles[0]
            trig.append((angle.source, angle.index, w * angle.scale, w * angle.offset))
            member, basis = ("trig", len(trig) - 1, keep), np.stack([basis[i] for i in keep])
        else:
            member, basis = ("op", op), np.stack(units(op))
        if members and len(table) * len(basis) * entries > MAX_TABLE_ENTRIES:
            chunks.append(_Chunk(tuple(members), table.reshape(len(table), -1)))
            members, table = [], np.ones((1, d)) if diagonal else np.eye(d)[None]
        if diagonal:
            table = (table[:, None] * basis[None]).reshape(-1, d)
        else:
            table = np.einsum("fij,pjk->pfik", basis, table).reshape(-1, d, d)
        members.append(member)
    chunks.append(_Chunk(tuple(members), table.reshape(len(table), -1)))
    return _Recipe(tuple(chunks), tuple(t[0] for t in trig),
                   np.array([t[1] for t in trig], np.int64),
                   np.array([t[2] for t in trig], np.float64),
                   np.array([t[3] for t in trig], np.float64))


def _take(v, index):
    """``v[index]`` for a static index array (a slice when contiguous; else one gather
    without the negative-index fix-up that ``v[index]`` traces)."""
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return v[int(index[0]): int(index[0]) + len(index)]
    dnums = jax.lax.GatherDimensionNumbers(offset_dims=(), collapsed_slice_dims=(0,),
                                           start_index_map=(0,))
    return jax.lax.gather(v, np.asarray(index, np.int32)[:, None], dnums, (1,),
                          mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS,
                          indices_are_sorted=bool(np.all(np.diff(index) >= 0)),
                          unique_indices=len(set(index.tolist())) == len(index))


def _trig_features(recipe: _Recipe, params, x, dtype):
    """``(T, 3)`` complex ``[1, cos u_t, sin u_t]`` of the block's one-angle members: one
    gather of the angles per source, one ``cos`` and one ``sin`` for all of them."""
    real = jnp.finfo(dtype).dtype
    sources = np.array(recipe.sources)
    parts, order = [], []
    for name, vec in (("param", params), ("inp", x)):
        sel = np.flatnonzero(sources == name)
        if len(sel):
            parts.append(_take(jnp.asarray(vec, real), recipe.index[sel]))
            order.append(sel)
    raw = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
    order = np.concatenate(order)
    if not np.array_equal(order, np.arange(len(order))):
        raw = _take(raw, np.argsort(order))
    u = raw * jnp.asarray(recipe.scale, real) + jnp.asarray(recipe.offset, real)
    return jnp.stack([jnp.ones_like(u), jnp.cos(u), jnp.sin(u)], axis=1).astype(dtype)


def block_apply_args(block: Block, params, x, dtype):
    """The run-time operand of a block: ``(2**k,)`` diagonal, ``(2**k, 2**k)`` matrix, or
    the ``(2**k,)`` phases of a permutation block (static NumPy; ``None`` if all ones).

    Traced blocks follow their cached :class:`_Recipe`: the block is a multilinear
    polynomial in its members' features (``cos``/``sin`` of one-angle gates, the entries
    of other traced gates) with a constant NumPy table, so a block costs one gather, one
    ``cos``/``sin``, an outer product and one small matrix-vector product whatever its
    gates (and its derivatives as few ops)."""
    if block.kind == "permutation":
        phases = np.asarray(block.phases, dtype)
        return None if np.all(phases == 1) else phases
    recipe = _recipe(block)
    diagonal = block.kind == "diagonal"
    shape = (2 ** len(block.wires),) * (1 if diagonal else 2)
    cs = _trig_features(recipe, params, x, dtype) if recipe.sources else None
    m = None
    for chunk in recipe.chunks:
        mono = None
        for member in chunk.members:
            if member[0] == "trig":
                _, t, keep = member
                f = cs[t, keep[0]: keep[-1] + 1] if keep == tuple(range(keep[0], keep[-1] + 1)) \
                    else jnp.stack([cs[t, i] for i in keep])
            else:
                kind, v = op_matrix(member[1], params, x, dtype)
                f = (jnp.diag(v) if kind == "diagonal" and not diagonal else v).reshape(-1)
            mono = f if mono is None else (mono[:, None] * f[None, :]).reshape(-1)
        table = jnp.asarray(chunk.table, dtype)
        e = (table[0] if mono is None else mono @ table).reshape(shape)
        m = e if m is None else (e * m if diagonal else small_product(e, m))
    return m
