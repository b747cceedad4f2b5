"""Quasi-probability decompositions (QPD) of the cut wire and the cut two-qubit gates.

A cut replaces a channel ``U`` by a real combination of local operations. Every table here
has the *tensor form*

    U(rho) = sum_{a, b} C[a, b] (A_a (x) B_b)(rho)

with the distinct local operations of each side listed once (``A_a`` on the first / upstream
side, ``B_b`` on the second / downstream side) and the real coefficient matrix ``C``, shape
``(n_a, n_b)``; its nonzero entries are the QPD terms, and ``gamma = sum |C|``. Local
operations are *signed Kraus pairs* ``sigma -> s_0 K_0 sigma K_0^+ + s_1 K_1 sigma K_1^+``,
stored as ``kraus`` of shape ``(n_ops, 2, 2, 2)`` (op, branch, row, col) and ``signs`` of
shape ``(n_ops, 2)``: a unitary is ``(U, 0)`` with signs ``(1, 0)``; the signed Z
measurement of the QPD literature (``Pi_0 . Pi_0 - Pi_1 . Pi_1``, outcome 1 weighs -1) is
``(Pi_0, Pi_1)`` with signs ``(1, -1)``.

Tables (sources below; ``choi`` checks each against the map it decomposes):

* ``wire_table()``: Peng, Harrow, Ozols, Wu, PRL 125, 150504 (2020), the 8-term
  measure-and-prepare identity ``rho = sum_i c_i Tr(O_i rho) rho_i``, gamma = 4. Side A is
  "measure the Pauli ``WIRE_MEASURE[a]`` and discard" (the map ``sigma -> Tr(P sigma)``),
  side B prepares ``WIRE_PREPARE[b]`` (a unitary applied to ``|0>``).
* ``gate_table(name, theta)``: Mitarai & Fujii, New J. Phys. 23, 023021 (2021): ``RZZ(t)``
  as ``cos^2(t/2) [I,I] + sin^2(t/2) [Z,Z] + sin(t)/2 ([Mz,S] - [Mz,Sdg] + [S,Mz] -
  [Sdg,Mz])``, gamma = 1 + 2|sin t|; every other supported gate is RZZ dressed by local
  unitaries, ``G = (L_A (x) L_B) RZZ(phi) (R_A (x) R_B)``: CZ = RZ(-pi/2)^2 RZZ(pi/2) and CNOT,
  CY by basis changes (gamma = 3); RXX, RYY (gamma = 1 + 2|sin t|); CRZ(t) = (I (x) RZ(t/2))
  RZZ(-t/2) and CRX, CRY by basis changes (gamma = 1 + 2|sin(t/2)|).
* ``locc_wire_table()`` (beyond qiskit-addon-cutting): the wire cut with one-way classical
  communication, ``id = 2 Psi_MP - Psi_flip`` (gamma = 3, Brenner-Piveteau-Sutter
  arXiv:2302.03366): measure a random Pauli basis, re-prepare the observed eigenstate
  (weight 2/3 per basis) or the other one (weight -1/3). Side A here is the *unsigned*
  projector onto an outcome, side B the prepared eigenstate; the preparing side must learn the
  outcome, so ``partition`` does not use it (exact reconstruction would equal Peng's anyway).

* ``kak_table(u)`` (beyond qiskit-addon-cutting): any two-qubit unitary (SWAP, iSWAP,
  ``unitary`` ops) through its KAK form at the optimal gamma ``2 (sum |u_a|)^2 - 1``
  (SWAP/iSWAP 7); the decomposition and the local operations are built in
  :mod:`qjaxrob.cutting.kak`; qiskit's generic KAK method is not optimal.

``choi(table)`` returns the Choi matrix of the decomposed map, for checking each table as an
identity of Choi matrices. Angles may be traced (then ``gate_table`` builds its arrays with
``jax.numpy``); constant tables are NumPy arrays, so a jitted reconstruction embeds them as
constants instead of compiling their construction.
Tables are complex64 by default (``dtype=``, like every simulation function).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.cutting import kak as _kak
from qjaxrob.ir.gates import PAULI_MATRICES

__all__ = [
    "QPDTable", "WIRE_MEASURE", "WIRE_PREPARE", "GATE_CUTS", "wire_table", "gate_table",
    "locc_wire_table", "gate_gamma", "gate_gamma_bound", "choi", "kak_table", "KAK_CUTS",
    "gate_pattern", "WIRE_PATTERN",
]

_S2 = 1 / np.sqrt(2)
_H = np.array([[1, 1], [1, -1]]) * _S2
_S = np.diag([1, 1j])
_SDG = np.diag([1, -1j])
_X, _Z, _I = PAULI_MATRICES["X"], PAULI_MATRICES["Z"], PAULI_MATRICES["I"]
_V = _S @ _H  # V Z V^+ = Y
_P0, _P1 = np.diag([1.0, 0.0]), np.diag([0.0, 1.0])

WIRE_MEASURE = "IXYZ"
"""Side A of a wire cut: op ``a`` measures Pauli ``WIRE_MEASURE[a]`` on the cut qubit, which
then ends (the map ``sigma -> Tr(P sigma)``)."""

WIRE_PREPARE = ("0", "1", "+", "-", "+i", "-i")
"""Side B of a wire cut: op ``b`` prepares this eigenstate on a fresh qubit."""

_PREP_U = (_I, _X, _H, _H @ _X, _S @ _H, _S @ _H @ _X)  # U_b |0> = WIRE_PREPARE[b]

_PENG = [  # (measure, prepare, coefficient), Peng et al. Eqs. (12)-(19)
    ("I", "0", 0.5), ("I", "1", 0.5), ("X", "+", 0.5), ("X", "-", -0.5),
    ("Y", "+i", 0.5), ("Y", "-i", -0.5), ("Z", "0", 0.5), ("Z", "1", -0.5),
]


@dataclass(frozen=True)
class QPDTable:
    """One cut's decomposition in tensor form (arrays may be traced).

    Attributes:
        coeffs: real ``(n_a, n_b)``; the channel is ``sum C[a, b] A_a (x) B_b``.
        kraus_a, signs_a: side A signed Kraus pairs, ``(n_a, 2, 2, 2)`` and ``(n_a, 2)``
            (for a wire cut: the measured Pauli's projectors, see ``WIRE_MEASURE``).
        kraus_b, signs_b: side B likewise, ``(n_b, 2, 2, 2)`` and ``(n_b, 2)``.
        branch_a, branch_b: static; whether some op of that side is a measurement (two
            nonzero branches), i.e. whether a simulation must branch there.
    """

    coeffs: object
    kraus_a: object
    signs_a: object
    kraus_b: object
    signs_b: object
    branch_a: bool
    branch_b: bool

    @property
    def gamma(self):
        """``sum |C|``, the QPD's one-norm (sampling overhead is gamma**2)."""
        return jnp.sum(jnp.abs(self.coeffs))


def _unitary_op(u):
    return np.stack([u, np.zeros((2, 2))]), np.array([1.0, 0.0])


def _measure_op(p0, p1, sign1=-1.0):
    return np.stack([p0, p1]), np.array([1.0, sign1])


def _stack(ops):
    return np.stack([k for k, _ in ops]), np.stack([s for _, s in ops])


def wire_table(dtype=jnp.complex64) -> QPDTable:
    """Peng's 8-term identity as a ``4 x 6`` coefficient matrix (measure IXYZ x prepare)."""
    coeffs = np.zeros((4, 6))
    for m, p, c in _PENG:
        coeffs[WIRE_MEASURE.index(m), WIRE_PREPARE.index(p)] = c
    meas = [_unitary_op(_I)]
    for basis in (_H, _V, _I):  # X = H Z H, Y = V Z V^+, Z
        meas.append(_measure_op(basis @ _P0 @ basis.conj().T, basis @ _P1 @ basis.conj().T))
    return _table(coeffs, meas, [_unitary_op(u) for u in _PREP_U], dtype)


def locc_wire_table(dtype=jnp.complex64) -> QPDTable:
    """The gamma = 3 one-way-communication wire cut: side A = the 6 unsigned outcome
    projectors ``Pi_s^P`` (P in XYZ, s = +-), side B = the 6 eigenstates, ``C = 2/3`` on the
    observed eigenstate and ``-1/3`` on the flipped one. gamma is the one-norm over the 6
    *channels* (P, kept or flipped), ``3 * (2/3 + 1/3) = 3``; ``sum |C|`` is 6 because the
    outcome sum is physical, not sampled."""
    states = [_H @ np.array([1, 0]), _H @ np.array([0, 1]), _V @ np.array([1, 0]),
              _V @ np.array([0, 1]), np.array([1, 0]), np.array([0, 1])]
    proj = [np.outer(s, s.conj()) for s in states]
    coeffs = np.zeros((6, 6))
    for i in range(6):
        coeffs[i, i], coeffs[i, i ^ 1] = 2 / 3, -1 / 3
    side_a = [_measure_op(p, np.zeros((2, 2)), 0.0) for p in proj]
    unitaries = (_H, _H @ _X, _V, _V @ _X, _I, _X)
    return _table(coeffs, side_a, [_unitary_op(u) for u in unitaries], dtype)


def _table(coeffs, side_a, side_b, dtype) -> QPDTable:
    ka, sa = _stack(side_a)
    kb, sb = _stack(side_b)
    real = jnp.finfo(dtype).dtype
    return QPDTable(
        np.asarray(coeffs, real), np.asarray(ka, dtype), np.asarray(sa, real),
        np.asarray(kb, dtype), np.asarray(sb, real),
        bool(np.any(sa[:, 1] != 0)), bool(np.any(sb[:, 1] != 0)),
    )


# ---- gate cuts -----------------------------------------------------------------------------
_RZZ_A = [_unitary_op(_I), _unitary_op(_Z), _measure_op(_P0, _P1), _unitary_op(_S),
          _unitary_op(_SDG)]
_RZZ_B = [_unitary_op(_I), _unitary_op(_Z), _unitary_op(_S), _unitary_op(_SDG),
          _measure_op(_P0, _P1)]
_KA, _SA = _stack(_RZZ_A)
_KB, _SB = _stack(_RZZ_B)


def _rzz_coeffs(phi, xp=jnp):
    """``(5, 5)`` coefficients of RZZ(phi) over ``_RZZ_A x _RZZ_B`` (Mitarai-Fujii)."""
    c2, s2, h = xp.cos(phi / 2) ** 2, xp.sin(phi / 2) ** 2, xp.sin(phi) / 2
    z = xp.zeros_like(c2)
    return xp.stack([
        xp.stack([c2, z, z, z, z]),
        xp.stack([z, s2, z, z, z]),
        xp.stack([z, z, h, -h, z]),
        xp.stack([z, z, z, z, h]),
        xp.stack([z, z, z, z, -h]),
    ])


def _rz(t, xp=np):
    """``rz(t) = diag(e^{-it/2}, e^{it/2})`` for a real (possibly traced) t, complex."""
    if xp is np:
        return np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])
    t = jnp.asarray(t)
    e = jax.lax.complex(jnp.cos(t / 2), -jnp.sin(t / 2))
    return jnp.diag(jnp.stack([e, jnp.conj(e)]))


def _dressing(name, theta, xp=jnp):
    """``(phi, L_A, L_B, R_A, R_B)`` with ``G(theta) = (L_A (x) L_B) RZZ(phi) (R_A (x) R_B)``."""
    i = _I
    rzm = _rz(-np.pi / 2)
    if name == "cz":
        return np.pi / 2, rzm, rzm, i, i
    if name == "cnot":
        return np.pi / 2, rzm, _H @ rzm, i, _H
    if name == "cy":
        return np.pi / 2, rzm, _S @ _H @ rzm, i, _H @ _SDG
    if name == "rzz":
        return theta, i, i, i, i
    if name == "rxx":
        return theta, _H, _H, _H, _H
    if name == "ryy":
        return theta, _V, _V, _V.conj().T, _V.conj().T
    half = _rz(theta / 2, xp)
    if name == "crz":
        return -theta / 2, i, half, i, i
    if name == "crx":
        return -theta / 2, i, _H @ half, i, _H
    return -theta / 2, i, _V @ half, i, _V.conj().T  # cry


GATE_CUTS = ("cz", "cnot", "cy", "rzz", "rxx", "ryy", "crz", "crx", "cry")
"""Two-qubit gates with a gate-cut decomposition (first wire = side A)."""


def gate_table(name: str, theta=0.0, dtype=jnp.complex64) -> QPDTable:
    """The QPD of gate ``name`` (one of ``GATE_CUTS``) at angle ``theta`` (ignored for the
    fixed gates; may be traced), over 5 ops per side. A constant ``theta`` (a Python or
    NumPy number) gives NumPy arrays, which a jitted caller embeds as constants."""
    xp = jnp if isinstance(theta, jax.Array) else np
    real = jnp.finfo(dtype).dtype
    phi, la, lb, ra, rb = _dressing(name, xp.asarray(theta, real), xp)
    ka = xp.einsum("ij,objk,kl->obil", xp.asarray(la, dtype), xp.asarray(_KA, dtype),
                   xp.asarray(ra, dtype))
    kb = xp.einsum("ij,objk,kl->obil", xp.asarray(lb, dtype), xp.asarray(_KB, dtype),
                   xp.asarray(rb, dtype))
    coeffs = _rzz_coeffs(xp.asarray(phi, real), xp).astype(real)
    return QPDTable(coeffs, ka, xp.asarray(_SA, real), kb, xp.asarray(_SB, real), True, True)


_RZZ_PATTERN = np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1],
                         [0, 0, 0, 0, 1]], bool)
WIRE_PATTERN = np.zeros((4, 6), bool)
for _m, _p, _ in _PENG:
    WIRE_PATTERN[WIRE_MEASURE.index(_m), WIRE_PREPARE.index(_p)] = True


def gate_pattern(op) -> np.ndarray:
    """Static mask of the structurally nonzero coefficients of gate-cut ``op``'s table."""
    if op.name in KAK_CUTS:
        return _kak.kak_terms(op.const_matrix())[0] != 0
    return _RZZ_PATTERN.copy()


KAK_CUTS = ("swap", "iswap", "unitary")
"""Two-qubit gates cut through their KAK form (``kak_table``, optimal gamma)."""


def gate_gamma(name: str, theta=0.0):
    """The literature gamma: 3 (CZ/CNOT/CY), 1 + 2|sin t| (Ising), 1 + 2|sin(t/2)|
    (controlled rotations)."""
    if name in ("cz", "cnot", "cy"):
        return 3.0
    if name in ("rzz", "rxx", "ryy"):
        return 1 + 2 * jnp.abs(jnp.sin(theta))
    return 1 + 2 * jnp.abs(jnp.sin(theta / 2))


def gate_gamma_bound(name: str) -> float:
    """The largest gamma over all angles (3 for every supported gate)."""
    return 3.0


def _apply_side(kraus, signs, sigma):
    return sum(signs[r] * kraus[r] @ sigma @ kraus[r].conj().T for r in range(2))


def choi(table: QPDTable, kind: str = "gate") -> np.ndarray:
    """The Choi matrix ``sum_ij |i><j| (x) Lambda(|i><j|)`` of the decomposed map.

    ``kind="gate"``: Lambda acts on two qubits (A = first); ``kind="wire"``: Lambda maps a
    qubit to a qubit, ``sigma -> sum C[a,b] Tr(A_a(sigma)) B_b(|0><0|)``. Shape ``(16, 16)``
    resp. ``(4, 4)``; NumPy complex128.
    """
    c = np.asarray(table.coeffs, float)
    ka, sa = np.asarray(table.kraus_a), np.asarray(table.signs_a)
    kb, sb = np.asarray(table.kraus_b), np.asarray(table.signs_b)
    d = 4 if kind == "gate" else 2
    out = np.zeros((d * d, d * d), complex)
    for i in range(d):
        for j in range(d):
            e = np.zeros((d, d), complex)
            e[i, j] = 1
            lam = np.zeros((d, d), complex)
            for a, b in zip(*np.nonzero(c)):
                if kind == "gate":
                    lam += c[a, b] * _two_side(ka[a], sa[a], kb[b], sb[b], e)
                else:
                    tr = np.trace(_apply_side(ka[a], sa[a], e))
                    lam += c[a, b] * tr * _apply_side(kb[b], sb[b], np.diag([1.0, 0.0]))
            out += np.kron(e, lam)
    return out


def _two_side(ka, sa, kb, sb, sigma):
    out = np.zeros((4, 4), complex)
    for r in range(2):
        for q in range(2):
            k = np.kron(ka[r], kb[q])
            out += sa[r] * sb[q] * k @ sigma @ k.conj().T
    return out


def kak_table(u, dtype=jnp.complex64) -> QPDTable:
    """The optimal QPD of any two-qubit unitary ``u`` through its KAK form
    (:func:`qjaxrob.cutting.kak.kak_terms`; gamma ``2 (sum |u_a|)^2 - 1``)."""
    return _table(*_kak.kak_terms(u), dtype)
