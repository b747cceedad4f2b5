"""Quantum trajectories: a pure-state unraveling of noisy circuits.

A channel ``rho -> sum_i K_i rho K_i^dagger`` met by a pure state ``|psi>`` picks branch ``i``
with probability ``p_i = ||K_i psi||^2`` and continues with ``K_i |psi> / sqrt(p_i)``. The
average of ``|psi><psi|`` over trajectories is exactly the density matrix, so the average of
``<psi|O|psi>`` over T trajectories is an unbiased estimate of ``Tr(O rho)`` with standard
error ``std / sqrt(T)``. Memory is ``2**n`` amplitudes per trajectory instead of ``4**n``.

The branch probabilities come from the reduced density matrix of the channel's wires,
``p_i = Re Tr(K_i^dagger K_i rho_w)`` (one pass over the state, no copy per Kraus operator),
then one kernel call applies the chosen ``K_i``. The walk (:func:`qjaxrob.sim.engine.walk`
over :func:`qjaxrob.lower.pipeline.lower` with :data:`POLICY`: gates one by one, no
rolling, interpretation or prefix) carries the pair ``(state, key)``: each channel splits
the key, so ``Repeat`` blocks stay ``lax.scan`` s.

Gradients flow along the sampled branch (the discrete choice itself is not differentiated).
For mixed-unitary channels whose branch probabilities do not depend on the state
(depolarizing, bit_flip, phase_flip, random_rotation) the trajectory-average gradient
w.r.t. gate parameters is therefore unbiased; gradients w.r.t. noise levels, or through
state-dependent channels (damping, general Kraus), need density-matrix simulation.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from qjaxrob.checks import check_key, check_memory, check_positive_int
from qjaxrob.lower.pipeline import Policy, lower
from qjaxrob.sim.engine import channel_kraus, statevector_op, walk, zero_state
from qjaxrob.sim.measure import observable_values
from qjaxrob.errors import ParameterError
from qjaxrob.kernels import apply_matrix

__all__ = [
    "trajectory_tensor", "trajectory_state", "trajectory_expval", "checked_expval",
    "BATCH_AMPLITUDES", "POLICY",
]

POLICY = Policy(fuse_qubits=0, roll_ops=0, interpret_blocks=0, prefix=False)
"""The trajectory walk's lowering: the circuit's own ops, ``Repeat`` nodes scanned."""

BATCH_AMPLITUDES = 2**24
"""Trajectories run ``max(1, BATCH_AMPLITUDES // 2**n)`` at a time under ``vmap`` (a
``lax.map`` over batches), bounding live memory to about 2^24 amplitudes per state copy."""


def _reduced_density(state, wires):
    """``rho_w[a, b] = sum_rest psi[a, rest] conj(psi[b, rest])``, shape ``(2**k, 2**k)``,
    with ``wires[0]`` the most significant bit of ``a`` and ``b``."""
    others = tuple(w for w in range(state.ndim) if w not in wires)
    r = jnp.tensordot(state, jnp.conj(state), axes=(others, others))
    kept = sorted(wires)
    order = [kept.index(w) for w in wires]
    k = len(wires)
    r = jnp.transpose(r, order + [k + i for i in order])
    return r.reshape(2**k, 2**k)


def _apply_channel(state, key, kraus, wires):
    """One unraveling step: sample branch i with p_i = ||K_i psi||^2 / ||psi||^2 and return
    the normalised ``K_i psi``. ``kraus`` has shape ``(m, 2**k, 2**k)``."""
    rho_w = _reduced_density(state, wires)
    effects = jnp.einsum("mji,mjk->mik", jnp.conj(kraus), kraus)  # K^dagger K
    weights = jnp.real(jnp.einsum("mab,ba->m", effects, rho_w))
    logits = jnp.log(jnp.maximum(jax.lax.stop_gradient(weights), 0.0))
    i = jax.random.categorical(key, logits)
    new = apply_matrix(state, kraus[i], wires)
    return new / jnp.sqrt(weights[i]).astype(state.dtype)


def _trajectory_op(dtype):
    """Channels sample a branch; every other op is the plain statevector update."""
    unitary_step = statevector_op(dtype)

    def apply(carry, op, params, x):
        state, key = carry
        if op.is_channel:
            key, sub = jax.random.split(key)
            ks = channel_kraus(op, params, x, dtype)
            return _apply_channel(state, sub, ks, op.wires), key
        return unitary_step(state, op, params, x), key

    return apply


def trajectory_tensor(circuit, params, x, key, dtype):
    """One trajectory's final ``(2,)*n`` state (traceable, not jitted)."""
    carry = (zero_state(circuit.n_qubits, dtype), key)
    low = lower(circuit.ops, circuit.n_qubits, POLICY)
    state, _ = walk(low.nodes, carry, params, x, _trajectory_op(dtype))
    return state


@partial(jax.jit, static_argnames=("circuit", "dtype"))
def trajectory_state(circuit, params, x, key, dtype):
    """One trajectory's final state vector, shape ``(2**n,)``, unit norm."""
    return trajectory_tensor(circuit, params, x, key, dtype).reshape(-1)


def _batch(n: int, trajectories: int) -> int:
    """Trajectories run at once under ``vmap`` (``BATCH_AMPLITUDES`` docs)."""
    return max(1, min(trajectories, BATCH_AMPLITUDES // 2**n))


@partial(jax.jit, static_argnames=("circuit", "observables", "dtype", "trajectories"))
def trajectory_expval(circuit, observables, params, x, key, dtype, trajectories):
    """The mean over ``trajectories`` independent trajectories (keys split from ``key``) of
    ``<psi|O|psi>`` for every observable, shape ``(len(observables),)``."""

    def one(k):
        t = trajectory_tensor(circuit, params, x, k, dtype)
        return observable_values(t, observables, False)

    batch = _batch(circuit.n_qubits, trajectories)
    keys = jax.random.split(key, trajectories)
    values = jax.lax.map(one, keys, batch_size=batch)
    return jnp.mean(values, axis=0)


def checked_expval(c, observables, params, x, key, dtype, trajectories, *, mixed, shots, diff):
    """``qjr.expval(..., trajectories=T, key=key)``: validates the trajectory-specific
    arguments (``ParameterError`` naming the value) and runs ``trajectory_expval``."""
    t = check_positive_int(trajectories, "trajectories")
    if mixed or shots is not None or diff != "backprop":
        raise ParameterError(
            f"trajectories={t} cannot be combined with mixed={mixed!r}, shots={shots!r} "
            f"or diff={diff!r}"
        )
    key = check_key(key, f"expval with trajectories={t}")
    check_memory(c.n_qubits, dtype, batch=_batch(c.n_qubits, t), what="trajectories")
    return trajectory_expval(c, observables, params, x, key, dtype, t)
