"""Compiles a ``Circuit`` into pure functions: statevector, density matrix, probs, sample, expval.

Every public function validates its static inputs eagerly (shapes of ``params``/``x``,
dtype, wires), then calls one ``jax.jit``-compiled function with the circuit (and the
observable) as static arguments. They compose with ``jax.jit``, ``jax.vmap`` (over
``params`` and/or ``x``) and ``jax.grad`` (w.r.t. ``params`` and ``x``).

The circuit is walked at trace time; a ``Repeat`` node becomes one ``lax.scan`` over its
repetitions, so compile time does not grow with the repetition count. The same walk
drives the statevector and the density-matrix simulation; only the per-op update differs.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob import channels
from qjaxrob.checks import (
    check_dtype,
    check_key,
    check_observables,
    check_shots,
    check_vector,
    check_wires,
)
from qjaxrob.circuit import Circuit, Repeat
from qjaxrob.errors import (
    DensityMatrixOnlyError,
    ParameterError,
    QjrTypeError,
)
from qjaxrob.fusion import DEFAULT_MAX_QUBITS, Block, block_apply_args, fuse, op_matrix
from qjaxrob.kernels import apply_diagonal, apply_matrix, pauli_expval
from qjaxrob.kernels import density as dk
from qjaxrob.kernels.structured import apply_permutation
from qjaxrob.observables import PauliSum

__all__ = ["statevector", "density_matrix", "probs", "sample", "expval"]


def _prepare(c, params, x, dtype):
    if not isinstance(c, Circuit):
        raise QjrTypeError(f"expected a qjr.Circuit, got {type(c).__name__}")
    dt = check_dtype(dtype)
    real = np.finfo(dt).dtype
    return dt, check_vector(params, c.n_params, "params", real), check_vector(x, c.n_inputs, "x", real)


# ---- the circuit walk -----------------------------------------------------------
def evolve(circuit: Circuit, carry, params, x, apply_op, prepare=None):
    """Applies ``apply_op(carry, op, params, x) -> carry`` over the circuit's ops, lowering
    each ``Repeat`` to a ``lax.scan`` over its repetitions' parameter slices.

    ``prepare`` (optional, static) maps an op tuple to the sequence actually applied, e.g.
    :func:`qjaxrob.fusion.fuse`; it is applied to every ``Repeat`` body as well."""
    ops = circuit.ops if prepare is None else prepare(circuit.ops)
    for op in ops:
        if isinstance(op, Repeat):
            stride = op.block.n_params
            if stride:
                start = op.param_offset
                rows = params[start : start + op.times * stride].reshape(op.times, stride)
            else:
                rows = jnp.zeros((op.times, 0), params.dtype)

            def body(carry, p, block=op.block):
                return evolve(block, carry, p, x, apply_op, prepare), None

            carry, _ = jax.lax.scan(body, carry, rows)
        else:
            carry = apply_op(carry, op, params, x)
    return carry


def statevector_op(dtype):
    """Per-op statevector update ``(state, op, params, x) -> state`` for gates, fused
    blocks and markers (channels raise); the Pallas kernels are used only on a GPU backend."""
    matrix_kernel, diagonal_kernel = apply_matrix, apply_diagonal
    if jax.default_backend() == "gpu":
        from qjaxrob.kernels import pallas

        matrix_kernel, diagonal_kernel = pallas.apply_matrix, pallas.apply_diagonal

    def apply(state, op, params, x):
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


def _density_op(dtype):
    def apply(rho, op, params, x):
        if op.is_marker:
            return rho
        if op.is_channel:
            values = tuple(a.resolve(params, x) for a in op.angles)
            ks = channels.kraus_set(op.name, len(op.wires), values, op.matrices, op.meta, dtype)
            return dk.apply_kraus(rho, ks, op.wires)
        kind, m = op_matrix(op, params, x, dtype)
        if kind == "diagonal":
            return dk.apply_diagonal_density(rho, m, op.wires)
        return dk.apply_matrix_density(rho, m, op.wires)

    return apply


def zero_state(n: int, dtype, mixed: bool = False):
    shape = (2,) * (2 * n if mixed else n)
    state = jnp.zeros(shape, dtype).at[(0,) * len(shape)].set(1)
    # The barrier stops XLA from constant-folding a whole parameter-free circuit at
    # compile time (which embeds huge constants and can take minutes).
    return jax.lax.optimization_barrier(state)


def final_tensor(circuit: Circuit, params, x, dtype, mixed: bool, fuse_qubits=DEFAULT_MAX_QUBITS):
    """The final ``(2,)*n`` state or ``(2,)*2n`` density tensor (traceable, not jitted).

    Statevector simulation fuses gates into blocks of at most ``fuse_qubits`` wires
    (:mod:`qjaxrob.fusion`; ``0`` disables fusion). Density-matrix simulation is unfused."""
    n = circuit.n_qubits
    if mixed:
        return evolve(circuit, zero_state(n, dtype, True), params, x, _density_op(dtype))
    prepare = partial(fuse, max_qubits=fuse_qubits) if fuse_qubits else None
    return evolve(circuit, zero_state(n, dtype), params, x, statevector_op(dtype), prepare)


# ---- compiled entry points ---------------------------------------------------------
@partial(jax.jit, static_argnames=("circuit", "dtype", "mixed"))
def _tensor(circuit, params, x, dtype, mixed):
    return final_tensor(circuit, params, x, dtype, mixed)


def _marginal(p, wires, n):
    """Probabilities ``p`` (shape ``(2,)*n``) marginalised onto ``wires`` (in that order)."""
    others = tuple(w for w in range(n) if w not in wires)
    m = jnp.sum(p, axis=others) if others else p
    kept = sorted(wires)
    order = tuple(kept.index(w) for w in wires)
    return jnp.transpose(m, order).reshape(-1)


@partial(jax.jit, static_argnames=("circuit", "dtype", "mixed", "wires"))
def _probs(circuit, params, x, dtype, mixed, wires):
    t = final_tensor(circuit, params, x, dtype, mixed)
    p = dk.density_diagonal(t) if mixed else jnp.abs(t) ** 2
    return _marginal(p, wires, circuit.n_qubits)


def term_values(t, obs: PauliSum, mixed: bool):
    """The expectation of every Pauli term of ``obs``, shape ``(n_terms,)``."""
    kernel = dk.density_pauli_expval if mixed else pauli_expval
    vals = [kernel(t, "".join(l for _, l in w), tuple(q for q, _ in w)) for _, w in obs.terms]
    real = jnp.finfo(t.dtype).dtype
    return jnp.stack(vals).astype(real) if vals else jnp.zeros((0,), real)


def _coefficients(obs: PauliSum, real_dtype):
    return jnp.array([c.real for c, _ in obs.terms], real_dtype)


def observable_value(t, obs: PauliSum, mixed: bool):
    """``<O>`` on a final tensor (real scalar): the coefficient-weighted term values."""
    vals = term_values(t, obs, mixed)
    return jnp.dot(_coefficients(obs, vals.dtype), vals)


@partial(jax.jit, static_argnames=("circuit", "observables", "dtype", "mixed"))
def _expval(circuit, observables, params, x, dtype, mixed):
    t = final_tensor(circuit, params, x, dtype, mixed)
    return jnp.stack([observable_value(t, o, mixed) for o in observables])


@partial(jax.jit, static_argnames=("circuit", "observables", "dtype", "mixed", "shots"))
def _expval_shots(circuit, observables, params, x, key, dtype, mixed, shots):
    """Finite-shot estimate: each Pauli term is measured in its own eigenbasis with
    ``shots`` shots; a +-1 outcome has P(+1) = (1 + <P>)/2, so the count of +1 is
    Binomial(shots, (1 + <P>)/2) and the estimate is 2 k / shots - 1."""
    t = final_tensor(circuit, params, x, dtype, mixed)
    out = []
    for i, obs in enumerate(observables):
        vals = term_values(t, obs, mixed)
        p_plus = jnp.clip((1 + vals) / 2, 0.0, 1.0)
        counts = jax.random.binomial(jax.random.fold_in(key, i), shots, p_plus)
        identity = jnp.array([not w for _, w in obs.terms], bool)
        est = jnp.where(identity, 1.0, 2 * counts / shots - 1).astype(vals.dtype)
        out.append(jnp.dot(_coefficients(obs, vals.dtype), est))
    return jnp.stack(out)


# ---- public API ------------------------------------------------------------------------
def statevector(c: Circuit, params=None, x=None, *, key=None, dtype=jnp.complex64):
    """The final state vector of ``c`` from ``|0...0>``, shape ``(2**n,)``.

    Basis index ``i = sum_k b_k 2**(n-1-k)`` (wire 0 is the most significant bit).
    If the circuit contains noise channels, ``key`` (a ``jax.random`` key) selects one
    quantum trajectory (``qjaxrob.trajectories``); without a key that raises
    ``DensityMatrixOnlyError``. ``key`` is ignored for noiseless circuits.
    """
    dt, params, x = _prepare(c, params, x, dtype)
    if key is not None and c.has_channels:
        from qjaxrob.trajectories import trajectory_state

        return trajectory_state(c, params, x, key, dt)
    return _tensor(c, params, x, dt, False).reshape(-1)


def density_matrix(c: Circuit, params=None, x=None, *, dtype=jnp.complex64):
    """The final density matrix of ``c`` (channels included), shape ``(2**n, 2**n)``."""
    dt, params, x = _prepare(c, params, x, dtype)
    dim = 2**c.n_qubits
    return _tensor(c, params, x, dt, True).reshape(dim, dim)


def _check_wires(wires, n):
    return tuple(range(n)) if wires is None else check_wires(wires, n)


def probs(c: Circuit, params=None, x=None, *, wires=None, mixed=False, dtype=jnp.complex64):
    """Probabilities of the computational-basis outcomes on ``wires`` (default all),
    shape ``(2**len(wires),)``, ``wires[0]`` the most significant bit."""
    dt, params, x = _prepare(c, params, x, dtype)
    wires = _check_wires(wires, c.n_qubits)
    return _probs(c, params, x, dt, bool(mixed), wires)


@partial(jax.jit, static_argnames=("shots", "n"))
def _sample_bits(key, p, shots, n):
    cdf = jnp.cumsum(p)
    u = jax.random.uniform(key, (shots,), dtype=cdf.dtype) * cdf[-1]
    idx = jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, p.shape[0] - 1)
    shifts = jnp.arange(n - 1, -1, -1)
    return ((idx[:, None] >> shifts) & 1).astype(jnp.int8)


def sample(key, c: Circuit, shots: int, params=None, x=None, *, mixed=False, dtype=jnp.complex64):
    """``shots`` computational-basis measurements of all wires, shape ``(shots, n)`` int8,
    column k = wire k."""
    shots = check_shots(shots)
    p = probs(c, params, x, mixed=mixed, dtype=dtype)
    return _sample_bits(check_key(key, "sample"), p, shots, c.n_qubits)


def expval(
    c: Circuit,
    obs,
    params=None,
    x=None,
    *,
    mixed=False,
    shots=None,
    key=None,
    trajectories=None,
    dtype=jnp.complex64,
    diff="backprop",
):
    """Expectation value ``<O>`` of a ``PauliSum`` (scalar) or of a list of them (vector).

    Args:
        c: the circuit.
        obs: a ``PauliSum`` or a list/tuple of them.
        params, x: 1-D real arrays of length ``c.n_params`` and ``c.n_inputs``.
        mixed: simulate the density matrix (needed for noise channels).
        shots: if given, a finite-shot estimate (each Pauli term measured with ``shots``
            shots); needs ``key``. Not differentiable.
        key: PRNG key for ``shots`` or ``trajectories``.
        trajectories: if given (a positive int T), the mean over T quantum trajectories
            (``qjaxrob.trajectories``; statevector memory, noise channels allowed); needs
            ``key``. Exclusive with ``mixed``, ``shots`` and ``diff="adjoint"``.
        dtype: complex64 (default) or complex128.
        diff: ``"backprop"`` (default; gradients of any order) or ``"adjoint"``.
    """
    if not isinstance(c, Circuit):
        raise QjrTypeError(f"expected a qjr.Circuit, got {type(c).__name__}")
    observables, single = check_observables(obs, c.n_qubits)
    dt, params, x = _prepare(c, params, x, dtype)
    if diff not in ("backprop", "adjoint"):
        raise ParameterError(f"diff must be 'backprop' or 'adjoint', got {diff!r}")
    if trajectories is not None:
        from qjaxrob.trajectories import checked_expval

        out = checked_expval(c, observables, params, x, key, dt, trajectories,
                             mixed=mixed, shots=shots, diff=diff)
    elif shots is not None:
        shots = check_shots(shots)
        out = _expval_shots(c, observables, params, x, check_key(key, "expval with shots"),
                            dt, bool(mixed), shots)
    elif diff == "adjoint":
        from qjaxrob.adjoint import adjoint_expval

        out = adjoint_expval(c, observables, params, x, dt, bool(mixed))
    else:
        out = _expval(c, observables, params, x, dt, bool(mixed))
    return out[0] if single else out
