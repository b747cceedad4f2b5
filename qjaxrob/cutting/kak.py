"""KAK decomposition of two-qubit unitaries and the local operations of their optimal QPD.

Any 4x4 unitary is ``u = e^{i chi} (a1 (x) a2) (sum_a u_a P_a (x) P_a) (b1 (x) b2)`` with
``P = (I, X, Y, Z)`` (:func:`kak`, magic-basis algorithm). The nonlocal core's QPD reaches
the optimal gamma ``2 (sum |u_a|)^2 - 1`` (:func:`kak_gamma`; SWAP and iSWAP 7, CZ 3), built
by :func:`kak_terms` and turned into a table by :func:`qjaxrob.cutting.qpd.kak_table`.
Everything here is static NumPy (complex128): gates cut this way are constant.
"""

from __future__ import annotations

import numpy as np

from qjaxrob.errors import CutError
from qjaxrob.ir.gates import PAULI_MATRICES

__all__ = ["kak", "kak_gamma", "kak_terms"]

_PAULI = tuple(PAULI_MATRICES[s] for s in "IXYZ")
_S2 = 1 / np.sqrt(2)
_H = np.array([[1, 1], [1, -1]]) * _S2
_SDG = np.diag([1, -1j])
_TO_Z = (None, _H, _H @ _SDG, _PAULI[0])  # C with C P C^+ = Z for P = X, Y, Z
_MAGIC = np.array([[1, 0, 0, 1j], [0, 1j, 1, 0], [0, 1j, -1, 0], [1, 0, 0, -1j]]) * _S2


def _local_factors(m):
    """``(a, b)`` unitaries with ``m = a (x) b`` up to a phase (``m`` local, 4x4)."""
    t = m.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)
    u, s, vh = np.linalg.svd(t)
    a, b = u[:, 0].reshape(2, 2) * np.sqrt(s[0]), vh[0].reshape(2, 2) * np.sqrt(s[0])
    return a / np.sqrt(abs(np.linalg.det(a))), b / np.sqrt(abs(np.linalg.det(b)))


def kak(u):
    """KAK decomposition of a 4x4 unitary: ``(a1, a2, coeffs, b1, b2)`` with
    ``u = e^{i chi} (a1 (x) a2) (sum_alpha coeffs[alpha] P_alpha (x) P_alpha) (b1 (x) b2)``,
    ``P = (I, X, Y, Z)`` and ``sum |coeffs|^2 = 1`` (the ``u_alpha`` of Mitarai-Fujii
    arXiv:2006.11174 Eq. (6)). Magic-basis algorithm: ``M^+ u M = K1 D K2`` with real
    orthogonal ``K1, K2`` (local in the computational basis) and diagonal ``D`` (the
    nonlocal core, diagonal in the magic basis = spanned by the ``P (x) P``)."""
    u = np.asarray(u, complex)
    u = u / np.linalg.det(u) ** 0.25
    up = _MAGIC.conj().T @ u @ _MAGIC
    m2 = up.T @ up
    rng = np.random.default_rng(1234)
    for _ in range(100):
        c = rng.normal()
        _, p = np.linalg.eigh(m2.real + c * m2.imag)
        d = p.T @ m2 @ p
        if np.abs(d - np.diag(np.diag(d))).max() < 1e-9:
            break
    else:  # pragma: no cover - numerically degenerate beyond repair
        raise CutError("KAK: could not diagonalise the magic-basis symmetric form")
    if np.linalg.det(p) < 0:
        p[:, 0] *= -1
    sq = np.sqrt(np.diag(p.T @ m2 @ p))
    k1 = up @ p @ np.diag(1 / sq)
    if np.linalg.det(k1.real) < 0:
        k1[:, 0] *= -1
        sq[0] *= -1
    left = _MAGIC @ k1.real @ _MAGIC.conj().T
    core = _MAGIC @ np.diag(sq) @ _MAGIC.conj().T
    right = _MAGIC @ p.T @ _MAGIC.conj().T
    coeffs = np.array([np.trace(np.kron(s, s) @ core) / 4 for s in _PAULI])
    a1, a2 = _local_factors(left)
    b1, b2 = _local_factors(right)
    return a1, a2, coeffs, b1, b2


def kak_gamma(u) -> float:
    """The optimal gate-cut gamma ``2 (sum_alpha |u_alpha|)^2 - 1`` of a 4x4 unitary
    (Piveteau-Sutter arXiv:2205.00016, Schmitt-Piveteau-Sutter arXiv:2312.11638)."""
    return float(2 * np.sum(np.abs(kak(u)[2])) ** 2 - 1)


def _half_op(psi):
    """Signed instrument ``sigma -> (e^{i psi} sigma Z + e^{-i psi} Z sigma) / 2``: Kraus
    ``diag(cos(psi/2), i sin(psi/2))`` (outcome +1) and ``diag(i sin(psi/2), cos(psi/2))``
    (outcome -1); one measurement, so its QPD norm is 1."""
    c, s = np.cos(psi / 2), 1j * np.sin(psi / 2)
    return np.stack([np.diag([c, s]), np.diag([s, c])]), np.array([1.0, -1.0])


_KAK_CACHE = {}


def kak_terms(u):
    """Optimal QPD of any two-qubit unitary ``u`` through its KAK form (beyond
    qiskit-addon-cutting, whose generic KAK method is the non-optimal Eq. (19) of
    arXiv:2006.11174). With ``N = sum_a u_a P_a (x) P_a``:

        N rho N^+ = sum_a |u_a|^2 (P_a(x)P_a) rho (P_a(x)P_a)
                    + sum_{a<b} [w A rho B + w* B rho A],   w = u_a u_b^*, A = P_a(x)P_a, ...

    Each pair term is ``r (M (x) M + Mbar (x) Mbar)`` with the per-qubit map
    ``M(s) = e^{i phi/2} P_a s P_b`` (``w = r e^{i phi}``, the phase split between the two
    qubits) and ``Mbar(s) = M(s^+)^+``; with ``H = (M + Mbar)/2``, ``K = (M - Mbar)/(2i)``
    it equals ``2r (H (x) H - K (x) K)``. ``M(s) = e^{i psi} (P_a s P_a) P_g`` with
    ``P_a P_b = lambda P_g``, so after the Clifford ``C`` with ``C P_g C^+ = Z`` both ``H`` and
    ``K`` are the one-measurement instruments of ``_half_op`` (norm 1). gamma =
    ``sum |u_a|^2 + 4 sum_{a<b} |u_a u_b| = 2 (sum |u_a|)^2 - 1``, the optimum (SWAP and iSWAP:
    7, CZ: 3). The local KAK factors dress side A (``a1 . op . b1``) and side B
    (``a2 . op . b2``). Ops with zero coefficient are dropped; ``C`` is diagonal.

    Returns NumPy ``(coeffs, side_a, side_b)``: the ``(n, n)`` diagonal coefficient matrix
    and the signed Kraus pairs ``(kraus (2, 2, 2), signs (2,))`` of each side, in the
    tensor form of :mod:`qjaxrob.cutting.qpd` (cached by the matrix bytes)."""
    u = np.asarray(u, complex)
    key = u.tobytes()
    if key not in _KAK_CACHE:
        _KAK_CACHE[key] = _kak_build(u)
    return _KAK_CACHE[key]


def _kak_build(u):
    a1, a2, uc, b1, b2 = kak(u)
    ops, coeffs = [], []
    for a in range(4):
        if abs(uc[a]) ** 2 > 1e-14:
            ops.append((np.stack([_PAULI[a], np.zeros((2, 2))]), np.array([1.0, 0.0])))
            coeffs.append(abs(uc[a]) ** 2)
    for a in range(4):
        for b in range(a + 1, 4):
            w = uc[a] * np.conj(uc[b])
            if abs(w) < 1e-14:
                continue
            prod = _PAULI[a] @ _PAULI[b]
            g = next(k for k in range(1, 4) if abs(np.trace(_PAULI[k] @ prod)) > 1e-9)
            lam = np.trace(_PAULI[g] @ prod) / 2
            psi = np.angle(w) / 2 + np.angle(lam)
            c = _TO_Z[g]
            for shift, sign in ((0.0, 1.0), (np.pi / 2, -1.0)):
                k, s = _half_op(psi - shift)
                ops.append((np.stack([c.conj().T @ k[r] @ c @ _PAULI[a] for r in range(2)]), s))
                coeffs.append(sign * 2 * abs(w))
    n = len(ops)
    side_a = [(np.stack([a1 @ k[r] @ b1 for r in range(2)]), s) for k, s in ops]
    side_b = [(np.stack([a2 @ k[r] @ b2 for r in range(2)]), s) for k, s in ops]
    return np.diag(coeffs).reshape(n, n), side_a, side_b
