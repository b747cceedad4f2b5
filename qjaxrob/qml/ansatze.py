"""Trainable circuit templates, built with ``Circuit.repeat`` so depth does not grow compile time."""

from __future__ import annotations

from qjaxrob.ir.circuit import Circuit, param
from qjaxrob.errors import ParameterError

__all__ = [
    "hardware_efficient", "strongly_entangling", "mps", "tree_tensor_network", "boundary_crossings",
]

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


def _check_layers(layers) -> int:
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise ParameterError(f"layers must be a positive int, got {layers!r}")
    return layers


def _rot(c: Circuit, q: int, first: int) -> Circuit:
    """``Rot = RZ(c) RY(b) RZ(a)`` (PennyLane's ``Rot(a, b, c)``) from params first..first+2."""
    return c.rz(q, param(first)).ry(q, param(first + 1)).rz(q, param(first + 2))


def strongly_entangling(n_qubits: int, layers: int, *, param_offset: int = 0) -> Circuit:
    """Strongly entangling layers (Schuld et al., PRA 101, 032308, 2020).

    Layer ``l``: ``Rot`` on every qubit, then ``CNOT(q, (q + r) mod n)`` for every ``q`` with
    range ``r = l mod (n-1) + 1`` (no entangler for ``n = 1``). Since ``r`` cycles with period
    ``n - 1``, the layers are grouped into a block of ``n - 1`` layers that is repeated with
    ``Circuit.repeat`` (plus one shorter repeat for the remainder).

    Parameters: layer ``l``, qubit ``q``, angle ``k`` of ``Rot`` reads
    ``params[param_offset + 3 * (l * n + q) + k]``; ``n_params = param_offset + 3 * layers * n``.
    """
    n = Circuit(n_qubits).n_qubits
    layers = _check_layers(layers)
    period = max(n - 1, 1)

    def block(n_layers):
        c = Circuit(n)
        for l in range(n_layers):
            for q in range(n):
                c = _rot(c, q, 3 * (l * n + q))
            r = l % period + 1
            for q in range(n if n > 1 else 0):
                c = c.cnot(q, (q + r) % n)
        return c

    full, rest = divmod(layers, period)
    out = Circuit(n)
    if full:
        out = out + Circuit.repeat(block(period), full, param_offset=param_offset)
    if rest:
        out = out + Circuit.repeat(block(rest), 1, param_offset=param_offset + 3 * full * period * n)
    return out


def _two_qubit_block(c: Circuit, a: int, b: int, first: int, cut: bool) -> Circuit:
    """``RY(p0)`` on ``a``, ``RY(p1)`` on ``b``, then ``CNOT(a, b)`` (2 parameters)."""
    return c.ry(a, param(first)).ry(b, param(first + 1)).cnot(a, b, cut=cut)


def _crosses(a: int, b: int, boundary) -> bool:
    return boundary is not None and min(a, b) < boundary <= max(a, b)


def _check_boundary(boundary, n: int):
    if boundary is not None and (isinstance(boundary, bool) or not isinstance(boundary, int)
                                 or not 0 < boundary < n):
        raise ParameterError(f"boundary must be an int in [1, {n - 1}] or None, got {boundary!r}")


def mps(n_qubits: int, layers: int = 1, *, cut_at: int | None = None,
        param_offset: int = 0) -> Circuit:
    """Matrix-product-state (staircase) ansatz (Huggins et al., QST 4, 024001, 2019).

    One layer is a sweep of two-qubit blocks ``RY RY CNOT`` on ``(0,1), (1,2), ...,
    (n-2, n-1)``; information flows to the last wire (read it out there). Every boundary
    between wires ``b-1 | b`` is crossed by exactly one gate per layer, so a wire or gate cut
    anywhere costs ``layers`` cuts. ``cut_at=b`` marks the crossing CNOTs ``cut=True`` for
    gate cutting. Block ``(q, q+1)`` of layer ``l`` reads
    ``params[param_offset + 2 * (l * (n-1) + q) + {0, 1}]``.
    """
    n = Circuit(n_qubits).n_qubits
    layers = _check_layers(layers)
    _check_boundary(cut_at, n)
    if n < 2:
        raise ParameterError(f"mps needs at least 2 qubits, got n_qubits={n}")
    block = Circuit(n)
    for q in range(n - 1):
        block = _two_qubit_block(block, q, q + 1, 2 * q, _crosses(q, q + 1, cut_at))
    return Circuit.repeat(block, layers, param_offset=param_offset)


def tree_tensor_network(n_qubits: int, layers: int = 1, *, cut_at: int | None = None,
                        param_offset: int = 0) -> Circuit:
    """Tree-tensor-network ansatz (Grant et al., npj QI 4, 65, 2018).

    Level 0 applies ``RY RY CNOT`` blocks to neighbouring pairs ``(0,1), (2,3), ...``; each
    block's second wire stays active. Level ``k`` pairs the surviving wires the same way,
    until one root wire remains (the last wire, ``n-1``; read it out there). For ``n`` a
    power of two, the half-way boundary ``n/2`` is crossed only by the root block: one gate
    per layer. The tree is repeated ``layers`` times with ``Circuit.repeat``; ``cut_at=b``
    marks the CNOTs crossing ``b-1 | b`` ``cut=True``. ``n_params = param_offset +
    2 * (n-1) * layers`` (blocks in level order).
    """
    n = Circuit(n_qubits).n_qubits
    layers = _check_layers(layers)
    _check_boundary(cut_at, n)
    if n < 2:
        raise ParameterError(f"tree_tensor_network needs at least 2 qubits, got n_qubits={n}")
    tree, active, k = Circuit(n), list(range(n)), 0
    while len(active) > 1:
        survivors = [] if len(active) % 2 == 0 else [active[-1]]
        for a, b in zip(active[0::2], active[1::2]):
            tree = _two_qubit_block(tree, a, b, 2 * k, _crosses(a, b, cut_at))
            survivors.append(b)
            k += 1
        active = sorted(survivors)
    return Circuit.repeat(tree, layers, param_offset=param_offset)


def boundary_crossings(circuit: Circuit, boundary: int) -> int:
    """The number of multi-qubit ops of ``circuit`` (repeats unrolled) that touch wires on
    both sides of ``boundary`` (wires ``< boundary`` vs ``>= boundary``): the wire or gate
    cuts needed to split the circuit there."""
    _check_boundary(boundary, circuit.n_qubits)
    return sum(
        1 for op in circuit.unroll().ops
        if len(op.wires) > 1 and min(op.wires) < boundary <= max(op.wires)
    )
