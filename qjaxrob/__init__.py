"""qjaxrob: a differentiable JAX quantum-circuit simulator for adversarial robustness
studies of distributed quantum machine learning.

Wire 0 is the most significant bit of a basis index: ``i = sum_k b_k 2**(n-1-k)``.
"""

from qjaxrob import errors
from qjaxrob.circuit import Angle, Circuit, inp, param
from qjaxrob.gates import GATES, gate_matrix
from qjaxrob.observables import I, PauliSum, X, Y, Z, pauli
from qjaxrob.simulate import density_matrix, expval, probs, sample, statevector

from qjaxrob import qml  # noqa: E402  (imports the layers above)
from qjaxrob import cutting  # noqa: E402
from qjaxrob import noise  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Angle", "Circuit", "GATES", "cutting", "I", "PauliSum", "X", "Y", "Z",
    "density_matrix", "errors", "expval", "gate_matrix", "inp", "param", "pauli",
    "noise", "probs", "qml", "sample", "statevector",
]
