"""Automatic cut placement: ``find_cuts(c, max_fragment_qubits=k) -> Circuit`` with cut marks.

By default the search places *gate cuts* only: it partitions the qubits into blocks of at most ``k``
and cuts every two-qubit gate between blocks. The cost to minimise is the log-overhead
``sum log gamma`` of the cut gates (gamma 3 for CZ/CNOT/CY, ``1 + 2|sin t|`` etc. at constant
angles, the worst case 3 for parameter angles; 7 for SWAP/iSWAP); three-qubit gates must
stay inside one block. Search: every
rotation of the contiguous blocking in wire order (optimal for chains, rings and brick walls
of nearest-neighbour gates) with ``ceil(n/k)`` up to ``n`` blocks, each refined by greedy
single-qubit moves and pairwise swaps (Kernighan-Lin style) until no move lowers the cost.
A graph-partitioning package is not needed at these sizes (tens of qubits, exact cost
evaluation is microseconds), and the greedy refinement handles the size cap directly, which
METIS-style balanced bisection does not.

Wire cuts (``cut_types`` containing ``"wire"``): the qubit timelines are split before every
multi-qubit gate into *segments*; consecutive segments of a qubit are joined by a wire edge
(cut = a wire-cut marker before that gate, cost log 4), a cuttable two-qubit gate joins its
two segments with a gate edge (cost log gamma, if gate cuts are allowed), any other
multi-qubit gate joins its segments by a hard edge. Segments are grouped into fragments; a
group's width is its number of segments minus its uncut wire edges (the local wires
``partition`` creates), and every group must have width <= k. Local search on cost +
penalties (uncut hard edges, excess width), from the best qubit blocking and from the
contiguous blockings with ``ceil(n/k)`` and one more blocks: moves of one segment, or of a
prefix / suffix of a qubit's timeline (= placing one wire cut), into another or a new
group. The cheaper of gate and wire cuts wins at every boundary (gamma 3 vs 4, but one wire
cut can replace many gate cuts, e.g. a qubit that talks to one side and then the other).
If no qubit blocking / segment grouping fits ``k`` (e.g. a 3-qubit gate with ``k < 3``, or a
chain of non-cuttable gates wider than ``k``), ``CutError`` names the gates that cannot be
cut. Gate cuts: ``qpd.GATE_CUTS`` and the KAK-cut ``qpd.KAK_CUTS`` (SWAP, iSWAP, 2-qubit
``unitary``), weighted by their optimal gamma.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import replace

from qjaxrob.ir.circuit import Circuit, Op
from qjaxrob.cutting import kak, qpd
from qjaxrob.errors import CutError, QjrTypeError

__all__ = ["find_cuts"]


def _gate_gamma(op):
    """The gamma of cutting ``op`` (worst case for traced angles), ``None`` if it cannot be."""
    if len(op.wires) != 2:
        return None
    if op.name in qpd.KAK_CUTS:
        return kak.kak_gamma(op.const_matrix())
    if op.name not in qpd.GATE_CUTS:
        return None
    if op.angles and op.angles[0].source == "const":
        return float(qpd.gate_gamma(op.name, op.angles[0].offset))
    return qpd.gate_gamma_bound(op.name)


def _weights(ops):
    """Pair weights ``{(a, b): log-gamma sum}`` and hard pairs that must share a block."""
    soft, hard = {}, {}
    for op in ops:
        if op.is_marker or len(op.wires) < 2:
            continue
        gamma = _gate_gamma(op)
        if gamma is not None:
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


def find_cuts(c: Circuit, max_fragment_qubits: int, cut_types=("gate",)) -> Circuit:
    """``c`` (unrolled, without its cut marks) with cut marks so that ``partition`` yields
    fragments of at most ``max_fragment_qubits`` qubits at low overhead. ``cut_types``:
    ``("gate",)`` (default; ``cut=True`` on two-qubit gates), ``("wire",)`` (wire-cut
    markers only) or ``("gate", "wire")`` (both, the cheaper placement wins; module docs).
    Raises ``CutError`` when no placement of the allowed kinds fits."""
    if not isinstance(c, Circuit):
        raise QjrTypeError(f"find_cuts expects a qjr.Circuit, got {type(c).__name__}")
    k = max_fragment_qubits
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise CutError(f"max_fragment_qubits must be a positive int, got {k!r}")
    kinds = (cut_types,) if isinstance(cut_types, str) else tuple(cut_types)
    if not kinds or any(t not in ("gate", "wire") for t in kinds):
        raise CutError(f"cut_types must be a non-empty subset of ('gate', 'wire'), got "
                       f"{cut_types!r}")
    ops = tuple(replace(op, cut=False) for op in c.unroll().ops if not op.is_marker)
    n = c.n_qubits
    if n <= k:
        return Circuit(n, ops)
    soft, hard = _weights(ops)
    best, best_block = math.inf, None
    if "gate" in kinds:
        best, best_block = _qubit_blocking(n, k, soft, hard)
    if "wire" not in kinds:
        if best_block is None or best == math.inf:
            bad = sorted({(op.name, op.wires) for op in hard.values()})
            raise CutError(f"no gate-cut placement fits max_fragment_qubits={k}: these gates "
                           f"cannot be cut and must share a fragment: {bad}")
        return Circuit(n, tuple(
            replace(op, cut=True) if len(op.wires) == 2 and best_block[op.wires[0]]
            != best_block[op.wires[1]] else op for op in ops))
    return _segment_search(ops, n, k, "gate" in kinds, best_block)


def _qubit_blocking(n, k, soft, hard):
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
    return best, best_block


# ---- wire cuts: partitioning the segment graph ---------------------------------------------
_BIG = 1e6


class _Segments:
    """Qubit timelines split before every multi-qubit gate: node ``(q, i)`` holds the
    ``i``-th multi-qubit gate on ``q`` (and the one-qubit gates before it). Wire edges join
    consecutive nodes of a qubit (cutting one = a wire cut, log 4); gate edges join a gate's
    nodes (a two-qubit cuttable gate: log gamma when allowed; otherwise hard)."""

    def __init__(self, ops, n, gate_ok):
        self.node = {}
        self.chains = []
        count = [0] * n
        self.gate_nodes = []
        for q in range(n):
            self.node[(q, 0)] = len(self.node)
        for op in ops:
            if len(op.wires) < 2:
                continue
            ids = []
            for q in op.wires:
                if count[q] > 0:
                    self.node[(q, count[q])] = len(self.node)
                ids.append(self.node[(q, count[q])])
                count[q] += 1
            self.gate_nodes.append(ids)
        self.count = count
        self.chains = [[self.node[(q, i)] for i in range(max(count[q], 1))] for q in range(n)]
        self.wire_edges = [(ch[i], ch[i + 1]) for ch in self.chains for i in range(len(ch) - 1)]
        self.soft, self.hard = [], []
        gates = [op for op in ops if len(op.wires) >= 2]
        for op, ids in zip(gates, self.gate_nodes):
            gamma = _gate_gamma(op) if gate_ok else None
            if gamma is not None:
                self.soft.append((ids[0], ids[1], math.log(gamma)))
            else:
                self.hard += [(ids[0], b) for b in ids[1:]]
        self.soft += [(a, b, math.log(4.0)) for a, b in self.wire_edges]
        self.n_nodes = len(self.node)

    def objective(self, g, k):
        cost = sum(w for a, b, w in self.soft if g[a] != g[b])
        bad = sum(1 for a, b in self.hard if g[a] != g[b])
        width = {}
        for v in range(self.n_nodes):
            width[g[v]] = width.get(g[v], 0) + 1
        for a, b in self.wire_edges:
            if g[a] == g[b]:
                width[g[a]] -= 1
        bad += sum(max(0, w - k) for w in width.values())
        return cost + _BIG * bad


def _local_search(seg, g, k):
    """Moves single nodes and prefixes / suffixes of a qubit's chain (= placing one wire
    cut) to another or a new group while the objective (cost + penalties) drops."""
    best = seg.objective(g, k)
    moves = [[v] for v in range(seg.n_nodes)]
    for ch in seg.chains:
        moves += [ch[:i] for i in range(2, len(ch))] + [ch[i:] for i in range(1, len(ch) - 1)]
    improved = True
    while improved:
        improved = False
        for nodes in moves:
            groups = set(g) | {max(g) + 1}
            old = [g[v] for v in nodes]
            for target in groups:
                if all(o == target for o in old):
                    continue
                for v in nodes:
                    g[v] = target
                c = seg.objective(g, k)
                if c < best - 1e-12:
                    best, improved = c, True
                    old = [target] * len(nodes)
                else:
                    for v, o in zip(nodes, old):
                        g[v] = o
    return best


def _segment_search(ops, n, k, gate_ok, block):
    seg = _Segments(ops, n, gate_ok)
    starts = []
    if block is not None:
        starts.append([block[q] for q in range(n) for _ in seg.chains[q]])
    m0 = -(-n // k)
    for m in (m0, m0 + 1):
        for shift in range(n):
            starts.append([((q + shift) % n) * m // n for q in range(n) for _ in seg.chains[q]])
    # nodes are numbered qubit by qubit for the first node only; map chain order to ids
    order = [v for ch in seg.chains for v in ch]
    best, best_g = math.inf, None
    for start in starts:
        g = [0] * seg.n_nodes
        for v, grp in zip(order, start):
            g[v] = grp
        cost = _local_search(seg, g, k)
        if cost < best - 1e-12:
            best, best_g = cost, list(g)
    if best >= _BIG:
        bad = sorted({(op.name, op.wires) for op in ops if len(op.wires) > 2 or (
            len(op.wires) == 2 and (not gate_ok or _gate_gamma(op) is None))})
        raise CutError(f"no cut placement fits max_fragment_qubits={k}; gates that cannot be "
                       f"cut (they need all their wires in one fragment): {bad}")
    count = [0] * n
    out = []
    for op in ops:
        if len(op.wires) < 2:
            out.append(op)
            continue
        ids = []
        for q in op.wires:
            i = count[q]
            v = seg.node[(q, i)]
            if i > 0 and best_g[seg.node[(q, i - 1)]] != best_g[v]:
                out.append(Op("cut", (q,)))
            ids.append(v)
            count[q] += 1
        split = len(op.wires) == 2 and best_g[ids[0]] != best_g[ids[1]]
        out.append(replace(op, cut=True) if split else op)
    return Circuit(n, tuple(out))
