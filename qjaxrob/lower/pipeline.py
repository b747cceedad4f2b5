"""The one lowering of a circuit's ops, walked by every simulation mode: the forward
statevector, density-matrix and trajectory walks (:mod:`qjaxrob.sim.engine`,
:mod:`qjaxrob.sim.trajectories`) and, backwards, the adjoint method
(:mod:`qjaxrob.sim.adjoint`).

:func:`lower` turns an op tuple into a :class:`Lowered` program in four steps, each allowed
or not by the mode's :class:`Policy`:

1. **Product prefix** (``policy.prefix``): the 1-wire gates that act on their wire before
   any multi-wire op touches it commute to the front and prepare a product state
   (:func:`product_prefix`), fused into one 1-wire block per wire.
2. **Rolling** (``policy.roll_ops``): repeated layers become scanned ``Roll`` nodes
   (:func:`qjaxrob.lower.rolling.roll`); every ``Roll`` and ``Circuit.repeat`` node becomes a
   :class:`Scan` holding its rows and its body, lowered once (never interpreted, no prefix).
3. **Interpretation** (``policy.interpret_blocks``): long runs of 1-2 wire gates become
   interpreter ``Program`` s (:func:`qjaxrob.lower.interpreter.interpret`).
4. **Fusion** (``policy.fuse_qubits``, ``policy.cost``): the remaining gates become fused
   ``Block`` s (:func:`qjaxrob.lower.fusion.fuse`; cut markers dropped, channels kept).
5. **Sliding windows** (``policy.ring_blocks``): runs of 2-wire blocks on consecutive
   wire pairs ``(s, s+1), (s+1, s+2), ...`` (mod ``n``; a hardware-efficient layer) become
   sliding-window ``Program`` s (:mod:`qjaxrob.lower.ring`), at the top level and in scan
   bodies, so the program does not grow with the qubit count (off by default: its
   rotating layout costs a transpose per window; the adjoint method's backward walk,
   whose compile time it cuts most, turns it on).

So the nodes of a lowered program are ``Block``, ``Program``, :class:`Scan` and, where
fusion is off or for channels, plain ``Op`` s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from qjaxrob.ir.circuit import Op, Repeat
from qjaxrob.lower.fusion import DEFAULT_MAX_QUBITS, Block, fuse
from qjaxrob.lower.interpreter import INTERPRET_MIN_BLOCKS, Program, interpret
from qjaxrob.lower.ring import window_runs
from qjaxrob.lower.rolling import ROLL_MIN_OPS, Roll, repeat_as_roll, roll

__all__ = ["Lowered", "Policy", "Scan", "lower", "product_prefix"]


@dataclass(frozen=True)
class Policy:
    """What a simulation mode allows its lowered program (static and hashable).

    Attributes:
        fuse_qubits: widest fused block (``0``: no fusion, the nodes stay ``Op`` s).
        cost: the kernel cost table as ``(key, cost)`` pairs (``None``: fusion's
            ``KERNEL_COST``), e.g. :func:`qjaxrob.backend.fusion_policy`'s.
        roll_ops: smallest rolled run in ops (``0`` disables rolling).
        interpret_blocks: smallest interpreted run in fused blocks (``0`` disables).
        prefix: split off the product-state prefix (pure states only).
        ring_blocks: smallest sliding-window run in fused blocks (``0``, the default,
            disables; pure states only, needs fusion; the adjoint method's backward walk
            uses :data:`qjaxrob.lower.ring.RING_MIN_BLOCKS`).
    """

    fuse_qubits: int = DEFAULT_MAX_QUBITS
    cost: tuple | None = None
    roll_ops: int = ROLL_MIN_OPS
    interpret_blocks: int = INTERPRET_MIN_BLOCKS
    prefix: bool = True
    ring_blocks: int = 0


@dataclass(frozen=True)
class Lowered:
    """A lowered op sequence on ``n_qubits`` wires: ``prefix`` (1-wire fused ``Block`` s
    preparing the start state from ``|0...0>``, in order) then ``nodes`` (``Block``,
    ``Program``, :class:`Scan` and ``Op`` nodes, in application order). Static and
    hashable."""

    n_qubits: int
    prefix: tuple
    nodes: tuple


@dataclass(frozen=True)
class Scan:
    """A scanned node: ``roll.times`` repetitions of ``body`` (the lowered ``roll.block``),
    repetition r reading the angle rows :func:`qjaxrob.lower.rolling.roll_rows` gathers."""

    roll: Roll
    body: Lowered


def product_prefix(ops: tuple):
    """``(prefix, rest)``: the 1-wire gates that act on their wire before any multi-wire op
    touches it (looking up to the first ``Repeat``/``Roll``/channel), and every other op in
    its order. The prefix commutes to the front, so it prepares a product state."""
    prefix, rest, entangled = [], [], set()
    for i, op in enumerate(ops):
        if not isinstance(op, Op) or op.is_channel:
            return tuple(prefix), tuple(rest) + tuple(ops[i:])
        if op.is_marker:
            rest.append(op)
        elif len(op.wires) == 1 and op.wires[0] not in entangled:
            prefix.append(op)
        else:
            entangled.update(op.wires)
            rest.append(op)
    return tuple(prefix), tuple(rest)


@lru_cache(maxsize=256)
def lower(ops: tuple, n_qubits: int, policy: Policy = Policy()) -> Lowered:
    """The program of the top-level ``ops`` under ``policy`` (module docs). A program that
    starts with an interpreter ``Program`` keeps its prefix gates in it (fused into its
    first blocks they cost no step, and the product state would cost a program of its
    own, forwards and backwards)."""
    if policy.prefix:
        whole = lower(ops, n_qubits, replace(policy, prefix=False))
        if whole.nodes and isinstance(whole.nodes[0], Program) and whole.nodes[0].start < 0:
            return whole
    prefix, rest = product_prefix(ops) if policy.prefix else ((), ops)
    prefix = fuse(prefix, max_qubits=1)
    nodes = interpret(roll(rest, n_qubits, policy.roll_ops), n_qubits, policy.interpret_blocks)
    if policy.fuse_qubits:
        nodes = fuse(nodes, max_qubits=policy.fuse_qubits, cost=policy.cost)
        nodes = window_runs(nodes, n_qubits, policy.ring_blocks, _pair_block,
                            lambda blocks, start: Program(blocks, n_qubits, start))
    body = replace(policy, interpret_blocks=0, prefix=False)
    return Lowered(n_qubits, prefix, tuple(_scan(node, body) for node in nodes))


def _pair_block(node) -> bool:
    return isinstance(node, Block) and len(node.wires) == 2


def _scan(node, policy: Policy):
    """``Repeat``/``Roll`` nodes as :class:`Scan` s with their bodies lowered; others as
    they are."""
    if isinstance(node, Repeat):
        node = repeat_as_roll(node)
    if isinstance(node, Roll):
        return Scan(node, lower(node.block.ops, node.block.n_qubits, policy))
    return node
