"""What the converters share: affine angle expressions and the standard gate library.

Other frameworks write angles such as ``theta + 2*phi - pi/4`` (affine in *several*
parameters), while a qjaxrob ``Angle`` is affine in one ``param``/``inp``. A
:class:`Linear` holds the general affine form; :func:`append_gate` splits a sum over
several parameters into consecutive gates when that is exact (rotations about one axis
compose additively: ``rz(a + b) = rz(a) rz(b)``, likewise every one-angle gate of the
table) and writes ``u3(t, p, l) = phase(p) ry(t) phase(l)`` (matrix product; exact,
no global phase) when its angles mix parameters; that keeps the affine fast path. Any
other angle (a product, ``sin``, ...) is a :class:`Nonlinear` holding a qjaxrob ``Expr``
(:mod:`qjaxrob.ir.expressions`), written as one gate angle.

:data:`STANDARD_GATES` maps the OpenQASM 2 ``qelib1.inc`` / OpenQASM 3 ``stdgates.inc``
gate names (shared by Qiskit's ``Instruction.name``) to exact expansions into
qjaxrob gates: same matrix, same global phase. ``cp(l) = crz(l) . phase_control(l/2)``
and the controlled ``U`` is ``cp(l) cry(t) cp(p)`` (from ``U = P(p) RY(t) P(l)``). A global
phase ``e^{i g}`` becomes ``phase(g) x phase(g) x`` on wire 0 (``X P(g) X P(g) = e^{ig} I``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

import qjaxrob as qjr

__all__ = [
    "STANDARD_GATES",
    "Linear",
    "Nonlinear",
    "append_gate",
    "append_global_phase",
    "append_primitive",
    "expand_standard",
]


@dataclass(frozen=True)
class Linear:
    """``const + sum_k coeff_k * source_k``, with ``terms`` a sorted tuple of
    ``((source, index), coeff)``, ``source`` being ``"param"`` or ``"inp"``."""

    const: float = 0.0
    terms: tuple = ()

    @staticmethod
    def var(source: str, index: int) -> Linear:
        return Linear(0.0, (((source, index), 1.0),))

    @property
    def is_const(self) -> bool:
        return not self.terms

    def __add__(self, other: Linear) -> Linear:
        if not isinstance(other, Linear):
            return NotImplemented
        merged = dict(self.terms)
        for key, coeff in other.terms:
            merged[key] = merged.get(key, 0.0) + coeff
        terms = tuple(sorted((k, c) for k, c in merged.items() if c != 0.0))
        return Linear(self.const + other.const, terms)

    def scale(self, factor: float) -> Linear:
        if factor == 0.0:
            return Linear(0.0)
        return Linear(self.const * factor, tuple((k, c * factor) for k, c in self.terms))

    def __neg__(self) -> Linear:
        return self.scale(-1.0)

    def __sub__(self, other: Linear) -> Linear:
        return self + (-other)

    def angle(self):
        """This form as one qjaxrob angle: affine ``Angle`` for at most one parameter,
        else an ``Expr`` sum."""
        out = self.parts()
        return sum(out[1:], out[0])

    def parts(self) -> list:
        """Angles whose sum is this expression: one per parameter (the constant rides on
        the first), or the constant alone."""
        if not self.terms:
            return [self.const]
        out = []
        for i, ((source, index), coeff) in enumerate(self.terms):
            base = qjr.param(index) if source == "param" else qjr.inp(index)
            out.append(base * coeff + (self.const if i == 0 else 0.0))
        return out


@dataclass(frozen=True)
class Nonlinear:
    """A non-affine angle (a qjaxrob ``Expr``) with the arithmetic of :class:`Linear`
    that the gate expansions use (``+ - scale``); mixing with a ``Linear`` gives a
    ``Nonlinear``. Such an angle is written as one gate angle, never split."""

    expr: object
    is_const = False
    terms = ()

    def angle(self):
        return self.expr

    def __add__(self, other):
        return Nonlinear(self.expr + other.angle())

    def __radd__(self, other):
        return Nonlinear(other.angle() + self.expr)

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __neg__(self):
        return Nonlinear(-self.expr)

    def scale(self, factor: float):
        return Nonlinear(self.expr * float(factor))


def _const(value: float) -> Linear:
    return Linear(float(value))


# One-angle gates of qjaxrob's table that are exponentials of a fixed generator (or
# controlled ones), so gate(a + b) = gate(a) gate(b).
_ADDITIVE = {"rx", "ry", "rz", "phase", "crx", "cry", "crz", "rxx", "ryy", "rzz"}


def append_gate(c: qjr.Circuit, name: str, wires: tuple, angles: tuple) -> qjr.Circuit:
    """Appends qjaxrob gate ``name`` with ``Linear`` angles, splitting sums over several
    parameters exactly (affine fast path); with any ``Nonlinear`` angle every angle is
    written as one expression angle."""
    if any(isinstance(a, Nonlinear) for a in angles):
        return c.gate(name, wires, *(a.angle() for a in angles))
    if all(len(a.terms) <= 1 for a in angles):
        return c.gate(name, wires, *(a.parts()[0] for a in angles))
    if name in _ADDITIVE:
        for part in angles[0].parts():
            c = c.gate(name, wires, part)
        return c
    if name == "u3":
        theta, phi, lam = angles
        for gate, angle in (("phase", lam), ("ry", theta), ("phase", phi)):
            c = append_gate(c, gate, wires, (angle,))
        return c
    return c.gate(name, wires, *(a.angle() for a in angles))


def append_global_phase(c: qjr.Circuit, gamma: Linear) -> qjr.Circuit:
    """Multiplies the state by ``e^{i gamma}`` (exactly, also for parametric gamma)."""
    if gamma.is_const and gamma.const == 0.0:
        return c
    for _ in range(2):
        c = append_gate(c, "phase", (0,), (gamma,))
        c = c.x(0)
    return c


# OpenQASM ``gate`` definitions of the constant library gates without a qjaxrob gate of
# their own, over stdgates.inc gates: qelib1.inc's bodies (``cu1`` written ``cp``, the same
# gate; ``ch`` as Qiskit defines it), with the global phase (``gphase``) that OpenQASM 2
# leaves out (``sxdg``), so each equals the gate's matrix in Qiskit. Their matrices
# (:data:`CONSTANT_GATES`) are computed from these texts: what ``to_qasm`` writes is what
# is read.
DEFINITIONS = {
    "sxdg": "gate sxdg a { s a; h a; s a; gphase(-pi/4); }",
    "csx": "gate csx a, b { h b; cp(pi/2) a, b; h b; }",
    "ch": "gate ch a, b { s b; h b; t b; cx a, b; tdg b; h b; sdg b; }",
    "cswap": "gate cswap a, b, c { cx c, b; ccx a, b, c; cx c, b; }",
    "rccx": ("gate rccx a, b, c { u2(0, pi) c; u1(pi/4) c; cx b, c; u1(-pi/4) c; cx a, c; "
             "u1(pi/4) c; cx b, c; u1(-pi/4) c; u2(0, pi) c; }"),
    "rc3x": ("gate rc3x a, b, c, d { u2(0, pi) d; u1(pi/4) d; cx c, d; u1(-pi/4) d; "
             "u2(0, pi) d; cx a, d; u1(pi/4) d; cx b, d; u1(-pi/4) d; cx a, d; u1(pi/4) d; "
             "cx b, d; u1(-pi/4) d; u2(0, pi) d; u1(pi/4) d; cx c, d; u1(-pi/4) d; "
             "u2(0, pi) d; }"),
    "c3x": ("gate c3x a, b, c, d { h d; p(pi/8) a; p(pi/8) b; p(pi/8) c; p(pi/8) d; cx a, b; "
            "p(-pi/8) b; cx a, b; cx b, c; p(-pi/8) c; cx a, c; p(pi/8) c; cx b, c; "
            "p(-pi/8) c; cx a, c; cx c, d; p(-pi/8) d; cx b, d; p(pi/8) d; cx c, d; "
            "p(-pi/8) d; cx a, d; p(pi/8) d; cx c, d; p(-pi/8) d; cx b, d; p(pi/8) d; "
            "cx c, d; p(-pi/8) d; cx a, d; h d; }"),
    "c3sqrtx": ("gate c3sqrtx a, b, c, d { h d; cp(pi/8) a, d; h d; cx a, b; h d; "
                "cp(-pi/8) b, d; h d; cx a, b; h d; cp(pi/8) b, d; h d; cx b, c; h d; "
                "cp(-pi/8) c, d; h d; cx a, c; h d; cp(pi/8) c, d; h d; cx b, c; h d; "
                "cp(-pi/8) c, d; h d; cx a, c; h d; cp(pi/8) c, d; h d; }"),
    "c4x": ("gate c4x a, b, c, d, e { h e; cp(pi/2) d, e; h e; c3x a, b, c, d; h e; "
            "cp(-pi/2) d, e; h e; c3x a, b, c, d; c3sqrtx a, b, c, e; }"),
}

_SQ = 1 / math.sqrt(2)
_H = np.array([[1, 1], [1, -1]]) * _SQ
_BASE = {
    "h": _H, "x": np.array([[0, 1], [1, 0]]), "s": np.diag([1, 1j]), "sdg": np.diag([1, -1j]),
    "t": np.diag([1, np.exp(1j * math.pi / 4)]), "tdg": np.diag([1, np.exp(-1j * math.pi / 4)]),
    "cx": np.eye(4)[[0, 1, 3, 2]], "ccx": np.eye(8)[[0, 1, 2, 3, 4, 5, 7, 6]],
    "p": lambda lam: np.diag([1, np.exp(1j * lam)]),
    "u1": lambda lam: np.diag([1, np.exp(1j * lam)]),
    "u2": lambda phi, lam: np.array([[1, -np.exp(1j * lam)],
                                     [np.exp(1j * phi), np.exp(1j * (phi + lam))]]) * _SQ,
    "cp": lambda lam: np.diag([1, 1, 1, np.exp(1j * lam)]),
}


def _angle(text: str) -> float:
    """A constant angle of a library definition: numbers, ``pi``, ``-``, ``/``."""
    sign = -1.0 if text.startswith("-") else 1.0
    num, _, den = text.lstrip("-").partition("/")
    value = math.pi if num == "pi" else float(num)
    return sign * value / (float(den) if den else 1.0)


def _definition_matrix(text: str, known: dict) -> np.ndarray:
    """The matrix (wire order: the gate's qubit arguments, first most significant) of a
    constant ``gate`` definition from :data:`DEFINITIONS`."""
    head, body = text.split("{")
    qubits = [q.strip() for q in head.split(None, 2)[2].split(",")]
    k = len(qubits)
    t = np.eye(2**k, dtype=complex).reshape((2,) * k + (2**k,))
    for stmt in filter(None, (part.strip() for part in body.rstrip("} ").split(";"))):
        name, angles, rest = re.fullmatch(r"(\w+)\s*(?:\(([^)]*)\))?\s*(.*)", stmt).groups()
        args = tuple(_angle(a.strip()) for a in angles.split(",")) if angles else ()
        if name == "gphase":
            t = t * np.exp(1j * args[0])
            continue
        m = known[name] if name in known else _BASE[name]
        m = np.asarray(m(*args) if callable(m) else m, dtype=complex)
        wires = [qubits.index(q.strip()) for q in rest.split(",")]
        j = len(wires)
        t = np.tensordot(m.reshape((2,) * 2 * j), t, axes=(list(range(j, 2 * j)), wires))
        t = np.moveaxis(t, list(range(j)), wires)
    return t.reshape(2**k, 2**k)


CONSTANT_GATES: dict[str, np.ndarray] = {}
"""Name -> matrix of the constant gates in :data:`DEFINITIONS`."""
for _name, _text in DEFINITIONS.items():
    CONSTANT_GATES[_name] = _definition_matrix(_text, CONSTANT_GATES)

# name -> (n_qubits, n_angles, expansion). An expansion maps (wires, angles as Linear) to
# a list of ("gate", name, wires, angles) or ("unitary", matrix, wires).
_G = "gate"


def _direct(name):
    return lambda w, a: [(_G, name, w, a)]


def _cp(w, a):
    (lam,) = a
    return [(_G, "crz", w, (lam,)), (_G, "phase", (w[0],), (lam.scale(0.5),))]


def _cu3(w, a):
    theta, phi, lam = a
    return _cp(w, (lam,)) + [(_G, "cry", w, (theta,))] + _cp(w, (phi,))


STANDARD_GATES = {
    "id": (1, 0, lambda w, a: [(_G, "i", w, ())]),
    "U": (1, 3, _direct("u3")),
    "u": (1, 3, _direct("u3")),
    "u3": (1, 3, _direct("u3")),
    "u2": (1, 2, lambda w, a: [(_G, "u3", w, (_const(math.pi / 2), a[0], a[1]))]),
    "u1": (1, 1, _direct("phase")),
    "p": (1, 1, _direct("phase")),
    "phase": (1, 1, _direct("phase")),
    "u0": (1, 1, lambda w, a: [(_G, "i", w, ())]),
    "CX": (2, 0, _direct("cnot")),
    "cx": (2, 0, _direct("cnot")),
    "cnot": (2, 0, _direct("cnot")),
    "cp": (2, 1, _cp),
    "cphase": (2, 1, _cp),
    "cu1": (2, 1, _cp),
    "cu3": (2, 3, _cu3),
    "cu": (2, 4, lambda w, a: [(_G, "phase", (w[0],), (a[3],))] + _cu3(w, a[:3])),
}
for _name, _matrix in CONSTANT_GATES.items():
    STANDARD_GATES[_name] = (int(_matrix.shape[0]).bit_length() - 1, 0,
                             lambda w, a, m=_matrix: [("unitary", m, w)])
for _name in ("x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "rx", "ry", "rz", "cy", "cz",
              "swap", "iswap", "crx", "cry", "crz", "rxx", "ryy", "rzz", "ccx"):
    _spec = qjr.GATES[_name]
    STANDARD_GATES[_name] = (_spec.n_wires, _spec.n_angles, _direct(_name))


def expand_standard(name: str, wires: tuple, angles: tuple) -> list:
    """The primitive instructions of standard gate ``name`` (see ``STANDARD_GATES``);
    the caller checks the arity first."""
    return STANDARD_GATES[name][2](tuple(wires), tuple(angles))


def append_primitive(c: qjr.Circuit, item) -> qjr.Circuit:
    """Appends one ``("gate", name, wires, angles)`` or ``("unitary", matrix, wires)``."""
    if item[0] == "unitary":
        return c.unitary(item[1], wires=tuple(item[2]))
    return append_gate(c, item[1], tuple(item[2]), tuple(item[3]))
