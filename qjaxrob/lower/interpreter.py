"""An interpreter for unitary gate runs: the op sequence becomes data, walked by one scan.

Rolling (:mod:`qjaxrob.lower.rolling`) makes compile time flat in depth only for circuits with
repeated layers. A run of gates with no repetition (a random circuit, converter output,
every layer different) is otherwise traced op by op, so its compile time grows with its
length. Here such a run is compiled once as a *program*:

1. **Blocks** (static, NumPy): the run is fused into blocks of at most 2 wires
   (:func:`qjaxrob.lower.fusion.fuse` with its CPU cost table); every block becomes a ``4 x 4``
   matrix on a sorted wire pair ``(a, b)`` (a 1-wire block on ``w`` is ``M (x) I`` or
   ``I (x) M`` on ``w`` and a neighbouring wire). Consecutive angle-free members of a
   block (and ``unitary`` ops) are multiplied out in NumPy.
2. **Matrices** (:func:`block_matrices`, traced, vectorised): for each gate *type*, the
   angles of all its instances are read at once from ``z = [params, x, 0]`` by a static
   index table (``angle = scale * z[index] + offset``; constants read the trailing 0) and
   the gate's matrix function is ``vmap`` -ped over them; members are embedded in the
   pair by ``kron`` with the identity (1-qubit) or a static wire swap (2-qubit), selected
   per instance by static flags; each block's members are multiplied in order (a
   ``(blocks, K)`` member table padded with the identity). The traced program has one
   matrix function per gate type and ``K`` batched ``4 x 4`` products, whatever the
   number of gates.
3. **Walk** (:func:`run_program`): one ``lax.scan`` over ``(wire pairs, matrices)``. Each
   step applies its ``4 x 4`` matrix to *dynamic* wires with one generic kernel: the
   flat state is kept in the layout of the current pair (its two bits lowest,
   :func:`_layout`), so a step is one relayout gather from the previous pair's layout
   (index by bit arithmetic, :func:`_relayout`) and one ``(2**(n-2), 4) @ M^T`` product;
   the compiled program is the same for every wire pair.

**Why a generic kernel and not ``lax.switch`` over the circuit's distinct wire pairs**: a
switch runs faster per step (its branches are the slice-and-combine kernels), but every
branch is compiled, so compile time grows with the number of distinct pairs, and reverse
mode through ``switch`` in a scan keeps the residuals of *every* branch at every step
(``jax.checkpoint`` on the step fixes the residuals, not the compile time). The generic
kernel compiles once for any number of pairs; a step costs one gather of the state, which
is slower than the unrolled program on large registers, so only long runs are interpreted
(:data:`INTERPRET_MIN_BLOCKS`; measurements in ``benchmarks/README.md``, "Compile time").

Derivatives: the whole program is ordinary JAX (gathers, ``dot``, ``scan``), so backprop
of any order and forward mode work unchanged. The adjoint method shares the program
(:func:`adjoint_program`): a reversed scan undoes each block on ``psi`` and ``lam`` and
reads the block matrix's cotangent off one ``4 x 4`` contraction; ``jax.vjp`` of
:func:`block_matrices` maps those to ``params``/``x``.

Scope: unitary gates (gate table and ``unitary`` ops) on 1 or 2 wires in pure-state
simulation, at the top level of a circuit. Wider gates, channels and ``Repeat``/``Roll``
nodes end a run and keep their own paths (their bodies are never interpreted, so a
``repeat``-built circuit runs exactly as without the interpreter); the density-matrix and
trajectory walks never see programs. Sliding-window programs (``start >= 0``,
:mod:`qjaxrob.lower.ring`) are the exception: where a policy asks for them (the adjoint
method's backward walk) they also replace runs inside scan bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.ir.circuit import Op
from qjaxrob.ir.gates import GATES
from qjaxrob.lower.fusion import fuse
from qjaxrob.lower.ring import adjoint_windows, oriented, run_windows
from qjaxrob.lower.tables import (
    angle_rows,
    angle_values,
    block_of,
    const_matrix,
    embed,
    embed_on,
    slot_values,
)

__all__ = [
    "INTERPRET_MIN_BLOCKS",
    "Program",
    "adjoint_program",
    "block_matrices",
    "interpret",
    "run_program",
    "table_matrices",
]

INTERPRET_MIN_BLOCKS = 24
"""Smallest run (in fused 2-wire blocks) that is interpreted: the interpreter's compile time
is flat in the run's length while the op-by-op program's grows with it, but its generic
kernel runs slower on large registers, so only runs long enough for compile time to
dominate are interpreted (``benchmarks/README.md``, "Compile time");
``interpret_blocks=0`` turns the interpreter off."""


@dataclass(frozen=True)
class Program:
    """A run of gates executed by the interpreter: ``blocks`` are the fused blocks
    (:class:`qjaxrob.lower.fusion.Block`, at most 2 wires each) in application order on an
    ``n_qubits`` state. ``start >= 0`` marks a sliding-window run (block ``j`` on wires
    ``(start + j, start + j + 1) mod n``, :mod:`qjaxrob.lower.ring`), walked with a
    rotating layout instead of the generic pair kernel. Static and hashable; its tables are
    built once (cached)."""

    blocks: tuple
    n_qubits: int
    start: int = -1

    @property
    def ops(self) -> tuple:
        """The gates this program applies, in order."""
        return tuple(op for b in self.blocks for op in b.ops)


def _interpretable(op) -> bool:
    return isinstance(op, Op) and not op.is_channel and len(op.wires) <= 2


@lru_cache(maxsize=256)
def interpret(ops: tuple, n_qubits: int, min_blocks: int = INTERPRET_MIN_BLOCKS) -> tuple:
    """``ops`` with every maximal run of 1-2 wire gates that fuses into at least
    ``min_blocks`` blocks replaced by a :class:`Program` (cut markers inside a run are
    dropped: they are no-ops for state simulation). ``min_blocks <= 0`` disables it, and
    so does ``n_qubits < 2``."""
    if min_blocks <= 0 or n_qubits < 2:
        return ops
    out, run = [], []

    def flush():
        gates = tuple(op for op in run if not op.is_marker)
        blocks = fuse(gates, max_qubits=2) if gates else ()
        if len(blocks) >= min_blocks:
            out.append(Program(blocks, n_qubits))
        else:
            out.extend(run)
        run.clear()

    for op in ops:
        if _interpretable(op):
            run.append(op)
        else:
            flush()
            out.append(op)
    flush()
    return tuple(out)


# ---- static tables -----------------------------------------------------------------
@dataclass(frozen=True)
class _Tables:
    """NumPy tables of a block sequence (see :func:`_tables`)."""

    wires: np.ndarray      # (B, k) int32: the sorted wires each block is applied on
    consts: np.ndarray     # (C, 2**k, 2**k) complex128: constant members, [0] the identity
    types: tuple           # ((name, index (m, a), scale (m, a), offset (m, a), flag (m,)), ...)
    members: np.ndarray    # (B, K) int32: member indices into [consts, type 0, type 1, ...]


def _fixed(op) -> bool:
    """Ops whose matrix is built in NumPy: angle-free gates and ``unitary`` ops. Gates with
    constant angles go through the vectorised builder like traced ones (their angle reads
    the constant slot of ``z``): evaluating each one eagerly would cost milliseconds of
    dispatch per gate."""
    return op.name == "unitary" or not op.angles


@lru_cache(maxsize=256)
def _tables(blocks: tuple, n: int, k: int) -> _Tables:
    """Tables of ``blocks`` (fused blocks of at most ``k`` wires, ``k`` 1 or 2) applied on
    ``k``-wire blocks of an ``n``-qubit register (a narrower block gets neighbours,
    :func:`qjaxrob.lower.tables.block_of`)."""
    consts = [np.eye(2**k, dtype=np.complex128)]
    seen = {consts[0].tobytes(): 0}

    def const_index(m):  # equal constant members share one entry
        key = m.tobytes()
        if key not in seen:
            seen[key] = len(consts)
            consts.append(m)
        return seen[key]

    traced: dict[str, list] = {}
    per_block = []  # per block: list of ("c", const index) / ("t", name, instance)
    pairs = []
    for block in blocks:
        pair = block_of(block.wires, n, k)[0]
        pairs.append(pair)
        members, pending = [], None
        for op in block.ops:
            if _fixed(op):
                e = embed_on(const_matrix(op), op.wires, pair)
                pending = e if pending is None else e @ pending
                continue
            if pending is not None:
                members.append(("c", const_index(pending)))
                pending = None
            rows = traced.setdefault(op.name, [])
            members.append(("t", op.name, len(rows)))
            flag = op.wires[0] != pair[0] if len(op.wires) == 1 else tuple(op.wires) != pair
            rows.append((op.angles, flag))
        if pending is not None:
            members.append(("c", const_index(pending)))
        per_block.append(members)
    names = sorted(traced)
    start, offset = {}, len(consts)
    for name in names:
        start[name] = offset
        offset += len(traced[name])
    width = max(1, max(len(m) for m in per_block))
    table = np.zeros((len(per_block), width), np.int32)
    for b, members in enumerate(per_block):
        for j, m in enumerate(members):
            table[b, j] = m[1] if m[0] == "c" else start[m[1]] + m[2]
    types = []
    for name in names:
        rows = traced[name]
        index, scale, off = angle_rows([angles for angles, _ in rows])
        flag = np.array([f for _, f in rows], bool)
        types.append((name, index, scale, off, flag))
    return _Tables(np.asarray(pairs, np.int32), np.stack(consts), tuple(types), table)


# ---- traced matrices ------------------------------------------------------------------
_UNROLL_PRODUCT = 8
"""Members per block up to which the block product is an unrolled loop (a scan beyond)."""


def _embedded(m, flag, n_wires: int, k: int):
    """Batched ``(m, d, d)`` gate matrices on ``n_wires`` wires as ``(m, 2**k, 2**k)`` block
    matrices (:func:`qjaxrob.lower.tables.embed`); ``flag``: 1-qubit gates on the block's
    second wire / 2-qubit gates with swapped wires. Both placements are always embedded and
    selected per instance, so the program does not depend on which placements occur
    (nor, therefore, on the circuit's depth)."""
    if k == 1:
        return m
    first = m if n_wires == k else embed(m, (0,), k, jnp)
    second = embed(m, (1,) if n_wires == 1 else (1, 0), k, jnp)
    return jnp.where(jnp.asarray(flag)[:, None, None], second, first)


def table_matrices(blocks: tuple, n: int, k: int, params, x, dtype):
    """The ``(B, 2**k, 2**k)`` matrices of fused ``blocks`` on their ``k``-wire blocks
    (:func:`_tables`) at ``params``/``x`` (1-D real arrays; traced or not), ``dtype``
    complex: one vectorised gate-table call per gate type, then the members' products.
    Differentiable to any order."""
    tabs = _tables(blocks, n, k)
    z = slot_values(params, x, jnp.finfo(dtype).dtype)
    parts = [jnp.asarray(tabs.consts, dtype)]
    for name, index, scale, offset, flag in tabs.types:
        spec = GATES[name]
        values = angle_values(z, index, scale, offset, jnp.shape(params)[0], jnp.shape(x)[0])
        mats = jax.vmap(lambda v, spec=spec: spec.matrix_fn(
            tuple(v[j] for j in range(spec.n_angles)), dtype))(values)
        parts.append(_embedded(mats.astype(dtype), flag, spec.n_wires, k))
    every = jnp.concatenate(parts)
    table = tabs.members
    out = every[table[:, 0]]
    if table.shape[1] <= _UNROLL_PRODUCT:
        for j in range(1, table.shape[1]):
            out = every[table[:, j]] @ out
        return out
    out, _ = jax.lax.scan(lambda acc, col: (every[col] @ acc, None), out,
                          jnp.asarray(table[:, 1:].T))
    return out


def block_matrices(program: Program, params, x, dtype):
    """The ``(B, 4, 4)`` block matrices of ``program`` at ``params``/``x``
    (:func:`table_matrices` on wire pairs; on their windows for a sliding-window run,
    :func:`qjaxrob.lower.ring.oriented`)."""
    mats = table_matrices(program.blocks, program.n_qubits, 2, params, x, dtype)
    if program.start >= 0:
        return oriented(mats, program.blocks, program.n_qubits)
    return mats


# ---- the generic pair kernel ------------------------------------------------------------
def _layout(pair, n: int):
    """``pos`` ``(n,)``: the bit of the flat index holding each wire in the layout of
    ``pair = (a, b)`` (``a`` on bit 1, ``b`` on bit 0, the other wires above them in wire
    order), or the canonical layout (wire w on bit ``n-1-w``) for ``pair = (-1, -1)``."""
    a, b = pair[0], pair[1]
    w = jnp.arange(n, dtype=jnp.int32)
    rest = (n - 1) - (w - (w > a) - (w > b))  # 2 .. n-1 for the other wires, in order
    pos = jnp.where(w == a, 1, jnp.where(w == b, 0, rest))
    return jnp.where(a < 0, n - 1 - w, pos)


def _relayout(flat, old, new, n: int):
    """The flat state ``flat`` in layout ``old`` (:func:`_layout`) rewritten in layout
    ``new``: one gather, its index computed by bit arithmetic."""
    i = jnp.arange(2**n, dtype=jnp.int32)
    src = jnp.zeros_like(i)
    for w in range(n):
        src = src | (((i >> new[w]) & 1) << old[w])
    return flat[src]


def _walk_tables(program: Program):
    """``(pairs, previous pairs)`` ``(B, 2)`` int32: each block's wire pair and the pair
    whose layout the state is in before the block (``(-1, -1)``: canonical)."""
    pairs = _tables(program.blocks, program.n_qubits, 2).wires
    prev = np.concatenate([np.full((1, 2), -1, np.int32), pairs[:-1]])
    return jnp.asarray(pairs), jnp.asarray(prev)


def run_program(program: Program, state, params, x, dtype):
    """Applies ``program`` to the ``(2,)*n`` ``state``: one ``lax.scan`` over its blocks.

    The state is kept in the layout of the current block's pair (its two bits lowest), so a
    step is one relayout gather and one ``(2**(n-2), 4) @ (4, 4)`` product; the canonical
    layout is restored at the end. A sliding-window run is one scan of
    :func:`qjaxrob.lower.ring.run_windows` instead."""
    n = program.n_qubits
    mats = block_matrices(program, params, x, dtype)
    if program.start >= 0:
        return run_windows(state, mats, program.start)
    pairs, prev = _walk_tables(program)

    def step(flat, xs):
        pair, before, m = xs
        flat = _relayout(flat, _layout(before, n), _layout(pair, n), n)
        return (flat.reshape(-1, 4) @ m.T).reshape(-1), None

    flat, _ = jax.lax.scan(step, state.reshape(-1), (pairs, prev, mats))
    flat = _relayout(flat, _layout(pairs[-1], n), _layout(jnp.array([-1, -1]), n), n)
    return flat.reshape(state.shape)


def adjoint_program(program: Program, psi, lam, params, x, dtype):
    """The adjoint method's backward walk over ``program`` (:mod:`qjaxrob.sim.adjoint`).

    ``psi`` is the state after the program, ``lam = sum_o g_o O_o psi_final`` walked back to
    the same point. A reversed scan undoes block k (``psi <- M_k^dagger psi``, likewise
    ``lam``); since ``dL = 2 Re <lam_k| dM_k |psi_{k-1}>``, the cotangent of ``M_k`` (JAX's
    convention ``dL = Re sum(ct * dM)``) is ``ct_ij = 2 sum conj(lam_k)_i (psi_{k-1})_j``
    over the other wires. ``jax.vjp`` of :func:`block_matrices` maps the cotangents to
    ``params``/``x``. Returns ``(psi, lam, d params, d x)`` at the program's start."""
    n = program.n_qubits
    mats, pullback = jax.vjp(lambda p, xx: block_matrices(program, p, xx, dtype), params, x)
    if program.start >= 0:
        psi, lam, cts = adjoint_windows(psi, lam, mats, program.start)
        return (psi, lam) + pullback(cts)
    pairs, prev = _walk_tables(program)
    canonical = _layout(jnp.array([-1, -1]), n)
    last = _layout(pairs[-1], n)

    def step(carry, xs):
        flat_psi, flat_lam = carry  # in the layout of this block's pair
        pair, before, m = xs
        undo = jnp.conj(m)  # rows of the view times (M^dagger)^T
        vpsi, vlam = flat_psi.reshape(-1, 4), flat_lam.reshape(-1, 4)
        back = vpsi @ undo
        ct = 2 * (jnp.conj(vlam).T @ back)
        old, new = _layout(pair, n), _layout(before, n)
        return (_relayout(back.reshape(-1), old, new, n),
                _relayout((vlam @ undo).reshape(-1), old, new, n)), ct

    start = (_relayout(psi.reshape(-1), canonical, last, n),
             _relayout(lam.reshape(-1), canonical, last, n))
    (fp, fl), cts = jax.lax.scan(step, start, (pairs, prev, mats), reverse=True)
    dp, dx = pullback(cts)
    return fp.reshape(psi.shape), fl.reshape(lam.shape), dp, dx
