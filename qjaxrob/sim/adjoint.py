"""Adjoint-method gradients of statevector expectation values (``diff="adjoint"``).

For ``|psi> = U_N ... U_1 |0>`` and a real cost ``L = sum_o g_o <psi|O_o|psi>``, set
``|lam_N> = sum_o g_o O_o |psi_N>`` and walk the program backwards, keeping only ``psi_k``
and ``lam_k`` (so memory is independent of depth). ``dL = 2 Re <lam_k| dU_k |psi_{k-1}>``
for every node ``U_k``, so the cotangent of a node's matrix (JAX's convention
``dL = Re sum(ct * dU)``) is ``ct = 2 X_k conj(U_k)`` with ``X_k[i, j] = sum conj(lam_k)_i
(psi_k)_j`` the cross matrix of the node's wires (all other wires summed), and ``jax.vjp``
of the matrix builder maps it to ``params``/``x``: no generator table, every gate exact.

The backward walk runs the program the forward pass ran
(:func:`qjaxrob.lower.pipeline.lower` under :func:`qjaxrob.sim.engine.statevector_policy`),
node by node from the end, with one difference: runs of blocks on consecutive wire pairs
(a hardware-efficient layer) are grouped into sliding-window programs
(:mod:`qjaxrob.lower.ring`), so the walk's compiled size does not grow with the qubit
count (the forward pass keeps its unrolled blocks, which run faster):

* a fused ``Block`` is read (cross matrix and cotangent, if it has traced members) and
  undone on ``psi`` and ``lam`` at once (one kernel on the stacked pair: conjugate diagonal,
  inverse permutation or conjugate-transposed matrix);
* a ``Scan`` by a reversed ``lax.scan`` over its rows, its body walked backwards;
* an interpreter ``Program`` (sliding-window runs included) by the interpreter's reversed
  scan (:func:`qjaxrob.lower.interpreter.adjoint_program`);
* the product-state prefix last: ``dL = 2 Re <lam_0| d psi_0>``, so ``jax.vjp`` of the
  start state (:func:`qjaxrob.sim.engine.prefix_vectors` and their outer product) at the
  cotangent ``2 conj(lam_0)`` gives its ``params``/``x`` gradients.

The cotangents of a run of blocks are pulled back by one ``jax.vjp`` of all their
operands (:func:`qjaxrob.lower.fusion.block_apply_args`), which also gives the matrices the
undo uses.

**What it supports.** Reverse mode: ``jax.grad``, ``jax.vjp``, ``jax.jacrev``, and
higher orders built on them (``jax.hessian`` = ``jacfwd(jacrev)`` differentiates the
backward walk itself with ordinary autodiff and matches backprop). Forward mode applied to
the expectation itself (``jax.jvp``, ``jax.jacfwd``, ``jax.linearize`` outside a reverse
pass) has no adjoint rule -- the method is a custom VJP -- and raises
:class:`qjaxrob.errors.GradientError`; use ``diff="backprop"`` there. Statevector
simulation only: density-matrix (mixed) circuits and noise channels are rejected.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob import backend
from qjaxrob.checks import check_int
from qjaxrob.errors import GradientError, ParameterError
from qjaxrob.ir.observables import split_word
from qjaxrob.kernels import (
    apply_diagonal,
    apply_matrix,
    apply_pauli,
    apply_permutation,
    grouped_shape,
)
from qjaxrob.lower.fusion import Block, block_apply_args
from qjaxrob.lower.interpreter import INTERPRET_MIN_BLOCKS, Program, adjoint_program
from qjaxrob.lower.pipeline import Lowered, Scan, lower
from qjaxrob.lower.ring import RING_MIN_BLOCKS
from qjaxrob.lower.rolling import roll_rows
from qjaxrob.sim.engine import outer_product, prefix_vectors, run_lowered, statevector_policy
from qjaxrob.sim.measure import observable_values

__all__ = ["adjoint_expval", "undo_walk"]


# ---- one block, on the stacked pair (psi, lam) -------------------------------------------
# The walk carries ``pair``: a ``(2,) * (n + 1)`` tensor with ``pair[0] = psi`` and
# ``pair[1] = lam``, so one kernel undoes a block on both.
def _traced(block: Block) -> bool:
    return not all(op.is_constant for op in block.ops)


def _cross(pair, wires, diagonal: bool):
    """``X[i, j] = sum conj(lam)_i psi_j`` over the basis states ``i, j`` of the sorted
    ``wires`` (all other wires summed): ``(2**k, 2**k)``, or its diagonal ``(2**k,)``."""
    k = len(wires)
    view = grouped_shape(pair.ndim - 1, wires)
    psi, lam = pair[0].reshape(view), jnp.conj(pair[1]).reshape(view)
    rest = tuple(range(0, 2 * k + 1, 2))
    if diagonal:
        return jnp.sum(lam * psi, axis=rest).reshape(-1)
    x = jax.lax.dot_general(lam, psi, ((rest, rest), ((), ())))  # (2,)*k + (2,)*k
    return x.reshape(2**k, 2**k)


@lru_cache(maxsize=1024)
def _inverse_perm(perm, phases):
    inv = [0] * len(perm)
    ph = [0j] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
        ph[p] = complex(np.conj(phases[i]))
    return tuple(inv), tuple(ph)


def _undo(block: Block, pair, arg):
    """``pair`` with ``block`` undone on both states (``arg``: its operand)."""
    wires = tuple(w + 1 for w in block.wires)
    if block.kind == "permutation":
        perm, phases = _inverse_perm(block.perm, block.phases)
        ph = np.asarray(phases, pair.dtype)
        return apply_permutation(pair, perm, None if np.all(ph == 1) else ph, wires)
    if block.kind == "diagonal":
        return apply_diagonal(pair, jnp.conj(arg), wires)
    return apply_matrix(pair, jnp.conj(arg).T, wires)


def _blocks_backward(blocks, pair, params, x, dtype):
    """A run of fused blocks walked backwards. Returns ``(pair, d params, d x)``."""
    traced = [i for i, b in enumerate(blocks) if b.kind != "permutation" and _traced(b)]
    args, pullback = jax.vjp(
        lambda p, xx: tuple(block_apply_args(blocks[i], p, xx, dtype) for i in traced),
        params, x)
    operand = dict(zip(traced, args))
    cts = {}
    for i in reversed(range(len(blocks))):
        b = blocks[i]
        arg = operand[i] if i in operand else (
            None if b.kind == "permutation" else block_apply_args(b, params, x, dtype))
        if i in operand:
            diagonal = b.kind == "diagonal"
            xb = _cross(pair, b.wires, diagonal)
            cts[i] = 2 * (xb * jnp.conj(arg) if diagonal else xb @ jnp.conj(arg))
        pair = _undo(b, pair, arg)
    if not traced:
        return pair, jnp.zeros_like(params), jnp.zeros_like(x)
    dp, dx = pullback(tuple(cts[i] for i in traced))
    return pair, dp, dx


# ---- the backward walk -----------------------------------------------------------------
def _nodes_backward(nodes, pair, params, x, dtype):
    """Walks lowered ``nodes`` backwards (module docs). Returns ``(pair, d params, d x)``."""
    grad_p, grad_x = jnp.zeros_like(params), jnp.zeros_like(x)
    run = []

    def flush(pair):
        dp, dx = jnp.zeros_like(params), jnp.zeros_like(x)
        if run:
            pair, dp, dx = _blocks_backward(tuple(reversed(run)), pair, params, x, dtype)
            run.clear()
        return pair, dp, dx

    for node in reversed(nodes):
        if isinstance(node, Program | Scan):
            pair, dp, dx = flush(pair)
            grad_p, grad_x = grad_p + dp, grad_x + dx
            if isinstance(node, Program):
                psi, lam, dp, dx = adjoint_program(node, pair[0], pair[1], params, x, dtype)
                pair = jnp.stack([psi, lam])
            else:
                pair, dp, dx = _scan_backward(node, pair, params, x, dtype)
        else:
            run.append(node)
            continue
        grad_p, grad_x = grad_p + dp, grad_x + dx
    pair, dp, dx = flush(pair)
    return pair, grad_p + dp, grad_x + dx


def _scan_backward(node: Scan, pair, params, x, dtype):
    """A :class:`~qjaxrob.lower.pipeline.Scan` walked backwards: one reversed ``lax.scan``
    over its rows; each repetition's row gradients are added back at the indices of its
    table row (the transpose of the row gather)."""
    rows, scatter = jax.vjp(lambda p, xx: roll_rows(node.roll, p, xx), params, x)

    def body(pair, rows, nodes=node.body.nodes):
        pair, gp, gx = _nodes_backward(nodes, pair, rows[0], rows[1], dtype)
        return pair, (gp, gx)

    pair, grads = jax.lax.scan(body, pair, rows, reverse=True)
    dp, dx = scatter(grads)
    return pair, dp, dx


def _prefix_backward(low: Lowered, lam, params, x, dtype):
    """``(d params, d x)`` of the product-state prefix (module docs), ``lam`` at the start
    of the program."""
    def start(p, xx):
        return outer_product(prefix_vectors(low.prefix, low.n_qubits, p, xx, dtype))

    _, pullback = jax.vjp(start, params, x)
    return pullback(2 * jnp.conj(lam))


def _backward(low: Lowered, pair, params, x, dtype):
    """``(d params, d x)``: ``low`` walked backwards from ``pair`` = (psi, lam) at its end."""
    pair, grad_p, grad_x = _nodes_backward(low.nodes, pair, params, x, dtype)
    if low.prefix:
        dp, dx = _prefix_backward(low, pair[1], params, x, dtype)
        grad_p, grad_x = grad_p + dp, grad_x + dx
    return grad_p, grad_x


def _lowered(circuit, kernels, min_blocks, backward=False) -> Lowered:
    """The forward pass's lowering; with ``backward``, the same program with its runs of
    sliding windows grouped (module docs)."""
    policy = statevector_policy(kernels=kernels, interpret_blocks=min_blocks)
    if backward:
        policy = replace(policy, ring_blocks=RING_MIN_BLOCKS)
    return lower(circuit.ops, circuit.n_qubits, policy)


def undo_walk(circuit, psi, lam, params, x, dtype, interpret_blocks=INTERPRET_MIN_BLOCKS):
    """The adjoint method's backward walk over ``circuit`` from any state: ``psi`` (the
    state after the circuit, shape ``(2,) * n``) and ``lam`` (its cotangent state) are
    walked back through the circuit's statevector lowering without a product prefix (the
    state before need not be ``|0...0>``). Returns ``(psi_before, lam_before, grad_params,
    grad_x)``, the gradients being sums over the amplitudes of the tensors given (so partial
    sums over shards of a state add up)."""
    policy = replace(statevector_policy(interpret_blocks=interpret_blocks), prefix=False)
    low = lower(circuit.ops, circuit.n_qubits, policy)
    pair, grad_p, grad_x = _nodes_backward(low.nodes, jnp.stack([psi, lam]), params, x, dtype)
    return pair[0], pair[1], grad_p, grad_x


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 4, 5, 6))
def _adjoint(circuit, observables, params, x, dtype, kernels, min_blocks):
    psi = run_lowered(_lowered(circuit, kernels, min_blocks), params, x, dtype, kernels)
    return observable_values(psi, observables, False)


def _fwd(circuit, observables, params, x, dtype, kernels, min_blocks):
    psi = run_lowered(_lowered(circuit, kernels, min_blocks), params, x, dtype, kernels)
    out = observable_values(psi, observables, False)
    return out, (params, x, psi)


def _bwd(circuit, observables, dtype, kernels, min_blocks, residuals, g):
    params, x, psi = residuals
    lam = jnp.zeros_like(psi)
    for gi, obs in zip(g, observables):
        for coeff, word in obs.terms:
            lam = lam + (gi * coeff.real).astype(psi.dtype) * apply_pauli(psi, *split_word(word))
    low = _lowered(circuit, kernels, min_blocks, True)
    return _backward(low, jnp.stack([psi, lam]), params, x, dtype)


_adjoint.defvjp(_fwd, _bwd)

_adjoint_jit = jax.jit(_adjoint, static_argnums=(0, 1, 4, 5, 6))


def adjoint_expval(circuit, observables, params, x, dtype, mixed, kernels=None,
                   interpret_blocks=INTERPRET_MIN_BLOCKS):
    """Expectation values whose reverse-mode derivatives use the adjoint method (module
    docs: reverse mode and Hessians work; forward mode raises ``GradientError``). The
    forward pass uses the kernel set ``kernels`` (default ``$QJAXROB_KERNELS``, resolved
    here, so a changed variable re-traces) and the backend's fusion policy
    (:func:`qjaxrob.sim.engine.statevector_policy`); the backward walk undoes its blocks.
    Unrolled runs of 1-2 wire gates that fuse into at least ``interpret_blocks`` blocks
    (``0`` disables) are walked by the interpreter, forwards and backwards
    (:mod:`qjaxrob.lower.interpreter`)."""
    interpret_blocks = check_int(interpret_blocks, "interpret_blocks", minimum=0)
    if mixed:
        raise ParameterError("diff='adjoint' supports statevector simulation only, got mixed=True")
    if circuit.has_channels:
        raise ParameterError("diff='adjoint' does not support circuits with noise channels")
    try:
        return _adjoint_jit(circuit, observables, params, x, dtype,
                            backend.kernel_choice(kernels), interpret_blocks)
    except TypeError as exc:
        if "forward-mode" not in str(exc):
            raise
        raise GradientError(
            "diff='adjoint' defines reverse-mode derivatives only (jax.grad, jax.vjp, "
            "jax.jacrev, jax.hessian); forward mode (jax.jvp, jax.jacfwd) needs "
            "diff='backprop'"
        ) from None
