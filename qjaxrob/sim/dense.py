"""The dense small-state path: each layer of a circuit (:mod:`qjaxrob.lower.layers`) is formed
as one ``2**n x 2**n`` matrix inside the traced program and applied with one matrix product.

At ``2**4``-``2**12`` amplitudes the per-op cost of the gate-by-gate engine
(:mod:`qjaxrob.sim.engine`) is mostly fixed overhead; here a layer costs one product,
a batch of states (``vmap`` over inputs or restarts with shared parameters) becomes one
matrix-matrix product, and derivatives of any order go through a short chain of products.

Per :class:`qjaxrob.lower.layers.Layer` ``M = T K``: every group matrix is the product of
its gates' matrices embedded in the group (:func:`qjaxrob.lower.tables.embed`), ``K`` is
the Kronecker product of the group matrices and an identity on idle wires in the layer's
layout order, and the layout and the tail ``T`` (constant monomial gates) are static
gathers with phases (:func:`qjaxrob.lower.layers.layout`, :func:`~qjaxrob.lower.layers.tail_map`;
:func:`qjaxrob.kernels.permute_axis`, whose derivatives are gathers, not scatters):
``M v = phase * (K v[sigma^-1])[sigma[perm]]``. Pure states: ``psi -> M psi``. Density
matrices: ``rho -> M rho M^dagger`` (products, and the gathers on the row then the column
axis), wider channels ``rho -> sum_k K_k rho K_k^dagger``
(:func:`qjaxrob.kernels.apply_kraus`), and runs of one-qubit gates and channels as
:class:`~qjaxrob.lower.layers.Local` nodes: per wire one pass of the product of their 4 x 4
superoperators (over its nonzero entries only when the product is constant,
:func:`qjaxrob.kernels.density.apply_local_const`). The first layer applied to
``|0...0>`` is the Kronecker product of the groups' first columns (no matrix formed).
``Roll`` nodes (``Circuit.repeat`` blocks and repeated layers) are one ``lax.scan`` over
their repetitions, so compile time stays flat in depth.

**Selection** (:func:`use_dense`): ``dense`` or ``$QJAXROB_DENSE``: ``"1"`` forces this path
(``ResourceError`` beyond :data:`MAX_QUBITS` / :data:`MAX_QUBITS_MIXED`), ``"0"`` the engine,
``"auto"`` (default) whichever the cost model :func:`costs` prices lower for the batch the
call runs in, never with the Pallas kernels (their tests must run them). The public entry
points resolve ``auto`` to a path before their ``jit`` (:func:`path_choice`, a static
argument), where the batch is still visible: :func:`batch_sizes` finds the ``jax.vmap``
sizes that batch ``params``/``x`` at the call, and whether the parameters are shared across
the batch (a shared layer matrix multiplies all states at once), and :func:`differentiated`
whether the call is being differentiated (a batched forward and a batched gradient have
different best paths). A ``vmap`` or a derivative applied outside a ``jit`` (or
``jax.checkpoint``) boundary (``jax.vmap(jax.jit(f))``, ``jax.grad(jax.jit(f))``) is not
visible there: such a call is priced as unbatched, or as a forward evaluation (a possibly
slower path, never a different value). The constants of the model
are measured by ``benchmarks/dense.py`` (``benchmarks/README.md``, "Dense small-state path").
Only the forward evolution (and so backprop derivatives of any order through it) takes this
path: ``diff="adjoint"`` (:mod:`qjaxrob.sim.adjoint`) and quantum trajectories always run on
the engine, whatever the choice.

Tensor layout as in :mod:`qjaxrob.sim.engine`: the result is ``(2,)*n`` or ``(2,)*2n``.
"""

from __future__ import annotations

import os
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

from qjaxrob.errors import DensityMatrixOnlyError, ParameterError, ResourceError
from qjaxrob.ir.circuit import Circuit, Op
from qjaxrob.kernels import (
    apply_kraus,
    apply_local,
    apply_local_const,
    permute_axis,
    superoperator,
)
from qjaxrob.lower.fusion import fuse, op_matrix
from qjaxrob.lower.layers import Layer, Local, layer_ops, layout, tail_map
from qjaxrob.lower.rolling import Roll, roll_rows
from qjaxrob.lower.tables import const_matrix, embed, small_product
from qjaxrob.sim import engine

__all__ = ["CHOICES", "COST", "COST_FORWARD", "COST_SINGLE", "ENV", "MAX_QUBITS",
           "MAX_QUBITS_MIXED", "batch_sizes", "costs", "counts", "dense_choice", "dense_tensor",
           "differentiated", "final_tensor", "path_choice", "use_dense"]

ENV = "QJAXROB_DENSE"
CHOICES = ("auto", "0", "1")
MAX_QUBITS = 12
"""Widest pure state the dense path runs (a layer matrix is ``4**12`` entries, 256 MiB at
complex128)."""
SPLIT_MIN_QUBITS = 4
"""From this many wires a layer's ``K`` is applied as two Kronecker factors (:func:`split`)."""
MAX_QUBITS_MIXED = 10
"""Widest density matrix the dense path runs (``4**10`` entries, 16 MiB at complex128)."""

COST_BATCH = 32
"""The batch of the batched rows :data:`COST` is fitted on (``benchmarks/dense.py``)."""

# Set from the "fit:" lines of `python -m benchmarks.dense --sections costs`, run on a quiet
# machine; benchmarks/README.md ("Dense small-state path") records which run set them.
COST = {"engine_pass": 3.55e-7, "engine_amp": 6.49e-9, "dense_layer": 1.60e-6,
        "dense_layer_amp": 1.99e-8, "dense_mac": 1.34e-9, "dense_gemm": 2.50e-10,
        "dense_amp": 8.92e-9}
"""Cost model of a batched call (``B > 1`` examples), seconds per example, complex128: an
engine pass costs ``engine_pass + engine_amp * size`` (``size``: ``2**n`` amplitudes,
``4**n`` for a density matrix); a formed dense layer ``dense_layer + dense_layer_amp * size
+ dense_mac * macs`` (:func:`counts`; the ``size`` term prices what grows with the state
beside the products: the split factors, ``2 * 2**(n/2)`` entries each, and the layout and
tail gathers), or ``dense_gemm`` in place of ``dense_mac`` when the batch shares the
parameters (only inputs batched: a layer matrix multiplies all ``B`` states in one
matrix-matrix product); another pass of the dense path ``engine_pass + dense_amp *
size``. Fitted on batched gradients (training, restarts, clients)."""

COST_FORWARD = {"engine_pass": 1.24e-7, "engine_amp": 8.44e-10, "dense_layer": 4.62e-7,
                "dense_layer_amp": 1.17e-8, "dense_mac": 3.06e-10, "dense_gemm": 9.82e-12,
                "dense_amp": 1.57e-9}
"""The same model as :data:`COST` for a batched call that is not differentiated (inference,
evaluation, an attack's forward pass), seconds per example, fitted on batched forward
evaluations."""

COST_SINGLE = {"engine_pass": 5.48e-7, "engine_amp": 1.75e-9, "dense_layer": 3.56e-6,
               "dense_layer_amp": 5.88e-8, "dense_mac": 0.0, "dense_amp": 2.18e-9}
"""The same model (without ``dense_gemm``) for one unbatched call, seconds per call,
fitted on single forward evaluations (where fixed costs per op weigh most)."""


def dense_choice(dense: str | None = None) -> str:
    """``"auto"``, ``"0"`` or ``"1"``: ``dense`` if given, else ``$QJAXROB_DENSE`` (default
    ``"auto"``); anything else raises ``ParameterError`` naming the value."""
    value = os.environ.get(ENV, "auto") if dense is None else dense
    if value not in CHOICES:
        source = "dense" if dense is not None else ENV
        raise ParameterError(f"{source} must be one of {CHOICES}, got {value!r}")
    return value


def _flat(ops: tuple) -> tuple:
    out = []
    for op in ops:
        out.extend(op.unrolled_ops() if not isinstance(op, Op) else (op,))
    return tuple(out)


def _layer_macs(layer: Layer, mixed: bool) -> int:
    """Multiply-adds to form a layer's factors and apply them to one state (or density
    matrix): ``4**n`` and ``2**n * 2**n`` unsplit, ``4**h + 4**l`` and ``2**n (2**h + 2**l)``
    split (:func:`split`); a density matrix is applied on both sides."""
    n, cut = layer.n_qubits, split(layer)
    h = sum(len(g.wires) for g in layer.groups[:cut]) if cut else n
    dims = (2**h, 2 ** (n - h)) if cut else (2**n,)
    form = sum(d * d for d in dims)
    return form + (2 * 4**n if mixed else 2**n) * sum(dims)


def _count_layers(nodes: tuple, n: int, mixed: bool):
    """``(formed layers, other passes, multiply-adds of the formed layers)`` of ``nodes``,
    repetitions included; other passes: a tail-only layer (one gather; on a density
    matrix two, the row and the column gather, after a formed layer too), a channel, a wire
    of a :class:`~qjaxrob.lower.layers.Local` node."""
    formed = other = macs = 0
    for node in nodes:
        if isinstance(node, Roll):
            f, o, m = _count_layers(layer_ops(node.block.ops, n, local=mixed), n, mixed)
            formed, other, macs = (formed + node.times * f, other + node.times * o,
                                   macs + node.times * m)
        elif isinstance(node, Layer) and node.groups:
            formed, macs = formed + 1, macs + _layer_macs(node, mixed)
            other += 2 if mixed and node.tail else 0
        elif isinstance(node, Layer) and mixed:
            other += 2 if node.tail else 0
        elif isinstance(node, Local):
            other += len(node.wires)
        else:
            other += 1
    return formed, other, macs


@lru_cache(maxsize=256)
def counts(circuit: Circuit, mixed: bool) -> dict:
    """The work both paths do for one forward evaluation of ``circuit`` (static):
    ``passes`` (the engine's fused 2-wire blocks; every gate for a density matrix, which is
    not fused), ``size`` (elements one pass touches: ``2**n``, ``4**n`` mixed), ``channels``,
    ``formed`` (dense layers with a matrix), ``other`` (the dense path's other passes,
    :func:`_count_layers`) and ``macs`` (multiply-adds of the formed
    layers, :func:`_layer_macs`)."""
    n = circuit.n_qubits
    ops = tuple(op for op in _flat(circuit.ops) if not op.is_marker)
    gates = tuple(op for op in ops if not op.is_channel)
    mixed = bool(mixed)
    formed, other, macs = _count_layers(layer_ops(circuit.ops, n, local=mixed), n, mixed)
    return dict(passes=len(gates) if mixed else len(fuse(gates, max_qubits=2)),
                size=4**n if mixed else 2**n, channels=len(ops) - len(gates),
                formed=formed, other=other, macs=macs)


def costs(circuit: Circuit, mixed: bool, batch: int = 1, shared: bool = False,
          derivative: bool = True) -> tuple[float, float]:
    """``(engine seconds, dense seconds)`` predicted for one call of ``circuit``'s forward
    evaluation over ``batch`` examples (``shared``: they share the parameters), from its
    :func:`counts`: :data:`COST_SINGLE` for ``batch == 1``, else ``batch`` times the
    per-example :data:`COST` when the call is differentiated (``derivative``), or
    :data:`COST_FORWARD` when it is not."""
    k = counts(circuit, bool(mixed))
    cost = COST_SINGLE if batch <= 1 else COST if derivative else COST_FORWARD
    pass_cost = cost["engine_pass"] + cost["engine_amp"] * k["size"]
    engine_s = (k["passes"] + k["channels"]) * pass_cost
    mac = cost["dense_gemm"] if shared and batch > 1 else cost["dense_mac"]
    layer = cost["dense_layer"] + cost["dense_layer_amp"] * k["size"]
    dense_s = (k["formed"] * layer + mac * k["macs"]
               + k["other"] * (cost["engine_pass"] + cost["dense_amp"] * k["size"]))
    return batch * engine_s, batch * dense_s


def use_dense(circuit: Circuit, mixed: bool, kernels=None, dense: str | None = None,
              batch: int = 1, shared: bool = False, derivative: bool = True) -> bool:
    """Whether ``circuit`` runs on the dense path (module docs, "Selection") in a call over
    ``batch`` examples (``shared``: they share the parameters; ``derivative``: the call is
    differentiated, :func:`costs`)."""
    choice = dense_choice(dense)
    if choice == "0":
        return False
    n = circuit.n_qubits
    limit = MAX_QUBITS_MIXED if mixed else MAX_QUBITS
    if choice == "1":
        if n > limit:
            raise ResourceError(
                f"the dense path ({ENV}=1) runs at most {limit} qubits "
                f"{'(density matrix)' if mixed else '(statevector)'}, got {n}; "
                f"set {ENV}=auto or 0")
        return True
    if n > limit or kernels == "pallas":
        return False
    engine_s, dense_s = costs(circuit, bool(mixed), batch, shared, derivative)
    return dense_s < engine_s


def batch_sizes(params, x) -> tuple[int, int]:
    """``(B, B_params)``: the product of the sizes of the ``jax.vmap`` transformations that
    batch ``params`` or ``x`` at this point of a trace, and of those that batch ``params``
    (``(1, 1)`` outside any ``vmap``, and for a ``vmap`` applied outside a ``jit`` boundary,
    which has not batched the traced values yet).

    Found with a ``jax.custom_batching.custom_vmap`` identity on ``stop_gradient`` copies
    of the arrays: each ``vmap`` level that batches them calls its rule with the axis size
    at once (the rule asks the next level out with one slice), and the ``stop_gradient``
    keeps the probe out of every derivative (its output is unused)."""
    if not any(isinstance(a, jax.core.Tracer) for a in (params, x)):
        return 1, 1
    sizes = []

    @custom_vmap
    def probe(p, v):
        return p, v

    @probe.def_vmap
    def rule(axis_size, in_batched, p, v):
        sizes.append((axis_size, bool(in_batched[0])))
        probe(p[0] if in_batched[0] else p, v[0] if in_batched[1] else v)
        return (p, v), tuple(in_batched)

    probe(jax.lax.stop_gradient(jnp.asarray(params)), jax.lax.stop_gradient(jnp.asarray(x)))
    return (int(np.prod([s for s, _ in sizes], dtype=np.int64)),
            int(np.prod([s for s, p in sizes if p], dtype=np.int64)))


def differentiated(params, x) -> bool:
    """Whether ``params`` or ``x`` carry a derivative at this point of a trace (``jax.grad``,
    ``jax.jvp``, ``jax.linearize``, ``jax.hessian`` and their compositions with ``jit`` and
    ``vmap``, at any nesting), so that the call being traced is differentiated. ``False``
    outside any derivative, for ``stop_gradient`` inputs, and for a derivative applied
    outside a ``jit``/``jax.checkpoint`` boundary (which differentiates the traced program
    afterwards).

    Found with a ``jax.custom_jvp`` identity on the arrays: JAX calls its JVP rule, at once,
    exactly when some input has a tangent; the probe's outputs are unused."""
    if not any(isinstance(a, jax.core.Tracer) for a in (params, x)):
        return False
    seen = []

    @jax.custom_jvp
    def probe(p, v):
        return p, v

    @probe.defjvp
    def rule(primals, tangents):
        seen.append(True)
        return primals, tangents

    probe(jnp.asarray(params), jnp.asarray(x))
    return bool(seen)


def path_choice(circuit: Circuit, mixed: bool, kernels, params, x,
                dense: str | None = None) -> str:
    """``"1"`` (dense path) or ``"0"`` (engine) for a call of ``circuit`` at ``params``,
    ``x`` (checked arrays, possibly tracers), as :func:`use_dense` selects for the batch
    :func:`batch_sizes` finds (priced as a gradient when :func:`differentiated`); the static
    path argument of the compiled entry points."""
    choice = dense_choice(dense)
    if choice != "auto":
        return "1" if use_dense(circuit, mixed, kernels, choice) else "0"
    batch, batch_params = batch_sizes(params, x)
    derivative = batch > 1 and differentiated(params, x)
    return "1" if use_dense(circuit, mixed, kernels, choice, batch, shared=batch_params == 1,
                            derivative=derivative) else "0"


def final_tensor(circuit: Circuit, params, x, dtype, mixed: bool, kernels=None,
                 dense: str | None = None):
    """:func:`qjaxrob.sim.engine.final_tensor` or :func:`dense_tensor`, as
    :func:`use_dense` selects (traceable, not jitted)."""
    if use_dense(circuit, mixed, kernels, dense):
        return dense_tensor(circuit, params, x, dtype, mixed)
    return engine.final_tensor(circuit, params, x, dtype, mixed, kernels=kernels)


# ---- forming layers ------------------------------------------------------------------
def _gate_matrix(op, params, x, dtype):
    m = const_matrix(op)
    if m is not None:
        return jnp.asarray(m, dtype)
    kind, m = op_matrix(op, params, x, dtype)
    return jnp.diag(m) if kind == "diagonal" else m


def group_matrix(group, params, x, dtype):
    """The ``2**k x 2**k`` matrix of a :class:`qjaxrob.lower.layers.Group` (its gates in
    order, each embedded in the group's sorted wires)."""
    k = len(group.wires)
    out = None
    for op in group.ops:
        m = _gate_matrix(op, params, x, dtype)
        pos = tuple(group.wires.index(w) for w in op.wires)
        if pos != tuple(range(k)):
            m = embed(m, pos, k, xp=jnp)
        out = m if out is None else small_product(m, out)
    return out


def _kron(mats, dtype, idle: int = 0):
    out = mats[0] if mats else jnp.eye(1, dtype=dtype)
    for m in mats[1:]:
        out = jnp.kron(out, m)
    return jnp.kron(out, jnp.eye(2**idle, dtype=dtype)) if idle else out


@lru_cache(maxsize=1024)
def split(layer: Layer) -> int:
    """How many of the layer's groups form the high factor ``K_hi`` of ``K = K_hi (x) K_lo``
    (the rest and the idle wires form ``K_lo``): the group boundary whose high part is
    nearest ``n/2`` wires; ``0`` (one factor) below :data:`SPLIT_MIN_QUBITS` wires or when
    no boundary leaves both parts nonempty."""
    n = layer.n_qubits
    if n < SPLIT_MIN_QUBITS:
        return 0
    sizes = np.cumsum([len(g.wires) for g in layer.groups])
    ok = [i + 1 for i, high in enumerate(sizes) if high < n]  # K_lo keeps >= 1 wire
    return min(ok, key=lambda i: abs(sizes[i - 1] - n / 2), default=0)


def _gathers(layer: Layer):
    """``(sigma^-1 or None, rows or None, phase or None)`` of a layer (module docs)."""
    n = layer.n_qubits
    sigma = layout(layer)
    inv = None if sigma is None else np.argsort(sigma).astype(np.int32)
    perm, phase = tail_map(layer.tail, n) if layer.tail else (None, None)
    if sigma is not None and perm is not None:
        rows = sigma[perm]
    else:
        rows = sigma if perm is None else perm
    if phase is not None and np.all(phase == 1):
        phase = None
    return inv, rows, phase


def _apply_layer(layer: Layer, state, params, x, dtype, mixed: bool):
    """``M state`` (pure, flat ``(2**n,)``) or ``M rho M^dagger`` (``(2**n, 2**n)``);
    ``state=None`` stands for ``|0...0>``."""
    n = layer.n_qubits
    inv, rows, phase = _gathers(layer)
    if layer.groups:
        # the barrier keeps XLA from constant-folding parameter-free layers at compile time
        mats = jax.lax.optimization_barrier(
            [group_matrix(g, params, x, dtype) for g in layer.groups])
        idle = n - sum(len(g.wires) for g in layer.groups)
        if state is None:  # first columns: K e_0 (sigma(0) = 0)
            cols = [m[:, 0] for m in mats] + ([jnp.zeros(2**idle, dtype).at[0].set(1)]
                                               if idle else [])
            v = cols[0]
            for c in cols[1:]:
                v = (v[:, None] * c[None, :]).reshape(-1)
            state = jnp.outer(v, jnp.conj(v)) if mixed else v
        else:
            if inv is not None:
                state = _permute(state, inv, mixed)
            state = _apply_factors(layer, mats, idle, state, dtype, mixed)
    elif state is None:
        state = _zero(n, dtype, mixed)
    if rows is not None:
        state = _permute(state, rows, mixed)
    if phase is not None:
        ph = jnp.asarray(phase, dtype)
        state = ph[:, None] * state * jnp.conj(ph)[None, :] if mixed else ph * state
    return state


def _permute(state, perm, mixed: bool):
    """``state[perm]`` (or ``rho[perm][:, perm]``) as gathers whose derivatives are gathers
    too (:func:`qjaxrob.kernels.permute_axis`)."""
    state = permute_axis(state, perm, 0)
    return permute_axis(state, perm, 1) if mixed else state


def _apply_factors(layer: Layer, mats, idle: int, state, dtype, mixed: bool):
    """``K state`` or ``K rho K^dagger`` in layout order, with ``K = K_hi (x) K_lo``
    (:func:`split`) applied as two products on the state viewed as ``(2**h, 2**l)``
    (four on the density tensor ``(2**h, 2**l, 2**h, 2**l)``), or one ``K`` product when
    the layer is not split."""
    n, cut = layer.n_qubits, split(layer)
    if cut == 0:
        k = _kron(mats, dtype, idle)
        return k @ state @ jnp.conj(k).T if mixed else k @ state
    hi, lo = _kron(mats[:cut], dtype), _kron(mats[cut:], dtype, idle)
    dh, dl = hi.shape[0], lo.shape[0]
    if not mixed:
        return (hi @ state.reshape(dh, dl) @ lo.T).reshape(-1)
    r = state.reshape(dh, dl, dh, dl)
    r = jnp.einsum("ai,ijkl->ajkl", hi, r)
    r = jnp.einsum("bj,ajkl->abkl", lo, r)
    r = jnp.einsum("abkl,ck->abcl", r, jnp.conj(hi))
    r = jnp.einsum("abcl,dl->abcd", r, jnp.conj(lo))
    return r.reshape(2**n, 2**n)


def _zero(n: int, dtype, mixed: bool):
    dim = 2**n
    state = (jnp.zeros((dim, dim), dtype).at[0, 0].set(1) if mixed
             else jnp.zeros(dim, dtype).at[0].set(1))
    return jax.lax.optimization_barrier(state)  # no constant folding (engine.zero_state)


def _walk(nodes: tuple, state, params, x, dtype, mixed: bool, n: int):
    for node in nodes:
        if isinstance(node, Layer):
            state = _apply_layer(node, state, params, x, dtype, mixed)
            continue
        if state is None:
            state = _zero(n, dtype, mixed)
        if isinstance(node, Local):
            state = _apply_local(node, state, params, x, dtype)
        elif isinstance(node, Roll):
            def body(carry, rows, block=node.block):
                out = _walk(layer_ops(block.ops, n, local=mixed), carry, rows[0], rows[1],
                            dtype, mixed, n)
                return out, None

            state, _ = jax.lax.scan(body, state, roll_rows(node, params, x))
        elif not mixed:
            raise DensityMatrixOnlyError(
                f"channel {node.name!r} on wires {node.wires} needs density-matrix simulation "
                "(mixed=True / qjr.density_matrix) or quantum trajectories (pass key=)")
        else:
            kraus = engine.channel_kraus(node, params, x, dtype)
            dim = 2**n
            state = apply_kraus(state.reshape((2,) * (2 * n)), kraus,
                                node.wires).reshape(dim, dim)
    return state


def _superop(op: Op, params, x, dtype):
    """The 4 x 4 superoperator of a one-qubit gate (``U (x) conj(U)``) or channel."""
    if op.is_channel:
        return superoperator(engine.channel_kraus(op, params, x, dtype))
    u = _gate_matrix(op, params, x, dtype)
    return jnp.kron(u, jnp.conj(u))


@lru_cache(maxsize=1024)
def _const_superop(ops: tuple, dtype: str):
    """The NumPy product of the superoperators of ``ops`` (one wire, in order) when all
    their angles are constants, else ``None``; evaluated at trace time so that its zeros
    are known (:func:`qjaxrob.kernels.density.apply_local_const`)."""
    if any(a.source != "const" for op in ops for a in op.angles):
        return None
    with jax.ensure_compile_time_eval():
        out = np.eye(4, dtype=dtype)
        for op in ops:
            out = np.asarray(_superop(op, None, None, dtype)) @ out
    return out


def _apply_local(node: Local, rho, params, x, dtype):
    """``rho`` (``(2**n, 2**n)``, ``None`` for ``|0...0>``) after a :class:`Local` node:
    per wire ``q`` the product of its ops' superoperators on the axes ``(q, q + n)``."""
    n = node.n_qubits
    t = (_zero(n, dtype, True) if rho is None else rho).reshape((2,) * (2 * n))
    for w, ops in zip(node.wires, node.ops):
        const = _const_superop(ops, np.dtype(dtype).name)
        if const is not None:
            t = apply_local_const(t, const, (w, w + n))
            continue
        s = None
        for op in ops:
            m = _superop(op, params, x, dtype)
            s = m if s is None else small_product(m, s)
        t = apply_local(t, s, (w, w + n))
    return t.reshape(2**n, 2**n)


def dense_tensor(circuit: Circuit, params, x, dtype, mixed: bool):
    """The final ``(2,)*n`` state (or ``(2,)*2n`` density tensor) of ``circuit`` from
    ``|0...0>`` on the dense path (traceable, not jitted; module docs)."""
    n = circuit.n_qubits
    mixed = bool(mixed)
    state = _walk(layer_ops(circuit.ops, n, local=mixed), None, params, x, dtype, mixed, n)
    if state is None:
        state = _zero(n, dtype, mixed)
    return state.reshape((2,) * (2 * n if mixed else n))
