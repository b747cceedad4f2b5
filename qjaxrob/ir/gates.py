"""The closed gate table: name -> arity, angle count, kind and matrix as a function of angles.

Matrices follow these conventions, in radians, with wire 0 of the gate as the
most significant bit of the matrix index (so ``cnot`` is ``diag(I, X)`` with the first wire
controlling):

* ``rx(t) = exp(-i t X / 2)``, likewise ``ry``, ``rz``; ``rxx(t) = exp(-i t XX / 2)``, likewise
  ``ryy``, ``rzz``;
* ``phase(p) = diag(1, e^{ip})``; ``sx = sqrt(X)`` (the principal root, ``sx @ sx = X``);
* ``u3(theta, phi, lam)`` is OpenQASM's ``U``:
  ``[[cos(t/2), -e^{i lam} sin(t/2)], [e^{i phi} sin(t/2), e^{i(phi+lam)} cos(t/2)]]``;
* ``crx/cry/crz(t)`` apply ``rx/ry/rz(t)`` to the second wire when the first is 1.

``kind`` is static structure used to pick a kernel: ``"diagonal"`` gates provide their
diagonal directly (``diag_fn``), ``"permutation"`` gates are basis permutations (possibly
with phases), the rest are ``"dense"``. Matrix functions take a tuple of real angle
scalars (traced or not) and a complex dtype, and are differentiable in the angles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.errors import ParameterError, UnknownGateError

__all__ = [
    "GateSpec", "GATES", "PAULI_MATRICES", "default_dtype", "gate_spec", "gate_matrix",
    "gate_diagonal",
]


@dataclass(frozen=True)
class GateSpec:
    """One row of the gate table.

    Attributes:
        name: gate name as used by the ``Circuit`` builder methods.
        n_wires: number of wires the gate acts on.
        n_angles: number of real angle arguments.
        kind: ``"diagonal"``, ``"permutation"`` or ``"dense"``.
        matrix_fn: ``(angles, dtype) -> (2**n_wires, 2**n_wires)`` matrix.
        diag_fn: for diagonal gates, ``(angles, dtype) -> (2**n_wires,)`` diagonal.
        trig: for one-angle gates, ``(w, A, B, C)`` (complex128 NumPy matrices) with
            ``matrix(t) = A + cos(w t) B + sin(w t) C``: the fused-block builder
            (:mod:`qjaxrob.lower.fusion`) evaluates many such gates with one ``cos`` and one
            ``sin`` and embeds them linearly; ``None`` for the others.
    """

    name: str
    n_wires: int
    n_angles: int
    kind: str
    matrix_fn: Callable
    diag_fn: Callable | None = None
    trig: tuple | None = None


def _const(m):
    m = np.asarray(m, dtype=np.complex128)
    return lambda angles, dtype: jnp.asarray(m, dtype=dtype)


def _const_diag(d):
    d = np.asarray(d, dtype=np.complex128)
    return lambda angles, dtype: jnp.asarray(d, dtype=dtype)


def _from_diag(diag_fn):
    return lambda angles, dtype: jnp.diag(diag_fn(angles, dtype))


def _real_dtype(dtype):
    return jnp.finfo(dtype).dtype


def _cs(t, dtype):
    """cos(t/2), sin(t/2) as real scalars of dtype's precision."""
    t = jnp.asarray(t, _real_dtype(dtype))
    return jnp.cos(t / 2), jnp.sin(t / 2)


def _expi(t, dtype):
    t = jnp.asarray(t, _real_dtype(dtype))
    return jax.lax.complex(jnp.cos(t), jnp.sin(t)).astype(dtype)


def _rx(angles, dtype):
    c, s = _cs(angles[0], dtype)
    c, s = c.astype(dtype), s.astype(dtype)
    return jnp.array([[c, -1j * s], [-1j * s, c]], dtype=dtype)


def _ry(angles, dtype):
    c, s = _cs(angles[0], dtype)
    return jnp.array([[c, -s], [s, c]], dtype=dtype)


def _rz_diag(angles, dtype):
    t = angles[0]
    return jnp.stack([_expi(-t / 2, dtype), _expi(t / 2, dtype)])


def _phase_diag(angles, dtype):
    return jnp.stack([jnp.ones((), dtype), _expi(angles[0], dtype)])


def _u3(angles, dtype):
    theta, phi, lam = angles
    c, s = _cs(theta, dtype)
    c, s = c.astype(dtype), s.astype(dtype)
    return jnp.stack(
        [
            jnp.stack([c, -_expi(lam, dtype) * s]),
            jnp.stack([_expi(phi, dtype) * s, _expi(phi + lam, dtype) * c]),
        ]
    )


def _controlled(one_qubit_fn):
    def matrix(angles, dtype):
        u = one_qubit_fn(angles, dtype)
        out = jnp.eye(4, dtype=dtype)
        return out.at[2:, 2:].set(u)

    return matrix


def _crz_diag(angles, dtype):
    one = jnp.ones((), dtype)
    d = _rz_diag(angles, dtype)
    return jnp.stack([one, one, d[0], d[1]])


def _rzz_diag(angles, dtype):
    t = angles[0]
    a, b = _expi(-t / 2, dtype), _expi(t / 2, dtype)
    return jnp.stack([a, b, b, a])


def _ising(pauli):
    """exp(-i t P⊗P / 2) = cos(t/2) I - i sin(t/2) P⊗P."""
    pp = np.kron(pauli, pauli)

    def matrix(angles, dtype):
        c, s = _cs(angles[0], dtype)
        return c.astype(dtype) * jnp.eye(4, dtype=dtype) - 1j * s.astype(dtype) * jnp.asarray(pp, dtype)

    return matrix


PAULI_MATRICES: dict[str, np.ndarray] = {
    "I": np.eye(2, dtype=np.complex128),
    "X": np.array([[0, 1], [1, 0]], dtype=np.complex128),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=np.complex128),
    "Z": np.diag([1.0, -1.0]).astype(np.complex128),
}
"""The one-qubit Pauli matrices (complex128 NumPy, read-only), the one table every module uses."""
for _m in PAULI_MATRICES.values():
    _m.setflags(write=False)

_X = PAULI_MATRICES["X"]
_Y = PAULI_MATRICES["Y"]
_Z = PAULI_MATRICES["Z"]
_I2 = PAULI_MATRICES["I"]
_SQ2 = 1 / np.sqrt(2)
_P0, _P1 = np.diag([1.0, 0.0]).astype(np.complex128), np.diag([0.0, 1.0]).astype(np.complex128)


def _rotation(generator):
    """``exp(-i t G / 2) = cos(t/2) I - i sin(t/2) G`` for an involution ``G``."""
    g = np.asarray(generator, np.complex128)
    eye = np.eye(g.shape[0], dtype=np.complex128)
    return (0.5, np.zeros_like(g), eye, -1j * g)


def _controlled_trig(trig):
    """``|0><0| (x) I + |1><1| (x) U(t)`` from ``U``'s trig form."""
    w, a, b, c = trig
    return (w, np.kron(_P0, _I2) + np.kron(_P1, a), np.kron(_P1, b), np.kron(_P1, c))

_ROWS = [
    GateSpec("i", 1, 0, "diagonal", _const(np.eye(2)), _const_diag([1, 1])),
    GateSpec("x", 1, 0, "permutation", _const(_X)),
    GateSpec("y", 1, 0, "permutation", _const(_Y)),
    GateSpec("z", 1, 0, "diagonal", _const(np.diag([1, -1])), _const_diag([1, -1])),
    GateSpec("h", 1, 0, "dense", _const(np.array([[1, 1], [1, -1]]) * _SQ2)),
    GateSpec("s", 1, 0, "diagonal", _const(np.diag([1, 1j])), _const_diag([1, 1j])),
    GateSpec("sdg", 1, 0, "diagonal", _const(np.diag([1, -1j])), _const_diag([1, -1j])),
    GateSpec("t", 1, 0, "diagonal", _const(np.diag([1, np.exp(1j * np.pi / 4)])),
             _const_diag([1, np.exp(1j * np.pi / 4)])),
    GateSpec("tdg", 1, 0, "diagonal", _const(np.diag([1, np.exp(-1j * np.pi / 4)])),
             _const_diag([1, np.exp(-1j * np.pi / 4)])),
    GateSpec("sx", 1, 0, "dense", _const(0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]))),
    GateSpec("rx", 1, 1, "dense", _rx, trig=_rotation(_X)),
    GateSpec("ry", 1, 1, "dense", _ry, trig=_rotation(_Y)),
    GateSpec("rz", 1, 1, "diagonal", _from_diag(_rz_diag), _rz_diag, trig=_rotation(_Z)),
    GateSpec("phase", 1, 1, "diagonal", _from_diag(_phase_diag), _phase_diag,
             trig=(1.0, _P0, _P1, 1j * _P1)),
    GateSpec("u3", 1, 3, "dense", _u3),
    GateSpec("cnot", 2, 0, "permutation",
             _const([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])),
    GateSpec("cy", 2, 0, "permutation", _const(np.block([[np.eye(2), np.zeros((2, 2))],
                                                         [np.zeros((2, 2)), _Y]]))),
    GateSpec("cz", 2, 0, "diagonal", _const(np.diag([1, 1, 1, -1])), _const_diag([1, 1, 1, -1])),
    GateSpec("swap", 2, 0, "permutation",
             _const([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])),
    GateSpec("iswap", 2, 0, "permutation",
             _const([[1, 0, 0, 0], [0, 0, 1j, 0], [0, 1j, 0, 0], [0, 0, 0, 1]])),
    GateSpec("crx", 2, 1, "dense", _controlled(_rx), trig=_controlled_trig(_rotation(_X))),
    GateSpec("cry", 2, 1, "dense", _controlled(_ry), trig=_controlled_trig(_rotation(_Y))),
    GateSpec("crz", 2, 1, "diagonal", _from_diag(_crz_diag), _crz_diag,
             trig=_controlled_trig(_rotation(_Z))),
    GateSpec("rxx", 2, 1, "dense", _ising(_X), trig=_rotation(np.kron(_X, _X))),
    GateSpec("ryy", 2, 1, "dense", _ising(_Y), trig=_rotation(np.kron(_Y, _Y))),
    GateSpec("rzz", 2, 1, "diagonal", _from_diag(_rzz_diag), _rzz_diag,
             trig=_rotation(np.kron(_Z, _Z))),
    GateSpec("ccx", 3, 0, "permutation",
             _const(np.block([[np.eye(6), np.zeros((6, 2))], [np.zeros((2, 6)), _X]]))),
]

GATES: dict[str, GateSpec] = {row.name: row for row in _ROWS}


def gate_spec(name: str) -> GateSpec:
    """The table row for ``name``; raises :class:`UnknownGateError` for unknown names."""
    try:
        return GATES[name]
    except KeyError:
        raise UnknownGateError(
            f"unknown gate {name!r}; known gates: {', '.join(sorted(GATES))}"
        ) from None


def _checked(name: str, angles):
    """The table row of ``name`` and ``angles`` as a tuple of its ``n_angles`` angles."""
    spec = gate_spec(name)
    try:
        angles = tuple(angles)
    except TypeError:
        angles = (angles,)
    if len(angles) != spec.n_angles:
        raise ParameterError(
            f"gate {name!r} takes {spec.n_angles} angle(s), got {len(angles)}: {angles!r}")
    return spec, angles


def default_dtype():
    """The complex dtype of the enabled precision: complex128 when ``jax_enable_x64`` is
    on, else complex64."""
    return jnp.complex128 if jax.config.read("jax_enable_x64") else jnp.complex64


def gate_matrix(name: str, angles=(), dtype=None):
    """The ``(2**k, 2**k)`` matrix of gate ``name`` at real ``angles`` (radians, exactly
    ``GATES[name].n_angles`` of them, else ``ParameterError``). ``dtype``: a complex dtype;
    ``None`` (default) follows the enabled precision (:func:`default_dtype`: complex128
    when ``jax_enable_x64`` is on, complex64 otherwise)."""
    spec, angles = _checked(name, angles)
    return spec.matrix_fn(angles, default_dtype() if dtype is None else dtype)


def gate_diagonal(name: str, angles=(), dtype=None):
    """The ``(2**k,)`` diagonal of a diagonal gate ``name`` (angles and ``dtype`` as
    :func:`gate_matrix`)."""
    spec, angles = _checked(name, angles)
    if spec.diag_fn is None:
        raise UnknownGateError(f"gate {name!r} is not diagonal (kind {spec.kind!r})")
    return spec.diag_fn(angles, default_dtype() if dtype is None else dtype)
