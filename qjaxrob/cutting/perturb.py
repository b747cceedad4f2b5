"""Fragment perturbations: what an adversary controlling one fragment can do.

* ``perturb(cc, j, V)`` with a 2x2 unitary ``V`` (or a 1-qubit ``Circuit``, whose angles may
  be parameters, for gradient-based attacks): for a wire cut, ``V`` acts on every state
  prepared downstream of cut ``j``; for a gate cut, ``V`` acts on the second wire right after
  its local QPD operation, in every term.
* ``perturb(cc, j, Vs)`` with ``Vs`` of shape ``(n_b, 2, 2)``: a *term-dependent*
  perturbation, ``Vs[b]`` after side-1 operation ``b`` (for a wire cut: after preparing
  ``qpd.WIRE_PREPARE[b]``), as an adversary who sees which state it is asked to prepare.
* ``insert(cc, fragment, position, V, wires)``: a unitary (matrix or ``Circuit``) inserted
  before op ``position`` of one fragment, on its local ``wires``.

**Uniform perturbation = a gate inserted at the cut.** Let the wire cut split the circuit
into A (upstream, its state ``rho_A`` on (rest_A, cut wire)) and B (downstream channel
``C_B`` on (cut wire, rest_B), fresh inputs ``sigma_B``), measured with ``O_A (x) O_B``. The
reconstruction is ``sum_i c_i a_i b_i`` with ``a_i = Tr[(O_A (x) O_i) rho_A]`` and
``b_i = Tr[O_B C_B(V rho_i V^+ (x) sigma_B)]``. Both factors are linear, so

    sum_i c_i a_i b_i = Tr[(O_A (x) O_B) (id (x) C_B)((id (x) V.V^+)(Lambda(rho_A)) (x) sigma_B)]

with ``Lambda(s) = sum_i c_i Tr_cut[(I (x) O_i) s] (x) rho_i``, the identity channel on the
cut wire (Peng's decomposition). Hence the cut wire carries ``V rho V^+``: the result is
``<O>`` of the *uncut* circuit with ``V`` inserted on that wire at the cut. For a gate cut,
``sum_i c_i A_i (x) (V.V^+ o B_i) = (id (x) V.V^+) o U``: ``V`` right after the cut gate. The
value stays physical (inside ``[-||O||, ||O||]``) and the sampling estimator keeps its bound.
A term-dependent perturbation replaces ``Lambda`` by ``sum_i c_i Tr(O_i .) V_i rho_i V_i^+``,
trace preserving but in general not completely positive, so reconstructed values can leave
the physical range; ``fragment_values`` exposes the per-term results for such checks.
"""

from __future__ import annotations

import numbers
from dataclasses import replace

import numpy as np

from qjaxrob.checks import check_unitary, check_wires
from qjaxrob.ir.circuit import Circuit, ConstMatrix, Op
from qjaxrob.cutting.partition import CutCircuit, site_markers, with_fragment
from qjaxrob.errors import CutError, MatrixError, QjrTypeError

__all__ = ["perturb", "insert"]


def _unitary(v, k: int, what: str) -> np.ndarray:
    try:
        return check_unitary(v, k, what)
    except MatrixError as exc:
        raise CutError(str(exc)) from None


def _ops(v, wires: tuple, what: str) -> tuple:
    """A matrix or a ``Circuit`` on ``len(wires)`` qubits as ops on ``wires``."""
    if isinstance(v, Circuit):
        if v.n_qubits != len(wires):
            raise CutError(f"{what} is a {v.n_qubits}-qubit circuit, expected {len(wires)}")
        flat = v.unroll().ops
        if any(op.is_channel or op.is_marker for op in flat):
            raise CutError(f"{what} must be unitary: it contains channels or cut markers")
        return tuple(replace(op, wires=tuple(wires[w] for w in op.wires)) for op in flat)
    m = _unitary(v, len(wires), what)
    return (Op("unitary", tuple(wires), (), (ConstMatrix(m),)),)


def _check_index(i, n: int, what: str) -> int:
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):
        raise CutError(f"{what} must be an int, got {i!r}")
    if not 0 <= i < n:
        raise CutError(f"{what} {i} out of range: the cut circuit has {n}")
    return int(i)


def insert(cc: CutCircuit, fragment: int, position: int, v, wires) -> CutCircuit:
    """``cc`` with ``v`` (a ``2**k`` unitary matrix or a k-qubit ``Circuit``) inserted before
    op ``position`` (``0 .. len(ops)``) of fragment ``fragment``, on its local ``wires``."""
    if not isinstance(cc, CutCircuit):
        raise QjrTypeError(f"expected a CutCircuit, got {type(cc).__name__}")
    f = _check_index(fragment, len(cc.fragments), "fragment")
    frag = cc.fragments[f]
    pos = _check_index(position, len(frag.ops) + 1, "position")
    wires = (wires,) if isinstance(wires, numbers.Integral) else tuple(wires)
    try:
        check_wires(wires, frag.n_qubits)
    except (TypeError, ValueError) as exc:
        raise CutError(f"wires {wires} invalid for fragment {f}: {exc}") from None
    new = frag.ops[:pos] + _ops(v, wires, "V") + frag.ops[pos:]
    return with_fragment(cc, f, Circuit(frag.n_qubits, new))


def perturb(cc: CutCircuit, cut_index: int, v) -> CutCircuit:
    """Perturbs the side-1 (downstream / second-wire) operations of cut ``cut_index``:
    uniformly with a 2x2 unitary or 1-qubit ``Circuit`` ``v``, or term-dependently with
    ``v`` of shape ``(n_b, 2, 2)`` (module docs)."""
    if not isinstance(cc, CutCircuit):
        raise QjrTypeError(f"expected a CutCircuit, got {type(cc).__name__}")
    j = _check_index(cut_index, len(cc.cuts), "cut_index")
    cut = cc.cuts[j]
    f = cut.fragments[1]
    if not isinstance(v, Circuit) and np.ndim(v) == 3:
        n_b = cut.pattern.shape[1]
        vs = np.asarray(v, complex)
        if vs.shape[0] != n_b:
            raise CutError(f"a term-dependent perturbation of {cut.kind} cut {j} needs "
                           f"{n_b} unitaries, got shape {vs.shape}")
        mats = tuple(ConstMatrix(_unitary(m, 1, f"V[{b}]")) for b, m in enumerate(vs))
        rest = tuple(p for p in cc.prep_perturbations if p[0] != j)
        old = dict(cc.prep_perturbations).get(j)
        if old is not None:
            mats = tuple(ConstMatrix(m.array @ o.array) for m, o in zip(mats, old))
        return replace(cc, prep_perturbations=rest + ((j, mats),))
    pos = next(p for p, jj, side, _ in site_markers(cc.fragments[f]) if jj == j and side == 1)
    return insert(cc, f, pos + 1, v, (cut.local_wires[1],))
