"""Low-level state-update kernels on ``(2,)*n`` tensors (installed as ``qjaxrob.kernels``).

Kernels are trusting: they do no validation, act on one example (batch with ``jax.vmap``),
and never build ``2**n x 2**n`` matrices. Axis ``k`` of a state tensor is wire ``k`` (wire 0
is the most significant bit of the flat basis index). Matrices act on their wires in the
order given: the first wire is the most significant bit of the matrix index.
"""

from qjaxrob.kernels.dense import apply_matrix
from qjaxrob.kernels.pauli import apply_pauli, pauli_expval
from qjaxrob.kernels.structured import apply_diagonal

__all__ = ["apply_matrix", "apply_diagonal", "apply_pauli", "pauli_expval"]
