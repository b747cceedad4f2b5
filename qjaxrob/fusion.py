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

from qjaxrob.circuit import Op
from qjaxrob.gates import GATES
from qjaxrob.kernels import monomial

__all__ = ["Block", "fuse", "block_apply_args", "op_matrix", "DEFAULT_MAX_QUBITS", "KERNEL_COST"]

DEFAULT_MAX_QUBITS = 2
"""Largest fused block on CPU. Measured on the HEA (n=16-20, complex128): k=2 and k=3 give
the same forward time, but k=3 doubles the backprop gradient time and triples its compile
time (64-term slice-and-combine blocks), so 2 is the default."""

KERNEL_COST = {"diagonal": 0.75, "permutation": 0.8, 1: 1.0, 2: 1.4, 3: 2.1, 4: 6.0, 5: 12.0}
"""Relative time of one kernel application (``k`` = dense k-qubit) on a 2-core CPU at
n=20, complex128: ``python -m benchmarks.peers --kernels`` (dense 1q = 1.06 ms). Every
kernel up to 3 qubits is about one pass over the state; tensordot (k >= 4) also
transposes. k=5 is extrapolated."""


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


def _embed_np(m, op_wires, wires):
    """Dense NumPy ``(2**k, 2**k)`` matrix of ``m`` on ``op_wires`` within block ``wires``."""
    k = len(wires)
    eye = np.eye(2**k, dtype=np.complex128).reshape((2,) * (2 * k))
    pos = tuple(wires.index(w) for w in op_wires)
    j = len(op_wires)
    t = np.tensordot(m.reshape((2,) * (2 * j)), eye, axes=(tuple(range(j, 2 * j)), pos))
    return np.moveaxis(t, tuple(range(j)), pos).reshape(2**k, 2**k)


def _make_block(wires, ops) -> Block:
    wires = tuple(sorted(wires))
    kinds = {op.kind for op in ops}
    if kinds == {"diagonal"}:
        return Block(wires, ops, "diagonal")
    if "dense" not in kinds and all(op.is_constant for op in ops):
        m = np.eye(2 ** len(wires), dtype=np.complex128)
        for op in ops:
            m = _embed_np(op.const_matrix(), op.wires, wires) @ m
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


@dataclass(frozen=True)
class _Plan:
    """Static recipe of a traced block's operand (built once per block, cached).

    ``steps`` is the member product in application order: ``("const", M)`` (a run of
    constant members multiplied out in NumPy), ``("trig", i)`` (the i-th one-angle member,
    ``A_i + cos(u_i) B_i + sin(u_i) C_i`` with ``u_i = scale_i * source[index_i] +
    offset_i``) or ``("op", op)`` (any other traced member, built by :func:`op_matrix`).
    ``basis`` stacks the embedded ``(A, B, C)`` of the trig members, shape ``(3, T, d, d)``
    (``(3, T, d)`` diagonals for a diagonal block)."""

    steps: tuple
    sources: tuple        # per trig member: "param" or "inp"
    index: np.ndarray     # (T,) int
    scale: np.ndarray     # (T,) float
    offset: np.ndarray    # (T,) float
    basis: np.ndarray


@lru_cache(maxsize=4096)
def _plan(block: Block) -> _Plan:
    wires, diagonal = block.wires, block.kind == "diagonal"
    steps, trig, pending = [], [], None

    def flat(m):
        return np.diag(m) if diagonal else m

    for op in block.ops:
        if op.is_constant:
            e = _embed_np(op.const_matrix(), op.wires, wires)
            pending = e if pending is None else e @ pending
            continue
        if pending is not None:
            steps.append(("const", flat(pending)))
            pending = None
        spec = GATES.get(op.name)
        if spec is not None and spec.trig is not None:
            w, a, b, c = spec.trig
            angle = op.angles[0]
            trig.append((angle.source, angle.index, w * angle.scale, w * angle.offset,
                         [flat(_embed_np(m, op.wires, wires)) for m in (a, b, c)]))
            steps.append(("trig", len(trig) - 1))
        else:
            steps.append(("op", op))
    if pending is not None:
        steps.append(("const", flat(pending)))
    basis = (np.stack([np.stack(t[4]) for t in trig], axis=1) if trig
             else np.zeros((3, 0), np.complex128))
    return _Plan(tuple(steps), tuple(t[0] for t in trig),
                 np.array([t[1] for t in trig], np.int64),
                 np.array([t[2] for t in trig], np.float64),
                 np.array([t[3] for t in trig], np.float64), basis)


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


def _trig_members(plan: _Plan, params, x, dtype):
    """The ``(T, d, d)`` (or ``(T, d)``) embedded trig members: one gather of the angles
    per source, one ``cos``, one ``sin`` and one fused multiply-add for all of them."""
    real = jnp.finfo(dtype).dtype
    sources = np.array(plan.sources)
    parts, order = [], []
    for name, vec in (("param", params), ("inp", x)):
        sel = np.flatnonzero(sources == name)
        if len(sel):
            parts.append(_take(jnp.asarray(vec, real), plan.index[sel]))
            order.append(sel)
    raw = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
    order = np.concatenate(order)
    if not np.array_equal(order, np.arange(len(order))):
        raw = raw[np.argsort(order)]
    u = raw * jnp.asarray(plan.scale, real) + jnp.asarray(plan.offset, real)
    shape = (-1,) + (1,) * (plan.basis.ndim - 2)
    a, b, c = (jnp.asarray(m, dtype) for m in plan.basis)
    return a + jnp.cos(u).reshape(shape).astype(dtype) * b + jnp.sin(u).reshape(shape).astype(dtype) * c


def block_apply_args(block: Block, params, x, dtype):
    """The run-time operand of a block: ``(2**k,)`` diagonal, ``(2**k, 2**k)`` matrix, or
    the ``(2**k,)`` phases of a permutation block (static NumPy; ``None`` if all ones).

    Traced blocks follow their cached :class:`_Plan`: constant runs come from NumPy,
    one-angle gates (``GateSpec.trig``) are evaluated together (:func:`_trig_members`),
    and the members are multiplied in order (elementwise for diagonal blocks), so a block
    costs a handful of small traced ops whatever its gates."""
    if block.kind == "permutation":
        phases = np.asarray(block.phases, dtype)
        return None if np.all(phases == 1) else phases
    plan = _plan(block)
    diagonal = block.kind == "diagonal"
    trig = _trig_members(plan, params, x, dtype) if plan.sources else None
    m = None
    for kind, item in plan.steps:
        if kind == "const":
            e = jnp.asarray(item, dtype)
        elif kind == "trig":
            e = trig[item]
        else:
            e = _member(item, block.wires, params, x, dtype, diagonal)
        m = e if m is None else (e * m if diagonal else e @ m)
    return m


def _member(op, wires, params, x, dtype, diagonal: bool):
    """A traced member gate without a trig form, embedded in the block."""
    kind, v = op_matrix(op, params, x, dtype)
    if diagonal:
        return _embed_diagonal(v, op.wires, wires)
    v = jnp.diag(v) if kind == "diagonal" else v
    return v if tuple(op.wires) == tuple(wires) else _embed_matrix(v, op.wires, wires)


@lru_cache(maxsize=4096)
def _embedding(op_wires: tuple, wires: tuple):
    """Static ``(order, k - j)``: the permutation of block basis indices that takes
    ``v (x) I`` (the op's wires first, then the other block wires in order) to the block's
    wire order, and the number of identity wires."""
    k, j = len(wires), len(op_wires)
    first = list(op_wires) + [w for w in wires if w not in op_wires]
    order = np.zeros(2**k, np.int64)
    for i in range(2**k):  # i: block index; bits of the first-ordered index
        bits = {w: (i >> (k - 1 - wires.index(w))) & 1 for w in wires}
        order[i] = int("".join(str(bits[w]) for w in first), 2)
    return order, k - j


def _embed_matrix(v, op_wires, wires):
    """The ``(2**k, 2**k)`` block matrix of the (traced) op matrix ``v`` on ``op_wires``:
    ``v (x) I`` with its rows and columns permuted into block order (small dense ops, cheap
    to compile, unlike a state-kernel application per member)."""
    order, rest = _embedding(tuple(op_wires), tuple(wires))
    full = jnp.kron(v, jnp.eye(2**rest, dtype=v.dtype)) if rest else v
    return full if np.array_equal(order, np.arange(len(order))) else full[order][:, order]


def _embed_diagonal(d, op_wires, wires):
    """The ``(2**k,)`` block diagonal of the (traced) op diagonal ``d`` on ``op_wires``."""
    order, rest = _embedding(tuple(op_wires), tuple(wires))
    full = jnp.kron(d, jnp.ones((2**rest,), d.dtype)) if rest else d
    return full if np.array_equal(order, np.arange(len(order))) else full[order]
