"""Gradient inversion: reconstruct a client's input and label from the gradient it shared.

Modules, one job each:

* ``objective``: the shared gradient, its checks, iDLG labels, the matching distance;
* ``restarts``: optimisers, fixed-length and pooled restarts, worker threads, the
  cross-worker stop signal;
* ``attack``: the attack (``invert``, ``InversionResult``), for a ``qjr.qml.VQC`` or any
  differentiable ``loss(params, x, y)``;
* ``analytic``: the exact trigonometric solve (``analytic_invert``).

Encoding periodicity and spectra (``encoding_period``, ``encoding_spectrum``,
``circular_error``, ``encoded_fidelity``, ``fourier_tower_encoding``) live in
``qjaxrob.qml.encodings`` and are re-exported here. The scaling study is
``qjaxrob.experiments.inversion_scaling``.
"""

from qjaxrob.attacks.inversion.analytic import AnalyticResult, analytic_invert
from qjaxrob.attacks.inversion.attack import InversionResult, invert
from qjaxrob.attacks.inversion.objective import (
    DISTANCES,
    check_grads,
    gradient_distance,
    infer_label,
    shared_gradient,
)
from qjaxrob.attacks.inversion.restarts import (
    MIN_SHARE,
    OPTIMIZERS,
    default_workers,
    match_gradients,
)
from qjaxrob.qml.encodings import (
    circular_error,
    encoded_fidelity,
    encoding_period,
    encoding_spectrum,
    fourier_tower_encoding,
)

__all__ = [
    "DISTANCES",
    "MIN_SHARE",
    "OPTIMIZERS",
    "AnalyticResult",
    "InversionResult",
    "analytic_invert",
    "check_grads",
    "circular_error",
    "default_workers",
    "encoded_fidelity",
    "encoding_period",
    "encoding_spectrum",
    "fourier_tower_encoding",
    "gradient_distance",
    "infer_label",
    "invert",
    "match_gradients",
    "shared_gradient",
]
