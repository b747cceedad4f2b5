"""Quantum machine learning: encodings, ansatze, models, training, data, landscape diagnostics.

Submodules: ``encodings`` (feature maps as ``Encoding`` = circuit + input transform),
``ansatze`` (trainable templates built with ``Circuit.repeat``), ``models`` (the
``equinox`` VQC), ``train`` (``optax`` step, ``fit``, ``.npz`` checkpoints), ``data``
(bundled and synthetic datasets; the scikit-learn ones need scikit-learn), ``landscape``
(barren-plateau diagnostics).
"""

from qjaxrob.qml import data, landscape
from qjaxrob.qml.ansatze import (
    boundary_crossings,
    hardware_efficient,
    mps,
    strongly_entangling,
    tree_tensor_network,
)
from qjaxrob.qml.encodings import (
    Encoding,
    amplitude_encoding,
    angle_encoding,
    dense_angle_encoding,
    iqp_encoding,
    reuploading,
)
from qjaxrob.qml.landscape import fit_decay, gradient_variance, variance_scaling
from qjaxrob.qml.models import VQC, make_vqc
from qjaxrob.qml.train import evaluate, fit, load_checkpoint, save_checkpoint, train_step

__all__ = [
    "Encoding", "VQC", "amplitude_encoding", "angle_encoding", "boundary_crossings", "data",
    "dense_angle_encoding", "evaluate", "fit", "fit_decay", "gradient_variance",
    "hardware_efficient", "iqp_encoding", "landscape", "load_checkpoint", "make_vqc", "mps",
    "reuploading", "save_checkpoint", "strongly_entangling", "train_step",
    "tree_tensor_network", "variance_scaling",
]
