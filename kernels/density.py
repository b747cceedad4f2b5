"""Density-matrix kernels on ``(2,)*2n`` tensors (row axes 0..n-1, column axes n..2n-1).

A unitary U acts as rho -> U rho U^dagger: U on the row axes and conj(U) on the column
axes, reusing the statevector kernels. A channel acts as rho -> sum_i K_i rho K_i^dagger.
No ``4**n x 4**n`` superoperator is ever formed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qjaxrob.kernels.dense import apply_matrix
from qjaxrob.kernels.structured import apply_diagonal

__all__ = [
    "apply_matrix_density", "apply_diagonal_density", "apply_kraus", "density_diagonal",
    "density_pauli_expval",
]


def _cols(wires, n: int):
    return tuple(w + n for w in wires)


def apply_matrix_density(rho, matrix, wires):
    """``U rho U^dagger`` for the ``(2**k, 2**k)`` matrix U on ``wires`` of ``rho``."""
    n = rho.ndim // 2
    rho = apply_matrix(rho, matrix, wires)
    return apply_matrix(rho, jnp.conj(matrix), _cols(wires, n))


def apply_diagonal_density(rho, diag, wires):
    """``D rho D^dagger`` for the diagonal gate with ``(2**k,)`` diagonal D on ``wires``."""
    n = rho.ndim // 2
    rho = apply_diagonal(rho, diag, wires)
    return apply_diagonal(rho, jnp.conj(diag), _cols(wires, n))


def apply_kraus(rho, kraus, wires):
    """``sum_i K_i rho K_i^dagger`` for stacked Kraus operators ``kraus`` of shape
    ``(m, 2**k, 2**k)`` on ``wires``."""
    terms = jax.vmap(lambda k: apply_matrix_density(rho, k, wires))(kraus)
    return jnp.sum(terms, axis=0)


def density_diagonal(rho):
    """The real diagonal of ``rho`` as a ``(2,)*n`` tensor of probabilities."""
    n = rho.ndim // 2
    dim = 2**n
    return jnp.real(jnp.diagonal(rho.reshape(dim, dim))).reshape((2,) * n)


def density_pauli_expval(rho, letters: str, wires):
    """``Tr(P rho)`` (real) for the Pauli string ``letters`` on ``wires``."""
    from qjaxrob.kernels.pauli import apply_pauli

    n = rho.ndim // 2
    dim = 2**n
    prho = apply_pauli(rho, letters, wires).reshape(dim, dim)
    return jnp.real(jnp.trace(prho))
