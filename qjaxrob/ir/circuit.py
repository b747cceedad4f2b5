"""The circuit IR: a frozen, hashable ``Circuit`` of ``Op`` s, with affine angles.

A ``Circuit`` is static structure: it can be a ``jax.jit`` static argument, and every
builder call returns a new circuit. Angles are floats, trainable parameters
``param(i)`` (read from the traced 1-D array ``params``), data inputs ``inp(j)`` (read
from the traced 1-D array ``x``), affine expressions of one of them
(``inp(0) * 2.0 + 0.1``, an ``Angle``), or any differentiable expression of them
(``param(0) * inp(1)``, ``sin(param(0))``: an ``Expr``, :mod:`qjaxrob.ir.expressions`).
All validation happens here, at construction time.

``Circuit.repeat(block, times)`` stores the block once; the simulator lowers it to a
``lax.scan`` so compile time does not grow with ``times``. Repetition ``r`` reads its
parameters from ``params[offset + r * block.n_params : offset + (r + 1) * block.n_params]``;
inputs are shared by all repetitions (data re-uploading).

Wire 0 is the most significant bit of a basis index: ``i = sum_k b_k 2**(n-1-k)``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Union

import jax
import numpy as np

from qjaxrob.ir import channels, expressions
from qjaxrob.checks import (
    UNITARY_ATOL,
    check_int,
    check_positive_int,
    check_unitary,
    check_wires,
)
from qjaxrob.errors import ParameterError, QjrTypeError, WireError
from qjaxrob.ir.expressions import AffineLeaf, Expr
from qjaxrob.ir.gates import GATES, gate_spec

__all__ = [
    "Angle", "Expr", "param", "inp", "expression_angles", "check_affine", "ConstMatrix", "Op", "Repeat", "Circuit", "UNITARY_ATOL",
    "MAX_QUBITS",
]

MAX_QUBITS = 1024
"""The widest circuit accepted. Direct simulation stops far earlier, at the memory guard
(:func:`qjaxrob.checks.check_memory`, about 30-40 qubits); wider circuits exist to be cut
into fragments (:mod:`qjaxrob.cutting`), whose bookkeeping is linear in the width. Beyond
1024 wires even that is meaningless, so ``Circuit(n)`` rejects it at construction."""


@dataclass(frozen=True)
class Angle(AffineLeaf):
    """An affine angle ``scale * source + offset`` in radians.

    ``source`` is ``"const"`` (the value is ``offset``), ``"param"`` (``params[index]``) or
    ``"inp"`` (``x[index]``).
    """

    source: str
    index: int = -1
    scale: float = 1.0
    offset: float = 0.0

    def _affine(self, scale: float, offset: float) -> Angle:
        new_scale, new_offset = self.scale * scale, self.offset * scale + offset
        if not (np.isfinite(new_scale) and np.isfinite(new_offset)):
            raise ParameterError(
                f"the angle {self!r} times {scale!r} plus {offset!r} overflows: scale "
                f"{new_scale!r}, offset {new_offset!r} (both must be finite)"
            )
        return replace(self, scale=new_scale, offset=new_offset)

    # An angle or expression operand gives an ``Expr`` unless the result stays affine in
    # one source (qjaxrob.ir.expressions); a number operand keeps the affine fast path.
    def __mul__(self, other):
        if _symbolic(other):
            return expressions.mul(self, other)
        return self._affine(_as_float(other, "angle scale"), 0.0)

    def __rmul__(self, other):
        if _symbolic(other):
            return expressions.mul(other, self)
        return self._affine(_as_float(other, "angle scale"), 0.0)

    def __truediv__(self, other):
        if _symbolic(other):
            return expressions.div(self, other)
        divisor = _as_float(other, "angle divisor")
        if divisor == 0:
            raise ParameterError(f"cannot divide the angle {self!r} by zero")
        return self._affine(1.0 / divisor, 0.0)

    def __rtruediv__(self, other):
        return expressions.div(other, self)

    def __add__(self, other):
        if _symbolic(other):
            return expressions.add(self, other)
        return self._affine(1.0, _as_float(other, "angle offset"))

    def __radd__(self, other):
        if _symbolic(other):
            return expressions.add(other, self)
        return self._affine(1.0, _as_float(other, "angle offset"))

    def __sub__(self, other):
        if _symbolic(other):
            return expressions.sub(self, other)
        return self._affine(1.0, -_as_float(other, "angle offset"))

    def __rsub__(self, other):
        if _symbolic(other):
            return expressions.sub(other, self)
        return self._affine(-1.0, _as_float(other, "angle offset"))

    def __neg__(self):
        return self._affine(-1.0, 0.0)

    def __pow__(self, other):
        return expressions.power(self, other)

    def __rpow__(self, other):
        return expressions.power(other, self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return expressions.array_ufunc(ufunc, method, inputs, kwargs)

    def __str__(self):
        return expressions.describe(self)

    def shifted(self, param_offset: int) -> Angle:
        """This angle with its parameter index moved by ``param_offset``."""
        if self.source != "param" or param_offset == 0:
            return self
        return replace(self, index=self.index + param_offset)

    def resolve(self, params, x):
        """The angle's value given the 1-D arrays ``params`` and ``x`` (may be traced)."""
        if self.source == "const":
            return self.offset
        source = params if self.source == "param" else x
        value = source[self.index]
        if self.scale != 1.0:
            value = value * self.scale
        if self.offset != 0.0:
            value = value + self.offset
        return value


AngleLike = Union[float, Angle, Expr]
"""An angle argument: a real number (radians), an affine ``Angle`` (``param``/``inp``) or an
``Expr`` (a differentiable expression of them, :mod:`qjaxrob.ir.expressions`)."""


def _symbolic(value) -> bool:
    return isinstance(value, (Angle, Expr))


def _as_float(value, what: str) -> float:
    if _symbolic(value):
        raise ParameterError(f"{what} must be a number, got the angle {value}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and np.isrealobj(value):
            return float(value)
        raise QjrTypeError(
            f"{what} must be a real Python/NumPy number, got {value!r} of type "
            f"{type(value).__name__}; use qjr.param(i) or qjr.inp(j) for traced values"
        )
    value = float(value)
    if not np.isfinite(value):
        raise ParameterError(f"{what} must be finite, got {value!r}")
    return value


def _check_index(i, what: str) -> int:
    return check_int(i, f"{what} index", minimum=0)


def param(i: int) -> Angle:
    """The trainable parameter ``params[i]`` as an angle."""
    return Angle("param", _check_index(i, "param"))


def inp(j: int) -> Angle:
    """The data input ``x[j]`` as an angle."""
    return Angle("inp", _check_index(j, "inp"))


def as_angle(value) -> Angle | Expr:
    """Converts a float, an ``Angle`` or an ``Expr`` into an ``Angle`` or ``Expr``."""
    if _symbolic(value):
        return value
    return Angle("const", -1, 0.0, _as_float(value, "angle"))


class ConstMatrix:
    """A read-only complex NumPy matrix that hashes by value (for static circuit ops)."""

    __slots__ = ("array", "_hash")

    def __init__(self, array):
        a = np.array(array, dtype=np.complex128)
        a.setflags(write=False)
        self.array = a
        self._hash = hash((a.shape, a.tobytes()))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return isinstance(other, ConstMatrix) and np.array_equal(self.array, other.array)

    def __repr__(self):
        return f"ConstMatrix(shape={self.array.shape})"


@dataclass(frozen=True)
class Op:
    """One operation: a gate from the gate table, ``"unitary"``, a channel, or ``"cut"``.

    Attributes:
        name: gate or channel name.
        wires: the wires acted on, in the order of the matrix's tensor factors.
        angles: angle arguments (gate angles; channel probabilities for channels).
        matrices: constant matrices: ``(U,)`` for ``"unitary"``, the Kraus set for ``"kraus"``.
        cut: for two-qubit gates, whether the gate is marked for gate cutting.
        meta: extra static data (e.g. the rotation axis of ``random_rotation``).
    """

    name: str
    wires: tuple[int, ...]
    angles: tuple[Angle, ...] = ()
    matrices: tuple[ConstMatrix, ...] = ()
    cut: bool = False
    meta: tuple = ()

    @property
    def is_channel(self) -> bool:
        return self.name in channels.CHANNELS

    @property
    def is_marker(self) -> bool:
        return self.name == "cut"

    @property
    def is_constant(self) -> bool:
        """True when no angle reads ``params`` or ``x`` (the op is fixed at trace time)."""
        return all(a.source == "const" for a in self.angles)

    @property
    def kind(self) -> str:
        """The kernel a gate needs: ``"diagonal"`` (gate-table diagonal gates and
        ``unitary`` ops whose matrix is diagonal), ``"permutation"`` or ``"dense"``."""
        if self.name == "unitary":
            m = self.matrices[0].array
            return "diagonal" if not np.any(m - np.diag(np.diag(m))) else "dense"
        spec = GATES[self.name]
        return "diagonal" if spec.diag_fn is not None else spec.kind

    def const_matrix(self) -> np.ndarray:
        """The complex128 NumPy matrix of a constant gate or ``unitary`` op."""
        if self.name == "unitary":
            return self.matrices[0].array
        values = tuple(a.offset for a in self.angles)
        with jax.ensure_compile_time_eval(), jax.enable_x64(True):
            return np.asarray(GATES[self.name].matrix_fn(values, np.complex128))

    def shifted(self, param_offset: int) -> Op:
        if param_offset == 0:
            return self
        return replace(self, angles=tuple(a.shifted(param_offset) for a in self.angles))


@dataclass(frozen=True)
class Repeat:
    """``times`` repetitions of ``block``; repetition r reads params from
    ``param_offset + r * block.n_params``. Lowered to ``lax.scan``."""

    block: Circuit
    times: int
    param_offset: int = 0

    @property
    def n_params(self) -> int:
        stride = self.block.n_params
        return self.param_offset + self.times * stride if stride else 0

    def shifted(self, param_offset: int) -> Repeat:
        return replace(self, param_offset=self.param_offset + param_offset)

    def unrolled_ops(self) -> tuple[Op, ...]:
        stride = self.block.n_params
        flat = self.block.unroll().ops
        return tuple(
            op.shifted(self.param_offset + r * stride) for r in range(self.times) for op in flat
        )


def _max_index(ops, source: str) -> int:
    best = 0
    for op in ops:
        if isinstance(op, Repeat):
            if source == "param":
                best = max(best, op.n_params)
            else:
                best = max(best, op.block.n_inputs)
            continue
        for a in op.angles:
            for leaf in a.leaves() if isinstance(a, Expr) else (a,):
                if leaf.source == source:
                    best = max(best, leaf.index + 1)
    return best


def expression_angles(c: Circuit):
    """``(op, angle)`` for every ``Expr`` angle of ``c`` (``Repeat`` blocks included, as
    stored), in circuit order."""
    for op in c.ops:
        if isinstance(op, Repeat):
            yield from expression_angles(op.block)
            continue
        for a in op.angles:
            if isinstance(a, Expr):
                yield op, a


def check_affine(c: Circuit, what: str) -> None:
    """Raises ``ParameterError`` naming the first ``Expr`` angle of ``c``: for consumers
    (named by ``what``) that read an angle's affine ``scale``/``offset``."""
    for op, a in expression_angles(c):
        raise ParameterError(
            f"{what} needs affine angles (scale * param/inp + offset), but {op.name} on "
            f"wires {op.wires} has the angle expression {a}"
        )


@dataclass(frozen=True)
class Circuit:
    """A frozen, hashable quantum circuit on ``n_qubits`` wires.

    Every builder method returns a new ``Circuit``. Example::

        c = qjr.Circuit(2).h(0).cnot(0, 1).ry(1, qjr.param(0))
    """

    n_qubits: int
    ops: tuple = field(default=())

    def __post_init__(self):
        n = self.n_qubits
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise QjrTypeError(f"n_qubits must be an int, got {n!r}")
        if n < 1:
            raise WireError(f"a circuit needs at least one qubit, got n_qubits={n}")
        if n > MAX_QUBITS:
            raise WireError(
                f"n_qubits={n} is beyond the {MAX_QUBITS}-wire limit (qjr.circuit.MAX_QUBITS): "
                "no backend can hold or index such a circuit"
            )
        object.__setattr__(self, "n_qubits", int(n))
        object.__setattr__(self, "ops", tuple(self.ops))

    # ---- derived quantities -------------------------------------------------
    @cached_property
    def n_params(self) -> int:
        """One more than the highest parameter index used (0 if none)."""
        return _max_index(self.ops, "param")

    @cached_property
    def n_inputs(self) -> int:
        """One more than the highest input index used (0 if none)."""
        return _max_index(self.ops, "inp")

    @cached_property
    def has_channels(self) -> bool:
        return any(
            op.block.has_channels if isinstance(op, Repeat) else op.is_channel for op in self.ops
        )

    @cached_property
    def _hash(self) -> int:
        return hash((self.n_qubits, self.ops))

    def __hash__(self):
        return self._hash

    # ---- composition ----------------------------------------------------------
    def _with(self, *ops) -> Circuit:
        return Circuit(self.n_qubits, self.ops + tuple(ops))

    def __add__(self, other: Circuit) -> Circuit:
        if not isinstance(other, Circuit):
            return NotImplemented
        if other.n_qubits != self.n_qubits:
            raise WireError(
                f"cannot concatenate a {self.n_qubits}-qubit circuit with a "
                f"{other.n_qubits}-qubit circuit"
            )
        return Circuit(self.n_qubits, self.ops + other.ops)

    @staticmethod
    def repeat(block: Circuit, times: int, *, param_offset: int = 0) -> Circuit:
        """``times`` copies of ``block``, with the block's parameter indices offset by
        ``param_offset + r * block.n_params`` in repetition r. Compiles to ``lax.scan``."""
        if not isinstance(block, Circuit):
            raise QjrTypeError(f"block must be a Circuit, got {type(block).__name__}")
        times = check_positive_int(times, "times")
        offset = _check_index(param_offset, "param_offset")
        return Circuit(block.n_qubits, (Repeat(block, times, offset),))

    def shift_params(self, offset: int) -> Circuit:
        """This circuit with every parameter index increased by ``offset``."""
        offset = _check_index(offset, "offset")
        return Circuit(self.n_qubits, tuple(op.shifted(offset) for op in self.ops))

    def unroll(self) -> Circuit:
        """The equivalent circuit without ``Repeat`` nodes (for inspection and cutting)."""
        flat = []
        for op in self.ops:
            flat.extend(op.unrolled_ops() if isinstance(op, Repeat) else (op,))
        return Circuit(self.n_qubits, tuple(flat))

    # ---- generic gates --------------------------------------------------------
    def gate(self, name: str, wires, *angles, cut: bool = False) -> Circuit:
        """Appends gate ``name`` from the gate table on ``wires`` with ``angles``."""
        spec = gate_spec(name)
        wires = (wires,) if isinstance(wires, numbers.Integral) else tuple(wires)
        if len(wires) != spec.n_wires:
            raise WireError(f"gate {name!r} acts on {spec.n_wires} wire(s), got wires {wires}")
        if len(angles) != spec.n_angles:
            raise ParameterError(
                f"gate {name!r} takes {spec.n_angles} angle(s), got {len(angles)}: {angles!r}"
            )
        if cut and spec.n_wires != 2:
            raise WireError(f"only two-qubit gates can be marked cut=True, not {name!r}")
        return self._with(
            Op(name, check_wires(wires, self.n_qubits), tuple(as_angle(a) for a in angles),
               cut=bool(cut))
        )

    def unitary(self, matrix, wires, *, cut: bool = False) -> Circuit:
        """Appends an arbitrary ``2**k x 2**k`` unitary on ``wires`` (first wire = most
        significant bit of the matrix index). Checked against ``UNITARY_ATOL``.
        ``cut=True`` (two wires only) marks it for gate cutting."""
        wires = check_wires(wires, self.n_qubits)
        m = check_unitary(matrix, len(wires))
        if cut and len(wires) != 2:
            raise WireError(f"only two-qubit unitaries can be marked cut=True, got wires {wires}")
        return self._with(Op("unitary", wires, (), (ConstMatrix(m),), cut=bool(cut)))

    def cut(self, q: int) -> Circuit:
        """Marks a wire cut on qubit ``q`` at this point (ignored by plain simulation)."""
        return self._with(Op("cut", check_wires(q, self.n_qubits)))

    # ---- gate methods: one per row of the gate table (definitions in qjaxrob.ir.gates) ----
    # Made at import time by _add_gate_methods (below the class); declared here with their
    # signatures so that editors and type checkers see every one. Two-qubit gates take
    # cut=True to mark them for gate cutting; controlled gates: the first wire controls.
    if TYPE_CHECKING:
        def i(self, q: int) -> Circuit: ...
        def x(self, q: int) -> Circuit: ...
        def y(self, q: int) -> Circuit: ...
        def z(self, q: int) -> Circuit: ...
        def h(self, q: int) -> Circuit: ...
        def s(self, q: int) -> Circuit: ...
        def sdg(self, q: int) -> Circuit: ...
        def t(self, q: int) -> Circuit: ...
        def tdg(self, q: int) -> Circuit: ...
        def sx(self, q: int) -> Circuit: ...
        def rx(self, q: int, angle: AngleLike) -> Circuit: ...
        def ry(self, q: int, angle: AngleLike) -> Circuit: ...
        def rz(self, q: int, angle: AngleLike) -> Circuit: ...
        def phase(self, q: int, angle: AngleLike) -> Circuit: ...
        def u3(self, q: int, theta: AngleLike, phi: AngleLike, lam: AngleLike) -> Circuit: ...
        def cnot(self, control: int, target: int, *, cut: bool = False) -> Circuit: ...
        def cy(self, control: int, target: int, *, cut: bool = False) -> Circuit: ...
        def cz(self, control: int, target: int, *, cut: bool = False) -> Circuit: ...
        def swap(self, a: int, b: int, *, cut: bool = False) -> Circuit: ...
        def iswap(self, a: int, b: int, *, cut: bool = False) -> Circuit: ...
        def crx(self, control: int, target: int, angle: AngleLike, *, cut: bool = False) -> Circuit:
            ...
        def cry(self, control: int, target: int, angle: AngleLike, *, cut: bool = False) -> Circuit:
            ...
        def crz(self, control: int, target: int, angle: AngleLike, *, cut: bool = False) -> Circuit:
            ...
        def rxx(self, a: int, b: int, angle: AngleLike, *, cut: bool = False) -> Circuit: ...
        def ryy(self, a: int, b: int, angle: AngleLike, *, cut: bool = False) -> Circuit: ...
        def rzz(self, a: int, b: int, angle: AngleLike, *, cut: bool = False) -> Circuit: ...
        def ccx(self, c0: int, c1: int, target: int) -> Circuit: ...

    # ---- channels (density-matrix simulation, or trajectories with a key) ------
    def _channel(self, name, wires, *args, matrices=(), meta=()) -> Circuit:
        wires = (wires,) if isinstance(wires, numbers.Integral) else tuple(wires)
        angles = tuple(as_angle(a) for a in args)
        channels.validate(name, len(wires), angles, meta)
        return self._with(Op(name, check_wires(wires, self.n_qubits), angles, matrices, meta=meta))

    def depolarizing(self, q, p) -> Circuit:
        """rho -> (1-p) rho + p Tr_q(rho) (x) I/2^k on the wire or tuple of wires ``q``."""
        return self._channel("depolarizing", q, p)

    def bit_flip(self, q: int, p) -> Circuit:
        """rho -> (1-p) rho + p X rho X."""
        return self._channel("bit_flip", q, p)

    def phase_flip(self, q: int, p) -> Circuit:
        """rho -> (1-p) rho + p Z rho Z."""
        return self._channel("phase_flip", q, p)

    def amplitude_damping(self, q: int, gamma) -> Circuit:
        """Kraus K0 = [[1,0],[0,sqrt(1-gamma)]], K1 = [[0,sqrt(gamma)],[0,0]] (N&C 8.3.5)."""
        return self._channel("amplitude_damping", q, gamma)

    def phase_damping(self, q: int, gamma) -> Circuit:
        """Kraus K0 = [[1,0],[0,sqrt(1-gamma)]], K1 = [[0,0],[0,sqrt(gamma)]] (N&C 8.3.6)."""
        return self._channel("phase_damping", q, gamma)

    def random_rotation(self, q: int, axis, sigma) -> Circuit:
        """The channel E_theta[R(theta) rho R(theta)^dagger], theta ~ N(0, sigma^2), R a
        rotation about ``axis`` ("x", "y", "z" or a 3-vector); a Pauli channel in closed form."""
        return self._channel("random_rotation", q, sigma, meta=channels.rotation_axis(axis))

    def kraus(self, ops, wires) -> Circuit:
        """Any CPTP map given by Kraus operators (checked: sum K^dagger K = I)."""
        wires = (wires,) if isinstance(wires, numbers.Integral) else tuple(wires)
        mats = channels.check_kraus(ops, len(wires))
        return self._channel("kraus", wires, matrices=tuple(ConstMatrix(m) for m in mats))


def _add_gate_methods():
    """Adds one builder method per gate of the table, with the call shapes listed in the README."""

    def make(name, n_wires, n_angles):
        def method(self, *args, cut=False):
            if len(args) != n_wires + n_angles:
                raise ParameterError(
                    f"{name} takes {n_wires} wire(s) and {n_angles} angle(s), got {args!r}"
                )
            return self.gate(name, args[:n_wires], *args[n_wires:], cut=cut)

        method.__name__ = method.__qualname__ = name
        method.__doc__ = f"Appends ``{name}`` ({n_wires} wire(s), {n_angles} angle(s))."
        return method

    for spec in GATES.values():
        setattr(Circuit, spec.name, make(spec.name, spec.n_wires, spec.n_angles))


_add_gate_methods()
