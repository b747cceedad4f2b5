"""The simulation engine: walks a ``Circuit`` over a state (traceable, not jitted).

One walk (:func:`evolve`) drives every simulation mode; only the per-op update differs:
:func:`statevector_op` (pure states, gates fused into blocks), :func:`density_op` (density
tensors, channels as Kraus superoperators) and the trajectory update of
:mod:`qjaxrob.sim.trajectories`. Scanned nodes (``Circuit.repeat`` blocks and repeated
layers of a flat circuit, both ``Roll`` nodes of :mod:`qjaxrob.lower.rolling`) become one
``lax.scan`` over their repetitions' rows, so compile time does not grow with the
repetition count, and long statevector runs with no repetition become interpreter
programs (:mod:`qjaxrob.lower.interpreter`: one scan over a block table). Values are read
off the final tensor by :mod:`qjaxrob.sim.measure`.

This module sits between lowering (``qjaxrob.lower``) and the readers of its tensors
(``measure``, ``adjoint``, ``trajectories``, ``qjaxrob.simulate``): they import it; it
imports none of them. Nothing here validates input:
callers pass checked ``params``/``x`` (:mod:`qjaxrob.checks`).

Tensor layout: a state is ``(2,)*n`` with axis k = wire k (wire 0 the most significant bit
of the flat basis index); a density tensor is ``(2,)*2n`` with row axes ``0..n-1`` and
column axes ``n..2n-1``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from qjaxrob import backend
from qjaxrob.checks import check_int
from qjaxrob.errors import DensityMatrixOnlyError
from qjaxrob.ir import channels
from qjaxrob.ir.circuit import Circuit, Repeat
from qjaxrob.kernels import (
    apply_diagonal_density,
    apply_kraus,
    apply_matrix_density,
    apply_permutation,
)
from qjaxrob.lower.fusion import Block, block_apply_args, fuse, op_matrix
from qjaxrob.lower.interpreter import INTERPRET_MIN_BLOCKS, Program, interpret, run_program
from qjaxrob.lower.pipeline import lower
from qjaxrob.lower.rolling import ROLL_MIN_OPS, Roll, repeat_as_roll, roll, roll_rows

__all__ = [
    "channel_kraus",
    "density_op",
    "evolve",
    "final_tensor",
    "prepare_ops",
    "product_state",
    "statevector_op",
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


def evolve(circuit: Circuit, carry, params, x, apply_op, prepare=None):
    """Applies ``apply_op(carry, op, params, x) -> carry`` over the circuit's ops
    (:func:`walk`)."""
    return walk(circuit.ops, carry, params, x, apply_op, prepare)


def walk(nodes: tuple, carry, params, x, apply_op, prepare=None):
    """Applies ``apply_op(carry, op, params, x) -> carry`` over ``nodes``, lowering each
    ``Roll`` (a repeated layer found by :func:`qjaxrob.lower.rolling.roll`, or a
    ``Circuit.repeat`` node, :func:`qjaxrob.lower.rolling.repeat_as_roll`) to one
    ``lax.scan`` over its gathered parameter and input rows
    (:func:`qjaxrob.lower.rolling.roll_rows`).

    ``prepare`` (optional, static) maps an op tuple to the sequence actually applied, e.g.
    :func:`prepare_ops`; it is applied to every ``Repeat``/``Roll`` body as well."""
    ops = nodes if prepare is None else prepare(nodes)
    for op in ops:
        if isinstance(op, Repeat):
            op = repeat_as_roll(op)
        if isinstance(op, Roll):
            def body(carry, rows, block=op.block):
                return walk(block.ops, carry, rows[0], rows[1], apply_op, prepare), None

            carry, _ = jax.lax.scan(body, carry, roll_rows(op, params, x))
        else:
            carry = apply_op(carry, op, params, x)
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


def prepare_ops(ops: tuple, n_qubits: int, fuse_qubits=None, roll_ops=ROLL_MIN_OPS,
                cost=None, kernels=None, interpret_blocks=0) -> tuple:
    """The op sequence the walk applies: repeated layers rolled into ``Roll`` nodes
    (:func:`qjaxrob.lower.rolling.roll`, runs of at least ``roll_ops`` ops; ``0`` disables), then
    runs of 1-2 wire gates that fuse into at least ``interpret_blocks`` blocks made
    interpreter :class:`~qjaxrob.lower.interpreter.Program` s (:func:`qjaxrob.lower.interpreter.interpret`;
    ``0``, the default here, disables: statevector walks only), then the remaining
    gates fused into blocks of at most ``fuse_qubits`` wires (``0`` disables) priced by
    ``cost`` (``(key, cost)`` pairs, ``None``: ``fusion.KERNEL_COST``). ``fuse_qubits=None``
    (default) takes width and costs from :func:`qjaxrob.backend.fusion_policy` for the
    current backend and ``kernels`` (on CPU exactly fusion's defaults)."""
    if fuse_qubits is None:
        policy = backend.fusion_policy(kernels=kernels)
        fuse_qubits, cost = policy.max_qubits, policy.cost
    ops = interpret(roll(ops, n_qubits, roll_ops), n_qubits, interpret_blocks)
    return fuse(ops, max_qubits=fuse_qubits, cost=cost) if fuse_qubits else ops


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
    e.g. an angle encoding):
    one 2-vector per wire and a chain of outer products instead of passes over the state."""
    interpret_blocks = check_int(interpret_blocks, "interpret_blocks", minimum=0)
    n = circuit.n_qubits
    if mixed:
        prepare = partial(prepare_ops, n_qubits=n, fuse_qubits=0, roll_ops=roll_ops)
        return evolve(circuit, zero_state(n, dtype, True), params, x, density_op(dtype), prepare)
    cost = None
    if fuse_qubits is None:
        policy = backend.fusion_policy(kernels=kernels)
        fuse_qubits, cost = policy.max_qubits, policy.cost
    # the one lowering (qjaxrob.lower.pipeline) the adjoint's backward walk shares:
    # programs replace top-level runs only; Repeat/Roll bodies keep their scanned blocks
    low = lower(circuit.ops, n, roll_ops, interpret_blocks)
    start = (product_state(low.prefix, n, params, x, dtype) if low.prefix
             else zero_state(n, dtype))
    prepare = partial(prepare_ops, n_qubits=n, fuse_qubits=fuse_qubits, roll_ops=roll_ops,
                      cost=cost)
    return walk(low.nodes, start, params, x, statevector_op(dtype, kernels), prepare)


def product_state(prefix, n: int, params, x, dtype):
    """The ``(2,)*n`` product state ``prod_q (U_q |0>)`` of 1-wire gates ``prefix`` on
    ``|0...0>`` (:func:`qjaxrob.lower.pipeline.product_prefix`): one 2-vector per wire,
    then outer products."""
    vecs = [jnp.zeros(2, dtype).at[0].set(1)] * n
    for op in prefix:
        kind, m = op_matrix(op, params, x, dtype)
        w = op.wires[0]
        vecs[w] = m * vecs[w] if kind == "diagonal" else m @ vecs[w]
    vecs = jax.lax.optimization_barrier(jnp.stack(vecs))  # no constant folding (zero_state)
    out = vecs[0]
    for q in range(1, n):
        out = (out[:, None] * vecs[q][None, :]).reshape(-1)
    return out.reshape((2,) * n)
