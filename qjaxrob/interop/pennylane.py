"""PennyLane tapes and quantum functions in: ``from_pennylane`` (extra ``pennylane``).

PennyLane and qjaxrob share the wire order (the first wire is the most significant bit),
so statevectors agree as they are. Every numeric gate parameter of the tape becomes one
trainable parameter: ``qjr.param(k)``, ``k`` = its position in
``tape.get_parameters(trainable_only=False)`` restricted to gate angles (matrices of
``QubitUnitary`` stay constant matrices), and ``params[k]`` holds its value, so

    circuit, params = qjr.from_pennylane(tape)
    qjr.statevector(circuit, params)      # == PennyLane's state, same order

and ``jax.grad`` w.r.t. ``params`` differentiates the tape's gate angles. Operations
without a qjaxrob form are first decomposed by PennyLane (``qml.devices.preprocess.
decompose``); gates kept as they are: Pauli gates, ``Hadamard S T SX`` and their adjoints,
``RX RY RZ PhaseShift U1 U2 U3 Rot``, ``CNOT CY CZ SWAP ISWAP CSWAP Toffoli``,
``CRX CRY CRZ ControlledPhaseShift IsingXX IsingYY IsingZZ``, ``GlobalPhase``
(``e^{-i phi}``), ``QubitUnitary`` with a concrete matrix, ``Identity`` (dropped), and,
as constant unitaries, operations PennyLane cannot decompose but gives a concrete matrix
of at most 8 wires (``DoubleExcitationPlus``/``Minus``, ``BlockEncode``...) and
operations of at most 4 wires whose only parameters are concrete matrices, if any
(``QFT``, ``CH``, ``C(QubitUnitary)``...).
Measurements of the tape are ignored here (the device handles them).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from qjaxrob.errors import ConversionError, QjrError, QjrTypeError
from qjaxrob.extras import require
from qjaxrob.interop.gatelib import (
    STANDARD_GATES,
    Linear,
    append_global_phase,
    append_primitive,
    expand_standard,
)

__all__ = ["convert_tape", "from_pennylane", "import_pennylane", "supported_operation",
           "vmappable"]

_FIXED = {"PauliX": "x", "PauliY": "y", "PauliZ": "z", "Hadamard": "h", "S": "s", "T": "t",
          "SX": "sx", "Adjoint(S)": "sdg", "Adjoint(T)": "tdg", "Adjoint(SX)": "sxdg",
          "CNOT": "cnot", "CY": "cy", "CZ": "cz", "SWAP": "swap", "ISWAP": "iswap",
          "CSWAP": "cswap", "Toffoli": "ccx", "RX": "rx", "RY": "ry", "RZ": "rz",
          "PhaseShift": "phase", "U1": "u1", "U2": "u2", "U3": "u3", "CRX": "crx",
          "CRY": "cry", "CRZ": "crz", "ControlledPhaseShift": "cp", "IsingXX": "rxx",
          "IsingYY": "ryy", "IsingZZ": "rzz"}
_SPECIAL = ("Rot", "GlobalPhase", "QubitUnitary", "Identity")


def import_pennylane():
    return require("pennylane", "pennylane", "PennyLane interop")


_MAX_MATRIX_WIRES = 8
_MAX_CONSTANT_WIRES = 4


def _by_matrix(op) -> bool:
    """Operations converted through their concrete matrix (a constant: their parameters
    are not trainable ``params``), if not broadcast and not traced:

    * without a decomposition, on at most ``_MAX_MATRIX_WIRES`` wires
      (``DoubleExcitationPlus``, ``BlockEncode``...);
    * constant ones on at most ``_MAX_CONSTANT_WIRES`` wires: no parameters but matrices
      (``QFT``, ``C(QubitUnitary)``, ``CH``...), whose decompositions can run to hundreds
      of gates, each a step of the compiled program.
    """
    qml = import_pennylane()
    if not op.has_matrix or op.batch_size is not None or any(qml.math.is_abstract(d)
                                                             for d in op.data):
        return False
    if not op.has_decomposition:
        return len(op.wires) <= _MAX_MATRIX_WIRES
    return (len(op.wires) <= _MAX_CONSTANT_WIRES
            and all(qml.math.ndim(d) == 2 for d in op.data))


def supported_operation(op) -> bool:
    """Whether ``convert_tape`` takes ``op`` as it is (else PennyLane decomposes it)."""
    if op.name == "QubitUnitary":
        qml = import_pennylane()
        return not qml.math.is_abstract(op.data[0]) and len(op.wires) <= _MAX_MATRIX_WIRES
    return op.name in _FIXED or op.name in _SPECIAL or _by_matrix(op)


def _items(op, wires: tuple, slot: int) -> tuple[list, int]:
    """Primitive items for ``op`` on qjaxrob ``wires`` reading params from ``slot`` on."""
    if op.name == "Identity":
        return [], slot
    if op.name == "QubitUnitary":
        return [("unitary", np.asarray(op.data[0], dtype=complex), wires)], slot
    if op.name not in _FIXED and op.name not in _SPECIAL:   # _by_matrix
        matrix = np.asarray(op.matrix(wire_order=op.wires), dtype=complex)
        return [("unitary", matrix, wires)], slot
    n = len(op.data)
    angles = tuple(Linear.var("param", slot + i) for i in range(n))
    if op.name == "GlobalPhase":
        return [("phase", -angles[0])], slot + n
    if op.name == "Rot":
        phi, theta, omega = angles
        items = [("gate", "rz", wires, (phi,)), ("gate", "ry", wires, (theta,)),
                 ("gate", "rz", wires, (omega,))]
        return items, slot + n
    name = _FIXED[op.name]
    if STANDARD_GATES[name][1] != n:
        raise ConversionError(f"{op.name} has {n} parameters, expected {STANDARD_GATES[name][1]}")
    return expand_standard(name, wires, angles), slot + n


def convert_tape(tape, wire_order, real_dtype=None) -> tuple[qjr.Circuit, jnp.ndarray]:
    """``(circuit, params)`` for a tape of supported operations (see ``supported_operation``);
    ``wire_order[i]`` is the PennyLane label of qjaxrob wire ``i``. ``params`` keeps the
    tape's values (possibly JAX tracers) as a 1-D array of ``real_dtype``, or, for a
    broadcast tape (angles with a leading batch axis, see :func:`vmappable`), a
    ``(batch, n_params)`` array to ``vmap`` over."""
    index = {label: i for i, label in enumerate(wire_order)}
    c = qjr.Circuit(len(index))
    values, slot = [], 0
    for position, op in enumerate(tape.operations):
        where = f"operation {position} ({op.name} on wires {op.wires.tolist()})"
        try:
            wires = tuple(index[w] for w in op.wires)
        except KeyError:
            raise ConversionError(f"{where}: wire not in {list(wire_order)}") from None
        if not supported_operation(op):
            raise ConversionError(f"{where}: not supported; decompose it first")
        items, new_slot = _items(op, wires, slot)
        if new_slot > slot:
            values.extend(op.data)
        slot = new_slot
        for item in items:
            try:
                c = append_global_phase(c, item[1]) if item[0] == "phase" else append_primitive(c, item)
            except QjrError as exc:
                raise ConversionError(f"{where}: {exc}") from exc
    if real_dtype is None:
        real_dtype = jnp.zeros(()).dtype
    if not values:
        return c, jnp.zeros((0,), real_dtype)
    arrays = [jnp.asarray(v, real_dtype) for v in values]
    sizes = {a.shape[0] for a in arrays if a.ndim == 1}
    if sizes:   # a broadcast tape: (batch, n_params), unbroadcast angles repeated
        (size,) = sizes
        return c, jnp.stack([jnp.broadcast_to(a, (size,)) for a in arrays], axis=-1)
    return c, jnp.stack(arrays)


def vmappable(tape) -> bool:
    """Whether a broadcast tape runs as one ``vmap`` over its parameters: analytic, and
    every broadcast operation a gate with scalar angles (no broadcast matrices, state
    preparations or observables)."""
    if tape.shots:
        return False
    if any(m.obs is not None and getattr(m.obs, "batch_size", None) is not None
           for m in tape.measurements):
        return False
    return all(op.batch_size is None or op.name in _FIXED or op.name in ("Rot", "GlobalPhase")
               for op in tape.operations)


def _default_wire_order(tape) -> list:
    labels = tape.wires.tolist()
    if all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in labels):
        return list(range(max(labels) + 1)) if labels else [0]
    raise ConversionError(f"the tape has non-integer wire labels {labels}; pass wires=[...] "
                          "to give their order (wires[0] becomes qjaxrob wire 0)")


def from_pennylane(tape_or_qfunc, *args, wires=None, **kwargs):
    """``(circuit, params)`` for a PennyLane tape, QNode or quantum function.

    Args:
        tape_or_qfunc: a ``QuantumScript``/``QuantumTape``, a ``QNode``, or a quantum
            function (called as ``qfunc(*args, **kwargs)`` to record its tape).
        wires: the PennyLane wire labels in qjaxrob wire order; default: integer labels
            ``0..max`` as they are.

    Returns:
        ``(circuit, params)``: ``params`` (1-D, float64 under ``jax_enable_x64`` else
        float32) holds the gate angles in tape order (module docstring).
    """
    qml = import_pennylane()
    if isinstance(tape_or_qfunc, qml.tape.QuantumScript):
        tape = tape_or_qfunc
    elif callable(tape_or_qfunc):
        func = getattr(tape_or_qfunc, "func", tape_or_qfunc)
        tape = qml.tape.make_qscript(func)(*args, **kwargs)
    else:
        raise QjrTypeError("from_pennylane expects a tape, QNode or quantum function, "
                           f"got {type(tape_or_qfunc).__name__}")
    if tape.batch_size is not None:
        raise ConversionError(f"the tape is broadcast (batch size {tape.batch_size}); "
                              "expand it with qml.transforms.broadcast_expand first")
    (tape,), _ = qml.devices.preprocess.decompose(
        tape, stopping_condition=supported_operation, skip_initial_state_prep=False,
        name="qjaxrob", error=ConversionError)
    wire_order = _default_wire_order(tape) if wires is None else list(wires)
    return convert_tape(tape, wire_order)

