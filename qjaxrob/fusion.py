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


def block_apply_args(block: Block, params, x, dtype):
    """The run-time operand of a block: ``(2**k,)`` diagonal, ``(2**k, 2**k)`` matrix, or
    the ``(2**k,)`` phases of a permutation block (static NumPy; ``None`` if all ones)."""
    k = len(block.wires)
    if block.kind == "permutation":
        phases = np.asarray(block.phases, dtype)
        return None if np.all(phases == 1) else phases
    if len(block.ops) == 1 and block.ops[0].wires == block.wires:
        kind, m = op_matrix(block.ops[0], params, x, dtype)
        if block.kind == "dense" and kind == "diagonal":
            m = jnp.diag(m)
        return m
    if all(op.is_constant for op in block.ops):  # built in NumPy: nothing to compile
        m = np.eye(2**k, dtype=np.complex128)
        for op in block.ops:
            m = _embed_np(op.const_matrix(), op.wires, block.wires) @ m
        return jnp.asarray(np.diag(m) if block.kind == "diagonal" else m, dtype)
    if block.kind == "diagonal":
        d = jnp.ones((2**k,), dtype)
        for op in block.ops:
            d = d * _embed_diagonal(op_matrix(op, params, x, dtype)[1], op.wires, block.wires)
        return d
    m = None
    for op in block.ops:
        if op.is_constant:
            e = jnp.asarray(_embed_np(op.const_matrix(), op.wires, block.wires), dtype)
        else:
            kind, v = op_matrix(op, params, x, dtype)
            e = _embed_matrix(jnp.diag(v) if kind == "diagonal" else v, op.wires, block.wires)
        m = e if m is None else e @ m
    return m


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
