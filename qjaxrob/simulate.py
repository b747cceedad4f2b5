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

from qjaxrob.backend import kernel_choice
from qjaxrob.checks import (
    check_dtype,
    check_key,
    check_memory,
    check_observables,
    check_sample_memory,
    check_shots,
    check_vector,
    check_wires,
    real_dtype,
)
from qjaxrob.errors import ParameterError, QjrTypeError, ResourceError
from qjaxrob.ir.circuit import Circuit
from qjaxrob.lower.angles import affine_angles
from qjaxrob.sim import sharded
from qjaxrob.sim.adjoint import adjoint_expval
from qjaxrob.sim.dense import dense_choice, final_tensor, path_choice
from qjaxrob.sim.measure import marginal, observable_values, probabilities
from qjaxrob.sim.param_shift import estimate as shot_estimate
from qjaxrob.sim.param_shift import expand_circuit
from qjaxrob.sim.sampling import sample_bits, shot_values
from qjaxrob.sim.trajectories import checked_expval, trajectory_state

__all__ = ["statevector", "density_matrix", "probs", "sample", "expval", "sharding_plan"]

sharding_plan = sharded.sharding_plan


def _sharded(mesh) -> bool:
    """Whether ``mesh`` asks for the sharded path (checked: a one-axis mesh)."""
    return mesh is not None and sharded.mesh_devices(mesh) > 1


def _prepare(c, params, x, dtype, *, mixed=False, what="simulation"):
    """Checks the circuit, dtype, ``params``/``x`` and the memory the state needs; returns
    ``(circuit, dtype, params, x)`` with expression angles rewritten into an affine
    circuit over augmented ``params`` (:func:`qjaxrob.lower.angles.affine_angles`)."""
    if not isinstance(c, Circuit):
        raise QjrTypeError(f"expected a qjr.Circuit, got {type(c).__name__}")
    dt = check_dtype(dtype)
    check_memory(c.n_qubits, dt, mixed=bool(mixed), what=what)
    real = real_dtype(dt)
    params = check_vector(params, c.n_params, "params", real)
    x = check_vector(x, c.n_inputs, "x", real)
    c, params = affine_angles(c, params, x)
    return c, dt, params, x


# ---- compiled entry points ---------------------------------------------------------
# ``kernels`` (``"xla"``/``"pallas"``, from ``$QJAXROB_KERNELS``) and ``dense`` (the engine
# or the dense small-state path, from ``$QJAXROB_DENSE`` and, under ``auto``, the batch the
# call runs in: :func:`qjaxrob.sim.dense.path_choice`) are resolved by the public functions
# at call time and static, so switching a variable mid-process, or calling under a ``vmap``
# of another size, re-traces instead of silently reusing the choice of the first trace.
@partial(jax.jit, static_argnames=("circuit", "dtype", "mixed", "kernels", "dense"))
def _tensor(circuit, params, x, dtype, mixed, kernels, dense):
    return final_tensor(circuit, params, x, dtype, mixed, kernels=kernels, dense=dense)


@partial(jax.jit, static_argnames=("circuit", "dtype", "mixed", "wires", "kernels", "dense"))
def _probs(circuit, params, x, dtype, mixed, wires, kernels, dense):
    t = final_tensor(circuit, params, x, dtype, mixed, kernels=kernels, dense=dense)
    p = probabilities(t, mixed).reshape((2,) * circuit.n_qubits)
    return marginal(p, wires, circuit.n_qubits)


@partial(jax.jit,
         static_argnames=("circuit", "observables", "dtype", "mixed", "kernels", "dense"))
def _expval(circuit, observables, params, x, dtype, mixed, kernels, dense):
    t = final_tensor(circuit, params, x, dtype, mixed, kernels=kernels, dense=dense)
    return observable_values(t, observables, mixed)


@partial(jax.jit,
         static_argnames=("circuit", "observables", "dtype", "mixed", "kernels", "dense"))
def _expval_shots(circuit, observables, params, x, key, dtype, mixed, shots, kernels, dense):
    """Finite-shot estimate (:func:`qjaxrob.sim.sampling.shot_values`)."""
    t = final_tensor(circuit, params, x, dtype, mixed, kernels=kernels, dense=dense)
    return shot_values(t, observables, mixed, key, shots)


# ---- public API ------------------------------------------------------------------------
def statevector(c: Circuit, params=None, x=None, *, key=None, dtype=jnp.complex64, mesh=None):
    """The final state vector of ``c`` from ``|0...0>``, shape ``(2**n,)``.

    Basis index ``i = sum_k b_k 2**(n-1-k)`` (wire 0 is the most significant bit).
    If the circuit contains noise channels, ``key`` (a ``jax.random`` key) selects one
    quantum trajectory (``qjaxrob.sim.trajectories``); without a key that raises
    ``DensityMatrixOnlyError``. ``key`` is ignored for noiseless circuits.

    ``mesh``: ``None`` (default: one device), or a one-axis ``jax.sharding.Mesh`` of
    ``2**k`` devices sharing one state vector: the top ``k`` wires are global (the device
    index), each device holds ``2**(n-k)`` amplitudes, and a gate on a global wire first
    swaps it with a local wire (one all-to-all; :func:`sharding_plan` counts them; details
    in ``qjaxrob.sim.sharded``). Needs ``k <= n - w`` for the circuit's widest gate on ``w``
    wires; pure states only (noise, ``mixed``, ``shots``, ``trajectories`` raise). A
    one-device mesh runs the unsharded path. The result is in logical order.
    """
    if _sharded(mesh):
        return sharded.statevector(c, params, x, mesh=mesh, key=key, dtype=dtype)
    c, dt, params, x = _prepare(c, params, x, dtype, what="statevector")
    if key is not None and c.has_channels:
        return trajectory_state(c, params, x, check_key(key, "statevector of a noisy circuit"), dt)
    kernels = kernel_choice()
    return _tensor(c, params, x, dt, False, kernels,
                   path_choice(c, False, kernels, params, x)).reshape(-1)


def density_matrix(c: Circuit, params=None, x=None, *, dtype=jnp.complex64):
    """The final density matrix of ``c`` (channels included), shape ``(2**n, 2**n)``."""
    c, dt, params, x = _prepare(c, params, x, dtype, mixed=True, what="density_matrix")
    dim = 2**c.n_qubits
    kernels = kernel_choice()
    return _tensor(c, params, x, dt, True, kernels,
                   path_choice(c, True, kernels, params, x)).reshape(dim, dim)


def probs(c: Circuit, params=None, x=None, *, wires=None, mixed=False, dtype=jnp.complex64,
          mesh=None):
    """Probabilities of the computational-basis outcomes on ``wires`` (default all),
    shape ``(2**len(wires),)``, ``wires[0]`` the most significant bit. ``mesh``: one state
    over several devices as in :func:`statevector`."""
    if _sharded(mesh):
        return sharded.probs(c, params, x, mesh=mesh, wires=wires, mixed=mixed, dtype=dtype)
    c, dt, params, x = _prepare(c, params, x, dtype, mixed=mixed, what="probs")
    wires = tuple(range(c.n_qubits)) if wires is None else check_wires(wires, c.n_qubits)
    kernels = kernel_choice()
    return _probs(c, params, x, dt, bool(mixed), wires, kernels,
                  path_choice(c, bool(mixed), kernels, params, x))


_sample_bits = jax.jit(sample_bits, static_argnames=("shots", "n"))


def sample(key, c: Circuit, shots: int, params=None, x=None, *, mixed=False, dtype=jnp.complex64,
           mesh=None):
    """``shots`` computational-basis measurements of all wires, shape ``(shots, n)`` int8,
    column k = wire k. ``shots`` is at most :func:`qjaxrob.checks.max_shots`, and a draw
    that cannot fit in memory raises ``ResourceError`` before anything is allocated.
    ``mesh``: one state over several devices as in :func:`statevector`."""
    if _sharded(mesh):
        return sharded.sample(key, c, shots, params, x, mesh=mesh, mixed=mixed, dtype=dtype)
    key = check_key(key, "sample")
    shots = check_shots(shots)
    if isinstance(c, Circuit) and c.n_qubits >= 31 and not jax.config.read("jax_enable_x64"):
        raise ResourceError(
            f"sample of {c.n_qubits} qubits indexes 2**{c.n_qubits} outcomes, beyond int32; "
            "enable jax_enable_x64 or sample fewer qubits"
        )
    if isinstance(c, Circuit):
        check_sample_memory(shots, c.n_qubits, real_dtype(check_dtype(dtype)))
    p = probs(c, params, x, mixed=mixed, dtype=dtype)
    return _sample_bits(key, p, shots, c.n_qubits)


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
    mesh=None,
):
    """Expectation value ``<O>`` of a ``PauliSum`` (scalar) or of a list of them (vector).

    Args:
        c: the circuit.
        obs: a ``PauliSum`` or a list/tuple of them.
        params, x: 1-D real arrays of length ``c.n_params`` and ``c.n_inputs``.
        mixed: simulate the density matrix (needed for noise channels).
        shots: if given, a finite-shot estimate (each Pauli term measured with ``shots``
            shots); needs ``key``. Differentiable w.r.t. ``params`` and ``x`` by the
            parameter-shift rules, each shifted circuit from its own shots (unbiased; cost
            and unsupported cases in ``qjaxrob.sim.param_shift``). ``shots`` is passed as data: a new
            value does not recompile.
        key: PRNG key for ``shots`` or ``trajectories``.
        trajectories: if given (a positive int T), the mean over T quantum trajectories
            (``qjaxrob.sim.trajectories``; statevector memory, noise channels allowed); needs
            ``key``. Exclusive with ``mixed``, ``shots`` and ``diff="adjoint"``.
        dtype: complex64 (default) or complex128.
        diff: ``"backprop"`` (default; gradients of any order) or ``"adjoint"``.
        mesh: one state over several devices as in :func:`statevector`; both ``diff`` modes.
    """
    if _sharded(mesh):
        return sharded.expval(c, obs, params, x, mesh=mesh, mixed=mixed, shots=shots, key=key,
                              trajectories=trajectories, dtype=dtype, diff=diff)
    if not isinstance(c, Circuit):
        raise QjrTypeError(f"expected a qjr.Circuit, got {type(c).__name__}")
    observables, single = check_observables(obs, c.n_qubits)
    c, dt, params, x = _prepare(c, params, x, dtype, mixed=mixed, what="expval")
    if diff not in ("backprop", "adjoint"):
        raise ParameterError(f"diff must be 'backprop' or 'adjoint', got {diff!r}")
    if trajectories is not None:
        out = checked_expval(c, observables, params, x, key, dt, trajectories,
                             mixed=mixed, shots=shots, diff=diff)
    elif shots is not None:
        shots = check_shots(shots)
        out = shot_estimate(_expval_shots, c, expand_circuit, params, x,
                            check_key(key, "expval with shots"), jnp.asarray(shots),
                            observables=observables, dtype=dt, mixed=bool(mixed),
                            kernels=kernel_choice(), dense=dense_choice())
    elif diff == "adjoint":
        out = adjoint_expval(c, observables, params, x, dt, bool(mixed), kernel_choice())
    else:
        kernels = kernel_choice()
        out = _expval(c, observables, params, x, dt, bool(mixed), kernels,
                      path_choice(c, bool(mixed), kernels, params, x))
    return out[0] if single else out
