"""Data encodings: circuits over ``qjr.inp`` plus the map from a raw example to their inputs.

Circuit angles are affine in one input (``scale * x[j] + offset``), but some feature maps
need angles that are *nonlinear* in the raw features: products ``(pi - x_i)(pi - x_j)`` in
the ZZ feature map, arctangents of partial norms in amplitude encoding. So an
:class:`Encoding` is a pair:

* ``circuit`` -- a ``Circuit`` whose ``qjr.inp(j)`` read the *encoded* vector ``a``;
* ``features(x) -> a`` -- a pure, traceable, differentiable map from one raw example
  ``x`` (shape ``(n_features,)``) to ``a`` (shape ``(circuit.n_inputs,)``).

Simulate with ``qjr.statevector(enc.circuit, x=enc.features(x))``; gradients w.r.t. ``x``
flow through ``features``. For the linear encodings ``features`` is the identity.
An ``Encoding`` is frozen and hashable, so it can be static structure of a model.

**Periodicity** (``encoding_period``, ``encoding_spectrum``): Pauli-rotation encodings make
everything a model computes periodic in each feature: a gate ``exp(-i theta P / 2)`` with
``theta = s x + b`` repeats (up to a global phase) when ``x`` moves by ``2 pi / |s|``
(``4 pi / |s|`` for controlled rotations); the feature's period is the least common
multiple over the gates reading it. Expectation values are then trigonometric polynomials
with integer frequencies ``|k_j| <= K_j`` in units of ``2 pi / period_j`` (Schuld, Sweke,
Meyer, PRA 103, 032430, 2021). Distances between examples are circular modulo the period
(``circular_error``).

Wire 0 is the most significant bit.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.checks import check_positive_int, check_real
from qjaxrob.ir.circuit import Circuit, inp
from qjaxrob.errors import ParameterError, QjrTypeError
from qjaxrob.simulate import statevector

__all__ = [
    "Encoding", "angle_encoding", "dense_angle_encoding", "iqp_encoding",
    "amplitude_encoding", "state_encoding", "fourier_tower_encoding", "reuploading",
    "encoding_period", "encoding_spectrum", "circular_error", "encoded_fidelity",
]

_AXES = ("x", "y", "z")


@dataclass(frozen=True)
class Encoding:
    """A feature map: ``circuit`` reads ``features(x)`` through its ``qjr.inp`` angles.

    Attributes:
        kind: ``"angle"``, ``"dense_angle"``, ``"iqp"``, ``"amplitude"``, ``"state"`` or
            ``"fourier_tower"``.
        n_features: length of one raw example ``x``.
        circuit: the encoding circuit (no trainable parameters).
        pairs: for ``"iqp"``, the wire pairs coupled by ZZ terms.
    """

    kind: str
    n_features: int
    circuit: Circuit
    pairs: tuple = ()

    @property
    def n_qubits(self) -> int:
        return self.circuit.n_qubits

    def check(self, x) -> None:
        """Raises ``ParameterError`` if ``x`` is not one example of ``n_features`` values
        (and, for concrete amplitude inputs, if it cannot be normalised)."""
        shape = jnp.shape(x)
        if len(shape) != 1 or shape[0] != self.n_features:
            raise ParameterError(
                f"{self.kind} encoding expects one example of shape ({self.n_features},), "
                f"got shape {shape} (use jax.vmap to batch)"
            )
        if self.kind in ("amplitude", "state") and not isinstance(x, jax.core.Tracer):
            norm = float(np.linalg.norm(np.asarray(x, dtype=np.float64)))
            if not np.isfinite(norm) or norm <= 0.0:
                raise ParameterError(
                    f"{self.kind} encoding needs a finite, non-zero vector, got norm {norm!r} "
                    f"for x = {np.asarray(x)!r}"
                )

    def features(self, x):
        """The circuit inputs for one raw example ``x``, shape ``(circuit.n_inputs,)``."""
        self.check(x)
        x = jnp.asarray(x)
        if self.kind == "iqp":
            prods = [(jnp.pi - x[i]) * (jnp.pi - x[j]) for i, j in self.pairs]
            return jnp.concatenate([x, jnp.stack(prods)]) if prods else x
        if self.kind == "amplitude":
            return _mottonen_angles(x, self.n_qubits)
        if self.kind == "state":
            return _state_angles(x, self.n_qubits)
        return x


def _check_n(n_qubits):
    Circuit(n_qubits)  # validates type and range
    return int(n_qubits)


def _rotation(c: Circuit, axis: str, q: int, angle) -> Circuit:
    if axis not in _AXES:
        raise ParameterError(f"axis must be one of {_AXES}, got {axis!r}")
    return c.gate("r" + axis, q, angle)


def angle_encoding(n_qubits: int, *, axis: str = "y", scaling: float = 1.0) -> Encoding:
    """One feature per qubit: ``R_axis(scaling * x[q])`` on wire ``q`` (``n_features = n``).

    ``axis="y"`` gives the real product state ``prod_q (cos(s x_q/2)|0> + sin(s x_q/2)|1>)``.
    """
    n = _check_n(n_qubits)
    c = Circuit(n)
    for q in range(n):
        c = _rotation(c, axis, q, inp(q) * scaling)
    return Encoding("angle", n, c)


def dense_angle_encoding(n_qubits: int, *, scaling: float = 1.0) -> Encoding:
    """Two features per qubit: ``RY(s x[2q])`` then ``RZ(s x[2q+1])`` on wire ``q``
    (``n_features = 2n``): each qubit's Bloch vector has polar angle ``s x[2q]`` and
    azimuth ``s x[2q+1]``."""
    n = _check_n(n_qubits)
    c = Circuit(n)
    for q in range(n):
        c = c.ry(q, inp(2 * q) * scaling).rz(q, inp(2 * q + 1) * scaling)
    return Encoding("dense_angle", 2 * n, c)


def iqp_encoding(n_qubits: int, *, reps: int = 2, entangle: str = "all") -> Encoding:
    """The IQP / ZZ feature map of Havlicek et al. (Nature 567, 209, 2019), ``reps`` times:

    ``U(x) = [D(x) H^n]^reps`` with ``D(x) = exp(-i (sum_q x_q Z_q + sum_{(i,j)} phi_ij Z_i Z_j))``,
    ``phi_ij = (pi - x_i)(pi - x_j)``; realised as ``RZ(2 x_q)`` and ``RZZ(2 phi_ij)``.
    ``entangle``: ``"all"`` pairs ``i < j`` or ``"linear"`` (``(q, q+1)``). Havlicek's sign
    convention is ``exp(+i ...)``; ours is its complex conjugate map.
    """
    n = _check_n(n_qubits)
    if entangle == "all":
        pairs = tuple(itertools.combinations(range(n), 2))
    elif entangle == "linear":
        pairs = tuple((q, q + 1) for q in range(n - 1))
    else:
        raise ParameterError(f"entangle must be 'all' or 'linear', got {entangle!r}")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ParameterError(f"reps must be a positive int, got {reps!r}")
    block = Circuit(n)
    for q in range(n):
        block = block.h(q)
    for q in range(n):
        block = block.rz(q, inp(q) * 2.0)
    for k, (i, j) in enumerate(pairs):
        block = block.rzz(i, j, inp(n + k) * 2.0)
    return Encoding("iqp", n, Circuit.repeat(block, reps), pairs)


def _gray(i: int) -> int:
    return i ^ (i >> 1)


def _multiplexer(c: Circuit, gate: str, k: int, offset: int) -> Circuit:
    """A uniformly controlled ``gate`` (``"ry"`` or ``"rz"``) on wire ``k``, controls
    ``0..k-1``: ``2**k`` rotations reading ``inp(offset + i)`` interleaved with CNOTs in
    Gray-code order (``_multiplexer_angles`` gives the inputs)."""
    size = 2**k
    for i in range(size):
        c = c.gate(gate, k, inp(offset + i))
        if k:
            # the bit that flips between gray(i) and gray(i+1), cyclically
            bit = (_gray(i) ^ _gray((i + 1) % size)).bit_length() - 1
            c = c.cnot(k - 1 - bit, k)
    return c


def _multiplexer_angles(theta):
    """``alpha = M^T theta / 2**k``, ``M_{j,i} = (-1)^{popcount(j & gray(i))}``: the inputs
    of ``_multiplexer`` that rotate by ``theta[j]`` for control value ``j``."""
    size = theta.shape[0]
    m = np.array([[(-1) ** bin(j & _gray(i)).count("1") for i in range(size)]
                  for j in range(size)], dtype=np.float64)
    return jnp.asarray(m.T / size, theta.dtype) @ theta


def amplitude_encoding(n_qubits: int) -> Encoding:
    """Amplitude encoding ``|x> = sum_i x_i/||x|| |i>`` of a real vector of length ``2**n``.

    Mottonen et al. (QIC 5, 467, 2005) state preparation restricted to real amplitudes: on
    wire ``k`` a uniformly controlled ``RY`` (controls: wires ``0..k-1``) rotates by
    ``theta_{k,j}`` for control value ``j``. For ``k < n-1``, ``theta = 2 atan2(|x_{j1}|,
    |x_{j0}|)`` with ``|x_{jb}|`` the norm of the amplitudes whose first ``k+1`` bits are
    ``j, b``; on the last wire ``theta = 2 atan2(x_{j1}, x_{j0})``, which sets the signs.
    Each multiplexer is ``2**k`` RYs interleaved with CNOTs in Gray-code order, with angles
    ``alpha = M^T theta / 2**k``, ``M_{j,i} = (-1)^{popcount(j & gray(i))}``.
    ``features`` computes all ``2**n - 1`` angles from ``x`` (normalising it first), so
    the prepared state is differentiable w.r.t. ``x``. Cost: ``2**n - 1`` RY and
    ``2**n - 2`` CNOT gates.
    """
    n = _check_n(n_qubits)
    c, offset = Circuit(n), 0
    for k in range(n):
        c = _multiplexer(c, "ry", k, offset)
        offset += 2**k
    return Encoding("amplitude", 2**n, c)


def _safe_norm(v, axis):
    s = jnp.sum(v * v, axis=axis)
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


def _safe_atan2(b, a):
    zero = (a == 0) & (b == 0)
    return jnp.where(zero, 0.0, jnp.arctan2(b, jnp.where(zero, 1.0, a)))


def _mottonen_angles(x, n: int):
    """The ``2**n - 1`` multiplexer RY angles (level by level) preparing ``x/||x||``."""
    x = x / _safe_norm(x, 0)
    out = []
    for k in range(n):
        blocks = x.reshape(2**k, 2, -1)  # (control value j, bit b, rest)
        if k == n - 1:
            theta = 2 * _safe_atan2(blocks[:, 1, 0], blocks[:, 0, 0])
        else:
            norms = _safe_norm(blocks, 2)
            theta = 2 * _safe_atan2(norms[:, 1], norms[:, 0])
        out.append(_multiplexer_angles(theta))
    return jnp.concatenate(out)


def state_encoding(n_qubits: int) -> Encoding:
    """Any pure state of ``n`` qubits: ``x = (Re psi, Im psi)`` (``2 * 2**n`` features,
    normalised) prepares ``psi / ||psi||`` up to a global phase.

    The magnitudes ``|psi_i|`` are prepared as in :func:`amplitude_encoding` (``2**n - 1``
    uniformly controlled RYs), then the phases by a diagonal unitary of ``2**n - 1``
    uniformly controlled RZs (Mottonen et al., QIC 5, 467, 2005): on wire ``k`` the RZ for
    control value ``j`` turns by ``phi_{j1} - phi_{j0}``, and the pair's mean phase is passed
    up to wire ``k - 1`` (what is left on wire 0 is the global phase). ``features`` is
    differentiable wherever no amplitude is zero (a zero amplitude's phase gets gradient 0).
    For small ``n`` (the circuit has ``2 (2**n - 1)`` rotations)."""
    n = _check_n(n_qubits)
    c, offset = Circuit(n), 0
    for gate in ("ry", "rz"):
        for k in range(n):
            c = _multiplexer(c, gate, k, offset)
            offset += 2**k
    return Encoding("state", 2 * 2**n, c)


def _state_angles(x, n: int):
    """The RY then RZ multiplexer inputs preparing ``(x[:2**n] + i x[2**n:])``, normalised."""
    re, im = x[: 2**n], x[2**n:]
    mag = _safe_norm(jnp.stack([re, im]), 0)
    phase = _safe_atan2(im, re)
    rz = []
    for _ in range(n):
        pairs = phase.reshape(-1, 2)  # (control value j, target bit)
        rz.append(_multiplexer_angles(pairs[:, 1] - pairs[:, 0]))
        phase = pairs.mean(1)
    return jnp.concatenate([_mottonen_angles(mag, n)] + rz[::-1])


def fourier_tower_encoding(n_features: int, m: int, *, gamma: float = 2 * math.pi) -> Encoding:
    """The exponential "Fourier tower" of Kumar et al. (arXiv 2309.13002, Eq. 14-15): feature
    ``j`` on wires ``j m .. j m + m - 1`` as ``RX(5^(k-1) gamma x_j)``, ``k = 1..m``
    (``n_features * m`` qubits). Each feature's period is ``2 pi / gamma`` (1 for the paper's
    ``gamma = 2 pi``); a model output has the integer frequencies ``|k| <= (5^m - 1)/4`` in
    units of ``gamma``."""
    n = check_positive_int(n_features, "n_features")
    m = check_positive_int(m, "m")
    gamma = check_real(gamma, "gamma", low=0.0, low_open=True)
    c = Circuit(n * m)
    for j in range(n):
        for k in range(m):
            c = c.rx(j * m + k, inp(j) * (5.0**k * gamma))
    return Encoding("fourier_tower", n, c)


# ---- periodicity ------------------------------------------------------------------------------
# gate-angle periods (up to a global phase) of the gates whose angles may read an input
_PERIOD_2PI = ("rx", "ry", "rz", "phase", "rxx", "ryy", "rzz", "u3")
_PERIOD_4PI = ("crx", "cry", "crz")
_IDENTITY_FEATURES = ("angle", "dense_angle", "fourier_tower")


def _input_scales(encoding: Encoding):
    """Per feature, ``[(|scale|, gate period)]`` of every op reading it (``None`` when the
    encoding's inputs are not the raw features or a gate's period is unknown;
    ``ParameterError`` for an expression angle, which has no scale)."""
    if encoding.kind not in _IDENTITY_FEATURES:
        return None
    out = [[] for _ in range(encoding.n_features)]
    for op in encoding.circuit.unroll().ops:
        for a in op.angles:
            if a.source == "expr":
                raise ParameterError(
                    f"the period of the {encoding.kind} encoding is derived from affine input "
                    f"scales, but {op.name} on wires {op.wires} has the angle expression {a}"
                )
            if a.source != "inp":
                continue
            if op.name in _PERIOD_2PI:
                out[a.index].append((abs(a.scale), 2 * math.pi))
            elif op.name in _PERIOD_4PI:
                out[a.index].append((abs(a.scale), 4 * math.pi))
            else:
                return None
    return out


def _lcm(periods):
    """Least common multiple of positive real periods (nan if their ratios are not rational
    with denominators below 10^4). ``p_i = base * d_i / n_i`` in lowest terms, so the lcm is
    ``base * lcm(d_i) / gcd(n_i)``."""
    base = max(periods)
    fr = [Fraction(base / p).limit_denominator(10_000) for p in periods]
    if any(abs(float(f) - base / p) > 1e-9 * base / p for f, p in zip(fr, periods)):
        return math.nan
    return base * math.lcm(*[f.denominator for f in fr]) / math.gcd(*[f.numerator for f in fr])


def encoding_period(encoding: Encoding) -> np.ndarray:
    """Per-feature period of everything the model computes from ``x`` (``(n_features,)``;
    ``nan`` where the encoding is not periodic in that feature, e.g. IQP products or
    amplitude encoding, or a feature no gate reads)."""
    if not isinstance(encoding, Encoding):
        raise QjrTypeError(f"expected a qjr.qml.Encoding, got {type(encoding).__name__}")
    scales = _input_scales(encoding)
    if scales is None:
        return np.full(encoding.n_features, np.nan)
    return np.array([_lcm([p / s for s, p in sc if s > 0]) if any(s > 0 for s, _ in sc)
                     else np.nan for sc in scales])


def encoding_spectrum(encoding: Encoding) -> np.ndarray:
    """Per feature, the largest integer frequency ``K_j`` (in units of ``2 pi / period``) of
    any expectation value of the encoded state: the sum of the feature's gate scales."""
    period = encoding_period(encoding)
    scales = _input_scales(encoding)
    if scales is None or np.any(np.isnan(period)):
        raise ParameterError(
            f"the {encoding.kind} encoding is not a periodic Pauli-rotation encoding")
    return np.array([int(round(sum(s for s, _ in sc) * per / (2 * math.pi)))
                     for sc, per in zip(scales, period)])


def circular_error(x_rec, x_true, period):
    """``|x_rec - x_true|`` per feature modulo ``period`` (plain where ``period`` is nan)."""
    d = jnp.asarray(x_rec) - jnp.asarray(x_true)
    p = jnp.asarray(period, d.dtype)
    wrapped = jnp.abs(jnp.mod(d + p / 2, p) - p / 2)
    return jnp.where(jnp.isnan(p), jnp.abs(d), wrapped)


def encoded_fidelity(encoding: Encoding, x1, x2, *, dtype=jnp.complex128):
    """``|<psi(x1)|psi(x2)>|^2`` of the encoded states of two examples."""
    a = statevector(encoding.circuit, None, encoding.features(x1), dtype=dtype)
    b = statevector(encoding.circuit, None, encoding.features(x2), dtype=dtype)
    return jnp.abs(jnp.vdot(a, b)) ** 2


def reuploading(encoding: Encoding, block: Circuit, layers: int) -> Circuit:
    """Data re-uploading (Perez-Salinas et al., Quantum 4, 226, 2020): ``layers`` times
    ``encoding.circuit`` followed by the trainable ``block``, as one ``Circuit.repeat`` (one
    ``lax.scan``). Inputs are shared by all layers; layer ``l`` reads ``block``'s params at
    offset ``l * block.n_params``. Simulate with ``x=encoding.features(x)``."""
    if block.n_qubits != encoding.n_qubits:
        raise ParameterError(
            f"block has {block.n_qubits} qubits but the encoding has {encoding.n_qubits}"
        )
    return Circuit.repeat(encoding.circuit + block, layers)
