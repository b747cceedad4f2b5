"""One state vector over many devices (``mesh=``): the sharded walk, measurement and
adjoint gradients.

The ``2**n`` amplitudes are laid over the ``2**k`` devices of a one-axis
``jax.sharding.Mesh`` by the top ``k`` wires (the *global* wires; wire 0 is the most
significant bit): device ``d`` (its position in ``mesh.devices``) holds the ``(2,)*(n-k)``
tensor of the amplitudes whose global bits spell ``d``. The exchange planner
(:func:`qjaxrob.lower.exchanges.plan`) splits the circuit into local segments and wire
swaps. Inside one ``jax.shard_map`` over a ``(2,)*k`` view of the mesh (one axis per global
slot), each local segment runs as an ``(n-k)``-qubit circuit on the device's tensor with the
existing engine (:func:`qjaxrob.lower.pipeline.lower`, :func:`qjaxrob.sim.engine.walk`),
and each swap is one ``jax.lax.all_to_all`` over the slot's axis (each device sends half its
tensor to its partner and receives half). The logical -> physical wire map is carried to the
measurement instead of swapping back:

* **statevector** returns the amplitudes in logical order (a transpose of the sharded
  physical-order array, done by XLA);
* **probs** sums ``|psi|^2`` over the unwanted local axes on each device, then ``psum`` s
  over the unwanted global slots; the result is sharded over the wanted global slots;
* **expval** evaluates every Pauli term as ``<psi|P|psi>``: the term's X/Y letters on global
  slots pair each device with the one whose bits differ there (``ppermute``), its Z/Y letters
  on global slots are a sign per device, the local letters are applied with the kernels,
  then one ``psum``;
* **sample** draws from the probabilities of all wires.

Gradients: ``diff="backprop"`` differentiates through the collectives (all of them have
transpose rules). ``diff="adjoint"`` is a custom VJP that walks the plan backwards: the
cotangent state ``lam = sum g_o O_o psi`` is built as above, each local segment is undone
by the adjoint method's walk (:func:`qjaxrob.sim.adjoint.undo_walk`) on every device, each
swap is applied again (a swap is its own inverse), and the per-device gradient sums are
``psum`` ed. Memory per device stays two local tensors, independent of depth.

Pure states only: noise channels, ``mixed=True``, ``shots=`` and ``trajectories=`` with a
mesh raise :class:`qjaxrob.errors.ParameterError` (channels
:class:`qjaxrob.errors.DensityMatrixOnlyError`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from qjaxrob import backend
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
from qjaxrob.errors import GradientError, ParameterError, QjrTypeError
from qjaxrob.ir.circuit import Circuit
from qjaxrob.kernels import apply_pauli
from qjaxrob.lower.exchanges import ExchangePlan, Swap, plan
from qjaxrob.lower.interpreter import INTERPRET_MIN_BLOCKS
from qjaxrob.lower.angles import affine_angles
from qjaxrob.lower.pipeline import lower
from qjaxrob.sim.adjoint import undo_walk
from qjaxrob.sim.engine import statevector_op, statevector_policy, walk
from qjaxrob.sim.sampling import sample_bits

__all__ = [
    "expval",
    "mesh_devices",
    "physical_state_program",
    "probs",
    "sample",
    "sharding_plan",
    "statevector",
]


# ---- validation and planning -------------------------------------------------------
def mesh_devices(mesh) -> int:
    """The device count of ``mesh``, a one-axis ``jax.sharding.Mesh`` (else an error naming
    it). The count's checks (a power of two, at most the circuit allows) are the planner's."""
    if not isinstance(mesh, Mesh):
        raise QjrTypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if len(mesh.axis_names) != 1:
        raise ParameterError(
            f"a sharded state vector takes a mesh with one axis, got axes {mesh.axis_names} "
            f"of sizes {tuple(mesh.devices.shape)}")
    return int(mesh.devices.size)


def sharding_plan(circuit: Circuit, mesh) -> ExchangePlan:
    """How ``circuit`` runs over ``mesh`` (a one-axis ``jax.sharding.Mesh``, or just a device
    count: planning needs no devices): an :class:`~qjaxrob.lower.exchanges.ExchangePlan`
    with ``exchanges`` (all-to-all wire swaps per circuit), ``global_wires`` (k),
    ``amplitudes_per_device`` (``2**(n-k)``), ``state_bytes_per_device(dtype)``,
    ``exchange_bytes_per_device(dtype)`` and the final ``layout``.

    Raises ``ParameterError`` for a mesh with several axes or a device count that is not a
    power of two, ``WireError`` for fewer amplitudes than devices or fewer local wires than
    the circuit's widest gate needs (``k <= n - widest``, so at least one local wire)."""
    if not isinstance(circuit, Circuit):
        raise QjrTypeError(f"expected a qjr.Circuit, got {type(circuit).__name__}")
    devices = mesh if isinstance(mesh, (int, np.integer)) else mesh_devices(mesh)
    return plan(circuit, devices)


def _prepare(c, mesh, params, x, dtype, what):
    """Checks like the unsharded entry points; memory per device (all of it on one host for
    CPU host devices). Expression angles are rewritten into an affine circuit over augmented
    params first (:func:`qjaxrob.lower.angles.affine_angles`). Returns ``(plan, dtype,
    params, x)``."""
    if not isinstance(c, Circuit):
        raise QjrTypeError(f"expected a qjr.Circuit, got {type(c).__name__}")
    dt = check_dtype(dtype)
    real = real_dtype(dt)
    params = check_vector(params, c.n_params, "params", real)
    x = check_vector(x, c.n_inputs, "x", real)
    c, params = affine_angles(c, params, x)
    pl = sharding_plan(c, mesh)
    host = mesh.devices.flat[0].platform == "cpu"
    check_memory(pl.local_wires, dt, batch=pl.devices if host else 1, what=what)
    return pl, dt, params, x


def _refuse(what, **options):
    """``ParameterError`` for the first option given (not ``None``/``False``), naming it and
    its value (arrays such as keys by their type)."""
    for name, value in options.items():
        if value is not None and value is not False:
            shown = (repr(value) if isinstance(value, (bool, int, float, str, np.integer))
                     else f"<{type(value).__name__}>")
            raise ParameterError(
                f"{what} with mesh= simulates a pure state vector; {name}={shown} is not "
                "supported with a mesh (drop mesh= for it)")


# ---- the per-device program ----------------------------------------------------------
def _slot_mesh(mesh: Mesh, k: int):
    """The mesh viewed as ``(2,)*k``, one axis per global slot (slot 0 the most significant
    bit of the device position)."""
    names = tuple(f"qjr_slot{i}" for i in range(k))
    return Mesh(mesh.devices.reshape((2,) * k), names), names


def _bits(names):
    """This device's global bits, slot order (traced ints)."""
    return [jax.lax.axis_index(a) for a in names]


def _zero_state(nl, names, dtype):
    first = jnp.all(jnp.stack([b == 0 for b in _bits(names)])) if names else True
    one = jnp.where(first, 1, 0).astype(dtype)
    return jnp.zeros((2,) * nl, dtype).at[(0,) * nl].set(one)


def _swap(state, swap: Swap, names):
    """Exchanges global slot ``swap.slot`` with local axis ``swap.axis``: device ``a``'s
    entries ``[axis = b]`` go to device ``b``'s entries ``[axis = a]``."""
    return jax.lax.all_to_all(state, names[swap.slot], swap.axis, swap.axis, tiled=True)


def _segment(ops, state, params, x, dtype, kernels):
    """One local segment, walked as the unsharded engine walks a circuit (the statevector
    lowering and fusion policy, without a product prefix: the start state is arbitrary)."""
    policy = replace(statevector_policy(kernels=kernels, interpret_blocks=INTERPRET_MIN_BLOCKS),
                     prefix=False)
    low = lower(ops, state.ndim, policy)
    return walk(low.nodes, state, params, x, statevector_op(dtype, kernels))


def _local_state(pl: ExchangePlan, names, params, x, dtype, kernels):
    # params/x made device-varying first: the kernels' custom primitives transpose without
    # tracking varying axes, so every value they meet must already be varying
    params, x = (jax.lax.pcast(v, names, to="varying") for v in (params, x))
    state = _zero_state(pl.local_wires, names, dtype)
    for step in pl.steps:
        if isinstance(step, Swap):
            state = _swap(state, step, names)
        else:
            state = _segment(step, state, params, x, dtype, kernels)
    return state


def _split(word, pl: ExchangePlan):
    """A Pauli word's letters on global slots ``{slot: letter}`` and on local axes
    ``(letters, axes)`` under the final layout."""
    k = pl.global_wires
    glob = {pl.layout[w]: l for w, l in word if pl.layout[w] < k}
    loc = [(pl.layout[w] - k, l) for w, l in word if pl.layout[w] >= k]
    return glob, ("".join(l for _, l in loc), tuple(a for a, _ in loc))


def _partner(state, slots, names):
    """The tensor of the device whose bits differ from this one's in ``slots``."""
    for s in slots:
        state = jax.lax.ppermute(state, names[s], perm=[(0, 1), (1, 0)])
    return state


def _global_factor(glob, bits, dtype):
    """Phase of a term's global letters on this device: ``(P psi)[g] = f(g) psi[g ^ x_g]``
    with ``f = prod_slots`` 1 (X), ``(-1)**b`` (Z), ``-i (-1)**b`` (Y)."""
    f = jnp.ones((), dtype)
    for slot, letter in glob.items():
        sign = (1 - 2 * bits[slot]).astype(dtype)
        if letter == "Z":
            f = f * sign
        elif letter == "Y":
            f = f * sign * jnp.asarray(-1j, dtype)
    return f


def _pauli_terms(pl: ExchangePlan, observables):
    """``{x-slots: [(observable, coeff, glob, local)]}``: terms grouped by the global
    slots their X/Y letters flip (one partner exchange per group)."""
    groups = {}
    for i, obs in enumerate(observables):
        for coeff, word in obs.terms:
            glob, loc = _split(word, pl)
            flips = tuple(sorted(s for s, l in glob.items() if l in "XY"))
            groups.setdefault(flips, []).append((i, coeff.real, glob, loc))
    return groups


def _term_values(pl, observables, state, names, dtype):
    """Per-device partial ``<O_i>``, shape ``(len(observables),)`` (real)."""
    bits = _bits(names)
    out = jnp.zeros(len(observables), real_dtype(dtype))
    for flips, terms in _pauli_terms(pl, observables).items():
        other = _partner(state, flips, names)
        for i, coeff, glob, (letters, axes) in terms:
            v = _global_factor(glob, bits, dtype) * jnp.vdot(state,
                                                             apply_pauli(other, letters, axes))
            out = out.at[i].add(coeff * jnp.real(v))
    return out


def _cotangent_state(pl, observables, g, state, names, dtype):
    """``lam = sum_i g_i O_i psi`` on this device (``g`` traced, one per observable)."""
    bits = _bits(names)
    lam = jnp.zeros_like(state)
    for flips, terms in _pauli_terms(pl, observables).items():
        other = _partner(state, flips, names)
        for i, coeff, glob, (letters, axes) in terms:
            scale = (g[i] * coeff).astype(dtype) * _global_factor(glob, bits, dtype)
            lam = lam + scale * apply_pauli(other, letters, axes)
    return lam


# ---- compiled programs ---------------------------------------------------------------
def _map(pl, mesh, fn, specs, check_vma=True):
    """``jax.shard_map`` of ``fn(*args, names=...)`` over the slot view of ``mesh``;
    ``specs(names) -> (in_specs, out_specs)``."""
    bm, names = _slot_mesh(mesh, pl.global_wires)
    in_specs, out_specs = specs(names)
    return jax.shard_map(partial(fn, names=names), mesh=bm, in_specs=in_specs,
                         out_specs=out_specs, check_vma=check_vma)


def physical_state_program(pl: ExchangePlan, mesh, dtype, kernels=None):
    """``(params, x) -> state``: the final state as one ``(2**n,)`` array sharded over
    ``mesh`` (each device holds its ``2**(n-k)`` amplitudes), in *physical* order (axis p of
    its ``(2,)*n`` view holds the logical wire ``w`` with ``pl.layout[w] == p``). Jitted; its
    ``.lower(params, x).compile().memory_analysis()`` gives per-device bytes."""
    kernels = backend.kernel_choice(kernels)

    def local(params, x, names):
        return _local_state(pl, names, params, x, dtype, kernels).reshape(-1)

    return jax.jit(_map(pl, mesh, local, lambda names: ((P(), P()), P(names))))


@partial(jax.jit, static_argnames=("pl", "mesh", "dtype", "kernels"))
def _state(pl, mesh, params, x, dtype, kernels):
    return physical_state_program(pl, mesh, dtype, kernels)(params, x)


@partial(jax.jit, static_argnames=("pl", "mesh", "dtype", "kernels"))
def _statevector(pl, mesh, params, x, dtype, kernels):
    flat = _state(pl, mesh, params, x, dtype, kernels)
    # axis p of the physical view holds wire w with layout[w] == p
    return jnp.transpose(flat.reshape((2,) * pl.n_qubits), pl.layout).reshape(-1)


@partial(jax.jit, static_argnames=("pl", "mesh", "wires", "dtype", "kernels"))
def _probs(pl, mesh, params, x, wires, dtype, kernels):
    k = pl.global_wires
    phys = sorted(pl.layout[w] for w in wires)
    kept_slots = tuple(p for p in phys if p < k)
    kept_axes = {p - k for p in phys if p >= k}

    def local(params, x, names):
        state = _local_state(pl, names, params, x, dtype, kernels)
        p = jnp.abs(state) ** 2
        p = jnp.sum(p, axis=tuple(a for a in range(pl.local_wires) if a not in kept_axes))
        summed = tuple(names[s] for s in range(k) if s not in kept_slots)
        return (jax.lax.psum(p, summed) if summed else p).reshape(-1)

    def specs(names):
        return (P(), P()), P(tuple(names[s] for s in kept_slots)) if kept_slots else P()

    flat = _map(pl, mesh, local, specs)(params, x)
    order = tuple(phys.index(pl.layout[w]) for w in wires)
    return jnp.transpose(flat.reshape((2,) * len(wires)), order).reshape(-1)


def _state_values(pl, mesh, observables, state, dtype):
    """``<O_i>``, shape ``(K,)``, of a sharded physical-order state (:func:`_state`)."""
    def local(state, names):
        state = state.reshape((2,) * pl.local_wires)
        return jax.lax.psum(_term_values(pl, observables, state, names, dtype), names)

    return _map(pl, mesh, local, lambda names: ((P(names),), P()))(state)


@partial(jax.jit, static_argnames=("pl", "mesh", "observables", "dtype", "kernels"))
def _expval(pl, mesh, observables, params, x, dtype, kernels):
    return _state_values(pl, mesh, observables, _state(pl, mesh, params, x, dtype, kernels),
                         dtype)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 5, 6))
def _adjoint(pl, mesh, observables, params, x, dtype, kernels):
    return _expval(pl, mesh, observables, params, x, dtype, kernels)


def _adjoint_fwd(pl, mesh, observables, params, x, dtype, kernels):
    state = _state(pl, mesh, params, x, dtype, kernels)
    return _state_values(pl, mesh, observables, state, dtype), (params, x, state)


def _adjoint_bwd(pl, mesh, observables, dtype, kernels, residuals, g):
    params, x, state = residuals

    def local(params, x, state, g, names):
        psi = state.reshape((2,) * pl.local_wires)
        lam = _cotangent_state(pl, observables, g, psi, names, dtype)
        grad_p, grad_x = jnp.zeros_like(params), jnp.zeros_like(x)
        for step in reversed(pl.steps):
            if isinstance(step, Swap):
                psi, lam = _swap(psi, step, names), _swap(lam, step, names)
                continue
            block = Circuit(pl.local_wires, step)
            psi, lam, gp, gx = undo_walk(block, psi, lam, params, x, dtype,
                                         INTERPRET_MIN_BLOCKS)
            grad_p, grad_x = grad_p + gp, grad_x + gx
        return jax.lax.psum(grad_p, names), jax.lax.psum(grad_x, names)

    def specs(names):
        return (P(), P(), P(names), P()), (P(), P())

    return _map(pl, mesh, local, specs, check_vma=False)(params, x, state, g)


_adjoint.defvjp(_adjoint_fwd, _adjoint_bwd)
_adjoint_jit = jax.jit(_adjoint, static_argnums=(0, 1, 2, 5, 6))


# ---- entry points (called by qjaxrob.simulate when mesh= is given) -------------------
def statevector(c, params, x, *, mesh, key=None, dtype=jnp.complex64):
    """:func:`qjaxrob.statevector` over ``mesh`` (module docs)."""
    if isinstance(c, Circuit) and c.has_channels:
        _refuse("statevector of a noisy circuit", key=key)
    pl, dt, params, x = _prepare(c, mesh, params, x, dtype, "statevector")
    return _statevector(pl, mesh, params, x, dt, backend.kernel_choice())


def probs(c, params, x, *, mesh, wires=None, mixed=False, dtype=jnp.complex64):
    """:func:`qjaxrob.probs` over ``mesh``."""
    _refuse("probs", mixed=mixed)
    pl, dt, params, x = _prepare(c, mesh, params, x, dtype, "probs")
    wires = tuple(range(c.n_qubits)) if wires is None else check_wires(wires, c.n_qubits)
    return _probs(pl, mesh, params, x, wires, dt, backend.kernel_choice())


_sample_bits = jax.jit(sample_bits, static_argnames=("shots", "n"))


def sample(key, c, shots, params, x, *, mesh, mixed=False, dtype=jnp.complex64):
    """:func:`qjaxrob.sample` over ``mesh``: drawn from the probabilities of all wires
    (gathered: ``2**n`` reals on the device that draws)."""
    _refuse("sample", mixed=mixed)
    key = check_key(key, "sample")
    shots = check_shots(shots)
    p = probs(c, params, x, mesh=mesh, dtype=dtype)
    check_sample_memory(shots, c.n_qubits, real_dtype(check_dtype(dtype)))
    return _sample_bits(key, p, shots, c.n_qubits)


def expval(c, obs, params, x, *, mesh, mixed=False, shots=None, key=None,
           trajectories=None, dtype=jnp.complex64, diff="backprop"):
    """:func:`qjaxrob.expval` over ``mesh`` (a scalar for one ``PauliSum``, else a vector)."""
    if not isinstance(c, Circuit):
        raise QjrTypeError(f"expected a qjr.Circuit, got {type(c).__name__}")
    _refuse("expval", mixed=mixed, shots=shots, trajectories=trajectories)
    observables, single = check_observables(obs, c.n_qubits)
    if diff not in ("backprop", "adjoint"):
        raise ParameterError(f"diff must be 'backprop' or 'adjoint', got {diff!r}")
    pl, dt, params, x = _prepare(c, mesh, params, x, dtype, "expval")
    kernels = backend.kernel_choice()
    if diff == "backprop":
        out = _expval(pl, mesh, observables, params, x, dt, kernels)
    else:
        try:
            out = _adjoint_jit(pl, mesh, observables, params, x, dt, kernels)
        except TypeError as exc:
            if "forward-mode" not in str(exc):
                raise
            raise GradientError(
                "diff='adjoint' defines reverse-mode derivatives only (jax.grad, jax.vjp, "
                "jax.jacrev); forward mode (jax.jvp, jax.jacfwd) needs diff='backprop'"
            ) from None
    return out[0] if single else out
