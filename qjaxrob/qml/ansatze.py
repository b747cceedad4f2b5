"""Trainable circuit templates, built with ``Circuit.repeat`` so depth does not grow compile time."""

from __future__ import annotations

from qjaxrob.circuit import Circuit, param
from qjaxrob.errors import ParameterError

__all__ = ["hardware_efficient"]

_ROTATIONS = ("rx", "ry", "rz")


def hardware_efficient(
    n_qubits: int,
    layers: int,
    *,
    rotations: tuple[str, ...] = ("ry", "rz"),
    entangler: str = "ring",
    param_offset: int = 0,
) -> Circuit:
    """Hardware-efficient ansatz: ``layers`` repetitions of one rotation of each kind in
    ``rotations`` on every qubit, then a CNOT ring (``i -> i+1 mod n``) or chain.

    Parameters: layer l, rotation r, qubit q reads
    ``params[param_offset + l * len(rotations) * n + r * n + q]``; ``n_params`` is
    ``param_offset + layers * len(rotations) * n_qubits``.
    """
    bad = [r for r in rotations if r not in _ROTATIONS]
    if bad or not rotations:
        raise ParameterError(f"rotations must be a non-empty subset of {_ROTATIONS}, got {rotations!r}")
    if entangler not in ("ring", "chain"):
        raise ParameterError(f"entangler must be 'ring' or 'chain', got {entangler!r}")
    block = Circuit(n_qubits)
    for r, name in enumerate(rotations):
        for q in range(n_qubits):
            block = block.gate(name, q, param(r * n_qubits + q))
    pairs = [(q, q + 1) for q in range(n_qubits - 1)]
    if entangler == "ring" and n_qubits > 2:
        pairs.append((n_qubits - 1, 0))
    for a, b in pairs:
        block = block.cnot(a, b)
    return Circuit.repeat(block, layers, param_offset=param_offset)
