"""Gradient inversion: reconstruct a client's input and label from the gradient it shared.

Threat model (honest-but-curious server): the attacker knows the model (circuit,
parameters, readout) and receives ``grads = eqx.filter_grad(cross_entropy)(model, x[None],
y[None])``, the gradient of the mean softmax cross-entropy (``qjr.qml.train.cross_entropy``)
on one example (or a small batch); exact, noiseless gradients.

**Gradient matching** (DLG, Zhu, Liu, Han, NeurIPS 2019; cosine distance of Geiping et al.,
NeurIPS 2020): minimise over dummy inputs ``x'`` the distance between ``G(x', y')`` (the
flattened gradient of every trainable leaf) and the shared ``g``:

* ``"l2"``: ``||G - g||_2^2``;  ``"cosine"``: ``1 - <G, g> / (||G|| ||g||)``.

The objective needs second derivatives through the simulator (``jax.grad`` of
``jax.grad``). Optimisers: ``"lbfgs"`` (default): ``optax.lbfgs(learning_rate,
linesearch=None)`` with its update clipped to global norm 0.5 (a trust region instead of a
line search: a line search's ``while_loop`` runs, under ``vmap``, as long as the slowest
restart and both branches of its conditionals, which made batched restarts ~20x slower);
``"lbfgs_zoom"``: ``optax.lbfgs()`` with its zoom line search (robust, for few restarts);
``"adam"``: ``optax.adam(learning_rate)``.
``restarts`` random starts ``x'_0 ~ U[low, high)`` run together under ONE ``jax.vmap``
(never a Python loop) inside one ``jit``; the restart with the lowest distance wins, and
each restart keeps its best iterate.

**Pooled restarts** (``invert(..., slots=S)``): ``S`` restarts run at a time (one vmapped
step per iteration of a ``lax.while_loop``); a restart ends when it *matched* (distance
below ``match_tol`` relative to ``||g||^2``: an exact match, which certifies success
without knowing ``x``) or *stalled* (a local minimum: relative progress below
``stall_rtol`` over ``stall_steps`` evaluations), and its slot starts the next restart, so
no step is spent on a restart that has converged. ``stop_on_match`` ends the attack at the
first match (time to success). Like the peer's L-BFGS-B restarts (stop at ``gtol``), a
restart's length is then set by convergence, not by a fixed step count.

**Worker threads** (``invert(..., workers=W)``, default one per CPU core): the restarts are
split into ``W`` equal shares, each run by the same compiled program on its own thread at
once. One XLA CPU execution of a few-qubit program keeps about one core busy, so shares
add cores (2 cores, 8 qubits: 1.6-2x the restarts per second). With ``stop_on_match`` a
match in one share stops the others (a host callback in the pool's loop condition).

**Labels** (iDLG, Zhao, Mopuri, Bilen, arXiv 2001.02610): for a model with a bias (``post``
layer), ``dL/db = softmax(z) - onehot(y)`` is negative exactly at the true class, so
``label = argmin(grads.bias)`` (batch 1). Without a bias the label is unknown: restart ``r``
tries class ``r mod C``, and the best match names the label. That label need not be
identifiable: for a binary ``<Z>`` readout without post-processing, another input with the
other label can share the gradient exactly (in the 3-qubit test, ``(x + pi, 1 - y)``: RY(pi)
on every wire flips the sign of the readout), and then rounding decides between the two.

**Success modulo periodicity.** Pauli-rotation encodings make every gradient periodic in
each feature: a gate ``exp(-i theta P / 2)`` with ``theta = s x + b`` repeats (up to a global
phase) when ``x`` moves by ``2 pi / |s|`` (``4 pi / |s|`` for controlled rotations); the
feature's period is the least common multiple over the gates reading it
(``encoding_period``). Errors are circular distances modulo that period.

**Analytic route** (``analytic_invert``): with a bias the shared ``dL/db = delta`` is known
exactly, and the other gradient entries are ``J(x)^T W^T delta`` (parameters) and
``delta r(x)^T`` (weights), with ``r`` the readout vector: trigonometric polynomials in
``t_j = omega_j x_j`` (``omega_j = 2 pi / period_j``) with integer frequencies
``|k_j| <= K_j`` (``K_j`` = the sum of the feature's gate scales in units of ``omega_j``;
Schuld, Sweke, Meyer, PRA 103, 032430, 2021). Their coefficients come exactly from a DFT on
the ``prod_j (2 K_j + 1)`` grid, and the system is *linear* in the monomials
``cos(k . t), sin(k . t)``: it is solved by least squares when the gradient has at least as
many independent entries as monomials (``rank == n_unknowns``; otherwise ``ParameterError``),
and ``t_j = atan2`` of the entries with ``k = e_j``. This is the "recovery once parameters >=
unknowns" regime of Papadopoulos et al. (arXiv 2504.12806); the Chebyshev-system hardness of
Kumar et al. (arXiv 2309.13002) is that the unknowns grow as ``prod (2 K_j + 1)`` with
``K = (5^m - 1)/4`` for the Fourier tower.

**Fourier tower** (``fourier_tower_encoding``, Kumar et al. 2023, Eq. 14-15): feature
``j`` on ``m`` qubits as ``RX(5^(k-1) gamma x_j)``, ``k = 1..m``; period ``2 pi / gamma``.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import io_callback
from tqdm.auto import tqdm

from qjaxrob.checks import check_key, check_positive_int, check_real
from qjaxrob.circuit import Circuit, inp
from qjaxrob.errors import ParameterError, QjrTypeError
from qjaxrob.qml import VQC
from qjaxrob.qml.ansatze import hardware_efficient
from qjaxrob.qml.encodings import Encoding, angle_encoding
from qjaxrob.qml.train import cross_entropy
from qjaxrob.simulate import statevector

__all__ = [
    "DISTANCES",
    "OPTIMIZERS",
    "AnalyticResult",
    "InversionResult",
    "analytic_invert",
    "check_grads",
    "circular_error",
    "default_workers",
    "encoded_fidelity",
    "encoding_period",
    "encoding_spectrum",
    "fourier_tower_encoding",
    "gradient_distance",
    "infer_label",
    "inversion_scaling",
    "invert",
    "match_gradients",
    "shared_gradient",
]

DISTANCES = ("l2", "cosine")
OPTIMIZERS = ("lbfgs", "lbfgs_zoom", "adam")
_MAX_STEP = 0.5  # radians: the fixed-step L-BFGS update is clipped to this global norm

# gate-angle periods (up to a global phase) of the gates whose angles may read an input
_PERIOD_2PI = ("rx", "ry", "rz", "phase", "rxx", "ryy", "rzz", "u3")
_PERIOD_4PI = ("crx", "cry", "crz")
_IDENTITY_FEATURES = ("angle", "dense_angle", "fourier_tower")


# ---- encodings ------------------------------------------------------------------------------
def fourier_tower_encoding(n_features: int, m: int, *, gamma: float = 2 * math.pi) -> Encoding:
    """The exponential "Fourier tower" of Kumar et al. (arXiv 2309.13002, Eq. 14-15): feature
    ``j`` on wires ``j m .. j m + m - 1`` as ``RX(5^(k-1) gamma x_j)``, ``k = 1..m``
    (``n_features * m`` qubits). Each feature's period is ``2 pi / gamma`` (1 for the paper's
    ``gamma = 2 pi``); a model output has the integer frequencies ``|k| <= (5^m - 1)/4`` in
    units of ``gamma``."""
    n = check_positive_int(n_features, "n_features")
    m = check_positive_int(m, "m")
    gamma = check_real(gamma, "gamma", low=0.0, low_open=True)
    c = Circuit(n * m)
    for j in range(n):
        for k in range(m):
            c = c.rx(j * m + k, inp(j) * (5.0**k * gamma))
    return Encoding("fourier_tower", n, c)


def _input_scales(encoding: Encoding):
    """Per feature, ``[(|scale|, gate period)]`` of every op reading it."""
    if encoding.kind not in _IDENTITY_FEATURES:
        return None
    out = [[] for _ in range(encoding.n_features)]
    for op in encoding.circuit.unroll().ops:
        for a in op.angles:
            if a.source != "inp":
                continue
            if op.name in _PERIOD_2PI:
                out[a.index].append((abs(a.scale), 2 * math.pi))
            elif op.name in _PERIOD_4PI:
                out[a.index].append((abs(a.scale), 4 * math.pi))
            else:
                return None
    return out


def _lcm(periods):
    """Least common multiple of positive real periods (nan if their ratios are not rational
    with denominators below 10^4). ``p_i = base * d_i / n_i`` in lowest terms, so the lcm is
    ``base * lcm(d_i) / gcd(n_i)``."""
    base = max(periods)
    fr = [Fraction(base / p).limit_denominator(10_000) for p in periods]
    if any(abs(float(f) - base / p) > 1e-9 * base / p for f, p in zip(fr, periods)):
        return math.nan
    return base * math.lcm(*[f.denominator for f in fr]) / math.gcd(*[f.numerator for f in fr])


def encoding_period(encoding: Encoding) -> np.ndarray:
    """Per-feature period of everything the model computes from ``x`` (``(n_features,)``;
    ``nan`` where the encoding is not periodic in that feature, e.g. IQP products or
    amplitude encoding, or a feature no gate reads)."""
    if not isinstance(encoding, Encoding):
        raise QjrTypeError(f"expected a qjr.qml.Encoding, got {type(encoding).__name__}")
    scales = _input_scales(encoding)
    if scales is None:
        return np.full(encoding.n_features, np.nan)
    return np.array([_lcm([p / s for s, p in sc if s > 0]) if any(s > 0 for s, _ in sc)
                     else np.nan for sc in scales])


def encoding_spectrum(encoding: Encoding) -> np.ndarray:
    """Per feature, the largest integer frequency ``K_j`` (in units of ``2 pi / period``) of
    any expectation value of the encoded state: the sum of the feature's gate scales."""
    period = encoding_period(encoding)
    scales = _input_scales(encoding)
    if scales is None or np.any(np.isnan(period)):
        raise ParameterError(
            f"the {encoding.kind} encoding is not a periodic Pauli-rotation encoding")
    return np.array([int(round(sum(s for s, _ in sc) * per / (2 * math.pi)))
                     for sc, per in zip(scales, period)])


def circular_error(x_rec, x_true, period):
    """``|x_rec - x_true|`` per feature modulo ``period`` (plain where ``period`` is nan)."""
    d = jnp.asarray(x_rec) - jnp.asarray(x_true)
    p = jnp.asarray(period, d.dtype)
    wrapped = jnp.abs(jnp.mod(d + p / 2, p) - p / 2)
    return jnp.where(jnp.isnan(p), jnp.abs(d), wrapped)


def encoded_fidelity(encoding: Encoding, x1, x2, *, dtype=jnp.complex128):
    """``|<psi(x1)|psi(x2)>|^2`` of the encoded states of two examples."""
    a = statevector(encoding.circuit, None, encoding.features(x1), dtype=dtype)
    b = statevector(encoding.circuit, None, encoding.features(x2), dtype=dtype)
    return jnp.abs(jnp.vdot(a, b)) ** 2


# ---- gradients --------------------------------------------------------------------------------
def _trainable(model):
    return eqx.filter(model, eqx.is_inexact_array)


def _flat(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.concatenate([jnp.ravel(leaf) for leaf in leaves])


_grad_ce = eqx.filter_jit(eqx.filter_grad(cross_entropy))


def shared_gradient(model, x, y):
    """What a client shares: ``eqx.filter_grad(cross_entropy)(model, x, y)`` for a batch
    ``x`` ``(B, d)``, ``y`` ``(B,)`` (jitted)."""
    return _grad_ce(model, jnp.asarray(x), jnp.asarray(y))


def check_grads(model, grads):
    """``grads`` flattened (1-D), after checking it has the structure and leaf shapes of the
    model's trainable leaves (``eqx.filter(model, eqx.is_inexact_array)``)."""
    if not isinstance(model, VQC):
        raise QjrTypeError(f"inversion needs a qjr.qml.VQC, got {type(model).__name__}")
    ref = _trainable(model)
    try:
        got = eqx.filter(grads, eqx.is_array)
        same = jax.tree_util.tree_structure(ref) == jax.tree_util.tree_structure(got)
    except Exception:  # noqa: BLE001 - any non-pytree input is a structure error
        same = False
    if same:
        shapes_ref = [np.shape(a) for a in jax.tree_util.tree_leaves(ref)]
        shapes = [np.shape(a) for a in jax.tree_util.tree_leaves(got)]
        same = shapes == shapes_ref
    if not same:
        raise ParameterError(
            "grads must have the structure of eqx.filter_grad(cross_entropy)(model, x, y) "
            f"(trainable leaves of shapes {[np.shape(a) for a in jax.tree_util.tree_leaves(ref)]}"
            f"), got {type(grads).__name__} with leaves "
            f"{[np.shape(a) for a in jax.tree_util.tree_leaves(grads)]}")
    flat = _flat(got)
    if not bool(jnp.all(jnp.isfinite(flat))):
        raise ParameterError("grads contain non-finite entries")
    return flat


def infer_label(model, grads):
    """iDLG label of a batch-1 gradient: ``argmin(grads.bias)`` when the model has a bias
    (``dL/db = softmax(z) - onehot(y)``), else ``None`` (no structural label leak)."""
    check_grads(model, grads)
    if model.bias is None:
        return None
    return jnp.argmin(grads.bias)


def gradient_distance(g, target, distance: str = "l2"):
    """``||g - target||^2`` (``"l2"``) or ``1 - cos(g, target)`` (``"cosine"``)."""
    if distance == "l2":
        return jnp.sum((g - target) ** 2)
    if distance == "cosine":
        tiny = jnp.finfo(g.dtype).tiny
        return 1.0 - jnp.dot(g, target) / jnp.maximum(
            jnp.linalg.norm(g) * jnp.linalg.norm(target), tiny)
    raise ParameterError(f"distance must be one of {DISTANCES}, got {distance!r}")


def _objective(model, target, distance):
    """``f(x, label)``: the gradient distance of dummy inputs ``x`` ``(B, d)`` with labels
    ``label`` ``(B,)`` to the flattened shared gradient ``target``."""

    def f(x, label):
        return gradient_distance(_flat(eqx.filter_grad(cross_entropy)(model, x, label)),
                                 target, distance)

    return f


def _optimizer(optimizer, learning_rate):
    if optimizer == "lbfgs":
        lr = 1.0 if learning_rate is None else learning_rate
        return optax.chain(optax.lbfgs(lr, linesearch=None), optax.clip_by_global_norm(_MAX_STEP))
    if optimizer == "lbfgs_zoom":
        return optax.lbfgs()
    if optimizer == "adam":
        return optax.adam(0.05 if learning_rate is None else learning_rate)
    raise ParameterError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")


def _step(opt, optimizer, f, x, state, best_x, best_v):
    """One optimiser step of one restart on the objective ``f(x)``: evaluates ``f`` at ``x``,
    keeps the best point so far, moves ``x`` (back to the best point if it left the finite
    numbers). Returns ``(x, state, best_x, best_v)``."""
    if optimizer == "lbfgs_zoom":
        v, g = optax.value_and_grad_from_state(f)(x, state=state)
        upd, state = opt.update(g, state, x, value=v, grad=g, value_fn=f)
    else:
        v, g = jax.value_and_grad(f)(x)
        upd, state = opt.update(g, state, x)
    better = v < best_v
    best_x = jnp.where(better, x, best_x)
    best_v = jnp.where(better, v, best_v)
    x = optax.apply_updates(x, upd)
    x = jnp.where(jnp.all(jnp.isfinite(x)), x, best_x)
    return x, state, best_x, best_v


def match_gradients(model, target, x0, label, *, steps: int, distance: str = "l2",
                    optimizer: str = "lbfgs", learning_rate: float | None = None):
    """ONE restart of gradient matching from ``x0`` (``(B, d)``) with labels ``label``
    (``(B,)``) against the flattened gradient ``target``: ``steps`` optimiser steps in a
    ``lax.scan``; returns ``(best x, its distance)`` over the ``steps + 1`` points visited.
    Pure and jittable; ``invert`` vmaps it."""
    fl = _objective(model, target, distance)

    def f(x):
        return fl(x, label)

    opt = _optimizer(optimizer, learning_rate)

    def body(carry, _):
        return _step(opt, optimizer, f, *carry), None

    init = (x0, opt.init(x0), x0, jnp.asarray(jnp.inf, x0.dtype))
    (x, _, best_x, best_v), _ = jax.lax.scan(body, init, None, length=steps)
    v = f(x)
    better = v < best_v
    return jnp.where(better, x, best_x), jnp.where(better, v, best_v)


@eqx.filter_jit
def _restarts(model, target, x0s, labels, steps, distance, optimizer, learning_rate):
    def one(x0, label):
        return match_gradients(model, target, x0, label, steps=steps, distance=distance,
                               optimizer=optimizer, learning_rate=learning_rate)

    return jax.vmap(one)(x0s, labels)


@eqx.filter_jit
def _pooled_restarts(model, target, x0s, labels, steps, distance, optimizer, learning_rate,
                     slots, stall_steps, stall_rtol, match_value, stop_on_match, stop_id=None):
    """The restarts ``x0s`` (``(R, B, d)``) run ``slots`` at a time (one vmapped step per
    iteration of a ``lax.while_loop``). A restart ends after ``steps + 1`` evaluations, or
    when its best distance is ``<= match_value`` (matched), or when the best distance fell
    by ``<= stall_rtol`` (relative) over its last ``stall_steps`` evaluations (stalled); its
    slot then starts the next restart. Every restart follows the same trajectory as in
    ``match_gradients`` until it ends. With ``stop_on_match`` the loop ends once a restart
    matched; restarts not finished keep their start point, distance ``inf`` and 0 steps.
    Returns ``(best xs (R, B, d), distances (R,), evaluations per restart (R,))``."""
    n = x0s.shape[0]
    fl = _objective(model, target, distance)
    opt = _optimizer(optimizer, learning_rate)
    rows = jnp.arange(slots)

    def one(x, state, best_x, best_v, label):
        return _step(opt, optimizer, lambda z: fl(z, label), x, state, best_x, best_v)

    def fresh(ids):
        x0 = x0s[jnp.minimum(ids, n - 1)]
        return x0, jax.vmap(opt.init)(x0), x0, jnp.full((slots,), jnp.inf, x0s.dtype)

    def pick(done, new, old):
        return jnp.where(done.reshape(done.shape + (1,) * (old.ndim - 1)), new, old)

    def cond(c):
        ids, matched_any = c[0], c[-1]
        go = jnp.any(ids < n) & ~(stop_on_match & matched_any)
        if stop_id is not None:  # another worker's restart matched (stop_on_match)
            go = go & ~io_callback(
                _stop_requested, jax.ShapeDtypeStruct((), jnp.bool_), stop_id)
        return go

    def body(c):
        ids, x, state, best_x, best_v, age, hist, nxt, out_x, out_v, out_n, matched_any = c
        label = labels[jnp.minimum(ids, n - 1)]
        x, state, best_x, best_v = jax.vmap(one)(x, state, best_x, best_v, label)
        age = age + 1
        ring = (age - 1) % stall_steps
        old = hist[rows, ring]  # best distance stall_steps evaluations ago
        hist = hist.at[rows, ring].set(best_v)
        active = ids < n
        matched = active & (best_v <= match_value)
        stalled = (age > stall_steps) & (old - best_v <= stall_rtol * old)
        done = active & (matched | stalled | (age > steps))
        put = jnp.where(done, ids, n)  # index n: dropped
        out_x = out_x.at[put].set(best_x, mode="drop")
        out_v = out_v.at[put].set(best_v, mode="drop")
        out_n = out_n.at[put].set(age, mode="drop")
        new_ids = jnp.where(done, nxt + jnp.cumsum(done) - 1, ids)
        new_ids = jnp.minimum(new_ids, n)  # n: idle slot
        nxt = nxt + jnp.sum(done)
        fx, fstate, fbx, fbv = fresh(new_ids)
        x, best_x, best_v = pick(done, fx, x), pick(done, fbx, best_x), pick(done, fbv, best_v)
        state = jax.tree_util.tree_map(lambda a, b: pick(done, a, b), fstate, state)
        age = jnp.where(done, 0, age)
        hist = pick(done, jnp.inf, hist)
        return (new_ids, x, state, best_x, best_v, age, hist, nxt, out_x, out_v, out_n,
                matched_any | jnp.any(matched))

    ids = jnp.arange(slots)
    x, state, best_x, best_v = fresh(ids)
    init = (ids, x, state, best_x, best_v, jnp.zeros(slots, jnp.int32),
            jnp.full((slots, stall_steps), jnp.inf, x0s.dtype), jnp.asarray(slots), x0s,
            jnp.full((n,), jnp.inf, x0s.dtype), jnp.zeros(n, jnp.int32), jnp.asarray(False))
    c = jax.lax.while_loop(cond, body, init)
    return c[8], c[9], c[10]


MIN_SHARE = 16
"""Fewest restarts per worker thread that :func:`default_workers` plans for: smaller
vmapped shares lose more batching than another core gains (``benchmarks/README.md``)."""

_STOP_EVENTS: dict = {}
_STOP_IDS = itertools.count()


def _stop_requested(stop_id):
    event = _STOP_EVENTS.get(int(stop_id))
    return np.asarray(event is not None and event.is_set())


def default_workers(restarts: int) -> int:
    """Worker threads :func:`invert` splits ``restarts`` over by default: on a CPU backend
    the usable cores, at most one per :data:`MIN_SHARE` restarts (one XLA CPU execution
    of a few-qubit program keeps about one core busy, so concurrent shares add cores);
    on an accelerator 1 (one device runs the whole vmapped batch)."""
    if jax.default_backend() != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, restarts // MIN_SHARE))


def _in_shares(run, arrays, workers: int):
    """``run(*share)`` on ``workers`` threads at once, for equal shares of ``arrays`` split
    along axis 0 (padded with copies of the last row, so that every share has one shape
    and reuses one compiled program); the outputs are concatenated along axis 0 and
    trimmed to the original length."""
    n = arrays[0].shape[0]
    if workers == 1:
        return run(*arrays)
    size = -(-n // workers)
    pad = size * workers - n
    if pad:
        arrays = [jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]) for a in arrays]
    shares = [[a[i * size:(i + 1) * size] for a in arrays] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        outs = list(pool.map(lambda share: run(*share), shares))
    return tuple(jnp.concatenate(parts)[:n] for parts in zip(*outs))


class InversionResult(NamedTuple):
    """Outcome of ``invert``.

    Attributes:
        x: best reconstruction, ``(n_features,)`` (``(B, n_features)`` for ``batch > 1``).
        label: inferred label (``()``, or ``(B,)``).
        distance: the best restart's gradient distance.
        xs: every restart's best point, ``(restarts, B, n_features)``.
        labels: the labels each restart used, ``(restarts, B)``.
        distances: every restart's distance, ``(restarts,)`` (``inf`` for a restart that
            ``stop_on_match`` left unfinished).
        steps_run: objective evaluations each restart ran, ``(restarts,)`` (``steps + 1``
            without ``slots``; fewer for restarts that matched or stalled; 0 if unfinished).
    """

    x: jax.Array
    label: jax.Array
    distance: jax.Array
    xs: jax.Array
    labels: jax.Array
    distances: jax.Array
    steps_run: jax.Array


def _start_range(model, init_range):
    if init_range is not None:
        low, high = init_range
        if not np.all(np.asarray(low) <= np.asarray(high)):
            raise ParameterError(f"init_range needs low <= high, got {init_range!r}")
        return low, high
    period = encoding_period(model.encoding)
    return 0.0, jnp.asarray(np.where(np.isnan(period), 2 * np.pi, period))


def invert(model, grads, *, key, restarts: int = 64, steps: int = 500, distance: str = "l2",
           label=None, optimizer: str = "lbfgs", learning_rate: float | None = None,
           batch: int = 1, init_range=None, slots: int | None = None, stall_steps: int = 20,
           stall_rtol: float = 1e-2, match_tol: float = 1e-12,
           stop_on_match: bool = False, workers: int | None = None) -> InversionResult:
    """Gradient-matching inversion (module docstring) of the gradient ``grads`` shared for
    ``batch`` examples.

    Args:
        model: the ``qjr.qml.VQC`` the client used (same parameters).
        grads: ``eqx.filter_grad(qjr.qml.train.cross_entropy)(model, x, y)``.
        key: PRNG key for the random starts.
        restarts: random starts, run together under ``jax.vmap``.
        steps: optimiser steps per restart.
        distance: ``"l2"`` or ``"cosine"``.
        label: known label(s); default: iDLG from the bias gradient (batch 1), else every
            class is tried by ``restarts // C`` restarts (batch 1 only).
        optimizer: ``"lbfgs"`` (fixed-step ``optax.lbfgs``, clipped; ``learning_rate``
            default 1), ``"lbfgs_zoom"`` (``optax.lbfgs`` with zoom line search) or ``"adam"``
            (``optax.adam``, ``learning_rate`` default 0.05).
        init_range: ``(low, high)`` of the uniform starts; default ``[0, period)``.
        slots: if given, run the restarts ``slots`` at a time (at most ``restarts``) and let
            each end early: when it **matched** (distance ``<= match_tol * ||grads||^2`` for
            ``"l2"``, ``<= match_tol`` for ``"cosine"``: the exact input has distance 0 up
            to rounding) or **stalled** (its best distance fell by at most ``stall_rtol``,
            relative, over its last ``stall_steps`` evaluations: a local minimum); its slot
            then starts the next restart. Each restart follows the same trajectory as
            without ``slots`` until it ends, so a restart that neither matches nor stalls
            gives the same result. Default ``None``: every restart runs ``steps`` steps, all
            together.
        stall_steps, stall_rtol, match_tol: the early-end rules of ``slots``. Measured on
            the scaling study's 8-qubit model (2048 restarts, complex64 and complex128):
            restarts that end elsewhere stay at relative L2 distance >= 7e-5, restarts that
            find ``x`` reach <= 4e-14, with every feature within 5e-5 when they first cross
            1e-12; the stall rule (20, 1e-2) ended 3 of 81 successful restarts early.
        stop_on_match: with ``slots``, stop the whole attack as soon as one restart matched
            (the attacker's time to success); restarts not finished by then keep their
            start point with distance ``inf`` and ``steps_run`` 0.
        workers: threads that run equal shares of the restarts at once (each share one
            vmapped program; with ``slots``, each share gets ``ceil(slots / workers)``
            slots, and with ``stop_on_match`` a match in one share stops the others at
            their next step). Each restart runs the same steps whatever ``workers``; only
            the batch width changes, which can change float rounding (complex128: equal
            to 1e-10; complex64: long trajectories can drift apart). Default
            :func:`default_workers`: the CPU cores, one per :data:`MIN_SHARE` restarts at
            most (2 cores, 8 qubits, pooled: 415 vs 201 restarts per second).
    """
    target = check_grads(model, grads)
    key = check_key(key, "invert")
    restarts = check_positive_int(restarts, "restarts")
    steps = check_positive_int(steps, "steps")
    batch = check_positive_int(batch, "batch")
    if distance not in DISTANCES:
        raise ParameterError(f"distance must be one of {DISTANCES}, got {distance!r}")
    if optimizer not in OPTIMIZERS:
        raise ParameterError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    n_classes = model.n_classes
    if label is not None:
        lab = np.asarray(label).reshape(-1)
        if lab.shape != (batch,) or np.any((lab < 0) | (lab >= n_classes)):
            raise ParameterError(
                f"label must be {batch} class index(es) in 0..{n_classes - 1}, got {label!r}")
        labels = jnp.broadcast_to(jnp.asarray(lab, jnp.int32), (restarts, batch))
    elif batch > 1:
        raise ParameterError(f"batch={batch} > 1 needs the labels (label=...): iDLG and label "
                             "enumeration are defined for one example")
    elif model.bias is not None:
        labels = jnp.full((restarts, 1), infer_label(model, grads), jnp.int32)
    else:
        if restarts < n_classes:
            raise ParameterError(f"an unknown label needs restarts >= n_classes = {n_classes}, "
                                 f"got {restarts}")
        labels = (jnp.arange(restarts, dtype=jnp.int32) % n_classes)[:, None]
    real = model.params.dtype
    low, high = _start_range(model, init_range)
    x0s = jax.random.uniform(key, (restarts, batch, model.encoding.n_features), real,
                             jnp.asarray(low, real), jnp.asarray(high, real))
    lr = None if learning_rate is None else check_real(learning_rate, "learning_rate", low=0.0,
                                                       low_open=True)
    workers = default_workers(restarts) if workers is None else min(
        check_positive_int(workers, "workers"), restarts)
    target = target.astype(real)
    if slots is None:
        if stop_on_match:
            raise ParameterError("stop_on_match=True needs slots (the pooled restarts)")
        xs, dists = _in_shares(
            lambda x0, lab: _restarts(model, target, x0, lab, steps, distance, optimizer, lr),
            (x0s, labels), workers)
        steps_run = jnp.full((restarts,), steps + 1, jnp.int32)
    else:
        slots = min(check_positive_int(slots, "slots"), restarts)
        stall_steps = check_positive_int(stall_steps, "stall_steps")
        stall_rtol = check_real(stall_rtol, "stall_rtol", low=0.0)
        match_tol = check_real(match_tol, "match_tol", low=0.0)
        scale = float(jnp.sum(target**2)) if distance == "l2" else 1.0
        workers = min(workers, slots)
        match_value = jnp.asarray(match_tol * scale, real)
        stop_id = next(_STOP_IDS) if stop_on_match and workers > 1 else None
        if stop_id is not None:
            _STOP_EVENTS[stop_id] = threading.Event()

        def pooled(x0, lab):
            out = _pooled_restarts(
                model, target, x0, lab, steps, distance, optimizer, lr, -(-slots // workers),
                stall_steps, jnp.asarray(stall_rtol, real), match_value,
                jnp.asarray(bool(stop_on_match)),
                None if stop_id is None else jnp.asarray(stop_id, jnp.int32))
            if stop_id is not None and bool(jnp.any(out[1] <= match_value)):
                _STOP_EVENTS[stop_id].set()
            return out

        try:
            xs, dists, steps_run = _in_shares(pooled, (x0s, labels), workers)
        finally:
            _STOP_EVENTS.pop(stop_id, None)
    best = jnp.argmin(jnp.where(jnp.isnan(dists), jnp.inf, dists))
    x, lab = xs[best], labels[best]
    if batch == 1:
        x, lab = x[0], lab[0]
    return InversionResult(x, lab, dists[best], xs, labels, dists, steps_run)


# ---- analytic route -----------------------------------------------------------------------------
class AnalyticResult(NamedTuple):
    """Outcome of ``analytic_invert``: the input ``x`` ``(n_features,)``, ``label``, the
    least-squares ``residual`` norm, the system ``rank`` and its ``n_unknowns`` monomials."""

    x: np.ndarray
    label: int
    residual: float
    rank: int
    n_unknowns: int


def _half_lattice(k_max):
    """Integer frequency vectors ``k`` with ``|k_j| <= K_j``, one of each pair ``+-k``
    (first nonzero entry positive), excluding 0."""
    grid = np.array(list(np.ndindex(*(2 * k_max + 1)))) - k_max
    keep = []
    for k in grid:
        nz = k[k != 0]
        if nz.size and nz[0] > 0:
            keep.append(k)
    return np.array(keep, int).reshape(-1, len(k_max))


def analytic_invert(model, grads, *, max_unknowns: int = 4096) -> AnalyticResult:
    """The trigonometric-polynomial solve (module docstring) for one example's gradient of a
    model with a bias layer and a periodic Pauli-rotation encoding. Raises ``ParameterError``
    when the system is underdetermined (``rank < n_unknowns``) or larger than
    ``max_unknowns``."""
    flat = check_grads(model, grads)
    if model.bias is None:
        raise ParameterError("analytic_invert needs a model with a bias (post=True): the bias "
                             "gradient fixes softmax(z) - onehot(y)")
    period = encoding_period(model.encoding)
    k_max = encoding_spectrum(model.encoding)
    lattice = _half_lattice(k_max)
    n_unknowns = 2 * len(lattice)
    if n_unknowns > max_unknowns:
        raise ParameterError(f"the trigonometric system has {n_unknowns} unknowns > "
                             f"max_unknowns={max_unknowns}")
    delta = jnp.asarray(grads.bias)
    label = int(jnp.argmin(delta))
    real = model.params.dtype
    omega = jnp.asarray(2 * np.pi / period, real)

    def features(t):  # t = omega * x; the non-bias gradient entries given delta
        x = t / omega

        def r_of(params):
            return eqx.tree_at(lambda m: m.params, model, params).readout_vector(x)

        r = r_of(model.params)
        jac = jax.jacfwd(r_of)(model.params)  # (k, P)
        return jnp.concatenate([jac.T @ (model.weights.T @ delta), jnp.outer(delta, r).ravel()])

    n_grid = 2 * k_max + 1
    axes = [2 * np.pi * np.arange(n) / n for n in n_grid]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(n_grid))
    vals = np.asarray(jax.jit(jax.vmap(features))(jnp.asarray(pts, real)), np.float64)
    phase = np.exp(-1j * pts @ lattice.T)  # (grid, lattice)
    coef = phase.T @ vals / len(pts)  # F_hat(k), (lattice, E)
    const = vals.mean(0)
    a = np.concatenate([2 * coef.real, -2 * coef.imag], 0).T  # (E, 2 L): cos then sin
    g = np.asarray(flat, np.float64)
    n_bias = int(np.size(model.bias))
    n_params = int(np.size(model.params))
    # flattened grads order: params, weights, bias (eqx field order)
    rhs = np.concatenate([g[:n_params], g[n_params:-n_bias]]) - const
    sol, _, rank, _ = np.linalg.lstsq(a, rhs, rcond=None)
    if rank < n_unknowns:
        raise ParameterError(
            f"the gradient determines only {rank} of the {n_unknowns} trigonometric monomials: "
            "the linear route is underdetermined here (use invert)")
    residual = float(np.linalg.norm(a @ sol - rhs))
    t = np.zeros(len(k_max))
    for j in range(len(k_max)):
        e = np.zeros(len(k_max), int)
        e[j] = 1
        idx = int(np.flatnonzero((lattice == e).all(1))[0])
        t[j] = np.arctan2(sol[len(lattice) + idx], sol[idx])
    x = np.mod(t / np.asarray(omega), period)
    return AnalyticResult(x, label, residual, int(rank), n_unknowns)


# ---- scaling study -------------------------------------------------------------------------------
def _study_model(key, encoding_name, n_qubits, layers, reupload, dtype):
    if encoding_name == "angle":
        enc = angle_encoding(n_qubits)
    elif encoding_name == "fourier_tower":
        enc = fourier_tower_encoding(1, n_qubits)
    else:
        raise ParameterError(f"encoding must be 'angle' or 'fourier_tower', got {encoding_name!r}")
    ansatz = hardware_efficient(n_qubits, 1 if reupload else layers)
    return VQC(key, enc, ansatz, 2, readout_wires=tuple(range(n_qubits)), reupload=reupload,
               dtype=dtype)


def inversion_scaling(qubits=(2, 3, 4, 5, 6, 7, 8), *, key, encodings=("angle", "fourier_tower"),
                      layers=(2,), reupload=(0,), seeds: int = 3, restarts: int = 64,
                      steps: int = 200, tol: float = 1e-3, distance: str = "l2",
                      optimizer: str = "lbfgs", dtype=jnp.complex128, progress: bool = True,
                      on_row=None, slots: int | None = None) -> list:
    """The gradient-inversion scaling study: for every encoding (``"angle"``: one RY
    feature per qubit; ``"fourier_tower"``: one feature on all qubits, Kumar et al.), qubit
    count, ansatz depth (hardware-efficient ``layers``) and re-uploading (``reupload=L``
    layers of encoding + one-layer ansatz), and ``seeds`` random models/inputs
    (``x ~ U[0, period)``, random label): ``invert`` with ``restarts`` vmapped restarts.

    Returns one dict per (config, seed): configuration, ``n_params``, ``n_equations``
    (shared gradient entries), ``n_unknowns`` (features), ``label_ok``, ``success`` (best
    restart within ``tol`` of ``x`` modulo the period, every feature), ``best_error``,
    ``fidelity`` of the encoded states, ``restart_success_rate`` (fraction of restarts
    within ``tol``), ``restarts_to_success`` (``1 / rate``; ``inf`` if none), ``time_s``
    (warm run, compile excluded), ``compile_s`` (first seed only), ``restarts_per_s``,
    ``time_to_success_s`` (warm time per restart that recovered ``x``), ``mean_steps``
    (objective evaluations per restart). ``slots``: run the restarts pooled, each ending
    when it matches or stalls (``invert``'s ``slots``; default: all ``steps`` steps).
    ``on_row(row)`` is called as each row is ready (for incremental storage by
    ``qjaxrob.experiments``)."""
    key = check_key(key, "inversion_scaling")
    seeds = check_positive_int(seeds, "seeds")
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    configs = [(e, n, lay, ru) for e in encodings for n in qubits for lay in layers
               for ru in reupload]
    rows = []
    bar = tqdm(total=len(configs) * seeds, disable=not progress, desc="inversion", unit="run")
    for ci, (enc_name, n, lay, ru) in enumerate(configs):
        compile_s = None
        for s in range(seeds):
            k_model, k_x, k_y, k_inv = jax.random.split(jax.random.fold_in(key, ci * 10_007 + s), 4)
            model = _study_model(k_model, enc_name, n, lay, ru, dtype)
            period = encoding_period(model.encoding)
            real = model.params.dtype
            x = jax.random.uniform(k_x, (model.encoding.n_features,), real) * jnp.asarray(
                period, real)
            y = jax.random.randint(k_y, (), 0, 2)
            grads = shared_gradient(model, x[None], y[None])

            def run(model=model, grads=grads, k_inv=k_inv):
                res = invert(model, grads, key=k_inv, restarts=restarts, steps=steps,
                             distance=distance, optimizer=optimizer, slots=slots)
                jax.block_until_ready(res.distances)
                return res

            if compile_s is None:
                t0 = time.perf_counter()
                run()
                first = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = run()
            elapsed = time.perf_counter() - t0
            if compile_s is None:
                compile_s = max(first - elapsed, 0.0)
            errs = np.asarray(jax.vmap(circular_error, in_axes=(0, None, None))(
                res.xs[:, 0], x, period))
            ok = errs.max(axis=1) <= tol
            best_err = float(np.max(errs[int(jnp.argmin(res.distances))]))
            rate = float(ok.mean())
            row = dict(
                encoding=enc_name, n_qubits=n, layers=lay, reupload=ru, seed=s,
                n_features=model.encoding.n_features, n_params=int(model.params.size),
                n_equations=int(sum(np.size(a) for a in jax.tree_util.tree_leaves(
                    eqx.filter(grads, eqx.is_array)))),
                n_unknowns=int(model.encoding.n_features), restarts=restarts, steps=steps,
                slots=slots, mean_steps=float(np.mean(np.asarray(res.steps_run))),
                distance=distance, optimizer=optimizer, tol=tol,
                label_ok=bool(int(res.label) == int(y)), success=bool(best_err <= tol),
                best_error=best_err, best_distance=float(res.distance),
                fidelity=float(encoded_fidelity(model.encoding, res.x, x, dtype=dtype)),
                restart_success_rate=rate,
                restarts_to_success=(1.0 / rate) if rate > 0 else math.inf,
                time_s=elapsed, compile_s=compile_s if s == 0 else 0.0,
                restarts_per_s=restarts / elapsed,
                time_to_success_s=(elapsed / restarts / rate) if rate > 0 else math.inf,
            )
            rows.append(row)
            if on_row is not None:
                on_row(row)
            bar.update(1)
    bar.close()
    return rows
