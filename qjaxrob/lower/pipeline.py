"""The one lowering of a circuit's ops for the statevector walk, shared by the forward
engine (:func:`qjaxrob.sim.engine.final_tensor`) and the adjoint method's backward walk
(:mod:`qjaxrob.sim.adjoint`), so both walk the same program.

:func:`lower` turns an op tuple into a :class:`Lowered` program in three steps:

1. **Product prefix** (top level only): the 1-wire gates that act on their wire before any
   multi-wire op touches it commute to the front and prepare a product state
   (:func:`product_prefix`).
2. **Rolling**: repeated layers of the rest become scanned ``Roll`` nodes
   (:func:`qjaxrob.lower.rolling.roll`); ``Repeat`` nodes stay scanned nodes.
3. **Interpretation**: long runs of 1-2 wire gates left unrolled become interpreter
   ``Program`` s (:func:`qjaxrob.lower.interpreter.interpret`).

Bodies of ``Repeat``/``Roll`` nodes are lowered when they are walked, with
``interpret_blocks=0`` and no prefix (:func:`lower_body`). Gate fusion is the walk's own
last step (forward: the backend's fusion policy; backward: wider blocks for undoing).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from qjaxrob.ir.circuit import Op
from qjaxrob.lower.interpreter import INTERPRET_MIN_BLOCKS, interpret
from qjaxrob.lower.rolling import ROLL_MIN_OPS, roll

__all__ = ["Lowered", "lower", "lower_body", "product_prefix"]


@dataclass(frozen=True)
class Lowered:
    """A lowered op sequence on ``n_qubits`` wires: ``prefix`` (1-wire gates preparing the
    start state, in order) then ``nodes`` (``Op``, ``Repeat``, ``Roll`` and ``Program``
    nodes, in application order). Static and hashable."""

    n_qubits: int
    prefix: tuple
    nodes: tuple


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
def lower(ops: tuple, n_qubits: int, roll_ops: int = ROLL_MIN_OPS,
          interpret_blocks: int = INTERPRET_MIN_BLOCKS) -> Lowered:
    """The statevector program of the top-level ``ops`` (module docs). ``roll_ops``: the
    smallest rolled run (``0`` disables rolling); ``interpret_blocks``: the smallest
    interpreted run in fused blocks (``0`` disables the interpreter)."""
    prefix, rest = product_prefix(ops)
    nodes = interpret(roll(rest, n_qubits, roll_ops), n_qubits, interpret_blocks)
    return Lowered(n_qubits, prefix, nodes)


def lower_body(ops: tuple, n_qubits: int, roll_ops: int = ROLL_MIN_OPS) -> tuple:
    """The nodes of a ``Repeat``/``Roll`` body: rolled, never interpreted, no prefix."""
    return roll(ops, n_qubits, roll_ops)
