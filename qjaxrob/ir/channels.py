"""Noise channels as Kraus sets, as functions of their (possibly traced) probability.

Conventions (Nielsen & Chuang section 8.3):

* ``depolarizing`` on k wires: rho -> (1-p) rho + p Tr_q(rho) (x) I/2^k. Kraus form: since
  4^-k sum_P P rho P = Tr_q(rho) (x) I/2^k over the 4^k Pauli strings P on those wires,
  K_I = sqrt(1 - p + p/4^k) I and K_P = sqrt(p/4^k) P for the 4^k - 1 others.
  (PennyLane's ``DepolarizingChannel(p')`` is ours with p = 4p'/3.)
* ``bit_flip``: (1-p) rho + p X rho X; ``phase_flip``: (1-p) rho + p Z rho Z.
* ``amplitude_damping(gamma)``: K0 = [[1,0],[0,sqrt(1-gamma)]], K1 = [[0,sqrt(gamma)],[0,0]].
* ``phase_damping(gamma)``: K0 = [[1,0],[0,sqrt(1-gamma)]], K1 = [[0,0],[0,sqrt(gamma)]].
* ``random_rotation(axis, sigma)``: E_theta[R rho R^dagger] with R = exp(-i theta A/2),
  A = n.sigma, theta ~ N(0, sigma^2). The cross terms are odd in theta and vanish, and
  E[cos^2(theta/2)] = (1 + e^{-sigma^2/2})/2, so the channel is
  (1-q) rho + q A rho A with q = (1 - e^{-sigma^2/2})/2.
* ``kraus``: any CPTP set, checked at construction: max |sum K^dagger K - I| <= KRAUS_ATOL.

Probabilities may be ``qjr.param(i)``/``qjr.inp(j)`` (traced, differentiable); constant
ones are checked to lie in [0, 1] at construction time. A traced level cannot be checked
before it exists, so inside ``jit`` it is **clamped** to the physical range: ``p`` is
replaced by ``clip(p, 0, 1)`` (``random_rotation``'s ``sigma`` needs no clamp: the channel
depends on ``sigma**2`` only). The clamped channel is the nearest physical channel of the
same family, so every output is a valid (CPTP, trace-one) state; the gradient w.r.t. a
level outside [0, 1] is zero, as for a projection onto the constraint (a NaN level stays
NaN). The gradient of a square root at p = 0 is infinite, so Kraus amplitudes use
sqrt(max(p, tiny)) to keep gradients finite.
"""

from __future__ import annotations

import itertools
import numbers

import jax.numpy as jnp
import numpy as np

from qjaxrob.errors import MatrixError, ParameterError, ProbabilityError
from qjaxrob.ir.gates import PAULI_MATRICES

__all__ = ["CHANNELS", "KRAUS_ATOL", "validate", "check_kraus", "rotation_axis", "kraus_set"]

KRAUS_ATOL = 1e-6
"""A Kraus set is accepted when max |sum_i K_i^dagger K_i - I| <= KRAUS_ATOL (elementwise)."""

CHANNELS = frozenset(
    {"depolarizing", "bit_flip", "phase_flip", "amplitude_damping", "phase_damping",
     "random_rotation", "kraus"}
)
_ONE_WIRE = CHANNELS - {"depolarizing", "kraus"}



def validate(name: str, n_wires: int, angles, meta) -> None:
    """Eager checks of a channel's static arguments (called by the Circuit builder)."""
    if name in _ONE_WIRE and n_wires != 1:
        raise ParameterError(f"channel {name!r} acts on one wire, got {n_wires} wires")
    for a in angles:
        if a.source == "expr":
            raise ParameterError(
                f"channel {name!r}'s noise level must be a number, qjr.param(i) or qjr.inp(j) "
                f"(affine), got the expression {a}"
            )
        if a.source != "const":
            continue
        if name == "random_rotation":
            if a.offset < 0:
                raise ProbabilityError(f"random_rotation sigma must be >= 0, got {a.offset}")
        elif not 0.0 <= a.offset <= 1.0:
            raise ProbabilityError(f"{name} probability must lie in [0, 1], got {a.offset}")


def rotation_axis(axis) -> tuple[float, float, float]:
    """A unit 3-vector from ``"x" | "y" | "z"`` or a nonzero real 3-vector."""
    if isinstance(axis, str):
        table = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
        if axis.lower() not in table:
            raise ParameterError(f"rotation axis must be 'x', 'y', 'z' or a 3-vector, got {axis!r}")
        return table[axis.lower()]
    v = np.asarray(axis, dtype=float)
    if v.shape != (3,) or not np.all(np.isfinite(v)) or np.linalg.norm(v) == 0:
        raise ParameterError(f"rotation axis must be a nonzero finite 3-vector, got {axis!r}")
    return tuple(float(t) for t in v / np.linalg.norm(v))


def check_kraus(ops, k: int) -> list[np.ndarray]:
    """Checks that ``ops`` is a CPTP Kraus set on k wires; returns the matrices."""
    if isinstance(ops, numbers.Number) or len(ops) == 0:
        raise MatrixError(f"kraus needs a non-empty sequence of matrices, got {ops!r}")
    dim = 2**k
    mats = []
    for i, m in enumerate(ops):
        m = np.asarray(m, dtype=np.complex128)
        if m.shape != (dim, dim):
            raise MatrixError(
                f"Kraus operator {i} on {k} wire(s) must have shape {(dim, dim)}, got {m.shape}"
            )
        mats.append(m)
    total = sum(m.conj().T @ m for m in mats)
    err = float(np.max(np.abs(total - np.eye(dim))))
    if not err <= KRAUS_ATOL:
        raise MatrixError(
            f"Kraus set is not trace preserving: max |sum K^dagger K - I| = {err:.3g} > {KRAUS_ATOL}"
        )
    return mats


def _sqrt(p, dtype):
    real = jnp.finfo(dtype).dtype
    p = jnp.asarray(p, real)
    return jnp.sqrt(jnp.maximum(p, jnp.finfo(real).tiny)).astype(dtype)


def _pauli_mix(p, pauli: np.ndarray, dtype):
    """Kraus set of (1-p) rho + p P rho P."""
    one = jnp.asarray(1.0, jnp.finfo(dtype).dtype)
    return jnp.stack([_sqrt(one - p, dtype) * jnp.eye(2, dtype=dtype),
                      _sqrt(p, dtype) * jnp.asarray(pauli, dtype)])


def kraus_set(name: str, n_wires: int, values, matrices, meta, dtype):
    """The ``(m, 2**k, 2**k)`` stacked Kraus operators of a channel at resolved ``values``."""
    real = jnp.finfo(dtype).dtype
    if name == "kraus":
        return jnp.stack([jnp.asarray(m.array, dtype) for m in matrices])
    p = jnp.asarray(values[0], real)
    if name != "random_rotation":
        p = jnp.clip(p, 0.0, 1.0)  # the physical range (module docs)
    if name == "bit_flip":
        return _pauli_mix(p, PAULI_MATRICES["X"], dtype)
    if name == "phase_flip":
        return _pauli_mix(p, PAULI_MATRICES["Z"], dtype)
    if name == "random_rotation":
        q = (1.0 - jnp.exp(-(p**2) / 2)) / 2
        a = sum(c * PAULI_MATRICES[s] for c, s in zip(meta, "XYZ"))
        return _pauli_mix(q, a, dtype)
    if name in ("amplitude_damping", "phase_damping"):
        zero, one = jnp.zeros((), dtype), jnp.ones((), dtype)
        k0 = jnp.stack([jnp.stack([one, zero]), jnp.stack([zero, _sqrt(1.0 - p, dtype)])])
        g = _sqrt(p, dtype)
        if name == "amplitude_damping":
            k1 = jnp.stack([jnp.stack([zero, g]), jnp.stack([zero, zero])])
        else:
            k1 = jnp.stack([jnp.stack([zero, zero]), jnp.stack([zero, g])])
        return jnp.stack([k0, k1])
    if name == "depolarizing":
        d2 = 4**n_wires
        strings = list(itertools.product("IXYZ", repeat=n_wires))
        mats = np.stack([_kron_all(PAULI_MATRICES[s] for s in word) for word in strings])
        weights = jnp.concatenate(
            [_sqrt(1.0 - p + p / d2, dtype)[None],
             jnp.broadcast_to(_sqrt(p / d2, dtype), (d2 - 1,))]
        )
        return weights[:, None, None] * jnp.asarray(mats, dtype)
    raise ParameterError(f"unknown channel {name!r}")


def _kron_all(mats) -> np.ndarray:
    out = np.eye(1)
    for m in mats:
        out = np.kron(out, m)
    return out
