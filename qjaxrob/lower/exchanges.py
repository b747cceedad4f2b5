"""The exchange planner of the sharded state vector: which wire swaps a circuit needs.

A state of ``n`` qubits laid over ``2**k`` devices keeps ``k`` *global* wires in the device
index and ``n - k`` *local* wires in each device's ``(2,)*(n-k)`` tensor. Physical
positions ``0..k-1`` are the global slots (slot 0 the most significant bit of the device
index), positions ``k..n-1`` the local axes ``0..n-k-1``; a logical wire (wire 0 the most
significant bit of the basis index) sits at one physical position, initially its own.

A gate runs on a device's local tensor only if all its wires are local. Before a gate that
touches a global wire, :func:`plan` first runs every later op that commutes with the
pending ones (ops on disjoint wires commute; the per-wire order is kept) and whose wires are
all local; when none is left it emits a :class:`Swap` of that global slot with a local
axis (one all-to-all between the device pairs that differ in that slot's bit) and keeps the
logical -> physical map for every later op and for the measurement instead of swapping
back. The local axis given up is the one whose wire is needed furthest in the future (or
never again; Belady's rule), so a layer that touches every wire costs about ``k`` swaps.

``Circuit.repeat`` blocks whose wires fit in the local axes stay one scanned node: their
wires are made local first, then the block runs with wires renamed to local axes. Blocks
that touch more wires than there are local axes are unrolled into their ops.

Planning needs only the circuit and the device count, no devices.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from qjaxrob.errors import DensityMatrixOnlyError, ParameterError, WireError
from qjaxrob.ir.circuit import Circuit, Repeat

__all__ = ["ExchangePlan", "Swap", "global_wire_count", "plan"]


@dataclass(frozen=True)
class Swap:
    """Exchange the wire in global slot ``slot`` with the wire on local axis ``axis``."""

    slot: int
    axis: int


@dataclass(frozen=True)
class ExchangePlan:
    """A circuit's sharded program (static, hashable).

    Attributes:
        n_qubits: the circuit's width n.
        global_wires: k, the number of global wires (``2**k`` devices).
        steps: in order, tuples of ops on the ``n - k`` local axes (wires renamed to local
            axes; ``Repeat`` nodes with renamed blocks) and :class:`Swap` s.
        layout: the final physical position of each logical wire (``layout[w]``).
    """

    n_qubits: int
    global_wires: int
    steps: tuple
    layout: tuple

    @property
    def exchanges(self) -> int:
        """All-to-all exchanges (wire swaps) the circuit costs."""
        return sum(isinstance(s, Swap) for s in self.steps)

    @property
    def devices(self) -> int:
        return 2**self.global_wires

    @property
    def local_wires(self) -> int:
        return self.n_qubits - self.global_wires

    @property
    def amplitudes_per_device(self) -> int:
        return 2**self.local_wires

    def state_bytes_per_device(self, dtype) -> int:
        """Bytes of one device's share of the state in the complex ``dtype``."""
        return self.amplitudes_per_device * np.dtype(dtype).itemsize

    def exchange_bytes_per_device(self, dtype) -> int:
        """Bytes one device sends (and receives) in one exchange: half its share."""
        return self.state_bytes_per_device(dtype) // 2

    @property
    def final_global_wires(self) -> tuple:
        """The logical wires in the global slots at the end, slot 0 first."""
        return tuple(sorted(range(self.n_qubits), key=lambda w: self.layout[w])[
            : self.global_wires])


def global_wire_count(devices: int, n_qubits: int, widest: int = 1) -> int:
    """``k = log2(devices)`` after checking it: ``devices`` a power of two, ``2**n`` at
    least ``devices`` amplitudes, and at least ``widest`` (the widest op's width, >= 1)
    local wires, so every gate fits in one device's tensor (``k <= n - widest``)."""
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)) or devices < 1:
        raise ParameterError(f"the device count must be a positive int, got {devices!r}")
    devices = int(devices)
    if devices & (devices - 1):
        raise ParameterError(
            f"a sharded state needs a power-of-two number of devices, got {devices}")
    k = devices.bit_length() - 1
    if devices > 2**n_qubits:
        raise WireError(
            f"a {n_qubits}-qubit state has 2**{n_qubits} = {2**n_qubits} amplitudes, fewer "
            f"than the {devices} devices of the mesh")
    widest = max(1, widest)
    if k > n_qubits - widest:
        raise WireError(
            f"{devices} devices make {k} global wires of the {n_qubits}; an op on {widest} "
            f"wires needs {widest} local wires, so at most {n_qubits - widest} global wires "
            f"({2**(n_qubits - widest)} devices) for this circuit")
    return k


def _widest(nodes) -> int:
    best = 1
    for node in nodes:
        if isinstance(node, Repeat):
            best = max(best, _widest(node.block.ops))
        elif not node.is_marker:
            best = max(best, len(node.wires))
    return best


def _wires(node) -> frozenset:
    if isinstance(node, Repeat):
        return frozenset(w for op in node.block.unroll().ops if not op.is_marker
                         for w in op.wires)
    return frozenset(() if node.is_marker else node.wires)


def _items(nodes, local: int) -> list:
    """Top-level ops and ``Repeat`` nodes in order; repeats touching more than ``local``
    wires unrolled; markers dropped; channels refused."""
    out = []
    for node in nodes:
        if isinstance(node, Repeat):
            if node.block.has_channels:
                _refuse_channel(next(op for op in node.block.unroll().ops if op.is_channel))
            if len(_wires(node)) <= local:
                out.append(node)
            else:
                out.extend(op for op in node.unrolled_ops() if not op.is_marker)
        elif node.is_channel:
            _refuse_channel(node)
        elif not node.is_marker:
            out.append(node)
    return out


def _refuse_channel(op):
    raise DensityMatrixOnlyError(
        f"channel {op.name!r} on wires {op.wires}: a sharded state vector (mesh=) simulates "
        "pure states only; noise needs density-matrix simulation or trajectories without mesh=")


def _renamed(node, local_axis):
    """``node`` with wires renamed by ``local_axis`` (a logical wire -> local axis map)."""
    if isinstance(node, Repeat):
        ops = tuple(_renamed(op, local_axis) for op in node.block.ops if not op.is_marker)
        block = Circuit(len(local_axis), ops)
        return replace(node, block=block)
    return replace(node, wires=tuple(local_axis[w] for w in node.wires))


def plan(circuit: Circuit, devices: int) -> ExchangePlan:
    """The :class:`ExchangePlan` of ``circuit`` over ``devices`` devices (module docs);
    checks the device count (:func:`global_wire_count`)."""
    n = circuit.n_qubits
    k = global_wire_count(devices, n, _widest(circuit.ops))
    nl = n - k
    items = _items(circuit.ops, nl)
    uses = [_wires(item) for item in items]
    queues = {w: deque() for w in range(n)}   # per wire: its pending items, in order
    for j, u in enumerate(uses):
        for w in u:
            queues[w].append(j)
    ready = {j for j, u in enumerate(uses) if all(queues[w][0] == j for w in u)}
    pos = list(range(n))        # logical wire -> physical position
    occ = list(range(n))        # physical position -> logical wire
    steps, segment = [], []
    while ready:
        local = [j for j in ready if all(pos[w] >= k for w in uses[j])]
        i = min(local or ready)
        ready.discard(i)
        needed = uses[i]
        for w in sorted(w for w in needed if pos[w] < k):
            # evict the local wire needed furthest in the future (Belady)
            p = max((p for p in range(k, n) if occ[p] not in needed),
                    key=lambda p: (queues[occ[p]][0] if queues[occ[p]] else len(items), -p))
            if segment:
                steps.append(tuple(segment))
                segment = []
            slot = pos[w]
            steps.append(Swap(slot, p - k))
            occ[slot], occ[p] = occ[p], w
            pos[occ[slot]], pos[w] = slot, p
        segment.append(_renamed(items[i], {w: pos[w] - k for w in range(n) if pos[w] >= k}))
        for w in needed:
            queues[w].popleft()
            if queues[w]:
                j = queues[w][0]
                if all(queues[v][0] == j for v in uses[j]):
                    ready.add(j)
    if segment:
        steps.append(tuple(segment))
    return ExchangePlan(n, k, tuple(steps), tuple(pos))
