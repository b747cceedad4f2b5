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

Wire 0 is the most significant bit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.circuit import Circuit, inp
from qjaxrob.errors import ParameterError

__all__ = [
    "Encoding", "angle_encoding", "dense_angle_encoding", "iqp_encoding",
    "amplitude_encoding", "reuploading",
]

_AXES = ("x", "y", "z")


@dataclass(frozen=True)
class Encoding:
    """A feature map: ``circuit`` reads ``features(x)`` through its ``qjr.inp`` angles.

    Attributes:
        kind: ``"angle"``, ``"dense_angle"``, ``"iqp"`` or ``"amplitude"``.
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
        if self.kind == "amplitude" and not isinstance(x, jax.core.Tracer):
            norm = float(np.linalg.norm(np.asarray(x, dtype=np.float64)))
            if not np.isfinite(norm) or norm <= 0.0:
                raise ParameterError(
                    f"amplitude encoding needs a finite, non-zero vector, got norm {norm!r} "
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
    c = Circuit(n)
    offset = 0
    for k in range(n):
        size = 2**k
        for i in range(size):
            c = c.ry(k, inp(offset + i))
            if k:
                # the bit that flips between gray(i) and gray(i+1), cyclically
                bit = (_gray(i) ^ _gray((i + 1) % size)).bit_length() - 1
                c = c.cnot(k - 1 - bit, k)
        offset += size
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
        size = 2**k
        m = np.array([[(-1) ** bin(j & _gray(i)).count("1") for i in range(size)]
                      for j in range(size)], dtype=np.float64)
        out.append(jnp.asarray(m.T / size, theta.dtype) @ theta)
    return jnp.concatenate(out)


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
