"""OpenQASM 2 and 3 in (``from_qasm``), OpenQASM 3 out (``to_qasm``, which writes
``unitary`` ops decomposed: see its docstring).

Parsing uses the reference parser of the OpenQASM project (``openqasm3[parser]``, extra
``qasm``). It reads OpenQASM 2 programs as they are (``OPENQASM 2.0; include
"qelib1.inc"; qreg/creg; measure q -> c; U; CX``); only OpenQASM 2's ``opaque`` has no
OpenQASM 3 form and is reported as unsupported. What ``from_qasm`` accepts:

* qubits: ``qreg``/``qubit`` registers, numbered in declaration order (the first
  register's qubit 0 is wire 0, the most significant bit), or physical qubits ``$k``
  (wire k) in a program that declares none; register broadcasting (``h q;``,
  ``cx a, b;``), indices, ranges and index sets;
* gates: every gate of ``qelib1.inc`` and ``stdgates.inc``, exactly (global phase
  included; ``gatelib.STANDARD_GATES``; both libraries are always known, ``include`` only
  checks the file name), and ``gate`` definitions, expanded. A definition whose name is a
  standard gate is checked against it numerically: if equal, the native gate is kept
  (so ``from_qasm(to_qasm(c)) == c``), otherwise the definition wins;
* angles: expressions in the ``input angle``/``input float`` parameters with constants
  (``pi``, ``tau``, ``euler``, ``const`` declarations): affine ones stay affine angles,
  others (``t * u``, ``sin(t)``, ``t / u``, ``t ** 2``, ``exp``, ``log``, ``sqrt``, ...)
  become angle expressions (``qjr.Expr``). OpenQASM 2's ``ln`` and ``^`` (power, read
  with OpenQASM 2's precedence) are understood.
  Parameters map to ``qjr.param(k)``, ``k`` their position among the ``input``
  declarations in program order; names listed in ``inputs=`` map to ``qjr.inp(j)`` in that
  order instead. ``gphase`` is kept exactly (see ``gatelib``);
* ignored: ``barrier``, ``pragma``, bit declarations, and measurements that nothing
  follows on the measured qubit (measure afterwards with ``qjr.probs``/``qjr.sample``).

Everything else raises ``ConversionError`` naming the line and the statement: malformed
text, unknown gates, undeclared names, unknown functions, division by a zero constant,
mid-circuit measurement,
``reset``, classical control (``if``, ``switch``), loops, gate modifiers, subroutines.
"""

from __future__ import annotations

import math
import re

import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from qjaxrob.errors import ConversionError, QjrError
from qjaxrob.ir import expressions
from qjaxrob.extras import require
from qjaxrob.interop.decompose import two_qubit, zyz
from qjaxrob.interop.gatelib import (
    CONSTANT_GATES,
    DEFINITIONS,
    STANDARD_GATES,
    Linear,
    Nonlinear,
    append_global_phase,
    append_primitive,
    expand_standard,
)

__all__ = ["from_qasm", "to_qasm"]

_CONSTANTS = {"pi": math.pi, "π": math.pi, "tau": math.tau, "τ": math.tau,
              "euler": math.e, "ℇ": math.e}
_FUNCTIONS = {"sin": math.sin, "cos": math.cos, "tan": math.tan, "arcsin": math.asin,
              "arccos": math.acos, "arctan": math.atan, "exp": math.exp, "log": math.log,
              "sqrt": math.sqrt}
_ALIASES = {"ln": "log"}  # OpenQASM 2's name
_BUILDERS = {"*": expressions.mul, "/": expressions.div, "**": expressions.power}
_KNOWN_INCLUDES = ("qelib1.inc", "stdgates.inc")
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_IGNORED = ("QuantumBarrier", "Pragma")
_REJECTED = {
    "QuantumReset": "reset is not supported",
    "BranchingStatement": "classical control (if) is not supported",
    "SwitchStatement": "classical control (switch) is not supported",
    "ForInLoop": "loops are not supported",
    "WhileLoop": "loops are not supported",
    "SubroutineDefinition": "subroutines are not supported",
    "ClassicalAssignment": "classical assignments are not supported",
    "DelayInstruction": "delay is not supported",
    "Box": "box is not supported",
}


def _parse(text: str):
    """The parsed program. OpenQASM 2's power ``^`` (OpenQASM 3's bitwise xor, with another
    precedence) is read as ``**``, which has OpenQASM 2's precedence and associativity."""
    parser = require("openqasm3.parser", "qasm", "from_qasm (the OpenQASM parser, openqasm3[parser])")
    code = _COMMENTS.sub("", text)
    if not code.strip():
        raise ConversionError("the OpenQASM program is empty (no statements)")
    if re.match(r"\s*OPENQASM\s+2(\.\d+)?\s*;", code):
        text = text.replace("^", "**")
    try:
        return parser.parse(text)
    except parser.QASM3ParsingError as exc:
        raise ConversionError(_parse_error_message(text, exc)) from exc


def _parse_error_message(text: str, exc: Exception) -> str:
    line, column, near = None, None, None
    cause = exc.__cause__
    recognition = cause.args[0] if cause is not None and cause.args else None
    token = getattr(recognition, "offendingToken", None)
    if token is not None:
        line, column, near = token.line, token.column, token.text
    match = re.match(r"L(\d+):C(\d+): (.*)", str(exc))
    if match:
        line, column, near = int(match[1]), int(match[2]), match[3]
    if line is None:
        return f"malformed OpenQASM: {exc}"
    source = text.splitlines()[line - 1].strip() if line <= len(text.splitlines()) else ""
    if source.startswith("opaque"):
        return f"line {line}: opaque gate declarations are not supported: {source!r}"
    return f"malformed OpenQASM at line {line}, column {column} near {near!r}: {source!r}"


def _dense(items, k: int) -> np.ndarray:
    """The ``2**k`` matrix of constant primitive items on wires ``0..k-1`` (wire 0 most
    significant), with global phases."""
    t = np.eye(2**k, dtype=complex).reshape((2,) * k + (2**k,))
    for item in items:
        if item[0] == "phase":
            t = t * np.exp(1j * item[1].const)
            continue
        if item[0] == "unitary":
            m, wires = np.asarray(item[1]), item[2]
        else:
            m = np.asarray(qjr.gate_matrix(item[1], [a.const for a in item[3]], jnp.complex64))
            wires = item[2]
        j = len(wires)
        t = np.tensordot(m.reshape((2,) * 2 * j), t, axes=(list(range(j, 2 * j)), list(wires)))
        t = np.moveaxis(t, list(range(j)), list(wires))
    return t.reshape(2**k, 2**k)


class _Converter:
    """Walks the parsed program, collecting ``(line, item)`` primitives."""

    def __init__(self, text: str, inputs: tuple):
        self.lines = text.splitlines()
        self.inputs = inputs
        self.registers: dict[str, list[int]] = {}
        self.n_declared = 0
        self.max_physical = -1
        self.globals: dict[str, Linear] = {}
        self.n_params = 0
        self.gates: dict = {}
        self.native_ok: dict[str, bool] = {}
        self.measured: dict[int, int] = {}
        self.items: list = []
        self.expanding: list[str] = []

    # ---- errors ----------------------------------------------------------------------
    def fail(self, node, message: str):
        line = node.span.start_line if getattr(node, "span", None) else None
        if line is None:
            raise ConversionError(message)
        source = self.lines[line - 1].strip() if line <= len(self.lines) else ""
        raise ConversionError(f"line {line}: {message}: {source!r}")

    # ---- expressions -------------------------------------------------------------------
    def value(self, node, env) -> Linear:
        kind = type(node).__name__
        if kind in ("IntegerLiteral", "FloatLiteral"):
            return Linear(float(node.value))
        if kind == "Identifier":
            if node.name in env:
                return env[node.name]
            if node.name in _CONSTANTS:
                return Linear(_CONSTANTS[node.name])
            self.fail(node, f"unknown name {node.name!r} (declare parameters with "
                            f"'input angle {node.name};')")
        if kind == "UnaryExpression" and node.op.name == "-":
            return -self.value(node.expression, env)
        if kind == "BinaryExpression" and node.op.name in ("+", "-", "*", "/", "**"):
            lhs, rhs = self.value(node.lhs, env), self.value(node.rhs, env)
            op = node.op.name
            if op == "+":
                return lhs + rhs
            if op == "-":
                return lhs - rhs
            if op == "/" and rhs.is_const and rhs.const == 0.0:
                self.fail(node, "division by zero in an angle expression")
            if not (isinstance(lhs, Nonlinear) or isinstance(rhs, Nonlinear)):
                if op == "*" and (lhs.is_const or rhs.is_const):
                    return rhs.scale(lhs.const) if lhs.is_const else lhs.scale(rhs.const)
                if op == "/" and rhs.is_const:
                    return lhs.scale(1.0 / rhs.const)
                if op == "**" and lhs.is_const and rhs.is_const:
                    return self.evaluate(node, "**", pow, lhs.const, rhs.const)
            return self.nonlinear(node, _BUILDERS[op], lhs, rhs)
        if kind == "FunctionCall":
            name = _ALIASES.get(node.name.name, node.name.name)
            if name not in _FUNCTIONS:
                self.fail(node, f"unknown function {name!r} in an angle expression "
                                f"(known: {', '.join(_FUNCTIONS)})")
            args = [self.value(a, env) for a in node.arguments]
            if len(args) != 1:
                self.fail(node, f"{name}() takes one argument, got {len(args)}")
            if not args[0].is_const:
                return self.nonlinear(node, getattr(expressions, name), args[0])
            return self.evaluate(node, name, _FUNCTIONS[name], args[0].const)
        if kind == "BinaryExpression":
            self.fail(node, f"operator {node.op.name!r} has no meaning on angles")
        self.fail(node, f"unsupported expression ({kind})")

    def nonlinear(self, node, builder, *args) -> Nonlinear:
        """A non-affine angle (``qjr.Expr``) from ``Linear``/``Nonlinear`` operands."""
        try:
            return Nonlinear(builder(*(a.angle() for a in args)))
        except QjrError as exc:
            self.fail(node, str(exc))

    def evaluate(self, node, name: str, function, *args) -> Linear:
        """``function(*args)`` as a constant; a math error or a non-finite or complex result
        fails naming the statement."""
        call = f"{args[0]!r} ** {args[1]!r}" if name == "**" else f"{name}({args[0]!r})"
        try:
            result = function(*args)
        except (ArithmeticError, ValueError) as exc:
            self.fail(node, f"cannot evaluate {call} ({exc})")
        if isinstance(result, complex) or not math.isfinite(result):
            self.fail(node, f"{call} = {result!r} is not a finite real angle")
        return Linear(float(result))

    def integer(self, node, env) -> int:
        v = self.value(node, env)
        if not v.is_const or v.const != int(v.const):
            self.fail(node, "expected a constant integer")
        return int(v.const)

    # ---- qubit operands ----------------------------------------------------------------
    def operand(self, node, qubit_env) -> list[int]:
        if qubit_env is not None:
            if type(node).__name__ != "Identifier" or node.name not in qubit_env:
                self.fail(node, "gate bodies may only use the gate's own qubit arguments")
            return [qubit_env[node.name]]
        name = node.name.name if type(node).__name__ == "IndexedIdentifier" else node.name
        if name.startswith("$"):
            wire = int(name[1:])
            self.max_physical = max(self.max_physical, wire)
            return [wire]
        if name not in self.registers:
            self.fail(node, f"unknown qubit register {name!r}")
        reg = self.registers[name]
        if type(node).__name__ == "Identifier":
            return list(reg)
        element = node.indices[0] if len(node.indices) == 1 else None
        if element is None or (isinstance(element, list) and len(element) != 1):
            self.fail(node, "only one-dimensional qubit indices are supported")
        out = []
        for index in (element if isinstance(element, list) else [element]):
            out.extend(reg[i] for i in self.index_values(index, len(reg)))
        return out

    def index_values(self, index, size: int) -> list[int]:
        kind = type(index).__name__
        if kind == "RangeDefinition":
            start = 0 if index.start is None else self.integer(index.start, self.globals)
            end = size - 1 if index.end is None else self.integer(index.end, self.globals)
            step = 1 if index.step is None else self.integer(index.step, self.globals)
            values = list(range(start, end + (1 if step > 0 else -1), step))
        elif kind == "DiscreteSet":
            values = [self.integer(v, self.globals) for v in index.values]
        else:
            values = [self.integer(index, self.globals)]
        for v in values:
            if not -size <= v < size:
                self.fail(index, f"qubit index {v} out of range for a register of size {size}")
        return [v % size for v in values]

    # ---- gates ---------------------------------------------------------------------------
    def gate(self, node, env, qubit_env, line: int) -> list:
        if node.modifiers:
            self.fail(node, "gate modifiers (ctrl @, inv @, pow @) are not supported")
        name = node.name.name
        args = tuple(self.value(a, env) for a in node.arguments)
        operands = [self.operand(q, qubit_env) for q in node.qubits]
        if name in self.gates:
            definition = self.gates[name]
            n_args, n_qubits = len(definition.arguments), len(definition.qubits)
        elif name in STANDARD_GATES:
            n_qubits, n_args = STANDARD_GATES[name][:2]
        else:
            self.fail(node, f"unknown or unsupported gate {name!r}")
        if len(args) != n_args or len(operands) != n_qubits:
            self.fail(node, f"gate {name!r} takes {n_args} angle(s) and {n_qubits} qubit(s), "
                            f"got {len(args)} and {len(operands)}")
        width = max(len(o) for o in operands)
        if any(len(o) not in (1, width) for o in operands):
            self.fail(node, "registers of different sizes cannot be broadcast together")
        out = []
        for i in range(width):
            wires = tuple(o[0] if len(o) == 1 else o[i] for o in operands)
            if qubit_env is None:
                for w in wires:
                    if w in self.measured:
                        self.fail(node, f"qubit (wire {w}) is used after its measurement at "
                                        f"line {self.measured[w]}; mid-circuit measurement "
                                        "is not supported")
            out.extend(self.call(name, wires, args, line))
        return out

    def call(self, name: str, wires: tuple, args: tuple, line: int) -> list:
        if name in self.gates and not self.is_native(name):
            definition = self.gates[name]
            env = dict(self.globals_const())
            env.update({a.name: v for a, v in zip(definition.arguments, args)})
            qubit_env = {q.name: w for q, w in zip(definition.qubits, wires)}
            if name in self.expanding:
                self.fail(definition, f"gate {name!r} is defined in terms of itself")
            self.expanding.append(name)
            try:
                return self.body(definition.body, env, qubit_env, line)
            finally:
                self.expanding.pop()
        return expand_standard(name, wires, args)

    def body(self, statements, env, qubit_env, line) -> list:
        out = []
        for stmt in statements:
            kind = type(stmt).__name__
            if kind == "QuantumGate":
                out.extend(self.gate(stmt, env, qubit_env, line))
            elif kind == "QuantumPhase" and not stmt.qubits and not stmt.modifiers:
                out.append(("phase", self.value(stmt.argument, env)))
            elif kind not in _IGNORED:
                self.fail(stmt, f"unsupported statement in a gate body ({kind})")
        return out

    def globals_const(self):
        return {k: v for k, v in self.globals.items() if v.is_const}

    def is_native(self, name: str) -> bool:
        """Whether a user definition of a standard gate's name equals the standard gate
        (checked at two random angle settings, up to 1e-5)."""
        if name not in STANDARD_GATES:
            return False
        if name not in self.native_ok:
            definition = self.gates[name]
            k, n_args = STANDARD_GATES[name][:2]
            ok = len(definition.qubits) == k and len(definition.arguments) == n_args
            rng = np.random.default_rng(0)
            for _ in range(2 if ok else 0):
                args = tuple(Linear(float(a)) for a in rng.uniform(-3, 3, n_args))
                env = dict(self.globals_const())
                env.update({a.name: v for a, v in zip(definition.arguments, args)})
                qubit_env = {q.name: i for i, q in enumerate(definition.qubits)}
                mine = _dense(self.body(definition.body, env, qubit_env, 0), k)
                ref = _dense(expand_standard(name, tuple(range(k)), args), k)
                ok = ok and np.allclose(mine, ref, atol=1e-5)
            self.native_ok[name] = ok
        return self.native_ok[name]

    # ---- statements ------------------------------------------------------------------------
    def statement(self, stmt):
        kind = type(stmt).__name__
        line = stmt.span.start_line if stmt.span else 0
        if kind == "Include":
            if stmt.filename not in _KNOWN_INCLUDES:
                self.fail(stmt, f"cannot include {stmt.filename!r}; known: qelib1.inc, stdgates.inc")
        elif kind == "QubitDeclaration":
            size = 1 if stmt.size is None else self.integer(stmt.size, self.globals)
            if stmt.qubit.name in self.registers:
                self.fail(stmt, f"qubit register {stmt.qubit.name!r} declared twice")
            self.registers[stmt.qubit.name] = list(range(self.n_declared, self.n_declared + size))
            self.n_declared += size
        elif kind == "ClassicalDeclaration":
            if type(stmt.type).__name__ != "BitType":
                self.fail(stmt, "classical variables are not supported (use const or input)")
            if type(stmt.init_expression).__name__ == "QuantumMeasurement":
                self.measure(stmt.init_expression.qubit, line)
        elif kind == "ConstantDeclaration":
            value = self.value(stmt.init_expression, self.globals_const())
            self.globals[stmt.identifier.name] = value
        elif kind == "IODeclaration":
            self.io(stmt)
        elif kind == "QuantumGateDefinition":
            self.gates[stmt.name.name] = stmt
            self.native_ok.pop(stmt.name.name, None)
        elif kind == "QuantumGate":
            self.items.extend((line, item) for item in self.gate(stmt, self.globals, None, line))
        elif kind == "QuantumPhase":
            if stmt.qubits or stmt.modifiers:
                self.fail(stmt, "gphase with modifiers or qubits is not supported")
            self.items.append((line, ("phase", self.value(stmt.argument, self.globals))))
        elif kind == "QuantumMeasurementStatement":
            self.measure(stmt.measure.qubit, line)
        elif kind in _REJECTED:
            self.fail(stmt, _REJECTED[kind])
        elif kind not in _IGNORED:
            self.fail(stmt, f"unsupported statement ({kind})")

    def measure(self, operand, line: int):
        for w in self.operand(operand, None):
            self.measured.setdefault(w, line)

    def io(self, stmt):
        name = stmt.identifier.name
        if stmt.io_identifier.name == "output":
            if type(stmt.type).__name__ != "BitType":
                self.fail(stmt, "only bit outputs are supported")
            return
        if type(stmt.type).__name__ not in ("AngleType", "FloatType"):
            self.fail(stmt, "inputs must be of type angle or float")
        if name in self.globals:
            self.fail(stmt, f"{name!r} declared twice")
        if name in self.inputs:
            self.globals[name] = Linear.var("inp", self.inputs.index(name))
        else:
            self.globals[name] = Linear.var("param", self.n_params)
            self.n_params += 1

    def circuit(self) -> qjr.Circuit:
        if self.max_physical >= 0 and self.n_declared:
            raise ConversionError("the program mixes physical qubits ($k) and declared registers")
        n = max(self.n_declared, self.max_physical + 1)
        if n == 0:
            raise ConversionError("the program declares no qubits")
        c = qjr.Circuit(n)
        for line, item in self.items:
            try:
                c = append_global_phase(c, item[1]) if item[0] == "phase" else append_primitive(c, item)
            except QjrError as exc:
                source = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
                raise ConversionError(f"line {line}: {exc}: {source!r}") from exc
        return c


def from_qasm(text: str, *, inputs=()) -> qjr.Circuit:
    """The ``qjr.Circuit`` of an OpenQASM 2 or 3 program (see the module docstring).

    Args:
        text: the program (a string).
        inputs: names of ``input`` declarations to map to data inputs ``qjr.inp(j)``
            (``j`` = position in this sequence); every other ``input`` becomes
            ``qjr.param(k)``, ``k`` counting those in declaration order.

    Raises:
        ConversionError: malformed or unsupported program; the message names the line.
        MissingDependencyError: ``openqasm3[parser]`` is not installed.
    """
    if not isinstance(text, str):
        raise qjr.errors.QjrTypeError(f"from_qasm expects the program as a str, got {type(text).__name__}")
    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    program = _parse(text)
    conv = _Converter(text, inputs)
    for stmt in program.statements:
        conv.statement(stmt)
    missing = [name for name in inputs if name not in conv.globals]
    if missing:
        raise ConversionError(f"inputs {missing} are not declared with 'input' in the program")
    return conv.circuit()


# ---- export ---------------------------------------------------------------------------------
_QASM_NAMES = {"i": "id", "phase": "p", "cnot": "cx", "u3": "U"}
_STDGATES = ("ch", "cswap")  # constant library gates stdgates.inc defines itself
_DEFINITIONS = {
    "iswap": "gate iswap a, b { s a; s b; h a; cx a, b; cx b, a; h b; }",
    "rxx": "gate rxx(t) a, b { h a; h b; cx a, b; rz(t) b; cx a, b; h a; h b; }",
    "ryy": ("gate ryy(t) a, b { sdg a; sdg b; h a; h b; cx a, b; rz(t) b; cx a, b; "
            "h a; h b; s a; s b; }"),
    "rzz": "gate rzz(t) a, b { cx a, b; rz(t) b; cx a, b; }",
    **{k: v for k, v in DEFINITIONS.items() if k not in _STDGATES},
}
_NEEDS = {"c4x": ("c3x", "c3sqrtx")}  # definitions that call other definitions


def _fmt(angles) -> str:
    return f"({', '.join(a if isinstance(a, str) else repr(float(a)) for a in angles)})" \
        if angles else ""


_SYMBOLS = {"add": "+", "mul": "*", "div": "/", "pow": "**"}


def _angle_text(a, where: str) -> str:
    """OpenQASM 3 text of an angle: ``p_k`` is ``params[k]``, ``x_j`` is ``x[j]``."""
    if isinstance(a, float) or a.source == "const":
        value = a if isinstance(a, float) else float(a.offset)
        return f"({value!r})" if value < 0 else repr(value)   # -2.0 ** t is -(2.0 ** t)
    if a.source in ("param", "inp"):
        text = f"{'p' if a.source == 'param' else 'x'}_{a.index}"
        if a.scale != 1.0:
            text = f"{float(a.scale)!r} * {text}"
        if a.offset:
            text = f"{text} + {float(a.offset)!r}"
        return text if text.isidentifier() else f"({text})"   # an operand of / or ** too
    args = [_angle_text(b, where) for b in a.args]
    if a.op in _SYMBOLS:
        return f"({args[0]} {_SYMBOLS[a.op]} {args[1]})"
    if a.op == "neg":
        return f"(-{args[0]})"
    if a.op not in _FUNCTIONS:
        raise ConversionError(f"{where}: the angle {a} uses {a.op}, which is not an OpenQASM 3 "
                              f"function (those are {', '.join(_FUNCTIONS)})")
    return f"{a.op}({args[0]})"


def _unitary(matrix: np.ndarray, wires: tuple, where: str) -> tuple[list, float]:
    """``(statements, phase)`` writing a constant unitary: a library gate if it is one
    (:data:`gatelib.CONSTANT_GATES`), else ZYZ (one qubit) or KAK (two qubits)."""
    for name, m in CONSTANT_GATES.items():
        if m.shape == matrix.shape and np.allclose(m, matrix, rtol=0.0, atol=1e-12):
            return [(name, wires, ())], 0.0
    if len(wires) == 1:
        theta, phi, lam, alpha = zyz(matrix)
        return [("u3", wires, (theta, phi, lam))], alpha
    if len(wires) == 2:
        steps, gamma = two_qubit(matrix)
        return [(name, tuple(wires[i] for i in w), a) for name, w, a in steps], gamma
    raise ConversionError(
        f"{where}: a {len(wires)}-qubit unitary has no OpenQASM form here: only one- and "
        "two-qubit unitaries are decomposed (ZYZ, KAK), and this matrix is no library gate; "
        "decompose it into gates of at most two qubits first")


def to_qasm(circuit: qjr.Circuit) -> str:
    """An OpenQASM 3 program for a circuit (``include "stdgates.inc"``, one register
    ``qubit[n] q``, ``q[k]`` = wire k).

    Gates outside stdgates.inc (``iswap``, ``rxx``, ``ryy``, ``rzz`` and the qelib1.inc
    gates of ``gatelib.DEFINITIONS``) get ``gate`` definitions, which ``from_qasm`` reads
    back as the native gates. ``unitary`` ops are written as the library gate they equal,
    else decomposed: one qubit as ``U`` (ZYZ), two qubits as ``U``, ``rxx``, ``ryy``,
    ``rzz``, ``U`` (KAK); their global phases are summed into one ``gphase`` at the end.
    Wider unitaries are refused (with the reason).

    Traced angles are written as expressions of ``input float p_k`` (``params[k]``,
    ``k < c.n_params``, declared in order) and ``input float x_j`` (``x[j]``), so
    ``from_qasm(text, inputs=[f"x_{j}" for j in range(c.n_inputs)])`` reads them back;
    angle expressions use ``+ - * / **`` and OpenQASM's ``sin cos tan arcsin arccos arctan
    exp log sqrt`` (``sinh``/``cosh``/``tanh`` have no OpenQASM form and are refused).

    ``Repeat`` blocks are unrolled, so ``from_qasm(to_qasm(c))`` equals ``c.unroll()``
    (op for op without unitaries and with affine angles of one source each; as an
    operator, phase included, otherwise). Constants are written with ``repr`` (shortest
    exact round trip). Raises ``ConversionError`` for noise channels, cut marks and
    unitaries of 3+ qubits that are no library gate.
    """
    if not isinstance(circuit, qjr.Circuit):
        raise qjr.errors.QjrTypeError(f"to_qasm expects a qjr.Circuit, got {type(circuit).__name__}")
    body, used, phase = [], set(), 0.0
    for i, op in enumerate(circuit.unroll().ops):
        where = f"op {i} ({op.name} on wires {op.wires})"
        if op.is_channel:
            raise ConversionError(f"{where}: noise channels have no OpenQASM form")
        if op.is_marker or op.cut:
            raise ConversionError(f"{where}: cut marks have no OpenQASM form")
        if op.name == "unitary":
            gates, alpha = _unitary(op.matrices[0].array, op.wires, where)
            phase += alpha
        elif not op.is_constant:
            gates = [(op.name, op.wires, tuple(_angle_text(a, where) for a in op.angles))]
        else:
            gates = [(op.name, op.wires, tuple(float(a.offset) for a in op.angles))]
        for name, wires, angles in gates:
            used.update((name,) + _NEEDS.get(name, ()))
            body.append(f"{_QASM_NAMES.get(name, name)}{_fmt(angles)} "
                        f"{', '.join(f'q[{w}]' for w in wires)};")
    if phase:
        body.append(f"gphase({float(math.remainder(phase, 2 * math.pi))!r});")
    header = ["OPENQASM 3.0;", 'include "stdgates.inc";']
    header += [text for name, text in _DEFINITIONS.items() if name in used]
    header += [f"input float p_{k};" for k in range(circuit.n_params)]
    header += [f"input float x_{j};" for j in range(circuit.n_inputs)]
    header.append(f"qubit[{circuit.n_qubits}] q;")
    return "\n".join(header + body) + "\n"
