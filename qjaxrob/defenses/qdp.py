"""Quantum differential privacy of noisy classifiers: (epsilon, delta) bounds.

Definition (Zhou & Ying, IEEE CSF 2017; Du et al., PRR 3, 023153, 2021): a channel ``E``
followed by a measurement with effects ``{M_k}`` is (epsilon, delta)-DP on
``eta``-neighbours if for all states ``rho, sigma`` with trace distance
``T(rho, sigma) = ||rho - sigma||_1 / 2 <= eta`` and every outcome ``k``:
``Tr(M_k E(rho)) <= e^epsilon Tr(M_k E(sigma)) + delta``.

* Global depolarizing ``rho -> (1-p) rho + p I/D`` on a ``D``-dimensional system:
  ``epsilon = ln(1 + eta D (1-p)/p)``, ``delta = 0`` (Du et al. 2021):
  :func:`depolarizing_epsilon`.
* Any channel and measurement (Guan, Fang, Huang, Ying, "Detecting violations of
  differential privacy for quantum algorithms", CCS 2023; toolbox Veri-Q/DP): with the
  Heisenberg-picture effects ``A_k = E^dagger(M_k)`` and
  ``kappa = max_k lambda_max(A_k) / lambda_min(A_k)``, the tight epsilon is
  ``ln(1 + eta (kappa - 1))`` (:func:`epsilon_from_effects`) and the tight delta for a
  given epsilon is ``max_k [eta lambda_max(A_k) - (e^epsilon + eta - 1) lambda_min(A_k)]^+``
  (:func:`delta_from_effects`). The worst pair is ``sigma = |v_min><v_min|``,
  ``rho = (1-eta) sigma + eta |v_max><v_max|`` of the maximising ``A_k``.

The effects of a circuit are computed numerically (:func:`channel_effects`) from its
Choi state, simulated with the density-matrix path: ``|Omega> = d^{-1/2} sum_i |i>_S |i>_R``
on ``2n`` qubits (system wires ``0..n-1``, reference wires ``n..2n-1``), ``J = (E (x) id)
(|Omega><Omega|)``, and ``<i|E^dagger(|k><k|)|j> = d J[k j, k i]``. So local depolarizing on
every qubit, random-rotation noise, amplitude damping or any Kraus channel get exact values
rather than closed forms. Cost: one ``2n``-qubit density-matrix simulation.

The epsilon also holds for sets of outcomes (the ratio of sums is at most the largest
ratio); the delta is the per-outcome one, which is what the Lecuyer et al. robustness
condition (:mod:`qjaxrob.defenses.certify`) needs.

Numerics: ``kappa`` is ``inf`` (no privacy, ``epsilon = inf``) when
``lambda_min <= 32 * machine-eps * lambda_max`` (the smallest eigenvalue cannot be told
apart from zero); in complex64 ``epsilon`` has a relative error of order
``1e-7 * kappa``, so use complex128 for large ``kappa``.

Every function is pure and composes with ``jax.jit`` / ``jax.vmap`` (e.g. over a noise
level given as ``qjr.inp(j)``); input checks run on concrete values only.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.ir import noise
from qjaxrob.checks import check_dtype, check_int, check_vector, check_wires
from qjaxrob.ir.circuit import Circuit
from qjaxrob.errors import MatrixError, ParameterError, ProbabilityError, QjrTypeError
from qjaxrob.simulate import density_matrix

__all__ = [
    "KAPPA_RTOL", "EFFECTS_RTOL", "check_effects", "effects_tolerance", "depolarizing_epsilon",
    "add_noise", "channel_effects", "kappa",
    "epsilon_from_kappa", "epsilon_from_effects", "delta_from_effects", "circuit_dp",
    "noise_dp", "NOISE_CONFIGS",
]

KAPPA_RTOL = 32
"""``lambda_min <= KAPPA_RTOL * eps(dtype) * lambda_max`` counts as singular (kappa = inf)."""

NOISE_CONFIGS = noise.NOISE_CHANNELS + ("global_depolarizing",)
"""Noise accepted by :func:`add_noise`: the one-wire channels of ``qjr.noise.insert`` and the
global depolarizing channel on all wires."""


def concrete(value):
    """``value`` as a NumPy array, or ``None`` when it is traced (checks are then skipped)."""
    if isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value)


def _check_range(value, name, low, high, low_open, exc=ParameterError):
    v = concrete(value)
    if v is None:
        return value
    if not np.issubdtype(v.dtype, np.number) or np.iscomplexobj(v):
        raise QjrTypeError(f"{name} must be real, got {value!r}")
    bad = ~np.isfinite(v) | (v > high) | ((v <= low) if low_open else (v < low))
    if np.any(bad):
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise exc(f"{name} must lie in {interval}, got {v[bad].ravel()[0]!r}")
    return value


def check_eta(eta):
    """``eta`` (trace-distance neighbourhood) in [0, 1]."""
    return _check_range(eta, "eta", 0.0, 1.0, False)


def depolarizing_epsilon(p, dim, eta=1.0):
    """Epsilon of the global depolarizing channel ``(1-p) rho + p I/dim`` followed by any
    measurement, on ``eta``-neighbours: ``ln(1 + eta * dim * (1-p) / p)`` (delta = 0).

    Source: Du, Hsieh, Liu, Tao, Liu, "Quantum noise protects quantum classifiers against
    adversaries", PRR 3, 023153 (2021); tight by Guan et al. (CCS 2023) since the worst
    effect is rank one, ``kappa = 1 + (1-p) dim / p``.

    Args:
        p: depolarizing probability in (0, 1] (scalar or array; may be traced).
        dim: Hilbert-space dimension ``D >= 2`` (``2**n`` for n qubits), an int.
        eta: trace-distance radius of the neighbourhood, in [0, 1].

    Returns:
        epsilon, same shape as ``p`` (broadcast with ``eta``).
    """
    dim = check_int(dim, "dim")
    if dim < 2:
        raise ParameterError(f"dim must be an int >= 2, got {dim}")
    _check_range(p, "depolarizing probability p", 0.0, 1.0, True, ProbabilityError)
    check_eta(eta)
    p = jnp.asarray(p)
    p = p if jnp.issubdtype(p.dtype, jnp.floating) else p.astype(float)
    return jnp.log1p(eta * dim * (1 - p) / p)


def add_noise(circuit: Circuit, channel: str, p, *, after: str = "end", axis=None) -> Circuit:
    """``circuit`` made noisy, for DP bounds and trade-off sweeps.

    Args:
        circuit: the (post-encoding) circuit.
        channel: one of ``NOISE_CONFIGS``: a one-wire channel of ``qjr.noise.insert``
            (``"depolarizing"``, ``"random_rotation"``, ...) or ``"global_depolarizing"``
            (``rho -> (1-p) rho + p I/2^n`` on all wires, ``4**n`` Kraus operators).
        p: noise level (``sigma`` in radians for ``"random_rotation"``): a float or an
            ``Angle`` such as ``qjr.inp(j)`` to sweep it under ``vmap``.
        after: ``"end"`` (one channel on every wire after the circuit, or the global channel)
            or ``"each_gate"`` / ``"each_layer"`` (``qjr.noise.insert`` placement; not for
            the global channel).
        axis: rotation axis, required for ``"random_rotation"`` only.
    """
    if not isinstance(circuit, Circuit):
        raise QjrTypeError(f"expected a qjr.Circuit, got {type(circuit).__name__}")
    if channel not in NOISE_CONFIGS:
        raise ParameterError(f"unknown noise {channel!r}; choose from {NOISE_CONFIGS}")
    n = circuit.n_qubits
    if channel == "global_depolarizing":
        if after != "end":
            raise ParameterError(f"global_depolarizing goes at the end, got after={after!r}")
        if axis is not None:
            raise ParameterError(f"axis is only for random_rotation, got axis={axis!r}")
        return circuit + Circuit(n).depolarizing(tuple(range(n)), p)
    if after in ("each_gate", "each_layer"):
        return noise.insert(circuit, channel, after, p=p, axis=axis)
    if after != "end":
        raise ParameterError(f"after must be 'end', 'each_gate' or 'each_layer', got {after!r}")
    return _noise_at_end(circuit, channel, p, axis)


def _noise_at_end(circuit, channel, p, axis):
    if (axis is None) == (channel == "random_rotation"):
        raise ParameterError(
            f"axis is required for random_rotation and only for it; got channel={channel!r}, "
            f"axis={axis!r}"
        )
    layer = Circuit(circuit.n_qubits)
    args = (axis, p) if axis is not None else (p,)
    for q in range(circuit.n_qubits):
        layer = getattr(layer, channel)(q, *args)
    return circuit + layer


def _measurement(n, wires, n_classes):
    wires = tuple(range(n)) if wires is None else check_wires(wires, n, "measured wire")
    if n_classes is not None:
        n_classes = check_int(n_classes, "n_classes", minimum=2)
        if n_classes > 2 ** len(wires):
            raise ParameterError(
                f"{n_classes} classes need >= {n_classes} outcomes, got wires {wires}"
            )
    return wires, n_classes


def channel_effects(channel: Circuit, params=None, x=None, *, wires=None, n_classes=None,
                    dtype=jnp.complex64):
    """Heisenberg-picture effects ``A_k = E^dagger(M_k)`` of a circuit ``E`` (gates and
    channels, applied to an arbitrary input state) and a computational-basis measurement.

    Args:
        channel: the circuit acting on the input state (e.g. the part of a classifier after
            its encoding, with noise).
        params, x: its parameters and inputs (e.g. a traced noise level ``qjr.inp(0)``).
        wires: measured wires (default all), ``wires[0]`` the most significant bit.
        n_classes: if given, outcome ``i`` counts for class ``i mod n_classes`` (the
            ``"probs"`` readout of ``qjr.qml.VQC``); the effects are the class sums.
        dtype: complex simulation dtype.

    Returns:
        ``(K, d, d)`` complex array, ``d = 2**n``, ``K = n_classes`` or ``2**len(wires)``;
        ``Tr(A_k rho)`` is the probability of outcome/class ``k`` on input state ``rho``.
    """
    if not isinstance(channel, Circuit):
        raise QjrTypeError(f"expected a qjr.Circuit, got {type(channel).__name__}")
    wires, n_classes = _measurement(channel.n_qubits, wires, n_classes)
    dt = check_dtype(dtype)
    real = np.finfo(dt).dtype
    params = check_vector(params, channel.n_params, "params", real)
    x = check_vector(x, channel.n_inputs, "x", real)
    return _effects(channel, params, x, wires, n_classes, dt)


def _effects(channel, params, x, wires, n_classes, dtype):
    return _group(_choi_effects(channel, params, x, dtype), channel.n_qubits, wires, n_classes)


@partial(jax.jit, static_argnames=("channel", "dtype"))
def _choi_effects(channel, params, x, dtype):
    """``(d, d, d)``: ``A_k`` for every computational-basis outcome ``k`` of all wires."""
    n = channel.n_qubits
    prep = Circuit(2 * n)
    for q in range(n):
        prep = prep.h(q).cnot(q, q + n)
    choi = density_matrix(Circuit(2 * n, prep.ops + channel.ops), params, x, dtype=dtype)
    d = 2**n
    j4 = choi.reshape(d, d, d, d)
    # A_k[i, j] = d J[k j, k i]
    return d * jnp.transpose(jnp.diagonal(j4, axis1=0, axis2=2), (2, 1, 0))


@partial(jax.jit, static_argnames=("n", "wires", "n_classes"))
def _group(full, n, wires, n_classes):
    """Full-basis effects summed onto the outcomes of ``wires`` (in that order), then onto
    classes ``outcome mod n_classes``."""
    d = full.shape[-1]
    full = full.reshape((2,) * n + (d, d))
    others = tuple(w for w in range(n) if w not in wires)
    eff = jnp.sum(full, axis=others) if others else full
    kept = sorted(wires)
    eff = jnp.transpose(eff, tuple(kept.index(w) for w in wires) + (len(wires), len(wires) + 1))
    eff = eff.reshape(2 ** len(wires), d, d)
    if n_classes is not None:
        groups = jnp.arange(eff.shape[0]) % n_classes
        eff = jax.ops.segment_sum(eff, groups, num_segments=n_classes)
    return eff


EFFECTS_RTOL = 256
"""Effects are accepted within ``EFFECTS_RTOL * d * eps(dtype)`` (``d`` the dimension) of
being Hermitian, PSD and summing to the identity (:func:`check_effects`)."""


def effects_tolerance(dtype, dim: int) -> float:
    """The absolute tolerance :func:`check_effects` allows for effects of this dtype."""
    dtype = np.dtype(dtype)
    real = np.finfo(dtype).dtype if np.issubdtype(dtype, np.inexact) else np.dtype(np.float64)
    return float(EFFECTS_RTOL * dim * np.finfo(real).eps)


def check_effects(effects):
    """``effects`` ``(K, d, d)`` as an array, checked to be a POVM when concrete.

    A POVM's effects are finite, Hermitian, positive semidefinite and sum to the identity;
    each is checked within :func:`effects_tolerance` of the effects' dtype (float32 /
    complex64 rounding passes, a sum of ``2 I`` or a negative eigenvalue does not), before
    any bound is computed from them. Traced effects (inside ``jit``/``vmap``) are not
    checked.

    Raises:
        ParameterError: wrong shape or a non-numeric dtype.
        MatrixError: not finite, not Hermitian, not PSD, or not summing to ``I``; the
            message names the effect and by how much it misses.
    """
    v = concrete(effects)
    effects = jnp.asarray(effects)
    if effects.ndim != 3 or effects.shape[1] != effects.shape[2] or effects.shape[0] < 1:
        raise ParameterError(f"effects must have shape (K, d, d), got {effects.shape}")
    if v is None:
        return effects
    if not np.issubdtype(v.dtype, np.number):
        raise ParameterError(f"effects must be numeric, got dtype {v.dtype}")
    d = v.shape[-1]
    tol = effects_tolerance(v.dtype, d)
    bad = ~np.isfinite(v)
    if np.any(bad):
        k = int(np.argwhere(bad)[0][0])
        raise MatrixError(f"effect {k} has a non-finite entry ({v[bad].ravel()[0]!r})")
    v = v.astype(np.complex128)
    skew = np.max(np.abs(v - np.conj(np.swapaxes(v, -1, -2))), axis=(1, 2))
    if np.any(skew > tol):
        k = int(np.argmax(skew))
        raise MatrixError(f"effect {k} is not Hermitian: |A - A^dagger| reaches {skew[k]:.3g} "
                          f"(tolerance {tol:.3g})")
    lam_min = np.linalg.eigvalsh((v + np.conj(np.swapaxes(v, -1, -2))) / 2)[:, 0]
    if np.any(lam_min < -tol):
        k = int(np.argmin(lam_min))
        raise MatrixError(f"effect {k} is not positive semidefinite: smallest eigenvalue "
                          f"{lam_min[k]:.3g} (tolerance {tol:.3g})")
    off = float(np.max(np.abs(v.sum(axis=0) - np.eye(d))))
    if off > tol:
        raise MatrixError(f"effects must sum to the identity (a POVM); the sum differs from I "
                          f"by {off:.3g} in some entry (tolerance {tol:.3g})")
    return effects


def _extreme_eigenvalues(effects):
    herm = (effects + jnp.conj(jnp.swapaxes(effects, -1, -2))) / 2
    lam = jnp.linalg.eigvalsh(herm)
    return lam[:, -1], lam[:, 0]


def kappa(effects):
    """``max_k lambda_max(A_k) / lambda_min(A_k)`` (Guan et al. 2023); ``inf`` when some
    ``A_k`` is singular to working precision (module docstring). Shape ``()``."""
    return _kappa(check_effects(effects))


@jax.jit
def _kappa(effects):
    lmax, lmin = _extreme_eigenvalues(effects)
    tiny = KAPPA_RTOL * jnp.finfo(lmax.dtype).eps * jnp.maximum(lmax, 0)
    singular = lmin <= tiny
    ratio = jnp.where(singular, jnp.inf, lmax / jnp.where(singular, 1.0, lmin))
    return jnp.max(ratio)


def epsilon_from_kappa(kappa_value, eta=1.0):
    """``ln(1 + eta (kappa - 1))`` (Guan et al., CCS 2023). ``kappa >= 1`` (may be inf)."""
    v = concrete(kappa_value)
    if v is not None and np.any(~(v >= 1.0)):
        raise ParameterError(f"kappa must be >= 1, got {kappa_value!r}")
    check_eta(eta)
    return jnp.log1p(eta * (jnp.asarray(kappa_value) - 1))


def epsilon_from_effects(effects, eta=1.0):
    """The tight epsilon ``ln(1 + eta (kappa - 1))`` of a channel + measurement given by its
    Heisenberg effects (:func:`channel_effects`). Source: Guan, Fang, Huang, Ying, CCS 2023."""
    return epsilon_from_kappa(kappa(effects), eta)


def delta_from_effects(effects, epsilon, eta=1.0):
    """The tight per-outcome delta for a given ``epsilon``:
    ``max_k [eta lambda_max(A_k) - (e^epsilon + eta - 1) lambda_min(A_k)]^+``
    (Guan, Fang, Huang, Ying, CCS 2023; Veri-Q/DP ``compute_delta``). ``epsilon >= 0``
    finite. Shape ``()``."""
    _check_range(epsilon, "epsilon", 0.0, np.inf, False)
    check_eta(eta)
    lmax, lmin = _extreme_eigenvalues(check_effects(effects))
    vals = eta * lmax - (jnp.exp(epsilon) + eta - 1) * jnp.maximum(lmin, 0)
    return jnp.maximum(jnp.max(vals), 0.0)


def circuit_dp(channel: Circuit, params=None, x=None, *, eta=1.0, epsilon=None, wires=None,
               n_classes=None, dtype=jnp.complex64):
    """``(epsilon, delta)`` of a circuit (acting on the input state) + computational-basis
    measurement, on ``eta``-neighbours.

    With ``epsilon=None``: the tight pure-DP ``(ln(1 + eta (kappa - 1)), 0)``; otherwise
    ``(epsilon, delta*(epsilon))``. Source: Guan, Fang, Huang, Ying, CCS 2023, with the
    effects from :func:`channel_effects` (``wires``, ``n_classes`` as there).
    """
    eff = channel_effects(channel, params, x, wires=wires, n_classes=n_classes, dtype=dtype)
    if epsilon is None:
        eps = epsilon_from_effects(eff, eta)
        return eps, jnp.zeros((), eps.dtype)
    delta = delta_from_effects(eff, epsilon, eta)
    return jnp.asarray(epsilon, delta.dtype), delta


def noise_dp(circuit: Circuit, channel: str, p, params=None, x=None, *, after="end", axis=None,
             eta=1.0, epsilon=None, wires=None, n_classes=None, dtype=jnp.complex64):
    """``(epsilon, delta)`` of ``circuit`` with noise ``channel`` at level ``p`` placed by
    :func:`add_noise`, then measured (:func:`circuit_dp`). Sources: Du et al., PRR 3,
    023153 (2021) for the noise-as-privacy construction; Guan et al., CCS 2023 for the tight
    bound; Huang et al., ICASSP 2023 (arXiv 2211.00887) for random-rotation noise.

    ``p`` may be ``qjr.inp(j)`` (then ``x`` carries the level, and this composes with
    ``jax.vmap`` over ``x``).
    """
    noisy = add_noise(circuit, channel, p, after=after, axis=axis)
    return circuit_dp(noisy, params, x, eta=eta, epsilon=epsilon, wires=wires,
                      n_classes=n_classes, dtype=dtype)

