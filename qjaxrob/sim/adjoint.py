"""Adjoint-method gradients of statevector expectation values (``diff="adjoint"``).

For ``|psi> = U_N ... U_1 |0>`` and a real cost ``L = sum_o g_o <psi|O_o|psi>``, set
``|lam_N> = sum_o g_o O_o |psi_N>`` and walk the circuit backwards, keeping only
``psi_k`` and ``lam_k`` (so memory is independent of depth). The backward walk runs the
program the forward pass ran (:func:`qjaxrob.lower.pipeline.lower`: product-state prefix,
scanned ``Roll`` nodes, interpreter programs) in reverse: scanned nodes by a reversed
``lax.scan``, programs by the interpreter's reversed scan, runs of gates as below:

* **Generator derivatives.** Every parameterised gate of the table is
  ``U(theta) = exp(-i theta G / 2)`` for a Hermitian generator ``G`` that is a real
  combination of Pauli words (``rx``: X; ``rxx``: XX; ``phase``: Z - I; ``crx``:
  ``|1><1| (x) X = (IX - ZX) / 2``; ``u3`` is walked as ``rz(phi) ry(theta) rz(lam)`` up to
  a global phase). Then ``dU/dtheta = -i/2 G U`` and the gate's contribution is
  ``2 Re <lam_k| dU |psi_{k-1}> = Im <lam_k| G |psi_k>`` -- no derivative state -- times
  the angle's affine ``scale``, added to ``params`` or ``x`` at the angle's index.
* **Commuting groups.** A maximal run of parameterised gates whose generators pairwise
  commute (a layer of RY on different wires, a layer of RZ/RZZ...) has all its
  derivatives evaluated at the *same* pair ``(psi, lam)``: the later members commute with
  an earlier member's generator, so moving them across does not change
  ``<lam|G|psi>``. Z-type words of a group (and the identity) come from one
  pass ``r = Im(conj(lam) psi)`` and one matrix product of ``r`` (viewed as
  ``2**a x 2**b``) with a static table of sign columns. Words with X/Y letters are read
  off the ``2**t x 2**t`` cross matrix ``C[i, j] = sum conj(lam_i) psi_j`` of a small
  wire window (the first or last 4 wires, or an aligned pair), one batched ``dot``
  each: on CPU, XLA's dot is several times faster than its reductions over the same
  data. Words wider than any window use a direct reduction.
* **Fused undo.** Between evaluation points, the gates are undone (``psi <- U^dagger psi``
  and likewise ``lam``) as the blocks of :func:`qjaxrob.lower.fusion.fuse` in reverse order,
  each inverted (conjugate diagonal, inverse permutation, conjugate-transposed matrix),
  with fusion up to ``UNDO_MAX_QUBITS`` wires, adjacent 1-qubit blocks paired and runs
  of diagonal blocks applied in one elementwise pass.

Gates without a known generator fall back to ``jax.grad`` of the local scalar
``2 Re <lam_k| U_k(theta) |psi_{k-1}>``.

**Interpreted runs.** Long unrolled runs of 1-2 wire gates (interpreter programs of the
lowered program) are walked by the interpreter's reversed scan over
the same block table (:func:`qjaxrob.lower.interpreter.adjoint_program`: each block undone on
``psi`` and ``lam``, its matrix's cotangent from one ``4 x 4`` contraction, then
``jax.vjp`` of the vectorised matrix builder), so the backward walk of a circuit with no
repetition compiles in constant time too.

**What it supports.** Reverse mode: ``jax.grad``, ``jax.vjp``, ``jax.jacrev``, and
higher orders built on them (``jax.hessian`` = ``jacfwd(jacrev)`` differentiates the
backward walk itself with ordinary autodiff and matches backprop). Forward mode applied to
the expectation itself (``jax.jvp``, ``jax.jacfwd``, ``jax.linearize`` outside a reverse
pass) has no adjoint rule -- the method is a custom VJP -- and raises
:class:`qjaxrob.errors.GradientError`; use ``diff="backprop"`` there. Statevector
simulation only: density-matrix (mixed) circuits and noise channels are rejected.
"""

from __future__ import annotations

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob import backend
from qjaxrob.checks import check_int
from qjaxrob.errors import GradientError, ParameterError
from qjaxrob.ir.circuit import Op, Repeat
from qjaxrob.ir.gates import PAULI_MATRICES
from qjaxrob.ir.observables import split_word
from qjaxrob.kernels import (
    apply_diagonal,
    apply_matrix,
    apply_pauli,
    apply_permutation,
    grouped_shape,
)
from qjaxrob.lower.fusion import Block, block_apply_args, fuse, op_matrix
from qjaxrob.lower.interpreter import INTERPRET_MIN_BLOCKS, Program, adjoint_program
from qjaxrob.lower.pipeline import lower, lower_body
from qjaxrob.lower.rolling import ROLL_MIN_OPS, Roll, repeat_as_roll, roll_rows
from qjaxrob.sim.engine import final_tensor
from qjaxrob.sim.measure import observable_values, sign_table

__all__ = ["UNDO_MAX_QUBITS", "adjoint_expval", "generator", "undo_walk"]

UNDO_MAX_QUBITS = 4
"""Largest fused block when undoing gates. The undo walk is not differentiated, so wider
blocks cost no extra reverse pass: a CNOT ring becomes a few 3-4 qubit permutation
kernels; the fusion cost model
(``KERNEL_COST``) still refuses dense blocks that would be slower than their parts."""


# ---- generators ---------------------------------------------------------------------
_GENERATORS = {
    # name: ((coeff, ((position in op.wires, letter), ...)), ...)
    "rx": ((1.0, ((0, "X"),)),),
    "ry": ((1.0, ((0, "Y"),)),),
    "rz": ((1.0, ((0, "Z"),)),),
    "phase": ((1.0, ((0, "Z"),)), (-1.0, ())),
    "rxx": ((1.0, ((0, "X"), (1, "X"))),),
    "ryy": ((1.0, ((0, "Y"), (1, "Y"))),),
    "rzz": ((1.0, ((0, "Z"), (1, "Z"))),),
    "crx": ((0.5, ((1, "X"),)), (-0.5, ((0, "Z"), (1, "X")))),
    "cry": ((0.5, ((1, "Y"),)), (-0.5, ((0, "Z"), (1, "Y")))),
    "crz": ((0.5, ((1, "Z"),)), (-0.5, ((0, "Z"), (1, "Z")))),
}


def generator(op: Op):
    """``G`` with ``U(theta) = exp(-i theta G / 2)`` for a one-angle rotation ``op``, as a
    tuple of ``(coeff, word)`` with ``word`` a sorted tuple of ``(wire, letter)``; ``None``
    for gates without a table entry."""
    terms = _GENERATORS.get(op.name)
    if terms is None or len(op.angles) != 1:
        return None
    return tuple(
        (c, tuple(sorted((op.wires[i], l) for i, l in word))) for c, word in terms
    )


def _words_commute(a, b) -> bool:
    da, db = dict(a), dict(b)
    anti = sum(1 for w, l in da.items() if w in db and db[w] != l)
    return anti % 2 == 0


def _gens_commute(g1, g2) -> bool:
    return all(_words_commute(a, b) for _, a in g1 for _, b in g2)


def _expand(ops):
    """Flat gate list with ``u3`` split into ``rz(lam) ry(theta) rz(phi)`` (equal up to a
    global phase, which no expectation value sees); markers dropped."""
    out = []
    for op in ops:
        if op.is_marker:
            continue
        if op.name == "u3":
            theta, phi, lam = op.angles
            out += [Op("rz", op.wires, (lam,)), Op("ry", op.wires, (theta,)),
                    Op("rz", op.wires, (phi,))]
        else:
            out.append(op)
    return out


@lru_cache(maxsize=256)
def _plan(ops: tuple, max_qubits: int):
    """Static backward plan for a run of gates (no ``Repeat``): a list of steps, last
    gate first, each ``("grad", members)`` (derivatives at the current point; members are
    ``(op, generator or None)``) or ``("undo", blocks)`` (fused blocks, application order)."""
    ops = _expand(ops)
    steps = []
    i = len(ops)
    pending = []  # ops (application order) to undo before the next evaluation point
    while i > 0:
        op = ops[i - 1]
        if op.is_constant:
            pending.insert(0, op)
            i -= 1
            continue
        # an evaluation point: first undo what lies after it
        if pending:
            steps.append(("undo", _merge_blocks(fuse(tuple(pending), max_qubits))))
            pending = []
        gen = generator(op)
        members = [(op, gen)]
        i -= 1
        if gen is not None:
            while i > 0:
                prev = ops[i - 1]
                g = generator(prev)
                if prev.is_constant or g is None or not all(
                    _gens_commute(g, m) for _, m in members
                ):
                    break
                members.insert(0, (prev, g))
                i -= 1
        steps.append(("grad", tuple(members)))
        pending = [m for m, _ in members]
    if pending:
        steps.append(("undo", _merge_blocks(fuse(tuple(pending), max_qubits))))
    return tuple(steps)


# ---- inverse application -------------------------------------------------------------
@lru_cache(maxsize=1024)
def _inverse_perm(perm, phases):
    inv = [0] * len(perm)
    ph = [0j] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
        ph[p] = complex(np.conj(phases[i]))
    return tuple(inv), tuple(ph)


def _merge_blocks(blocks):
    """Post-fusion pass for the undo walk: adjacent one-qubit dense blocks on different
    wires are paired into two-qubit blocks (disjoint gates commute, and one 2-qubit kernel
    costs less than two 1-qubit ones), and adjacent diagonal blocks are collected into
    one ``("diagonals", [...])`` step applied as a single elementwise pass."""
    out = []
    for b in blocks:
        prev = out[-1] if out else None
        if b.kind == "diagonal":
            if isinstance(prev, tuple):
                prev[1].append(b)
            else:
                out.append(("diagonals", [b]))
            continue
        if (
            b.kind == "dense" and len(b.wires) == 1 and isinstance(prev, Block)
            and prev.kind == "dense" and len(prev.wires) == 1 and prev.wires != b.wires
        ):
            out[-1] = Block(tuple(sorted(prev.wires + b.wires)), prev.ops + b.ops, "dense")
            continue
        out.append(b)
    return tuple(("diagonals", tuple(o[1])) if isinstance(o, tuple) else o for o in out)


def _undo_diagonals(blocks, state, params, x, dtype):
    """``state`` times the conjugate of every diagonal block, in one pass: blocks inside
    the high or low half of the wires are multiplied into a ``2**a`` or ``2**b`` vector,
    so the state is touched once as a ``(2**a, 2**b)`` matrix; blocks across the halves
    are applied on their own."""
    n = state.ndim
    a = n // 2
    high = jnp.ones((2,) * a, dtype)
    low = jnp.ones((2,) * (n - a), dtype)
    for b in blocks:
        d = jnp.conj(block_apply_args(b, params, x, dtype))
        if all(w < a for w in b.wires):
            high = apply_diagonal(high, d, b.wires)
        elif all(w >= a for w in b.wires):
            low = apply_diagonal(low, d, tuple(w - a for w in b.wires))
        else:
            state = apply_diagonal(state, d, b.wires)
    m = state.reshape(2**a, 2 ** (n - a)) * high.reshape(-1, 1) * low.reshape(1, -1)
    return m.reshape(state.shape)


def _undo(steps, state, params, x, dtype):
    for b in reversed(steps):
        if isinstance(b, tuple):
            state = _undo_diagonals(b[1], state, params, x, dtype)
            continue
        if b.kind == "permutation":
            perm, phases = _inverse_perm(b.perm, b.phases)
            ph = np.asarray(phases, dtype)
            state = apply_permutation(state, perm, None if np.all(ph == 1) else ph, b.wires)
            continue
        arg = block_apply_args(b, params, x, dtype)
        if b.kind == "diagonal":
            state = apply_diagonal(state, jnp.conj(arg), b.wires)
        else:
            state = apply_matrix(state, jnp.conj(arg).T, b.wires)
    return state


def _apply_op(op, state, params, x, dtype, inverse=False):
    kind, m = op_matrix(op, params, x, dtype)
    if kind == "diagonal":
        return apply_diagonal(state, jnp.conj(m) if inverse else m, op.wires)
    return apply_matrix(state, jnp.conj(m).T if inverse else m, op.wires)


# ---- derivative values ----------------------------------------------------------------
def _sign_matrix(wire_sets, n_bits: int, first_wire: int):
    """``(2**n_bits, len(wire_sets))`` table: column j is ``prod_{w in set j} (-1)**bit_w``
    over the ``n_bits`` wires starting at ``first_wire`` (index bit 0 = most significant),
    from the one sign table (:func:`qjaxrob.sim.measure.sign_table`)."""
    masks = [sum(1 << (n_bits - 1 - (w - first_wire)) for w in ws) for ws in wire_sets]
    return sign_table(masks, n_bits).T


def _z_values(psi, lam, words):
    """``Im <lam| Z_word |psi>`` for Z-only words (identity included), from one pass
    ``r = Im(conj(lam) psi)`` and one product with a static sign table."""
    n = psi.ndim
    real = jnp.finfo(psi.dtype).dtype
    r = (lam.real * psi.imag - lam.imag * psi.real).astype(real)
    a = n // 2
    b = n - a
    lows = sorted({tuple(w for w, _ in word if w >= a) for word in words})
    s_low = jnp.asarray(_sign_matrix(lows, b, a), real)
    t = r.reshape(2**a, 2**b) @ s_low  # (2**a, len(lows))
    out = []
    for word in words:
        col = lows.index(tuple(w for w, _ in word if w >= a))
        high = tuple(w for w, _ in word if w < a)
        s_high = jnp.asarray(_sign_matrix([high], a, 0)[:, 0], real)
        out.append(jnp.dot(s_high, t[:, col]))
    return out


def _word_value(psi, lam, word):
    """``Im <lam| P |psi>`` for a Pauli word with X or Y letters: one fused reduction on
    the low-rank grouped view ``(g0, 2, g1, ..., 2, gk)`` of the word's wires (flips of a
    rank-n tensor index slowly on CPU)."""
    letters, wires = split_word(word)
    shape = grouped_shape(psi.ndim, wires)
    axes = tuple(2 * i + 1 for i in range(len(wires)))
    m = apply_pauli(psi.reshape(shape), letters, axes)
    lam = lam.reshape(shape)
    return jnp.sum(lam.real * m.imag - lam.imag * m.real)


def _window(word, n: int):
    """The contiguous wire window ``(start, width)`` whose cross matrix gives ``word``:
    the first or last 4 wires (one plain matrix product each), else the aligned pair of
    wires holding the word, else the word's own span (up to 3 wires); ``None`` for wider
    words. A pair window near the end (``2**r`` small) is much slower than the 4-wire tail
    window, hence the fixed head and tail."""
    lo, hi = word[0][0], word[-1][0]
    if n <= 4:
        return 0, n
    if hi < 4:
        return 0, 4
    if lo >= n - 4:
        return n - 4, 4
    start = lo - lo % 2
    if hi < start + 2:
        return start, 2
    return (lo, hi - lo + 1) if hi - lo < 3 else None


def _cross(psi, lam, start: int, width: int):
    """``C[i, j] = sum conj(lam_i) psi_j`` over the ``2**width`` basis states ``i, j`` of
    wires ``start .. start+width-1`` (all other wires summed), as one (batched) matrix
    product: XLA's CPU reductions are several times slower than its dot."""
    n = psi.ndim
    r = n - start - width
    shape = (2**start, 2**width, 2**r)
    lv, pv = jnp.conj(lam).reshape(shape), psi.reshape(shape)
    if r == 0:
        return lv[..., 0].T @ pv[..., 0]
    dims = (((2,), (2,)), ((0,), (0,)))
    return jnp.sum(jax.lax.dot_general(lv, pv, dims), axis=0)


def _window_matrix(word, start: int, width: int):
    letters = dict(word)
    m = np.eye(1)
    for w in range(start, start + width):
        m = np.kron(m, PAULI_MATRICES[letters.get(w, "I")])
    return m


def _angle_grads(members, psi, lam, params, x, dtype):
    """``[(angle, dL/dangle)]`` for the group's members at the point (psi, lam)."""
    n = psi.ndim
    words = sorted({w for _, g in members if g is not None for _, w in g})
    zwords = [w for w in words if all(l == "Z" for _, l in w)]
    values = dict(zip(zwords, _z_values(psi, lam, zwords))) if zwords else {}
    crosses = {}
    for w in words:
        if w in values:
            continue
        win = _window(w, n)
        if win is None:
            values[w] = _word_value(psi, lam, w)
            continue
        if win not in crosses:
            crosses[win] = _cross(psi, lam, *win)
        pm = jnp.asarray(_window_matrix(w, *win), psi.dtype)
        values[w] = jnp.imag(jnp.sum(pm * crosses[win]))
    out = []
    for op, g in members:
        if g is None:
            continue
        d = sum(c * values[w] for c, w in g)
        out.append((op.angles[0], d))
    return out


def _fallback(op, psi, lam, params, x, dtype):
    """``(dparams, dx)`` of ``2 Re <lam| U(theta) |U^dagger psi>`` by ``jax.grad``."""
    psi_prev = _apply_op(op, psi, params, x, dtype, inverse=True)

    def local(p, xx):
        return 2 * jnp.real(jnp.vdot(lam, _apply_op(op, psi_prev, p, xx, dtype)))

    return jax.grad(local, argnums=(0, 1))(params, x)


def _scatter(grad, pairs):
    if not pairs:
        return grad
    idx = jnp.asarray([a.index for a, _ in pairs])
    vals = jnp.stack([jnp.asarray(v * a.scale, grad.dtype) for a, v in pairs])
    return grad.at[idx].add(vals)


# ---- the backward walk ---------------------------------------------------------------
def _backward_run(ops, carry, grad_p, params, x, dtype, max_qubits):
    psi, lam, grad_x = carry
    for kind, payload in _plan(tuple(ops), max_qubits):
        if kind == "undo":
            psi = _undo(payload, psi, params, x, dtype)
            lam = _undo(payload, lam, params, x, dtype)
            continue
        pairs = _angle_grads(payload, psi, lam, params, x, dtype)
        grad_p = _scatter(grad_p, [(a, v) for a, v in pairs if a.source == "param"])
        grad_x = _scatter(grad_x, [(a, v) for a, v in pairs if a.source == "inp"])
        for op, g in payload:
            if g is None:
                dp, dx = _fallback(op, psi, lam, params, x, dtype)
                grad_p, grad_x = grad_p + dp, grad_x + dx
    return (psi, lam, grad_x), grad_p


def _backward_nodes(nodes, carry, grad_p, params, x, dtype, max_qubits):
    """Walks lowered ``nodes`` (:mod:`qjaxrob.lower.pipeline`) backwards: interpreter
    programs by :func:`qjaxrob.lower.interpreter.adjoint_program`, scanned nodes (``Roll``;
    ``Repeat`` lowered to one) by reversed scans over their bodies, runs of plain ops by
    :func:`_backward_run`;
    carry = (psi, lam, grad_x). Returns (carry, grad_params)."""
    run = []
    for node in reversed(nodes):
        if isinstance(node, Op):
            run.insert(0, node)
            continue
        if run:
            carry, grad_p = _backward_run(run, carry, grad_p, params, x, dtype, max_qubits)
            run = []
        if isinstance(node, Program):
            psi, lam, grad_x = carry
            psi, lam, dp, dx = adjoint_program(node, psi, lam, params, x, dtype)
            carry, grad_p = (psi, lam, grad_x + dx), grad_p + dp
        else:
            node = repeat_as_roll(node) if isinstance(node, Repeat) else node
            carry, grad_p = _roll_backward(node, carry, grad_p, params, x, dtype, max_qubits)
    if run:
        carry, grad_p = _backward_run(run, carry, grad_p, params, x, dtype, max_qubits)
    return carry, grad_p


def _body_backward(block, carry, params, x, dtype, max_qubits):
    """A ``Repeat``/``Roll`` body walked backwards, lowered as the forward walk lowers it
    (:func:`qjaxrob.lower.pipeline.lower_body`). Returns (carry, grad_params)."""
    nodes = lower_body(block.ops, block.n_qubits)
    return _backward_nodes(nodes, carry, jnp.zeros_like(params), params, x, dtype, max_qubits)


def _roll_backward(op: Roll, carry, grad_p, params, x, dtype, max_qubits):
    """A ``Roll`` node walked backwards: one reversed ``lax.scan`` over its gathered rows;
    each repetition's slot gradients are added back at the indices of its table row."""
    psi, lam, grad_x = carry
    prows, xrows = roll_rows(op, params, x)

    def body(c, rows, block=op.block):
        p, xx = rows
        (psi, lam, gx), gp = _body_backward(block, (c[0], c[1], jnp.zeros_like(xx)), p, xx,
                                            dtype, max_qubits)
        return (psi, lam), (gp, gx)

    (psi, lam), (gp, gx) = jax.lax.scan(body, (psi, lam), (prows, xrows), reverse=True)
    # the transpose of the row gather (a slice or strided index in the common layouts)
    _, scatter = jax.vjp(lambda p, xx: roll_rows(op, p, xx), params, x)
    dp, dx = scatter((gp, gx))
    return (psi, lam, grad_x + dx), grad_p + dp


def _backward(circuit, carry, params, x, dtype, max_qubits, min_blocks):
    """Walks ``circuit`` backwards through the program the forward pass ran
    (:func:`qjaxrob.lower.pipeline.lower`): its nodes (:func:`_backward_nodes`), then its
    product-state prefix; carry = (psi, lam, grad_x). Returns (carry, grad_params)."""
    low = lower(circuit.ops, circuit.n_qubits, ROLL_MIN_OPS, min_blocks)
    grad_p = jnp.zeros_like(params)
    carry, grad_p = _backward_nodes(low.nodes, carry, grad_p, params, x, dtype, max_qubits)
    if low.prefix:
        carry, grad_p = _backward_run(low.prefix, carry, grad_p, params, x, dtype, max_qubits)
    return carry, grad_p


def undo_walk(circuit, psi, lam, params, x, dtype, interpret_blocks=INTERPRET_MIN_BLOCKS):
    """The adjoint method's backward walk over ``circuit`` from any state: ``psi`` (the
    state after the circuit) and ``lam`` (its cotangent state) are walked back through the
    circuit's forward program (:func:`qjaxrob.lower.pipeline.lower` with
    ``interpret_blocks``). Returns ``(psi_before, lam_before, grad_params, grad_x)``, the
    gradients being sums over the amplitudes of the tensors given (so partial sums over
    shards of a state add up)."""
    carry = (psi, lam, jnp.zeros_like(x))
    (psi, lam, grad_x), grad_p = _backward(circuit, carry, params, x, dtype, UNDO_MAX_QUBITS,
                                           interpret_blocks)
    return psi, lam, grad_p, grad_x


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 4, 5, 6))
def _adjoint(circuit, observables, params, x, dtype, kernels, min_blocks):
    psi = final_tensor(circuit, params, x, dtype, False, kernels=kernels,
                       interpret_blocks=min_blocks)
    return observable_values(psi, observables, False)


def _fwd(circuit, observables, params, x, dtype, kernels, min_blocks):
    psi = final_tensor(circuit, params, x, dtype, False, kernels=kernels,
                       interpret_blocks=min_blocks)
    out = observable_values(psi, observables, False)
    return out, (params, x, psi)


def _bwd(circuit, observables, dtype, kernels, min_blocks, residuals, g):
    params, x, psi = residuals
    lam = jnp.zeros_like(psi)
    for gi, obs in zip(g, observables):
        for coeff, word in obs.terms:
            lam = lam + (gi * coeff.real).astype(psi.dtype) * apply_pauli(psi, *split_word(word))
    carry = (psi, lam, jnp.zeros_like(x))
    (_, _, grad_x), grad_p = _backward(circuit, carry, params, x, dtype, UNDO_MAX_QUBITS,
                                       min_blocks)
    return grad_p, grad_x


_adjoint.defvjp(_fwd, _bwd)

_adjoint_jit = jax.jit(_adjoint, static_argnums=(0, 1, 4, 5, 6))


def adjoint_expval(circuit, observables, params, x, dtype, mixed, kernels=None,
                   interpret_blocks=INTERPRET_MIN_BLOCKS):
    """Expectation values whose reverse-mode derivatives use the adjoint method (module
    docs: reverse mode and Hessians work; forward mode raises ``GradientError``). The
    forward pass uses the kernel set ``kernels`` (default ``$QJAXROB_KERNELS``, resolved
    here, so a changed variable re-traces) and the backend's fusion policy
    (:func:`qjaxrob.sim.engine.final_tensor`); the undo walk keeps ``UNDO_MAX_QUBITS``.
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
