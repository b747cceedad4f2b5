"""Compatibility path: the forward walk moved to :mod:`qjaxrob.sim.engine` and the values
read off its tensors to :mod:`qjaxrob.sim.measure`; this module re-exports the names
``qjaxrob.engine`` offered before the move."""

from qjaxrob.sim.engine import (  # noqa: F401
    channel_kraus,
    density_op,
    evolve,
    final_tensor,
    prepare_ops,
    product_state,
    statevector_op,
    zero_state,
)
from qjaxrob.lower.pipeline import product_prefix  # noqa: F401
from qjaxrob.sim.measure import (  # noqa: F401
    BATCHED_TERMS,
    coefficients,
    observable_value,
    observable_values,
    term_values,
)
