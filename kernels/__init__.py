"""Low-level state-update kernels on ``(2,)*n`` tensors (installed as ``qjaxrob.kernels``).

Kernels are trusting: they do no validation, act on one example (batch with ``jax.vmap``),
and never build ``2**n x 2**n`` matrices. Axis ``k`` of a state tensor is wire ``k`` (wire 0
is the most significant bit of the flat basis index). Matrices act on their wires in the
order given: the first wire is the most significant bit of the matrix index.

Modules: ``dense`` (k-qubit matrices, grouped views), ``structured`` (diagonal and
permutation gates), ``pauli`` (Pauli strings), ``density`` (density tensors), ``pallas``
(GPU variants of ``apply_matrix``/``apply_diagonal`` with the same signatures), ``inplace``
(the CPU lowering of ``dense``'s primitive as an in-place C++ kernel for large states).
"""

from qjaxrob.kernels import pallas
from qjaxrob.kernels.dense import apply_matrix, grouped_shape
from qjaxrob.kernels.inplace import in_place
from qjaxrob.kernels.density import (
    apply_diagonal_density,
    apply_kraus,
    apply_local,
    apply_local_const,
    apply_matrix_density,
    density_diagonal,
    density_pauli_expval,
    superoperator,
)
from qjaxrob.kernels.pauli import (apply_pauli, parity_signs, pauli_expval, sign_table,
                                   z_expval)
from qjaxrob.kernels.structured import (apply_diagonal, apply_permutation, monomial,
                                       permute_axis)

__all__ = [
    "apply_matrix", "apply_diagonal", "apply_permutation", "apply_pauli", "pauli_expval",
    "apply_matrix_density", "apply_diagonal_density", "apply_kraus", "density_diagonal",
    "density_pauli_expval", "grouped_shape", "monomial", "pallas", "parity_signs",
    "sign_table", "z_expval", "apply_local", "apply_local_const", "superoperator",
    "permute_axis", "in_place",
]
