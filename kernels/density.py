"""Density-matrix kernels on ``(2,)*2n`` tensors (row axes 0..n-1, column axes n..2n-1).

A unitary U acts as rho -> U rho U^dagger and a channel as rho -> sum_i K_i rho K_i^dagger.
Both go through *local* operators on a few axes of rho, never a ``4**n x 4**n`` matrix:

* one-qubit gates and channels: the local superoperator S = sum_i K_i (x) conj(K_i)
  (4 x 4) on the axes ``(q, q + n)``: one pass over rho;
* two-qubit gates: U on the row axes, then conj(U) on the column axes (two passes with 4
  terms per element, cheaper than one pass with 16 terms);
* two-qubit channels: the 16 x 16 local superoperator on 4 axes (one pass);
* diagonal gates: one elementwise multiply by d (x) conj(d);
* constant one-qubit superoperators (:func:`apply_local_const`, NumPy, known at trace
  time): linear combinations over their nonzero entries only (a one-qubit depolarizing
  channel has 6 of 16), one pass; its derivatives are the dense kernel's.

Local operators on up to 4 axes work on a reshaped view: rho is viewed as
``(pre_0, 2, pre_1, 2, ..., pre_k)`` with the k target axes as the size-2 dimensions. On 2
axes each output slice is an explicit linear combination of the 4 input slices, which XLA
fuses into one loop over rho (about the cost of a copy): the primitive of
:func:`qjaxrob.kernels.dense.apply_matrix`, whose transpose is the same kernel (plain
slices would transpose into pads and adds) and whose gradient w.r.t. the matrix is a
single contraction. On 3-4 axes the stacked slices go
through one small ``tensordot`` (the explicit 16 x 16 combination compiles slowly and its
gradient even more so). More axes fall back to ``tensordot`` on rho.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.kernels.dense import apply_matrix, grouped_slices, sort_wires, stack_slices
from qjaxrob.kernels.pauli import apply_pauli
from qjaxrob.kernels.structured import apply_diagonal

__all__ = [
    "apply_local", "apply_matrix_density", "apply_diagonal_density", "apply_kraus",
    "apply_local_const", "superoperator", "density_diagonal", "density_pauli_expval",
]

_MAX_LOCAL_AXES = 4


def _stacked(t, m, axes):
    """``m`` applied as one small ``tensordot`` over the stacked slices (its transpose is
    one contraction too, so gradients w.r.t. ``m`` compile and run cheaply)."""
    out = jnp.tensordot(m, jnp.stack(grouped_slices(t, axes)), axes=1)
    return stack_slices(list(out), len(axes)).reshape(t.shape)


def apply_local(t, m, axes):
    """Applies the ``(2**k, 2**k)`` matrix ``m`` to the distinct ``axes`` of the ``(2,)*N``
    tensor ``t`` (``axes[0]`` is the most significant bit of m's index). Differentiable
    (any order) in ``t`` and ``m``."""
    axes = tuple(int(a) for a in axes)
    k = len(axes)
    if k <= 2:
        return apply_matrix(t, m, axes)
    m, axes = sort_wires(m, axes)
    if k <= _MAX_LOCAL_AXES:
        return _stacked(t, m, axes)
    out = jnp.tensordot(m.reshape((2,) * (2 * k)), t, axes=(tuple(range(k, 2 * k)), axes))
    return jnp.moveaxis(out, tuple(range(k)), axes)


def _cols(wires, n: int):
    return tuple(w + n for w in wires)


def superoperator(kraus):
    """``S = sum_i K_i (x) conj(K_i)`` for stacked ``(m, d, d)`` Kraus operators, shape
    ``(d*d, d*d)``; ``S[(i, j), (k, l)] = sum_m K_m[i, k] conj(K_m[j, l])`` so that
    ``(K rho K^dagger)[i, j] = sum_kl S[(i, j), (k, l)] rho[k, l]``."""
    d = kraus.shape[-1]
    return jnp.einsum("mik,mjl->ijkl", kraus, jnp.conj(kraus)).reshape(d * d, d * d)


def apply_matrix_density(rho, matrix, wires):
    """``U rho U^dagger`` for the ``(2**k, 2**k)`` matrix U on ``wires`` of ``rho``."""
    n = rho.ndim // 2
    wires = tuple(wires)
    if len(wires) == 1:
        return apply_local(rho, jnp.kron(matrix, jnp.conj(matrix)), wires + _cols(wires, n))
    rho = apply_local(rho, matrix, wires)
    return apply_local(rho, jnp.conj(matrix), _cols(wires, n))


def apply_diagonal_density(rho, diag, wires):
    """``D rho D^dagger`` for the diagonal gate with ``(2**k,)`` diagonal D on ``wires``."""
    n = rho.ndim // 2
    wires = tuple(wires)
    return apply_diagonal(rho, jnp.kron(diag, jnp.conj(diag)), wires + _cols(wires, n))


def apply_kraus(rho, kraus, wires):
    """``sum_i K_i rho K_i^dagger`` for stacked Kraus operators ``kraus`` of shape
    ``(m, 2**k, 2**k)`` on ``wires``: one application of the local superoperator."""
    n = rho.ndim // 2
    wires = tuple(wires)
    return apply_local(rho, superoperator(kraus), wires + _cols(wires, n))


def _sparse_combined(t, m: np.ndarray, axes):
    """The constant ``m`` applied as linear combinations of the slices over its nonzero
    entries only (forward pass of :func:`apply_local_const`)."""
    s = grouped_slices(t, axes)
    outs = []
    for r in range(len(s)):
        terms = []
        for c, x in enumerate(s):
            v = complex(m[r, c])
            if v != 0:
                terms.append(x if v == 1 else v * x)
        outs.append(sum(terms[1:], terms[0]) if terms else jnp.zeros_like(s[0]))
    return stack_slices(outs, len(axes)).reshape(t.shape)


def apply_local_const(t, m: np.ndarray, axes):
    """:func:`apply_local` for a matrix known at trace time (NumPy ``(4, 4)`` on 2 distinct
    axes): linear combinations over its nonzero entries only, one pass; wider matrices go
    through :func:`apply_local`."""
    axes = tuple(int(a) for a in axes)
    if len(axes) != 2:
        return apply_local(t, jnp.asarray(m, t.dtype), axes)
    if axes[0] > axes[1]:
        m = m.reshape(2, 2, 2, 2).transpose(1, 0, 3, 2).reshape(4, 4)
        axes = axes[::-1]

    @jax.custom_jvp
    def apply(t):
        return _sparse_combined(t, m, axes)

    @apply.defjvp
    def apply_jvp(primals, tangents):
        # the tangent map is the same linear map as one slice_combine kernel, whose
        # transpose is one kernel too (the sparse slices' transpose is pads and adds)
        return apply(primals[0]), apply_matrix(tangents[0], jnp.asarray(m, t.dtype), axes)

    return apply(t)


def density_diagonal(rho):
    """The real diagonal of ``rho`` as a ``(2,)*n`` tensor of probabilities."""
    n = rho.ndim // 2
    dim = 2**n
    return jnp.real(jnp.diagonal(rho.reshape(dim, dim))).reshape((2,) * n)


def density_pauli_expval(rho, letters: str, wires):
    """``Tr(P rho)`` (real) for the Pauli string ``letters`` on ``wires``."""
    n = rho.ndim // 2
    dim = 2**n
    prho = apply_pauli(rho, letters, wires).reshape(dim, dim)
    return jnp.real(jnp.trace(prho))
