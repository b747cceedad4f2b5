"""Automatic cut placement: ``find_cuts(c, max_fragment_qubits=k) -> Circuit`` with cut marks.

The search places *gate cuts* only: it partitions the qubits into blocks of at most ``k``
and cuts every two-qubit gate between blocks. The cost to minimise is the log-overhead
``sum log gamma`` of the cut gates (gamma 3 for CZ/CNOT/CY, ``1 + 2|sin t|`` etc. at constant
angles, the worst case 3 for parameter angles); gates without a decomposition (SWAP, iSWAP,
arbitrary unitaries) and three-qubit gates must stay inside one block. Search: every
rotation of the contiguous blocking in wire order (optimal for chains, rings and brick walls
of nearest-neighbour gates) with ``ceil(n/k)`` up to ``n`` blocks, each refined by greedy
single-qubit moves and pairwise swaps (Kernighan-Lin style) until no move lowers the cost.
A graph-partitioning package is not needed at these sizes (tens of qubits, exact cost
evaluation is microseconds), and the greedy refinement handles the size cap directly, which
METIS-style balanced bisection does not.

Why no automatic wire cuts: a gate cut costs at most gamma 3 against 4 for a wire cut, and
placing wire cuts is a partition of the circuit's time-ordered DAG (a MIP as in CutQC), not of
its qubits. Mark wire cuts by hand (``c.cut(q)``) where they are wanted; ``find_cuts``
keeps no existing marks. If no qubit blocking fits ``k`` (e.g. a 3-qubit gate with ``k < 3``,
or a chain of SWAPs wider than ``k``), ``CutError`` names the gates that cannot be cut.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import replace

from qjaxrob.circuit import Circuit
from qjaxrob.cutting import qpd
from qjaxrob.errors import CutError, QjrTypeError

__all__ = ["find_cuts"]


def _weights(ops):
    """Pair weights ``{(a, b): log-gamma sum}`` and hard pairs that must share a block."""
    soft, hard = {}, {}
    for op in ops:
        if op.is_marker or len(op.wires) < 2:
            continue
        if len(op.wires) == 2 and op.name in qpd.GATE_CUTS:
            if op.angles and op.angles[0].source == "const":
                gamma = float(qpd.gate_gamma(op.name, op.angles[0].offset))
            else:
                gamma = qpd.gate_gamma_bound(op.name)
            pair = tuple(sorted(op.wires))
            soft[pair] = soft.get(pair, 0.0) + math.log(gamma)
            continue
        for i, a in enumerate(op.wires):
            for b in op.wires[i + 1:]:
                hard.setdefault(tuple(sorted((a, b))), op)
    return soft, hard


def _cost(block, soft, hard):
    c = sum(w for (a, b), w in soft.items() if block[a] != block[b])
    return c + sum(math.inf for a, b in hard if block[a] != block[b])


def _refine(block, sizes, k, soft, hard):
    """Greedy moves and swaps until no single change lowers the cost."""
    n = len(block)
    best = _cost(block, soft, hard)
    improved = True
    while improved:
        improved = False
        for q in range(n):
            for target in range(len(sizes)):
                if target == block[q] or sizes[target] >= k:
                    continue
                old = block[q]
                block[q] = target
                c = _cost(block, soft, hard)
                if c < best - 1e-12:
                    sizes[old] -= 1
                    sizes[target] += 1
                    best, improved = c, True
                else:
                    block[q] = old
        for p in range(n):
            for q in range(p + 1, n):
                if block[p] == block[q]:
                    continue
                block[p], block[q] = block[q], block[p]
                c = _cost(block, soft, hard)
                if c < best - 1e-12:
                    best, improved = c, True
                else:
                    block[p], block[q] = block[q], block[p]
    return best


def find_cuts(c: Circuit, max_fragment_qubits: int) -> Circuit:
    """``c`` (unrolled, without its cut marks) with ``cut=True`` on the gates to cut so that
    ``partition`` yields fragments of at most ``max_fragment_qubits`` qubits at low overhead.
    Raises ``CutError`` when no gate-cut placement fits."""
    if not isinstance(c, Circuit):
        raise QjrTypeError(f"find_cuts expects a qjr.Circuit, got {type(c).__name__}")
    k = max_fragment_qubits
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise CutError(f"max_fragment_qubits must be a positive int, got {k!r}")
    ops = tuple(replace(op, cut=False) for op in c.unroll().ops if not op.is_marker)
    n = c.n_qubits
    if n <= k:
        return Circuit(n, ops)
    soft, hard = _weights(ops)
    best, best_block = math.inf, None
    for m in range(-(-n // k), n + 1):
        for shift in range(n):
            block = [((q + shift) % n) * m // n for q in range(n)]
            sizes = [block.count(b) for b in range(m)]
            if max(sizes) > k:
                continue
            cost = _refine(block, sizes, k, soft, hard)
            if cost < best - 1e-12:
                best, best_block = cost, list(block)
        if best < math.inf:
            break
    if best_block is None or best == math.inf:
        bad = sorted({(op.name, op.wires) for op in hard.values()})
        raise CutError(f"no gate-cut placement fits max_fragment_qubits={k}: these gates cannot "
                       f"be cut and must share a fragment: {bad}")
    return Circuit(n, tuple(
        replace(op, cut=True) if len(op.wires) == 2 and best_block[op.wires[0]]
        != best_block[op.wires[1]] else op for op in ops))
