"""Partitioning a marked circuit into fragments: ``partition(c) -> CutCircuit``.

The circuit is unrolled (``Circuit.unroll``) and every qubit's timeline is split into
*segments* at its wire-cut markers (``c.cut(q)``). Segments joined by an uncut multi-qubit
gate are merged (union-find); the connected groups are the fragments. Each fragment is a
``Circuit`` on its own local wires (segments sorted by original wire, then time), holding
the original ops (global parameter/input indices are kept, so every fragment reads the same
``params`` and ``x``) and one *site marker* per cut end,
``Op("cut", (local_wire,), meta=("site", cut_index, side))``:

* wire cut ``j``: side 0 ends the upstream segment (its qubit is measured in the Pauli basis
  ``qpd.WIRE_MEASURE[a]`` and discarded), side 1 starts the downstream segment on a fresh
  local wire (``qpd.WIRE_PREPARE[b]`` is prepared there);
* gate cut ``j``: the gate is replaced by side 0 on its first wire and side 1 on its second
  (the local operations of ``qpd.gate_table``, or of ``qpd.kak_table`` for SWAP, iSWAP and
  two-qubit ``unitary`` ops marked ``cut=True``, cut at the optimal KAK gamma).

A cut that does not separate the circuit (both its ends land in one fragment, connected by
uncut gates) would only multiply the work (each one multiplies the fragment's term rows by
up to 16) without making any fragment narrower. By default (``redundant="simulate"``) such
cuts are dropped, the gate or wire simulated directly, with a :class:`CutWarning`; they are
listed in ``CutCircuit.uncut`` and in its ``repr``. ``redundant="error"`` raises
``CutError`` instead. Dropping one never changes the fragments (its ends were connected
already), so the remaining cuts all separate. Errors (``CutError``): a wire cut after which
its qubit is never used again (or only by another wire cut), a gate cut on a gate without a
decomposition (``qpd.GATE_CUTS``, ``qpd.KAK_CUTS``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import cached_property

import jax.numpy as jnp
import numpy as np

from qjaxrob.ir.circuit import Circuit, Op, check_affine
from qjaxrob.cutting import kak, qpd
from qjaxrob.errors import CutError, CutWarning, QjrTypeError

__all__ = ["Cut", "CutCircuit", "partition", "site_markers"]


@dataclass(frozen=True)
class Cut:
    """One cut.

    Attributes:
        index: position in ``CutCircuit.cuts``.
        kind: ``"wire"`` or ``"gate"``.
        location: index of the marker / cut gate in ``circuit.unroll().ops``.
        wires: original wires: ``(q,)`` for a wire cut, the gate's ``(a, b)`` for a gate cut.
        op: the cut gate (``None`` for wire cuts).
        fragments: ``(fragment of side 0, fragment of side 1)``.
        local_wires: the local wire of side 0 and of side 1 in those fragments.
    """

    index: int
    kind: str
    location: int
    wires: tuple
    op: Op | None
    fragments: tuple
    local_wires: tuple

    def table(self, params, x, dtype) -> qpd.QPDTable:
        """This cut's ``QPDTable`` (angles resolved from ``params``/``x``; traceable)."""
        if self.kind == "wire":
            return qpd.wire_table(dtype)
        if self.op.name in qpd.KAK_CUTS:
            return qpd.kak_table(self.op.const_matrix(), dtype)
        theta = self.op.angles[0].resolve(params, x) if self.op.angles else 0.0
        return qpd.gate_table(self.op.name, theta, dtype)

    @property
    def pattern(self) -> np.ndarray:
        """Static boolean mask of the structurally nonzero entries of this cut's coefficient
        matrix (the joint QPD terms it contributes; a traced angle may zero some)."""
        if self.kind == "wire":
            return qpd.WIRE_PATTERN.copy()
        return qpd.gate_pattern(self.op)

    @property
    def gamma_bound(self) -> float:
        """gamma at the gate's constant angle; the worst case (3) for a traced angle."""
        if self.kind == "wire":
            return 4.0
        if self.op.name in qpd.KAK_CUTS:
            return kak.kak_gamma(self.op.const_matrix())
        if self.op.angles and self.op.angles[0].source != "const":
            return qpd.gate_gamma_bound(self.op.name)
        theta = self.op.angles[0].offset if self.op.angles else 0.0
        return float(qpd.gate_gamma(self.op.name, theta))


def site_markers(fragment: Circuit):
    """``[(op_position, cut_index, side, local_wire)]`` of a fragment's site markers."""
    return [(i, op.meta[1], op.meta[2], op.wires[0]) for i, op in enumerate(fragment.ops)
            if op.is_marker and op.meta[:1] == ("site",)]


@dataclass(frozen=True)
class CutCircuit:
    """A circuit split into fragments (static and hashable, usable as a jit static arg).

    Attributes:
        circuit: the unrolled original circuit.
        fragments: one ``Circuit`` per fragment, on local wires, with site markers.
        cuts: the ``Cut`` list.
        outputs: per original wire ``q``, ``(fragment, local wire)`` of its last segment
            (where observables on ``q`` are measured).
        prep_perturbations: term-dependent perturbations, ``((cut, (V_0, ..., V_{n_b-1})),)``
            with ``V_b`` (``ConstMatrix`` 2x2) applied after side-1 operation ``b`` of that cut.
        uncut: locations (in ``circuit.ops``) of the cut markers and ``cut=True`` gates that
            separated nothing and are simulated directly (module docs).
    """

    circuit: Circuit
    fragments: tuple
    cuts: tuple
    outputs: tuple
    prep_perturbations: tuple = ()
    uncut: tuple = ()

    @cached_property
    def _hash(self):
        return hash((self.circuit, self.fragments, self.cuts, self.outputs,
                     self.prep_perturbations, self.uncut))

    def __hash__(self):
        return self._hash

    @property
    def overhead(self) -> float:
        """gamma = product of per-cut gammas (4 per wire cut; a gate cut's gamma at its
        constant angle, or its worst case 3 when the angle is a param/input; the traced value
        is ``gamma(params, x)``). The shot cost grows as ``overhead**2``."""
        return float(np.prod([c.gamma_bound for c in self.cuts])) if self.cuts else 1.0

    def gamma(self, params=None, x=None):
        """The exact product of per-cut gammas at ``params``/``x`` (traceable)."""
        out = jnp.asarray(1.0)
        for cut in self.cuts:
            theta = cut.op.angles[0].resolve(params, x) if cut.kind == "gate" and cut.op.angles \
                else 0.0
            if cut.kind == "gate" and cut.op.name in qpd.KAK_CUTS:
                out = out * cut.gamma_bound
                continue
            out = out * (4.0 if cut.kind == "wire" else qpd.gate_gamma(cut.op.name, theta))
        return out

    @property
    def n_subexperiments(self) -> int:
        """Distinct fragment circuits a device would run for exact reconstruction: per
        fragment, the product of its side ops (6 preparations per wire-cut side 1, 5 local
        ops per RZZ-type gate-cut side, up to 16 per KAK gate-cut side) times 3 measurement
        bases (X, Y, Z; I reuses any) per wire-cut side 0; summed over fragments (the
        simulator needs only the first factor)."""
        total = 0
        for frag in self.fragments:
            count = 1
            for _, j, side, _ in site_markers(frag):
                wire = self.cuts[j].kind == "wire"
                count *= (3 if side == 0 else 6) if wire else self.cuts[j].pattern.shape[side]
            total += count
        return total

    @property
    def n_params(self) -> int:
        """Length of ``params``: the circuit's, or more if a perturbation added parameters."""
        return max([self.circuit.n_params] + [f.n_params for f in self.fragments])

    @property
    def n_inputs(self) -> int:
        return max([self.circuit.n_inputs] + [f.n_inputs for f in self.fragments])

    @property
    def max_fragment_qubits(self) -> int:
        return max(f.n_qubits for f in self.fragments)

    def __repr__(self):
        kinds = ", ".join(f"{c.kind}@{c.location}" for c in self.cuts)
        uncut = (f"; simulated directly (separate nothing): ops {list(self.uncut)}"
                 if self.uncut else "")
        return (f"CutCircuit({len(self.fragments)} fragments of "
                f"{[f.n_qubits for f in self.fragments]} qubits; cuts [{kinds}]; "
                f"overhead {self.overhead:.4g}{uncut})")


class _UnionFind:
    def __init__(self):
        self.parent = []

    def add(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int):
        self.parent[self.find(i)] = self.find(j)


def partition(c: Circuit, *, redundant: str = "simulate") -> CutCircuit:
    """Splits ``c`` at its wire-cut markers and ``cut=True`` gates (see module docs).

    ``redundant``: what to do with cuts that separate nothing: ``"simulate"`` (default;
    drop them with a ``CutWarning``, listed in ``CutCircuit.uncut``) or ``"error"``
    (``CutError``)."""
    if not isinstance(c, Circuit):
        raise QjrTypeError(f"partition expects a qjr.Circuit, got {type(c).__name__}")
    if redundant not in ("simulate", "error"):
        raise CutError(f"redundant must be 'simulate' or 'error', got {redundant!r}")
    if c.has_channels:
        raise CutError("cutting supports pure-state circuits only; found a noise channel")
    check_affine(c, "circuit cutting")
    flat = c.unroll().ops
    scan = _scan(flat, c.n_qubits, frozenset())
    uf = scan[0]
    idle = [loc for kind, loc, wires, _, segs in scan[4]
            if uf.find(segs[0]) == uf.find(segs[1])]
    if idle:
        what = ", ".join(f"{flat[loc].name} on wires {flat[loc].wires} (op {loc})" for loc in idle)
        if redundant == "error":
            raise CutError(f"cuts that separate nothing (both ends in one fragment): {what}")
        warnings.warn(
            f"simulating directly {len(idle)} cut(s) that separate nothing (both ends in one "
            f"fragment): {what}; pass redundant='error' to reject them", CutWarning,
            stacklevel=2,
        )
        scan = _scan(flat, c.n_qubits, frozenset(idle))
    cc = _build(c, flat, *scan)
    return replace(cc, uncut=tuple(idle)) if idle else cc


def _scan(flat, n_qubits, skip):
    """Segments, gate events and raw cuts of the unrolled ops ``flat``; the cuts at the
    locations in ``skip`` are treated as absent (marker ignored, gate simulated)."""
    uf = _UnionFind()
    seg_wire = []  # original wire of each segment
    current = []
    for q in range(n_qubits):
        current.append(uf.add())
        seg_wire.append(q)
    used = [False] * n_qubits
    events, raw_cuts = [], []  # events: (op, segments); raw cuts: (kind, loc, wires, op, segs)
    for loc, op in enumerate(flat):
        if op.is_marker and loc in skip:
            continue
        if op.is_marker:
            q = op.wires[0]
            up, down = current[q], uf.add()
            seg_wire.append(q)
            used.append(False)
            current[q] = down
            raw_cuts.append(("wire", loc, (q,), None, (up, down)))
        elif op.cut and loc not in skip:
            if op.name not in qpd.GATE_CUTS + qpd.KAK_CUTS or len(op.wires) != 2:
                raise CutError(
                    f"gate {op.name!r} on wires {op.wires} (op {loc}) has no gate-cut "
                    f"decomposition; supported: {', '.join(qpd.GATE_CUTS + qpd.KAK_CUTS)}")
            segs = tuple(current[w] for w in op.wires)
            for s in segs:
                used[s] = True
            raw_cuts.append(("gate", loc, op.wires, op, segs))
        else:
            segs = tuple(current[w] for w in op.wires)
            for s in segs:
                used[s] = True
                uf.union(s, segs[0])
            events.append((loc, replace(op, cut=False) if op.cut else op, segs))
    follows = {segs[0]: loc for kind, loc, _, _, segs in raw_cuts if kind == "wire"}
    for kind, loc, wires, _, segs in raw_cuts:
        if kind == "wire" and not used[segs[1]]:
            if segs[1] in follows:
                raise CutError(
                    f"wire cut on qubit {wires[0]} (op {loc}) is followed by another wire cut "
                    f"on the same qubit (op {follows[segs[1]]}) with no gate between them; "
                    "remove one of the two markers")
            raise CutError(f"wire cut on qubit {wires[0]} (op {loc}): the qubit is never used "
                           "again after the cut, so there is nothing to cut")
    return uf, seg_wire, current, events, raw_cuts


def _build(c, flat, uf, seg_wire, current, events, raw_cuts) -> CutCircuit:
    roots = sorted({uf.find(s) for s in range(len(seg_wire))},
                   key=lambda r: min(s for s in range(len(seg_wire)) if uf.find(s) == r))
    frag_of_root = {r: i for i, r in enumerate(roots)}
    members = [[] for _ in roots]
    for s in range(len(seg_wire)):
        members[frag_of_root[uf.find(s)]].append(s)
    local = {}
    for segs in members:
        for i, s in enumerate(sorted(segs, key=lambda s: (seg_wire[s], s))):
            local[s] = i
    frag = lambda s: frag_of_root[uf.find(s)]  # noqa: E731
    ops = [[] for _ in roots]  # (loc, order, op)
    for loc, op, segs in events:
        ops[frag(segs[0])].append((loc, 0, replace(op, wires=tuple(local[s] for s in segs))))
    cuts = []
    for j, (kind, loc, wires, op, segs) in enumerate(raw_cuts):
        for side, s in enumerate(segs):
            ops[frag(s)].append((loc, side, Op("cut", (local[s],), meta=("site", j, side))))
        cuts.append(Cut(j, kind, loc, tuple(wires), op, tuple(frag(s) for s in segs),
                        tuple(local[s] for s in segs)))
    fragments = tuple(Circuit(len(m), tuple(o for *_, o in sorted(ops[i], key=lambda t: t[:2])))
                      for i, m in enumerate(members))
    outputs = tuple((frag(current[q]), local[current[q]]) for q in range(c.n_qubits))
    return CutCircuit(Circuit(c.n_qubits, flat), fragments, tuple(cuts), outputs)


def with_fragment(cc: CutCircuit, index: int, fragment: Circuit) -> CutCircuit:
    """``cc`` with fragment ``index`` replaced (used by the perturbation helpers)."""
    frags = list(cc.fragments)
    frags[index] = fragment
    return replace(cc, fragments=tuple(frags))
