"""Interoperability: OpenQASM, Qiskit and PennyLane circuits in; qjaxrob as a PennyLane device.

* ``from_qasm(text, inputs=())`` / ``to_qasm(circuit)``: OpenQASM 2 and 3 (extra ``qasm``);
* ``from_qiskit(qc, inputs=())``: a Qiskit ``QuantumCircuit`` (extra ``qiskit``);
  Qiskit qubit k becomes wire k, so the flat statevectors differ by a bit reversal;
* ``qjaxrob.interop.primitives.Estimator`` / ``Sampler``: Qiskit's V2 primitives on
  qjaxrob (imported on their own: the module needs Qiskit at import);
* ``from_pennylane(tape_or_qfunc, *args, wires=None, **kwargs)``: a PennyLane tape or
  quantum function (extra ``pennylane``), returning ``(circuit, params)``;
* ``qml.device("qjaxrob.qubit", wires=n)``: the PennyLane device
  (``qjaxrob.interop.device.QjaxrobQubit``, registered as a PennyLane plugin).

The peers are imported only when a converter runs, so ``import qjaxrob.interop`` works
without them; a missing extra raises ``qjaxrob.errors.MissingDependencyError``.
"""

from qjaxrob.interop.pennylane import from_pennylane
from qjaxrob.interop.qasm import from_qasm, to_qasm
from qjaxrob.interop.qiskit import from_qiskit

__all__ = ["from_pennylane", "from_qasm", "from_qiskit", "to_qasm"]
