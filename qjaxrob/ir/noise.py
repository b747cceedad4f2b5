"""Noise models: make any circuit noisy in one call.

``insert(c, "depolarizing", after="each_gate", p=0.01)`` returns a new circuit with a
single-wire channel inserted according to ``after``:

* ``"each_gate"``: right after every gate (``unitary`` included), one channel on each wire
  the gate acts on (a CNOT gets two one-wire channels), restricted to ``wires`` if given.
* ``"each_layer"``: after every *layer*, one channel on every wire of ``wires`` (default:
  all wires, so idle qubits decohere too). A layer is a maximal run of consecutive gates
  acting on pairwise disjoint wires: walking the ops in order, a gate that touches a wire
  already used in the current layer closes it (the noise goes in before that gate) and
  opens the next one; the end of the circuit closes the last layer. Op order is kept.
  Example: RY on every wire, RZ on every wire, then a CNOT ring gives one layer of RYs,
  one of RZs, and one layer per CNOT (each CNOT shares a wire with the previous one).

Channels and cut markers already in the circuit stay in place and are not gates: they get
no noise and do not close layers. A ``Repeat`` block gets the noise inserted inside the
block, so it still compiles to one ``lax.scan``; with ``"each_layer"`` a ``Repeat`` also
closes the layer before it, and every repetition ends with a closed layer.

``p`` is the channel's probability (``sigma`` in radians for ``"random_rotation"``): a float
checked to lie in [0, 1], or a traced ``qjr.param(i)`` / ``qjr.inp(j)`` (to learn or sweep
the noise level). Inside a ``Repeat`` block the parameters are offset per repetition, so a
``param`` noise level there is rejected; use ``qjr.inp(j)`` (shared by all repetitions).
"""

from __future__ import annotations

from qjaxrob.checks import check_wires
from qjaxrob.ir.circuit import Circuit, Repeat
from qjaxrob.errors import ParameterError, QjrTypeError

__all__ = ["insert", "layer", "NOISE_CHANNELS"]

NOISE_CHANNELS = ("depolarizing", "bit_flip", "phase_flip", "amplitude_damping",
                  "phase_damping", "random_rotation")
"""Channel names accepted by ``insert`` (the one-parameter channels of ``qjr.Circuit``)."""


def insert(c: Circuit, channel: str, after: str = "each_gate", p=None, wires=None,
           axis=None) -> Circuit:
    """A copy of ``c`` with one-wire ``channel(p)`` noise inserted (see the module docs).

    Args:
        c: the circuit.
        channel: one of ``NOISE_CHANNELS``.
        after: ``"each_gate"`` or ``"each_layer"``.
        p: the probability / damping rate (``sigma`` for ``"random_rotation"``): a float or
            an ``Angle`` (``qjr.param(i)``, ``qjr.inp(j)``, affine).
        wires: only these wires receive noise (default: all).
        axis: rotation axis for ``"random_rotation"`` (``"x"``, ``"y"``, ``"z"`` or a
            3-vector); must be ``None`` for the other channels.

    Returns:
        A new ``Circuit`` on the same wires with the same ``n_params`` unless ``p`` is a
        ``param`` beyond them.
    """
    if not isinstance(c, Circuit):
        raise QjrTypeError(f"expected a qjr.Circuit, got {type(c).__name__}")
    if after not in ("each_gate", "each_layer"):
        raise ParameterError(f"after must be 'each_gate' or 'each_layer', got {after!r}")
    noise = {op.wires[0]: op for op in layer(c.n_qubits, channel, p, wires, axis).ops}
    return Circuit(c.n_qubits, _insert_ops(c.ops, noise, after))


def layer(n_qubits: int, channel: str, p, wires=None, axis=None) -> Circuit:
    """An ``n_qubits``-wire circuit with one ``channel(p)`` on each of ``wires`` (default:
    all), in wire order: the noise layer that ``insert`` places; arguments as there."""
    if channel not in NOISE_CHANNELS:
        raise ParameterError(f"unknown noise channel {channel!r}; choose from {NOISE_CHANNELS}")
    if p is None:
        raise ParameterError(f"noise channel {channel!r} needs a noise level p, got None")
    if (axis is None) == (channel == "random_rotation"):
        raise ParameterError(
            f"axis is required for random_rotation and only for it; got channel={channel!r}, "
            f"axis={axis!r}"
        )
    c = Circuit(n_qubits)
    wires = range(n_qubits) if wires is None else wires
    args = (axis, p) if axis is not None else (p,)
    make = getattr(c, channel)  # validates p (ProbabilityError)
    ops = tuple(make(w, *args).ops[0] for w in check_wires(wires, n_qubits))
    return Circuit(n_qubits, ops)


def _insert_ops(ops, noise, after):
    """The op sequence with noise ops (``noise``: wire -> channel op) inserted; recurses
    into ``Repeat`` blocks."""
    out, used = [], set()
    for op in ops:
        if isinstance(op, Repeat):
            level = next(iter(noise.values())).angles[-1] if noise else None
            if level is not None and level.source == "param":
                raise ParameterError(
                    f"noise level {level!r} is a param, but Repeat blocks offset their params "
                    "per repetition; use qjr.inp(j) or insert into c.unroll()"
                )
            if after == "each_layer" and used:
                out.extend(noise.values())
                used = set()
            block = _insert_ops(op.block.ops, noise, after)
            out.append(Repeat(Circuit(op.block.n_qubits, block), op.times, op.param_offset))
            continue
        if op.is_channel or op.is_marker:
            out.append(op)
            continue
        if after == "each_gate":
            out.append(op)
            out.extend(noise[w] for w in op.wires if w in noise)
            continue
        if used & set(op.wires):
            out.extend(noise.values())
            used = set()
        out.append(op)
        used.update(op.wires)
    if after == "each_layer" and used:
        out.extend(noise.values())
    return tuple(out)
