"""Layer forming for the dense small-state path: a circuit's ops grouped into *layers*,
each cheap to form as one dense ``2**n x 2**n`` matrix (:mod:`qjaxrob.sim.dense`).

A :class:`Layer` is ``T @ K``:

* ``K`` (the *factor part*): gates on disjoint wire groups, one :class:`Group` per group
  (sorted wires, the gates on them in order); ``K`` is the Kronecker product of the group
  matrices (identity on idle wires), up to a static wire permutation. Gates on disjoint
  groups commute, so only the order within a group matters. A group grows by merging the
  groups a new gate touches while the merged group has at most ``max_group`` wires.
* ``T`` (the *tail*): constant monomial gates (one nonzero per row: ``cnot``, ``cz``,
  ``swap``, ``iswap``, ``ccx``, constant diagonals, monomial ``unitary`` ops) applied after
  ``K``; ``T`` is a row permutation with phases (:func:`tail_map`), so ``T @ K`` is a
  gather of ``K``'s rows, not a product.

Grouping is greedy in op order: a gate joins the current layer's factor part unless the
layer has a tail already or merging would exceed ``max_group`` wires; a constant monomial
gate that does not lie inside one existing group starts (or extends) the tail. A layer
with no groups is a pure tail (a permutation with phases of the state).

For density matrices (``local=True``) a run of one-qubit gates and one-qubit channels
becomes one :class:`Local` node instead: per wire, the product of the ops' 4 x 4
superoperators, applied to ``rho`` as one pass per wire (a layer of rotations with noise
after it costs ``n`` passes, where forming it costs four products and each channel a pass).

Other nodes: a channel op ends the layer and stays an ``Op`` (density path only); repeated
layers and ``Circuit.repeat`` blocks become :class:`qjaxrob.lower.rolling.Roll` nodes
(:func:`qjaxrob.lower.rolling.roll`, :func:`qjaxrob.lower.rolling.repeat_as_roll`), whose
bodies are layered when walked (one ``lax.scan`` over the repetitions); cut markers are
dropped (no-ops for simulation).

Matrices put wire 0 on the most significant bit of the basis index. Static and hashable;
imports the IR and the lowering tables, never the simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qjaxrob.ir.circuit import Op, Repeat
from qjaxrob.lower.rolling import ROLL_MIN_OPS, Roll, repeat_as_roll, roll
from qjaxrob.lower.tables import const_matrix

__all__ = ["Group", "Layer", "Local", "default_max_group", "layer_ops", "layout", "tail_map"]


@dataclass(frozen=True)
class Group:
    """Gates ``ops`` (in order) acting within the sorted wire group ``wires``."""

    wires: tuple
    ops: tuple


@dataclass(frozen=True)
class Layer:
    """``T @ K`` on ``n_qubits`` wires: ``groups`` form ``K``, ``tail`` (constant monomial
    gates, in order) forms ``T``. Either may be empty, not both."""

    n_qubits: int
    groups: tuple
    tail: tuple

    @property
    def ops(self) -> tuple:
        """The gates of the layer (group by group, then the tail)."""
        return tuple(op for g in self.groups for op in g.ops) + self.tail


@dataclass(frozen=True)
class Local:
    """One-qubit gates and channels on ``n_qubits`` wires: ``wires`` (sorted) and, per
    wire, its ops in order (``ops[i]`` on ``wires[i]``); ops on different wires commute."""

    n_qubits: int
    wires: tuple
    ops: tuple


def _local(run: list, n: int) -> Local:
    per = {}
    for op in run:
        per.setdefault(op.wires[0], []).append(op)
    wires = tuple(sorted(per))
    return Local(n, wires, tuple(tuple(per[w]) for w in wires))


def default_max_group(n: int) -> int:
    """Widest group: forming a ``2**k``-wide group costs ``~8**k`` per gate, at most the
    ``4**n`` that forming the layer costs anyway for ``k <= 2n/3``."""
    return max(2, (2 * n) // 3)


@lru_cache(maxsize=4096)
def _monomial(op) -> bool:
    """True for a constant gate whose matrix has one nonzero per row and column."""
    m = const_matrix(op)
    if m is None:
        return False
    nz = np.abs(m) > 0
    return bool(np.all(nz.sum(axis=0) == 1) and np.all(nz.sum(axis=1) == 1))


class _Builder:
    def __init__(self, n: int, max_group: int):
        self.n, self.max_group = n, max_group
        self.out, self.groups, self.tail = [], [], []

    def close(self):
        if self.groups or self.tail:
            groups = tuple(Group(tuple(sorted(w)), tuple(ops)) for w, ops in self.groups)
            self.out.append(Layer(self.n, tuple(sorted(groups, key=lambda g: g.wires)),
                                  tuple(self.tail)))
        self.groups, self.tail = [], []

    def touched(self, wires):
        return [i for i, (w, _) in enumerate(self.groups) if w & set(wires)]

    def add(self, op):
        wires = set(op.wires)
        hit = self.touched(wires)
        inside = len(hit) == 1 and wires <= self.groups[hit[0]][0]
        if _monomial(op) and (self.tail or not inside):
            self.tail.append(op)
            return
        if self.tail:
            self.close()
            hit, inside = [], False
        if inside:
            self.groups[hit[0]][1].append(op)
            return
        merged = set(wires).union(*(self.groups[i][0] for i in hit))
        if hit and len(merged) > self.max_group:
            self.close()
            hit, merged = [], set(wires)
        ops = [o for i in hit for o in self.groups[i][1]] + [op]
        self.groups = [g for i, g in enumerate(self.groups) if i not in hit]
        self.groups.append((merged, ops))


@lru_cache(maxsize=256)
def layer_ops(ops: tuple, n_qubits: int, max_group: int | None = None,
              roll_ops: int = ROLL_MIN_OPS, local: bool = False) -> tuple:
    """``ops`` as a tuple of :class:`Layer`, channel ``Op`` and ``Roll`` nodes in
    application order (module docs), and :class:`Local` nodes with ``local`` (density
    matrices). ``max_group``: widest group (default :func:`default_max_group`);
    ``roll_ops``: smallest rolled run of repeated layers
    (:func:`qjaxrob.lower.rolling.roll`; ``0`` disables)."""
    max_group = default_max_group(n_qubits) if max_group is None else max_group
    b = _Builder(n_qubits, max_group)
    run = []

    def flush():
        if run:
            b.out.append(_local(run, n_qubits))
            run.clear()

    for node in roll(ops, n_qubits, roll_ops):
        if isinstance(node, Repeat):
            node = repeat_as_roll(node)
        if isinstance(node, Op) and node.is_marker:
            continue
        if local and isinstance(node, Op) and len(node.wires) == 1:
            b.close()
            run.append(node)
            continue
        flush()
        if isinstance(node, Roll) or node.is_channel:
            b.close()
            b.out.append(node)
        else:
            b.add(node)
    b.close()
    flush()
    return tuple(b.out)


@lru_cache(maxsize=1024)
def layout(layer: Layer) -> np.ndarray | None:
    """``sigma`` (int32, ``(2**n,)``): the row/column gather taking the Kronecker product of
    the groups in layout order (groups by first wire, then idle wires) to wire order,
    ``M = K[sigma][:, sigma]``; ``None`` when the layout is already wire order."""
    n = layer.n_qubits
    used = [w for g in layer.groups for w in g.wires]
    order = used + [w for w in range(n) if w not in used]
    if order == list(range(n)):
        return None
    i = np.arange(2**n)
    bits = [(i >> (n - 1 - w)) & 1 for w in range(n)]  # bit of wire w in canonical index i
    sigma = np.zeros(2**n, np.int64)
    for pos, w in enumerate(order):
        sigma |= bits[w] << (n - 1 - pos)
    return sigma.astype(np.int32)


@lru_cache(maxsize=1024)
def tail_map(tail: tuple, n: int):
    """``(perm, phase)`` of the constant monomial gates ``tail`` applied in order:
    ``(T v)[i] = phase[i] * v[perm[i]]`` (``perm`` int32, ``phase`` complex128, ``(2**n,)``)."""
    perm = np.arange(2**n)
    phase = np.ones(2**n, np.complex128)
    for op in tail:
        k = len(op.wires)
        m = const_matrix(op)
        src = np.argmax(np.abs(m) > 0, axis=1)          # row r of m reads column src[r]
        val = m[np.arange(2**k), src]
        i = np.arange(2**n)
        local = np.zeros(2**n, np.int64)
        for w in op.wires:
            local = (local << 1) | ((i >> (n - 1 - w)) & 1)
        rest = i.copy()
        for j, w in enumerate(op.wires):
            bit = n - 1 - w
            rest &= ~(1 << bit)
            rest |= ((src[local] >> (k - 1 - j)) & 1) << bit
        # step: v'[i] = val[local(i)] * v[rest(i)]; composed with the map so far
        perm, phase = perm[rest], phase[rest] * val[local]
    return perm.astype(np.int32), phase
