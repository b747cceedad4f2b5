"""Constant one- and two-qubit unitaries as gate sequences, for writing them out.

* :func:`zyz`: ``u = e^{i alpha} U3(theta, phi, lam)`` (OpenQASM's ``U``; the ZYZ Euler form
  ``U3(theta, phi, lam) = e^{i (phi + lam)/2} RZ(phi) RY(theta) RZ(lam)``).
* :func:`two_qubit`: ``u = e^{i gamma} (a1 (x) a2) RXX(tx) RYY(ty) RZZ(tz) (b1 (x) b2)``
  from the KAK decomposition of :func:`qjaxrob.cutting.kak.kak` (the nonlocal core is
  diagonal in the Bell basis; its four phases fix the three Ising angles and a phase),
  each local factor then in ZYZ form.

Matrices use qjaxrob's order (first wire the most significant bit). Every result is
rebuilt and compared with the input; a mismatch beyond ``ATOL`` raises ``ConversionError``
rather than returning a wrong sequence.
"""

from __future__ import annotations

import numpy as np

from qjaxrob.cutting.kak import kak
from qjaxrob.errors import ConversionError

__all__ = ["ATOL", "zyz", "two_qubit", "u3_matrix", "ising_matrix"]

ATOL = 1e-7
"""Largest entry-wise error allowed between a unitary and its rebuilt decomposition."""

_PAULI = {"x": np.array([[0, 1], [1, 0]], complex), "y": np.array([[0, -1j], [1j, 0]]),
          "z": np.diag([1.0 + 0j, -1.0])}
_S2 = 1 / np.sqrt(2)
_BELL = np.array([[1, 0, 0, 1], [1, 0, 0, -1], [0, 1, 1, 0], [0, 1, -1, 0]], complex).T * _S2


def u3_matrix(theta: float, phi: float, lam: float) -> np.ndarray:
    """OpenQASM's ``U(theta, phi, lam)``."""
    c, s = np.cos(theta / 2), np.sin(theta / 2)
    return np.array([[c, -np.exp(1j * lam) * s],
                     [np.exp(1j * phi) * s, np.exp(1j * (phi + lam)) * c]])


def ising_matrix(axis: str, t: float) -> np.ndarray:
    """``exp(-i t P P / 2)`` for ``P`` the Pauli ``axis`` (``"x"``, ``"y"``, ``"z"``)."""
    pp = np.kron(_PAULI[axis], _PAULI[axis])
    return np.cos(t / 2) * np.eye(4) - 1j * np.sin(t / 2) * pp


def _check(u, rebuilt, what):
    err = float(np.max(np.abs(u - rebuilt)))
    if err > ATOL:  # pragma: no cover - a numerical failure, not expected for unitaries
        raise ConversionError(f"the {what} decomposition misses the unitary by {err:.2g}")


def zyz(u) -> tuple[float, float, float, float]:
    """``(theta, phi, lam, alpha)`` with ``u = e^{i alpha} U3(theta, phi, lam)``."""
    u = np.asarray(u, complex)
    theta = 2 * np.arctan2(abs(u[1, 0]), abs(u[0, 0]))
    # each phase is read from an entry at least as large as those it is rebuilt into
    alpha = np.angle(u[0, 0])
    phi = np.angle(u[1, 0]) - alpha
    if abs(u[0, 0]) >= abs(u[1, 0]):
        lam = np.angle(u[1, 1]) - alpha - phi
    else:
        lam = np.angle(-u[0, 1]) - alpha
    out = (float(theta), float(phi), float(lam), float(alpha))
    _check(u, np.exp(1j * alpha) * u3_matrix(*out[:3]), "ZYZ")
    return out


def two_qubit(u):
    """``(steps, gamma)``: ``steps`` a list of ``("u3", (w,), (theta, phi, lam))`` and
    ``("rxx" | "ryy" | "rzz", (0, 1), (t,))`` in circuit order on wires 0 and 1, and the
    global phase ``gamma``, with ``u = e^{i gamma} * (product of the steps)``."""
    u = np.asarray(u, complex)
    a1, a2, coeffs, b1, b2 = kak(u)
    core = sum(c * np.kron(p, p) for c, p in zip(coeffs, (np.eye(2), *_PAULI.values())))
    # on the Bell states PP has eigenvalues +-1: the core's phases there are
    # phi - (tx <XX> + ty <YY> + tz <ZZ>) / 2, four equations for (phi, tx, ty, tz)
    signs = np.array([[np.real(b.conj() @ np.kron(p, p) @ b) for p in _PAULI.values()]
                      for b in _BELL.T])
    omega = np.angle(np.einsum("is,ij,js->s", _BELL.conj(), core, _BELL))
    angles = np.linalg.solve(np.column_stack([np.ones(4), -signs / 2]), omega)[1:]
    local = [("u3", (w,), zyz(f)[:3]) for w, f in ((0, b1), (1, b2))]
    steps = local + [(f"r{axis}{axis}", (0, 1), (float(t),)) for axis, t in zip("xyz", angles)]
    steps += [("u3", (w,), zyz(f)[:3]) for w, f in ((0, a1), (1, a2))]
    rebuilt = _product(steps)
    gamma = float(np.angle(np.trace(rebuilt.conj().T @ u)))
    _check(u, np.exp(1j * gamma) * rebuilt, "KAK")
    return steps, gamma


def _product(steps) -> np.ndarray:
    out = np.eye(4, dtype=complex)
    for name, wires, angles in steps:
        if name == "u3":
            m = u3_matrix(*angles)
            m = np.kron(m, np.eye(2)) if wires == (0,) else np.kron(np.eye(2), m)
        else:
            m = ising_matrix(name[1], angles[0])
        out = m @ out
    return out
