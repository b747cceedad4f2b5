"""The simulation engine: walks a ``Circuit`` over a state (traceable, not jitted).

One walk (:func:`evolve`) drives every simulation mode; only the per-op update differs:
:func:`statevector_op` (pure states, gates fused into blocks), :func:`density_op` (density
tensors, channels as Kraus superoperators) and the trajectory update of
:mod:`qjaxrob.sim.trajectories`. A ``Repeat`` node becomes one ``lax.scan`` over its
repetitions' parameter rows (:func:`repeat_rows`), so compile time does not grow with the
repetition count; repeated layers of a flat circuit are rolled the same way
(:mod:`qjaxrob.lower.rolling`), and long statevector runs with no repetition become interpreter
programs (:mod:`qjaxrob.lower.interpreter`: one scan over a block table). :func:`observable_value` and :func:`term_values` read Pauli-sum
expectations off a final tensor.

This module sits between the circuit IR (``circuit``, ``fusion``, ``channels``,
``observables``) and the entry points (``simulate``, ``adjoint``, ``trajectories``,
``cutting``): they import it; it imports none of them. Nothing here validates input:
callers pass checked ``params``/``x`` (:mod:`qjaxrob.checks`).

Tensor layout: a state is ``(2,)*n`` with axis k = wire k (wire 0 the most significant bit
of the flat basis index); a density tensor is ``(2,)*2n`` with row axes ``0..n-1`` and
column axes ``n..2n-1``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob import backend
from qjaxrob.ir import channels
from qjaxrob.checks import check_int
from qjaxrob.ir.circuit import Circuit, Op, Repeat
from qjaxrob.errors import DensityMatrixOnlyError
from qjaxrob.lower.fusion import Block, block_apply_args, fuse, op_matrix
from qjaxrob.lower.interpreter import INTERPRET_MIN_BLOCKS, Program, interpret, run_program
from qjaxrob.kernels import (
    apply_diagonal_density,
    apply_kraus,
    apply_matrix_density,
    apply_permutation,
    density_diagonal,
    density_pauli_expval,
    pauli_expval,
    z_signs,
)
from qjaxrob.ir.observables import PauliSum, pauli_masks, split_word
from qjaxrob.lower.rolling import ROLL_MIN_OPS, Roll, roll, roll_rows

__all__ = [
    "BATCHED_TERMS",
    "channel_kraus",
    "coefficients",
    "density_op",
    "evolve",
    "final_tensor",
    "observable_value",
    "observable_values",
    "prepare_ops",
    "product_prefix",
    "product_state",
    "repeat_rows",
    "statevector_op",
    "term_values",
    "zero_state",
]


def zero_state(n: int, dtype, mixed: bool = False):
    """``|0...0>`` as a ``(2,)*n`` tensor (or ``|0><0|`` as ``(2,)*2n`` when ``mixed``)."""
    shape = (2,) * (2 * n if mixed else n)
    state = jnp.zeros(shape, dtype).at[(0,) * len(shape)].set(1)
    # The barrier stops XLA from constant-folding a whole parameter-free circuit at
    # compile time (which embeds huge constants and can take minutes).
    return jax.lax.optimization_barrier(state)


def repeat_rows(op: Repeat, params):
    """The ``(times, block.n_params)`` parameter rows a ``Repeat`` node scans over: row r
    is ``params[offset + r * stride : offset + (r + 1) * stride]``."""
    stride = op.block.n_params
    if not stride:
        return jnp.zeros((op.times, 0), params.dtype)
    start = op.param_offset
    return params[start : start + op.times * stride].reshape(op.times, stride)


def evolve(circuit: Circuit, carry, params, x, apply_op, prepare=None):
    """Applies ``apply_op(carry, op, params, x) -> carry`` over the circuit's ops, lowering
    each ``Repeat`` to a ``lax.scan`` over :func:`repeat_rows` and each ``Roll`` (a repeated
    layer found by :func:`qjaxrob.lower.rolling.roll`) to a ``lax.scan`` over its gathered
    parameter and input rows (:func:`qjaxrob.lower.rolling.roll_rows`).

    ``prepare`` (optional, static) maps an op tuple to the sequence actually applied, e.g.
    :func:`prepare_ops`; it is applied to every ``Repeat``/``Roll`` body as well."""
    ops = circuit.ops if prepare is None else prepare(circuit.ops)
    for op in ops:
        if isinstance(op, Repeat):
            def body(carry, p, block=op.block):
                return evolve(block, carry, p, x, apply_op, prepare), None

            carry, _ = jax.lax.scan(body, carry, repeat_rows(op, params))
        elif isinstance(op, Roll):
            def body(carry, rows, block=op.block):
                return evolve(block, carry, rows[0], rows[1], apply_op, prepare), None

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
    wire before any multi-wire gate does (:func:`product_prefix`, e.g. an angle encoding):
    one 2-vector per wire and a chain of outer products instead of passes over the state
    (measured: HEA L=2 forward n=20 38 -> 28 ms, gradient 407 -> 327 ms)."""
    interpret_blocks = check_int(interpret_blocks, "interpret_blocks", minimum=0)
    n = circuit.n_qubits
    if mixed:
        prepare = partial(prepare_ops, n_qubits=n, fuse_qubits=0, roll_ops=roll_ops)
        return evolve(circuit, zero_state(n, dtype, True), params, x, density_op(dtype), prepare)
    cost = None
    if fuse_qubits is None:
        policy = backend.fusion_policy(kernels=kernels)
        fuse_qubits, cost = policy.max_qubits, policy.cost
    prefix, rest = product_prefix(circuit.ops)
    start = product_state(prefix, n, params, x, dtype) if prefix else zero_state(n, dtype)
    # programs replace top-level runs only: the bodies of Repeat/Roll nodes keep their
    # scanned blocks (a repeat-built circuit never takes the interpreter)
    top = Circuit(n, interpret(roll(rest, n, roll_ops), n, interpret_blocks))
    prepare = partial(prepare_ops, n_qubits=n, fuse_qubits=fuse_qubits, roll_ops=roll_ops,
                      cost=cost)
    return evolve(top, start, params, x, statevector_op(dtype, kernels), prepare)


def product_prefix(ops: tuple):
    """``(prefix, rest)``: the 1-wire gates that act on their wire before any multi-wire op
    touches it (looking up to the first ``Repeat``/``Roll``/channel), and every other op in
    its order. The prefix commutes to the front, so it prepares a product state."""
    prefix, rest, entangled = [], [], set()
    for i, op in enumerate(ops):
        if not isinstance(op, Op) or op.is_channel:
            return tuple(prefix), tuple(rest) + tuple(ops[i:])
        if op.is_marker:
            rest.append(op)
        elif len(op.wires) == 1 and op.wires[0] not in entangled:
            prefix.append(op)
        else:
            entangled.update(op.wires)
            rest.append(op)
    return tuple(prefix), tuple(rest)


def product_state(prefix, n: int, params, x, dtype):
    """The ``(2,)*n`` product state ``prod_q (U_q |0>)`` of 1-wire gates ``prefix`` on
    ``|0...0>`` (:func:`product_prefix`): one 2-vector per wire, then outer products."""
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


BATCHED_TERMS = 8
"""Observables with more than this many Pauli terms are evaluated by one
batched contraction (:func:`_batched_term_values`) instead of one kernel per term: a
per-term Python loop makes the traced program (and its gradient) grow with every term, and
XLA's compile time grows faster than linearly in program size."""

_BATCH_ENTRIES = 2**22
"""Entries (terms x amplitudes) processed at once by the batched contraction."""


def _batched_term_values(t, words, mixed: bool):
    """``<P_k>`` for all words at once. With ``P = i**n_Y X^x Z^z`` (:func:`qjaxrob.ir.observables.pauli_masks`),
    ``P[i, i ^ x] = i**n_Y (-1)**|(i ^ x) & z|`` is the only nonzero of row i, so a state gives
    ``<psi|P|psi> = i**n_Y sum_i conj(psi_i) (-1)**|(i^x) & z| psi_{i^x}`` and a density
    matrix ``Tr(P rho) = i**n_Y sum_i (-1)**|(i^x) & z| rho[i^x, i]``. Evaluated by
    ``lax.map`` over the terms (one traced body, whatever their number; batches of
    ``_BATCH_ENTRIES`` entries bound the memory)."""
    n = t.ndim // 2 if mixed else t.ndim
    dim = 2**n
    flat = t.reshape(-1)
    xs, zs, phases = pauli_masks(words, n)
    idx = jnp.arange(dim, dtype=jnp.int32)

    def one(masks):
        x, z = masks
        j = idx ^ x
        sign = (1 - 2 * (jax.lax.population_count(j & z) & 1)).astype(t.dtype)
        if mixed:
            return jnp.sum(sign * flat[j * dim + idx])
        return jnp.vdot(flat, sign * flat[j])

    batch = max(1, min(len(words), _BATCH_ENTRIES // dim))
    vals = jax.lax.map(one, (jnp.asarray(xs), jnp.asarray(zs)), batch_size=batch)
    return jnp.real(vals * jnp.asarray(phases, t.dtype))


SIGN_TABLE_ENTRIES = 2**16
"""Largest static sign table (diagonal words x basis states) of :func:`_diagonal_values`;
beyond it each word is one masked sum over the shared probabilities."""


def _probabilities(t, mixed: bool):
    """The flat computational-basis probabilities of a state (``|psi_i|^2`` as
    ``re^2 + im^2``: smooth to every order, unlike ``abs``) or of a density tensor (its
    real diagonal), shape ``(2**n,)``."""
    if mixed:
        return density_diagonal(t).reshape(-1)
    flat = t.reshape(-1)
    return jnp.real(flat) ** 2 + jnp.imag(flat) ** 2


def _sign_table(z_masks, n: int) -> np.ndarray:
    """``(W, 2**n)`` int8 table ``(-1)**|i & z_k|`` of Z masks (bit ``n-1-w`` = wire w)."""
    basis = np.arange(2**n)
    parity = np.zeros((len(z_masks), 2**n), np.int64)
    for b in range(n):
        parity ^= ((basis[None, :] & z_masks[:, None]) >> b) & 1
    return (1 - 2 * parity).astype(np.int8)


def _diagonal_values(t, words, mixed: bool):
    """``<P_k>`` of words made of ``I``/``Z`` letters only, shape ``(W,)``: one pass for the
    probabilities ``p``, then ``<Z^z> = sum_i (-1)**|i & z| p_i`` for every word at once,
    as one product with a static ``(W, 2**n)`` sign table when it has at most
    :data:`SIGN_TABLE_ENTRIES` entries (small registers, where the number of passes
    dominates), else one masked sum per word over the same ``p``: traced one by one for up
    to :data:`BATCHED_TERMS` words, beyond that one ``lax.map`` body over the masks (signs
    from ``popcount(i & z)``, as :func:`_batched_term_values`)."""
    n = t.ndim // 2 if mixed else t.ndim
    p = _probabilities(t, mixed)
    _, zs, _ = pauli_masks(words, n)
    if len(words) * 2**n <= SIGN_TABLE_ENTRIES:
        return jnp.asarray(_sign_table(zs, n), p.dtype) @ p
    if len(words) <= BATCHED_TERMS:
        p = p.reshape((2,) * n)
        return jnp.stack([jnp.sum(p * z_signs([w for w, _ in word], n, p.dtype))
                          for word in words])
    idx = jnp.arange(2**n, dtype=jnp.int32)

    def one(z):
        return jnp.sum(jnp.where(jax.lax.population_count(idx & z) & 1, -p, p))

    batch = max(1, min(len(words), _BATCH_ENTRIES // 2**n))
    return jax.lax.map(one, jnp.asarray(zs), batch_size=batch)


def _all_term_values(t, words, mixed: bool):
    real = jnp.finfo(t.dtype).dtype
    if not words:
        return jnp.zeros((0,), real)
    n = t.ndim // 2 if mixed else t.ndim
    diagonal = np.array([all(letter in "IZ" for _, letter in w) for w in words])
    if diagonal.any():
        vals = _diagonal_values(t, tuple(w for w, d in zip(words, diagonal) if d), mixed)
        if diagonal.all():
            return vals.astype(real)
        rest = _all_term_values(t, tuple(w for w, d in zip(words, diagonal) if not d), mixed)
        order = np.argsort(np.concatenate([np.flatnonzero(diagonal), np.flatnonzero(~diagonal)]))
        return jnp.concatenate([vals.astype(real), rest])[order]
    if len(words) > BATCHED_TERMS and (4**n if mixed else 2**n) < 2**31:
        return _batched_term_values(t, words, mixed).astype(real)
    kernel = density_pauli_expval if mixed else pauli_expval
    return jnp.stack([kernel(t, *split_word(w)) for w in words]).astype(real)


def term_values(t, obs: PauliSum, mixed: bool):
    """The expectation of every Pauli term of ``obs`` on the final tensor ``t``, shape
    ``(n_terms,)``, real."""
    return _all_term_values(t, tuple(w for _, w in obs.terms), mixed)


def coefficients(obs: PauliSum, real_dtype):
    """The real coefficients of ``obs``'s terms, shape ``(n_terms,)``."""
    return jnp.array([c.real for c, _ in obs.terms], real_dtype)


def observable_values(t, observables, mixed: bool):
    """``<O_k>`` for a tuple of ``PauliSum`` s on one final tensor, shape ``(K,)``: every
    term of every observable is evaluated in one :func:`term_values`-style pass, then
    summed per observable with its coefficients."""
    words = tuple(w for o in observables for _, w in o.terms)
    vals = _all_term_values(t, words, mixed)
    owner = np.repeat(np.arange(len(observables)), [len(o.terms) for o in observables])
    coeffs = np.array([c.real for o in observables for c, _ in o.terms])
    weighted = vals * jnp.asarray(coeffs, vals.dtype)
    return jax.ops.segment_sum(weighted, jnp.asarray(owner, jnp.int32), len(observables))


def observable_value(t, obs: PauliSum, mixed: bool):
    """``<O>`` on a final tensor (real scalar): the coefficient-weighted term values."""
    return observable_values(t, (obs,), mixed)[0]
