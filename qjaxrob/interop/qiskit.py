"""Qiskit ``QuantumCircuit`` in: ``from_qiskit(qc, inputs=())`` (extra ``qiskit``).

**Bit order.** Qiskit qubit ``k`` (``qc.find_bit(q).index``) becomes qjaxrob wire ``k``,
so gates, controls and observables keep their labels (``Z`` on Qiskit qubit 2 is
``qjr.Z(2)``). Qiskit counts qubit 0 as the *least* significant bit of a basis index,
qjaxrob wire 0 as the *most* significant, so the flat vectors are bit-reversed images::

    qjr.statevector(from_qiskit(qc)) == Statevector(qc).reverse_qargs().data

(likewise ``probs`` vs ``Statevector.probabilities()``). Matrices Qiskit gives in its
order (``UnitaryGate``, gates without a qjaxrob form) are placed on the reversed wire
tuple, which is the same operator.

**Parameters.** ``qc.parameters`` (Qiskit's order: sorted by name, ``ParameterVector``
elements by index) minus those named in ``inputs`` become ``qjr.param(k)`` in that
order; ``inputs`` (``Parameter`` objects or names) become ``qjr.inp(j)`` in the given
order. Gate angles may be any ``ParameterExpression``: affine ones (``2*a - b + 0.3``;
sums of several parameters are split exactly, see ``gatelib``) stay affine angles, any
other (``ZZFeatureMap``'s ``2(pi - x0)(pi - x1)``, ``a*b``, ``sin(a)``, powers, ``exp``,
``log``, ...) becomes a qjaxrob angle expression (``qjr.Expr``, walked through
``sympify()``); a function without a qjaxrob form (``Abs``, ``sign``, ``conjugate``)
raises ``ConversionError`` naming it.

Gates: Qiskit's standard names with an exact qjaxrob form (``gatelib.STANDARD_GATES``),
then any gate with constant parameters through its matrix, then any gate through its
``definition``; ``global_phase`` is kept exactly. ``PauliEvolutionGate(H, t)`` is the exact
``exp(-i t H)`` (not its product-formula ``definition``): through its matrix for a bound
``t``, one exponential per term when ``t`` is a parameter and the terms commute, and
refused when they do not. ``barrier`` is ignored, final
measurements are dropped (nothing may follow on a measured qubit); ``reset``, control
flow, ``delay`` and anything else raise ``ConversionError`` naming the instruction and
its index in ``qc.data``.
"""

from __future__ import annotations

import numbers

import numpy as np

import qjaxrob as qjr
from qjaxrob.errors import ConversionError, QjrError, QjrTypeError
from qjaxrob.extras import require
from qjaxrob.interop.gatelib import (
    STANDARD_GATES,
    Linear,
    Nonlinear,
    append_global_phase,
    append_primitive,
    expand_standard,
)

__all__ = ["from_qiskit"]

_IGNORED = ("barrier",)


def _import_qiskit():
    qiskit = require("qiskit", "qiskit", "from_qiskit")
    return qiskit, require("qiskit.circuit", "qiskit", "from_qiskit").ParameterExpression


def _linear(value, slots: dict, expression_type, where: str) -> Linear | Nonlinear:
    """A ``Linear`` (affine fast path) or ``Nonlinear`` (any other expression) from a
    number or a Qiskit ``ParameterExpression``."""
    if not isinstance(value, expression_type):
        if isinstance(value, numbers.Real) or (np.ndim(value) == 0 and np.isrealobj(value)):
            return Linear(float(value))
        raise ConversionError(f"{where}: angle {value!r} is not a real number")
    out = Linear(0.0)
    zero = {p: 0.0 for p in value.parameters}
    for p in value.parameters:
        try:
            coeff = value.gradient(p)
        except (RuntimeError, TypeError, ValueError):   # Qiskit cannot differentiate it
            return Nonlinear(_expression(value, slots, where))
        if isinstance(coeff, expression_type) and coeff.parameters:
            return Nonlinear(_expression(value, slots, where))
        out = out + Linear.var(*slots[p]).scale(_real(coeff, value, where))
    return out + Linear(_real(value.bind(zero) if zero else value, value, where))


def _real(number, value, where: str) -> float:
    """``number`` (a coefficient or the constant of ``value``) as a float; a complex one
    raises naming the angle."""
    number = complex(number)
    if number.imag:
        raise ConversionError(f"{where}: angle {value} is complex ({number} in it); "
                              "gate angles are real")
    return number.real


# sympy function class name -> qjaxrob angle function
_FUNCTIONS = {
    "sin": qjr.sin, "cos": qjr.cos, "tan": qjr.tan, "asin": qjr.arcsin, "acos": qjr.arccos,
    "atan": qjr.arctan, "sinh": qjr.sinh, "cosh": qjr.cosh, "tanh": qjr.tanh, "exp": qjr.exp,
    "log": qjr.log,
}


def _expression(value, slots: dict, where: str):
    """The qjaxrob ``Expr`` of a non-affine ``ParameterExpression`` (walked through its
    ``sympify()`` tree: sums, products, powers, constants, the functions above)."""
    tree = value.sympify()
    if tree is NotImplemented:
        raise ConversionError(f"{where}: angle {value} has no symbolic form to convert")
    names = {p.name: slot for p, slot in slots.items()}

    def walk(node):
        if node.is_Symbol:
            source, index = names[node.name]
            return qjr.param(index) if source == "param" else qjr.inp(index)
        if node.is_number:             # any constant (pi, sin(2), I, ...)
            number = complex(node)
            if number.imag:
                raise ConversionError(f"{where}: angle {value} has the complex constant {node}")
            return number.real
        name = type(node).__name__
        args = [walk(a) for a in node.args]
        try:
            if node.is_Add:
                return sum(args[1:], args[0])
            if node.is_Mul:
                out = args[0]
                for a in args[1:]:
                    out = out * a
                return out
            if node.is_Pow:
                return args[0] ** args[1]
            if name in _FUNCTIONS and len(args) == 1:
                return _FUNCTIONS[name](args[0])
        except QjrError as exc:
            raise ConversionError(f"{where}: angle {value}: {exc}") from exc
        raise ConversionError(f"{where}: angle {value} uses {name}, which has no qjaxrob "
                              f"angle form (supported: + - * / ** and {sorted(_FUNCTIONS)})")

    return walk(tree)


def _slots(qc, inputs) -> dict:
    """Parameter -> ("param", k) or ("inp", j), in the documented order."""
    by_name = {p.name: p for p in qc.parameters}
    chosen = []
    for item in inputs:
        key = item if isinstance(item, str) else getattr(item, "name", None)
        if key not in by_name:
            raise ConversionError(f"input {item!r} is not a parameter of the circuit "
                                  f"(parameters: {sorted(by_name)})")
        chosen.append(by_name[key])
    slots = {p: ("inp", j) for j, p in enumerate(chosen)}
    rest = [p for p in qc.parameters if p not in slots]
    slots.update({p: ("param", k) for k, p in enumerate(rest)})
    return slots


class _Walker:
    def __init__(self, expression_type, slots):
        self.expression_type = expression_type
        self.slots = slots
        self.items: list = []
        self.measured: dict[int, str] = {}

    def circuit(self, qc, wires: list[int], prefix: str):
        phase = _linear(qc.global_phase, self.slots, self.expression_type, f"{prefix}global phase")
        if not (phase.is_const and phase.const == 0.0):
            self.items.append((f"{prefix}global phase", ("phase", phase)))
        for i, instruction in enumerate(qc.data):
            op = instruction.operation
            qubits = tuple(wires[qc.find_bit(q).index] for q in instruction.qubits)
            where = f"{prefix}instruction {i} ({op.name} on qubits {qubits})"
            self.instruction(op, qubits, where)

    def instruction(self, op, qubits, where: str):
        name = op.name
        if name in _IGNORED:
            return
        if name == "measure":
            for w in qubits:
                self.measured.setdefault(w, where)
            return
        for w in qubits:
            if w in self.measured:
                raise ConversionError(f"{where}: qubit {w} is used after its measurement "
                                      f"({self.measured[w]}); mid-circuit measurement is not supported")
        if getattr(op, "blocks", ()) or name in ("reset", "delay") or op.num_clbits:
            raise ConversionError(f"{where}: {name!r} is not supported (no reset, delay, "
                                  "classical control or control flow)")
        if name == "PauliEvolution":
            self.pauli_evolution(op, qubits, where)
            return
        params = tuple(op.params)
        spec = STANDARD_GATES.get(name)
        if spec is not None and spec[:2] == (len(qubits), len(params)):
            angles = tuple(_linear(p, self.slots, self.expression_type, where) for p in params)
            self.items.extend((where, item) for item in expand_standard(name, qubits, angles))
            return
        constant = not any(isinstance(p, self.expression_type) and p.parameters for p in params)
        if constant and hasattr(op, "to_matrix"):
            try:
                matrix = np.asarray(op.to_matrix(), dtype=complex)
            except Exception:  # noqa: BLE001 - Qiskit raises CircuitError and others
                matrix = None
            if matrix is not None:
                self.items.append((where, ("unitary", matrix, tuple(reversed(qubits)))))
                return
        definition = getattr(op, "definition", None)
        if definition is None:
            raise ConversionError(f"{where}: gate {name!r} has no qjaxrob form, matrix or definition")
        self.circuit(definition, list(qubits), f"{where} -> ")

    def pauli_evolution(self, op, qubits, where: str):
        """``PauliEvolutionGate(H, t)`` means the exact ``exp(-i t H)`` (its ``definition`` is
        a product-formula approximation): a constant time is converted through the exact
        matrix; a parametric time needs commuting terms, each then its own exponential
        (exact, from the one-term gate's definition); otherwise it is refused."""
        operator = op.operator
        if isinstance(operator, list):
            operator = sum(operator[1:], operator[0])
        operator = operator.simplify(atol=0.0)
        time = op.params[0]
        if not (isinstance(time, self.expression_type) and time.parameters):
            matrix = np.asarray(op.to_matrix(), dtype=complex)
            self.items.append((where, ("unitary", matrix, tuple(reversed(qubits)))))
            return
        paulis = operator.paulis
        for i in range(len(paulis)):
            clash = np.flatnonzero(~paulis.commutes(paulis[i]))
            if clash.size:
                raise ConversionError(
                    f"{where}: PauliEvolutionGate with a parametric time {time} and "
                    f"non-commuting terms {paulis[i].to_label()} and "
                    f"{paulis[int(clash[0])].to_label()} has no exact qjaxrob form (its "
                    "definition is a product-formula approximation); bind the time first"
                )
        gate_type = type(op)
        for pauli, coeff in zip(paulis, operator.coeffs):
            term = gate_type(type(operator)([pauli], [coeff]), time=time)
            self.circuit(term.definition, list(qubits), f"{where} -> term {pauli.to_label()}: ")


def from_qiskit(qc, *, inputs=()) -> qjr.Circuit:
    """The ``qjr.Circuit`` of a Qiskit ``QuantumCircuit`` (conventions: module docstring).

    Args:
        qc: a ``qiskit.QuantumCircuit``.
        inputs: parameters (``Parameter`` or name) to map to data inputs ``qjr.inp(j)``.

    Raises:
        ConversionError: an instruction or angle without an exact qjaxrob form; the
            message names it and its index in ``qc.data``.
        MissingDependencyError: Qiskit is not installed.
    """
    qiskit, expression_type = _import_qiskit()
    if not isinstance(qc, qiskit.QuantumCircuit):
        raise QjrTypeError(f"from_qiskit expects a qiskit.QuantumCircuit, got {type(qc).__name__}")
    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    if qc.num_qubits == 0:
        raise ConversionError("the Qiskit circuit has no qubits")
    walker = _Walker(expression_type, _slots(qc, inputs))
    walker.circuit(qc, list(range(qc.num_qubits)), "")
    c = qjr.Circuit(qc.num_qubits)
    for where, item in walker.items:
        try:
            c = append_global_phase(c, item[1]) if item[0] == "phase" else append_primitive(c, item)
        except QjrError as exc:
            raise ConversionError(f"{where}: {exc}") from exc
    return c

