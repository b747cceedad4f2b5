"""The simulation engine: walks a lowered circuit over a state (traceable, not jitted).

Every mode walks the one lowering of :func:`qjaxrob.lower.pipeline.lower` under its own
:class:`~qjaxrob.lower.pipeline.Policy` (:func:`statevector_policy`, :func:`density_policy`;
trajectories in :mod:`qjaxrob.sim.trajectories`), and one walk (:func:`walk`) drives them
all; only the per-node update differs: :func:`statevector_op` (pure states: fused blocks,
interpreter programs), :func:`density_op` (density tensors, channels as Kraus
superoperators) and the trajectory update. Scanned nodes (``Circuit.repeat`` blocks and
repeated layers of a flat circuit) are one ``lax.scan`` over their repetitions' rows, so
compile time does not grow with the repetition count, and long statevector runs with no
repetition are interpreter programs (:mod:`qjaxrob.lower.interpreter`: one scan over a
block table). Values are read off the final tensor by :mod:`qjaxrob.sim.measure`.

This module sits between lowering (``qjaxrob.lower``) and the readers of its tensors
(``measure``, ``adjoint``, ``trajectories``, ``qjaxrob.simulate``): they import it; it
imports none of them. Nothing here validates input:
callers pass checked ``params``/``x`` (:mod:`qjaxrob.checks`).

Tensor layout: a state is ``(2,)*n`` with axis k = wire k (wire 0 the most significant bit
of the flat basis index); a density tensor is ``(2,)*2n`` with row axes ``0..n-1`` and
column axes ``n..2n-1``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob import backend
from qjaxrob.checks import check_int
from qjaxrob.errors import DensityMatrixOnlyError
from qjaxrob.ir import channels
from qjaxrob.ir.circuit import Circuit
from qjaxrob.kernels import (
    apply_diagonal_density,
    apply_kraus,
    apply_matrix_density,
    apply_permutation,
)
from qjaxrob.lower.fusion import Block, block_apply_args, op_matrix
from qjaxrob.lower.interpreter import INTERPRET_MIN_BLOCKS, Program, run_program
from qjaxrob.lower.pipeline import Lowered, Policy, Scan, lower
from qjaxrob.lower.rolling import ROLL_MIN_OPS, roll_rows

__all__ = [
    "channel_kraus",
    "density_op",
    "density_policy",
    "outer_product",
    "final_tensor",
    "prefix_vectors",
    "product_state",
    "run_lowered",
    "statevector_op",
    "statevector_policy",
    "walk",
    "zero_state",
]


def zero_state(n: int, dtype, mixed: bool = False):
    """``|0...0>`` as a ``(2,)*n`` tensor (or ``|0><0|`` as ``(2,)*2n`` when ``mixed``)."""
    shape = (2,) * (2 * n if mixed else n)
    state = jnp.zeros(shape, dtype).at[(0,) * len(shape)].set(1)
    # The barrier stops XLA from constant-folding a whole parameter-free circuit at
    # compile time (which embeds huge constants and can take minutes).
    return jax.lax.optimization_barrier(state)


def walk(nodes: tuple, carry, params, x, apply_op):
    """Applies ``apply_op(carry, node, params, x) -> carry`` over lowered ``nodes``
    (:class:`qjaxrob.lower.pipeline.Lowered`), each :class:`~qjaxrob.lower.pipeline.Scan` as
    one ``lax.scan`` of its body over the gathered parameter and input rows
    (:func:`qjaxrob.lower.rolling.roll_rows`)."""
    for node in nodes:
        if isinstance(node, Scan):
            def body(carry, rows, nodes=node.body.nodes):
                return walk(nodes, carry, rows[0], rows[1], apply_op), None

            carry, _ = jax.lax.scan(body, carry, roll_rows(node.roll, params, x))
        else:
            carry = apply_op(carry, node, params, x)
    return carry


def _kernels(kernels=None):
    """``(apply_matrix, apply_diagonal)`` of the kernel set chosen at trace time by
    :func:`qjaxrob.backend.kernel_set` (``kernels`` or ``$QJAXROB_KERNELS``: ``auto``, the
    default, picks XLA until the Pallas kernels are proven on a GPU)."""
    ks = backend.kernel_set(kernels)
    return ks.apply_matrix, ks.apply_diagonal


def statevector_op(dtype, kernels=None):
    """Per-op statevector update ``(state, op, params, x) -> state`` for gates, fused
    blocks, interpreter programs (:func:`qjaxrob.lower.interpreter.run_program`) and markers
    (channels raise ``DensityMatrixOnlyError``); ``kernels``:
    ``"auto"``/``"xla"``/``"pallas"``, default ``$QJAXROB_KERNELS`` (see :func:`_kernels`)."""
    matrix_kernel, diagonal_kernel = _kernels(kernels)

    def apply(state, op, params, x):
        if isinstance(op, Program):
            return run_program(op, state, params, x, dtype)
        if isinstance(op, Block):
            arg = block_apply_args(op, params, x, dtype)
            if op.kind == "diagonal":
                return diagonal_kernel(state, arg, op.wires)
            if op.kind == "permutation":
                return apply_permutation(state, op.perm, arg, op.wires)
            return matrix_kernel(state, arg, op.wires)
        if op.is_marker:
            return state
        if op.is_channel:
            raise DensityMatrixOnlyError(
                f"channel {op.name!r} on wires {op.wires} needs density-matrix simulation "
                "(mixed=True / qjr.density_matrix) or quantum trajectories (pass key=)"
            )
        kind, m = op_matrix(op, params, x, dtype)
        if kind == "diagonal":
            return diagonal_kernel(state, m, op.wires)
        return matrix_kernel(state, m, op.wires)

    return apply


def channel_kraus(op, params, x, dtype):
    """The ``(m, 2**k, 2**k)`` Kraus set of channel ``op`` at its resolved (possibly traced)
    levels."""
    values = tuple(a.resolve(params, x) for a in op.angles)
    return channels.kraus_set(op.name, len(op.wires), values, op.matrices, op.meta, dtype)


def density_op(dtype):
    """Per-op density-tensor update ``(rho, op, params, x) -> rho`` (gates, channels, markers)."""
    def apply(rho, op, params, x):
        if op.is_marker:
            return rho
        if op.is_channel:
            return apply_kraus(rho, channel_kraus(op, params, x, dtype), op.wires)
        kind, m = op_matrix(op, params, x, dtype)
        if kind == "diagonal":
            return apply_diagonal_density(rho, m, op.wires)
        return apply_matrix_density(rho, m, op.wires)

    return apply


def statevector_policy(fuse_qubits=None, roll_ops=ROLL_MIN_OPS, kernels=None,
                       interpret_blocks=INTERPRET_MIN_BLOCKS) -> Policy:
    """The lowering policy of a statevector walk: product prefix, rolling (runs of at least
    ``roll_ops`` ops; ``0`` disables), interpretation (runs of at least
    ``interpret_blocks`` fused blocks; ``0`` disables) and fusion into blocks of at most
    ``fuse_qubits`` wires (``0`` disables; ``None``: width and costs from
    :func:`qjaxrob.backend.fusion_policy` for the current backend and ``kernels``)."""
    cost = None
    if fuse_qubits is None:
        fusion = backend.fusion_policy(kernels=kernels)
        fuse_qubits, cost = fusion.max_qubits, fusion.cost
    return Policy(fuse_qubits, cost, roll_ops, interpret_blocks, prefix=True)


def density_policy(roll_ops=ROLL_MIN_OPS) -> Policy:
    """The lowering policy of a density-matrix walk: rolling only (no fusion, no
    interpreter, no product prefix)."""
    return Policy(0, None, roll_ops, 0, prefix=False)


def final_tensor(circuit: Circuit, params, x, dtype, mixed: bool, fuse_qubits=None,
                 roll_ops=ROLL_MIN_OPS, kernels=None, interpret_blocks=INTERPRET_MIN_BLOCKS):
    """The final ``(2,)*n`` state or ``(2,)*2n`` density tensor (traceable, not jitted).

    Repeated layers of at least ``roll_ops`` ops in all are rolled into one ``lax.scan``
    (:mod:`qjaxrob.lower.rolling`; ``0`` disables), so compile time does not grow with depth.
    Statevector simulation uses the kernel set ``kernels`` (``"auto"``/``"xla"``/
    ``"pallas"``, default ``$QJAXROB_KERNELS``, see :func:`statevector_op`) and fuses gates
    into blocks of at most ``fuse_qubits`` wires (:mod:`qjaxrob.lower.fusion`; ``0`` disables
    fusion; ``None``, the default: the backend's fusion policy for that kernel set,
    :func:`qjaxrob.backend.fusion_policy`). Density-matrix simulation is unfused.

    Top-level statevector runs of 1-2 wire gates left unrolled that fuse into at least
    ``interpret_blocks`` blocks (default :data:`qjaxrob.lower.interpreter.INTERPRET_MIN_BLOCKS`;
    ``0`` disables, ``1`` interprets every run) are executed by the interpreter
    (:mod:`qjaxrob.lower.interpreter`: one scan over a table of blocks, compile time flat in the
    run's length; its generic kernel ignores ``kernels``). ``Repeat``/``Roll`` bodies and
    density-matrix simulation are never interpreted.

    A statevector starts from the product state of the 1-wire gates that act on their
    wire before any multi-wire gate does (:func:`qjaxrob.lower.pipeline.product_prefix`,
    e.g. an angle encoding): one 2-vector per wire and a chain of outer products instead
    of passes over the state (unless the program starts with an interpreter program,
    which takes those gates into its first blocks)."""
    interpret_blocks = check_int(interpret_blocks, "interpret_blocks", minimum=0)
    n = circuit.n_qubits
    if mixed:
        low = lower(circuit.ops, n, density_policy(roll_ops))
        return walk(low.nodes, zero_state(n, dtype, True), params, x, density_op(dtype))
    low = lower(circuit.ops, n, statevector_policy(fuse_qubits, roll_ops, kernels,
                                                   interpret_blocks))
    return run_lowered(low, params, x, dtype, kernels)


def run_lowered(low: Lowered, params, x, dtype, kernels=None):
    """The final ``(2,)*n`` state of a lowered statevector program: its prefix's product
    state (:func:`product_state`, or ``|0...0>``) walked through its nodes."""
    n = low.n_qubits
    start = product_state(low.prefix, n, params, x, dtype) if low.prefix else zero_state(n, dtype)
    return walk(low.nodes, start, params, x, statevector_op(dtype, kernels))


def prefix_vectors(prefix, n: int, params, x, dtype):
    """``(n, 2)``: ``B_q |0>`` per wire ``q`` for the 1-wire fused blocks ``prefix`` (in
    order; :class:`qjaxrob.lower.pipeline.Lowered`), each block's operand from
    :func:`qjaxrob.lower.fusion.block_apply_args` applied to its wire's 2-vector (``|0>``
    for wires without a block). Per block rather than one vectorised table: XLA's CPU HLO
    verifier rejects the table's batched 2x2 products under nested ``vmap`` + ``jvp``
    (parameter-shift gradients of a vmapped model)."""
    vecs = [jnp.zeros(2, dtype).at[0].set(1)] * n
    for block in prefix:
        q = block.wires[0]
        arg = block_apply_args(block, params, x, dtype)
        if block.kind == "permutation":
            vecs[q] = apply_permutation(vecs[q], block.perm, arg, (0,))
        elif block.kind == "diagonal":
            vecs[q] = arg * vecs[q]
        else:
            vecs[q] = arg @ vecs[q]
    return jnp.stack(vecs)


def product_state(prefix, n: int, params, x, dtype):
    """The ``(2,)*n`` product state ``prod_q (B_q |0>)`` of the 1-wire blocks ``prefix``
    (:func:`prefix_vectors`): one 2-vector per wire, then outer products."""
    vecs = prefix_vectors(prefix, n, params, x, dtype)
    return outer_product(jax.lax.optimization_barrier(vecs))  # no constant folding (zero_state)


def outer_product(vecs):
    """The ``(2,)*n`` tensor ``vecs[0] (x) ... (x) vecs[n-1]`` of ``(n, 2)`` vectors."""
    out = vecs[0]
    for q in range(1, vecs.shape[0]):
        out = (out[:, None] * vecs[q][None, :]).reshape(-1)
    return out.reshape((2,) * vecs.shape[0])
