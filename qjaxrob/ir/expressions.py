"""Angle expressions beyond affine: a small, immutable, hashable expression tree.

A circuit angle is a float, an affine ``Angle`` (``scale * source + offset`` of one
``param``/``inp``; the fast path), or an :class:`Expr`: any differentiable expression of
affine angles and constants built from ``+ - * / **`` and the functions below
(``sin cos tan arcsin arccos arctan sinh cosh tanh exp log sqrt``). Python operators on
angles build it::

    qjr.param(0) * 2.0 + 1.0            # still an affine Angle
    qjr.param(0) * qjr.inp(1)           # Expr
    2 * (np.pi - qjr.inp(0)) * (np.pi - qjr.inp(1))   # ZZFeatureMap's angle, an Expr
    qjr.sin(qjr.param(0)), np.cos(qjr.inp(2)) / qjr.param(1) ** 2

Constants fold as the tree is built (``sin(0.5)`` is a float), a combination that stays
affine in one source stays an ``Angle``, so an ``Expr`` always reads ``params`` or ``x``.
Folding that leaves no finite real number (``log(-1)``, division by a zero constant) raises
``ParameterError`` naming the expression. Expressions are evaluated, traced, inside the
jitted program (:mod:`qjaxrob.lower.angles` rewrites a circuit holding them into an affine
one over augmented parameters), so gradients w.r.t. ``params`` and ``x`` follow the chain
rule. Values are in radians; functions are the real ones (``log``/``sqrt``/``arcsin`` of an
argument outside their domain give NaN at run time, as in NumPy).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import jax.numpy as jnp
import numpy as np
from jax import lax

from qjaxrob.errors import ParameterError, QjrTypeError

__all__ = [
    "AffineLeaf", "Expr", "FUNCTIONS", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "exp", "log", "sqrt", "add", "sub", "mul", "div", "power", "neg", "describe",
]

FUNCTIONS = {
    "sin": (math.sin, jnp.sin), "cos": (math.cos, jnp.cos), "tan": (math.tan, jnp.tan),
    "arcsin": (math.asin, jnp.arcsin), "arccos": (math.acos, jnp.arccos),
    "arctan": (math.atan, jnp.arctan), "sinh": (math.sinh, jnp.sinh),
    "cosh": (math.cosh, jnp.cosh), "tanh": (math.tanh, jnp.tanh),
    "exp": (math.exp, jnp.exp), "log": (math.log, jnp.log), "sqrt": (math.sqrt, jnp.sqrt),
}
"""Name -> (float function for constant folding, traced function)."""

_BINARY = ("add", "mul", "div", "pow")


class AffineLeaf:
    """Base of :class:`qjaxrob.ir.circuit.Angle` (the affine leaves of a tree), so this
    module recognises angles without importing the circuit module (which imports it)."""

    __slots__ = ()


@dataclass(frozen=True)
class Expr:
    """One node of an angle expression.

    Attributes:
        op: ``"add" | "mul" | "div" | "pow"`` (two arguments), ``"neg"`` or a name of
            :data:`FUNCTIONS` (one argument).
        args: the operands: ``Expr`` nodes, affine ``Angle`` s reading ``params``/``x``,
            or Python floats.
    """

    op: str
    args: tuple

    source = "expr"
    """Tells an ``Expr`` from an affine ``Angle`` (whose ``source`` is const/param/inp)."""

    def resolve(self, params, x):
        """The value given the 1-D arrays ``params`` and ``x`` (may be traced)."""
        vals = [a if isinstance(a, float) else a.resolve(params, x) for a in self.args]
        if self.op == "add":
            return vals[0] + vals[1]
        if self.op == "mul":
            return vals[0] * vals[1]
        if self.op == "div":
            return vals[0] / vals[1]
        if self.op == "pow":
            base, exponent = vals
            if isinstance(exponent, float) and exponent.is_integer() and abs(exponent) < 2**31:
                return lax.integer_pow(jnp.asarray(base), int(exponent))
            return jnp.power(base, exponent)
        if self.op == "neg":
            return -vals[0]
        return FUNCTIONS[self.op][1](vals[0])

    def shifted(self, param_offset: int) -> Expr:
        """This expression with every parameter index moved by ``param_offset``."""
        if param_offset == 0:
            return self
        return Expr(self.op, tuple(a if isinstance(a, float) else a.shifted(param_offset)
                                   for a in self.args))

    def leaves(self) -> tuple:
        """The affine ``Angle`` s this expression reads, in tree order (repeats kept)."""
        out = []
        for a in self.args:
            if isinstance(a, Expr):
                out.extend(a.leaves())
            elif not isinstance(a, float):
                out.append(a)
        return tuple(out)

    def __str__(self):
        return describe(self)

    def __repr__(self):
        return f"Expr({describe(self)})"

    # ---- operators (shared with Angle, which defers here for non-affine results) ----
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __pow__(self, other):
        return power(self, other)

    def __rpow__(self, other):
        return power(other, self)

    def __neg__(self):
        return neg(self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return array_ufunc(ufunc, method, inputs, kwargs)


# ---- operands ------------------------------------------------------------------------------
def _operand(value, what: str):
    """A float, an ``Expr`` or an affine ``Angle`` reading params/x (const angles -> float)."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, AffineLeaf):
        return float(value.offset) if value.source == "const" else value
    if isinstance(value, np.ndarray) and value.ndim == 0 and np.isrealobj(value):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise QjrTypeError(
            f"{what} must be a real number, qjr.param(i), qjr.inp(j) or an angle expression, "
            f"got {value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ParameterError(f"{what} must be finite, got {value!r}")
    return value


def _folded(value: float, text: str) -> float:
    if not (isinstance(value, float) and math.isfinite(value)):
        raise ParameterError(f"the constant angle expression {text} = {value!r} is not a "
                             "finite real number")
    return value


def _fold(op: str, args: tuple) -> float:
    """Evaluates a node whose operands are all floats."""
    text = describe(Expr(op, args))
    try:
        if op == "add":
            value = args[0] + args[1]
        elif op == "mul":
            value = args[0] * args[1]
        elif op == "div":
            value = args[0] / args[1]
        elif op == "pow":
            value = math.pow(*args)
        elif op == "neg":
            value = -args[0]
        else:
            value = FUNCTIONS[op][0](args[0])
    except (ValueError, OverflowError, ZeroDivisionError) as exc:
        raise ParameterError(f"the constant angle expression {text} has no finite real "
                             f"value ({exc})") from None
    return _folded(float(value), text)


def _is_angle(value) -> bool:
    return not isinstance(value, (float, Expr))


def _is_zero(value) -> bool:
    """True for the constant 0 and for an affine angle ``0 * source + 0``."""
    if isinstance(value, float):
        return value == 0.0
    return _is_angle(value) and value.scale == 0.0 and value.offset == 0.0


def _node(op: str, *args):
    if all(isinstance(a, float) for a in args):
        return _fold(op, args)
    return Expr(op, args)


# ---- builders --------------------------------------------------------------------------------
def add(a, b):
    """``a + b``: affine when one side is a constant or both read the same source."""
    a, b = _operand(a, "angle term"), _operand(b, "angle term")
    if isinstance(a, float) and _is_angle(b):
        a, b = b, a
    if _is_angle(a) and isinstance(b, float):
        return a + b
    if _is_angle(a) and _is_angle(b) and (a.source, a.index) == (b.source, b.index):
        scale, offset = a.scale + b.scale, a.offset + b.offset
        if math.isfinite(scale) and math.isfinite(offset):
            return replace(a, scale=scale, offset=offset)
    if isinstance(b, float) and b == 0.0:
        return a
    if isinstance(a, float) and a == 0.0:
        return b
    return _node("add", a, b)


def neg(a):
    """``-a``."""
    a = _operand(a, "angle")
    if _is_angle(a):
        return -a
    return _node("neg", a)


def sub(a, b):
    """``a - b``."""
    return add(a, neg(b))


def mul(a, b):
    """``a * b``: affine when one side is a constant."""
    a, b = _operand(a, "angle factor"), _operand(b, "angle factor")
    if isinstance(a, float) and _is_angle(b):
        a, b = b, a
    if _is_angle(a) and isinstance(b, float):
        return a * b
    if isinstance(b, float) and b == 1.0:
        return a
    if isinstance(a, float) and a == 1.0:
        return b
    return _node("mul", a, b)


def div(a, b):
    """``a / b``; a divisor that is the constant zero raises ``ParameterError``."""
    a, b = _operand(a, "angle numerator"), _operand(b, "angle divisor")
    if _is_zero(b):
        raise ParameterError(f"division by zero in the angle expression "
                             f"{describe(a)} / {describe(b)}")
    if _is_angle(a) and isinstance(b, float):
        return a / b
    if isinstance(b, float) and b == 1.0:
        return a
    return _node("div", a, b)


def power(a, b):
    """``a ** b`` (real power; integer constant exponents use repeated multiplication)."""
    a, b = _operand(a, "angle base"), _operand(b, "angle exponent")
    if isinstance(b, float) and b == 1.0:
        return a
    if isinstance(b, float) and b == 0.0:
        return 1.0
    return _node("pow", a, b)


def _unary(name: str):
    def function(a):
        return _node(name, _operand(a, f"the argument of {name}"))

    function.__name__ = function.__qualname__ = name
    function.__doc__ = (f"``{name}(a)`` of an angle (an ``Expr``; a float for a constant "
                        "argument).")
    return function


sin, cos, tan = _unary("sin"), _unary("cos"), _unary("tan")
arcsin, arccos, arctan = _unary("arcsin"), _unary("arccos"), _unary("arctan")
sinh, cosh, tanh = _unary("sinh"), _unary("cosh"), _unary("tanh")
exp, log, sqrt = _unary("exp"), _unary("log"), _unary("sqrt")

_UFUNCS = {
    "add": add, "subtract": sub, "multiply": mul, "true_divide": div, "divide": div,
    "power": power, "negative": neg,
    **{name: globals()[name] for name in FUNCTIONS},
}


def array_ufunc(ufunc, method, inputs, kwargs):
    """NumPy ufuncs on angles (``np.sin(qjr.param(0))``, ``np.float64(2) * angle``)."""
    builder = _UFUNCS.get(ufunc.__name__)
    if method != "__call__" or kwargs or builder is None:
        raise QjrTypeError(
            f"numpy.{ufunc.__name__} is not an angle function (supported: "
            f"{', '.join(sorted(_UFUNCS))})"
        )
    return builder(*inputs)


# ---- text --------------------------------------------------------------------------------
def _angle_text(a) -> str:
    if a.source == "const":
        return repr(float(a.offset))
    base = f"params[{a.index}]" if a.source == "param" else f"x[{a.index}]"
    text = base if a.scale == 1.0 else f"{a.scale!r}*{base}"
    if a.offset:
        text = f"{text} {'-' if a.offset < 0 else '+'} {abs(a.offset)!r}"
    return text


def describe(a) -> str:
    """Readable text of an angle (``sin(params[0]) * (2.0*x[1] + 0.1)``)."""
    if isinstance(a, (float, int)):
        return repr(float(a))
    if not isinstance(a, Expr):
        return _angle_text(a)
    parts = [describe(b) for b in a.args]
    parts = [f"({p})" if not isinstance(b, float) and (isinstance(b, Expr) and b.op in
             ("add", "mul", "div", "pow", "neg") or (_is_angle(b) and (b.scale != 1.0
             or b.offset))) else p for p, b in zip(parts, a.args)]
    if a.op == "neg":
        return f"-{parts[0]}"
    if a.op in _BINARY:
        symbol = {"add": "+", "mul": "*", "div": "/", "pow": "**"}[a.op]
        return f"{parts[0]} {symbol} {parts[1]}"
    return f"{a.op}({describe(a.args[0])})"
