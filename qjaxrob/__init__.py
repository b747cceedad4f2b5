"""qjaxrob: a differentiable JAX quantum-circuit simulator for adversarial robustness
studies of distributed quantum machine learning.

Wire 0 is the most significant bit of a basis index: ``i = sum_k b_k 2**(n-1-k)``.

``import qjaxrob`` loads the simulator core (circuits, simulation, cutting, noise). The
layers with heavier dependencies (``qml`` with equinox/optax/tqdm, and ``attacks``,
``federated``, ``defenses``, ``experiments``, ``interop``) load on first attribute access
(``qjr.qml``) or explicit import (``from qjaxrob import qml``), as ``jax.scipy`` does.
"""

import importlib

from qjaxrob import checks, errors
from qjaxrob.ir.circuit import Angle, Circuit, inp, param
from qjaxrob.ir.expressions import (
    Expr, arccos, arcsin, arctan, cos, cosh, exp, log, sin, sinh, sqrt, tan, tanh,
)
from qjaxrob.ir.gates import GATES, gate_matrix
from qjaxrob.ir.observables import I, PauliSum, X, Y, Z, pauli
from qjaxrob.simulate import density_matrix, expval, probs, sample, sharding_plan, statevector

from qjaxrob import cutting  # noqa: E402  (builds on the core above)
# the IR modules keep their flat names (qjr.circuit.Op, qjr.gates.GATES, qjr.noise.layer)
from qjaxrob.ir import channels, circuit, expressions, gates, noise, observables  # noqa: E402,F401

__version__ = "0.1.0"

_LAZY_SUBPACKAGES = ("qml", "attacks", "federated", "defenses", "experiments", "interop")
_LAZY_INTEROP = ("from_qasm", "to_qasm", "from_qiskit", "from_pennylane")


def __getattr__(name):
    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f"qjaxrob.{name}")
    if name in _LAZY_INTEROP:
        return getattr(importlib.import_module("qjaxrob.interop"), name)
    raise AttributeError(f"module 'qjaxrob' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBPACKAGES) | set(_LAZY_INTEROP))


__all__ = [
    "Angle", "Circuit", "Expr", "GATES", "arccos", "arcsin", "arctan", "cos", "cosh", "exp",
    "expressions", "log", "sin", "sinh", "sqrt", "tan", "tanh", "cutting", "I", "PauliSum", "X", "Y", "Z",
    "checks", "density_matrix", "errors", "expval", "gate_matrix", "inp", "param", "pauli",
    "noise", "probs", "qml", "sample", "sharding_plan", "statevector",
]
