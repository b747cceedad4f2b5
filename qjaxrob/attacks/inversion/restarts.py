"""The restart scheduler of gradient matching: optimisers, fixed-length and pooled restarts,
worker threads, and the cross-worker stop signal.

**Optimisers**: ``"lbfgs"`` (default): ``optax.lbfgs(learning_rate, linesearch=None)`` with
its update clipped to global norm ``MAX_STEP`` (a trust region instead of a line search: a
line search's ``while_loop`` runs, under ``vmap``, as long as the slowest restart and both
branches of its conditionals, which makes batched restarts much slower); ``"lbfgs_zoom"``:
``optax.lbfgs()`` with its zoom line search (robust, for few restarts); ``"adam"``:
``optax.adam(learning_rate)``. Every restart keeps its best iterate
(``qjaxrob.attacks.optimize``) and returns to it when a step leaves the finite numbers.

**Fixed-length restarts** (``fixed_restarts``): ``R`` random starts run ``steps`` steps together
under ONE ``jax.vmap`` (never a Python loop) inside one ``jit``.

**Pooled restarts** (``pooled_restarts``): ``S`` slots run at a time (one vmapped step per
iteration of a ``lax.while_loop``, the carry a :class:`Pool`); a restart ends when it
*matched* (best distance at most ``match_value``: an exact match, which certifies success
without knowing ``x``) or *stalled* (relative progress at most ``stall_rtol`` over
``stall_steps`` evaluations: a local minimum), and its slot starts the next restart. Each
restart follows the same trajectory as in the fixed-length run until it ends.

**Worker threads** (``qjaxrob.devices.in_shares``): the restarts are split into equal
shares, each run by the same compiled program on its own thread at once, pinned to a
device of its own where several devices are lent (``invert(devices=...)``). One XLA CPU
execution of a few-qubit program keeps about one core busy, so shares add cores. A :class:`StopSignal`, created and
closed by the call that owns the shares, lets a match in one share stop the others (a host
callback in each pool's loop condition reads it).
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import io_callback

from qjaxrob.attacks import optimize
from qjaxrob.attacks.inversion.objective import objective
from qjaxrob.errors import ParameterError
from qjaxrob.qml.train import cross_entropy

__all__ = ["MAX_STEP", "MIN_SHARE", "OPTIMIZERS", "Pool", "StopSignal", "default_workers",
           "fixed_restarts", "make_optimizer", "match_gradients", "pooled_restarts"]

OPTIMIZERS = ("lbfgs", "lbfgs_zoom", "adam")
MAX_STEP = 0.5
"""Radians: the global-norm clip of the fixed-step L-BFGS update."""

MIN_SHARE = 16
"""Fewest restarts per worker thread that :func:`default_workers` plans for: smaller
vmapped shares lose more batching than another core gains."""


def make_optimizer(optimizer: str, learning_rate):
    """The ``optax`` optimiser named ``optimizer`` (module docstring)."""
    if optimizer == "lbfgs":
        lr = 1.0 if learning_rate is None else learning_rate
        return optax.chain(optax.lbfgs(lr, linesearch=None), optax.clip_by_global_norm(MAX_STEP))
    if optimizer == "lbfgs_zoom":
        return optax.lbfgs()
    if optimizer == "adam":
        return optax.adam(0.05 if learning_rate is None else learning_rate)
    raise ParameterError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")


def _step(opt, optimizer, f, s):
    return optimize.step(opt, f, s, project=optimize.keep_finite,
                         linesearch=optimizer == "lbfgs_zoom")


def match_gradients(model, target, x0, label, *, steps: int, distance: str = "l2",
                    optimizer: str = "lbfgs", learning_rate: float | None = None,
                    params=None):
    """ONE restart of gradient matching from ``x0`` (``(B, d)``) with labels ``label``
    against the flattened gradient ``target`` of ``model`` (a ``qjr.qml.VQC``: its
    cross-entropy; or a loss function ``loss(params, x, y)`` with ``params``): ``steps``
    optimiser steps in a ``lax.scan``; returns ``(best x, its distance)`` over the
    ``steps + 1`` points visited. Pure and jittable; ``fixed_restarts`` vmaps it."""
    loss, params = (cross_entropy, model) if params is None else (model, params)
    fl = objective(loss, params, target, distance)
    return optimize.best_iterate(make_optimizer(optimizer, learning_rate),
                                 lambda x: fl(x, label), x0, steps,
                                 project=optimize.keep_finite,
                                 linesearch=optimizer == "lbfgs_zoom")


@eqx.filter_jit
def fixed_restarts(loss, params, target, x0s, labels, steps, distance, optimizer, learning_rate):
    """``match_gradients`` from every start ``x0s`` ``(R, B, d)`` (labels ``(R, ...)``)
    under one ``vmap``; returns ``(best xs (R, B, d), distances (R,))``."""

    def one(x0, label):
        return match_gradients(loss, target, x0, label, steps=steps, distance=distance,
                               optimizer=optimizer, learning_rate=learning_rate,
                               params=params)

    return jax.vmap(one)(x0s, labels)


class StopSignal:
    """A cross-thread "a restart matched, stop" flag owned by one ``invert`` call.

    Use as a context manager: while open, jitted pools read it through a host callback by
    its integer ``id`` (a traced argument, so every call reuses one compiled program);
    closing it retires the id. The id table is private to this class and holds only the
    signals of calls in progress."""

    _open: dict = {}
    _ids = itertools.count()
    _lock = threading.Lock()

    def __init__(self):
        self.id = next(self._ids)
        self._event = threading.Event()

    def __enter__(self):
        with self._lock:
            StopSignal._open[self.id] = self
        return self

    def __exit__(self, *exc):
        with self._lock:
            StopSignal._open.pop(self.id, None)

    def set(self):
        self._event.set()

    def clear(self):
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    @classmethod
    def requested(cls, stop_id) -> np.ndarray:
        """Whether the open signal ``stop_id`` is set (``False`` once it is closed)."""
        signal = cls._open.get(int(stop_id))
        return np.asarray(signal is not None and signal.is_set())


class Pool(NamedTuple):
    """Carry of ``pooled_restarts``' ``while_loop`` (``S`` slots, ``R`` restarts).

    Attributes:
        ids: the restart each slot runs, ``(S,)`` (``R``: idle).
        opt: the slots' optimiser carries, a vmapped :class:`optimize.BestState`.
        age: evaluations of each slot's restart so far, ``(S,)``.
        hist: ring buffer of the last ``stall_steps`` best distances, ``(S, stall_steps)``.
        next_id: the next restart to start, ``()``.
        out_x, out_v, out_n: per restart its best point ``(R, B, d)``, distance ``(R,)`` and
            evaluations ``(R,)`` (``inf`` / 0 until it ends).
        matched_any: some restart matched, ``()``.
    """

    ids: jax.Array
    opt: Any
    age: jax.Array
    hist: jax.Array
    next_id: jax.Array
    out_x: jax.Array
    out_v: jax.Array
    out_n: jax.Array
    matched_any: jax.Array


@eqx.filter_jit
def pooled_restarts(loss, params, target, x0s, labels, steps, distance, optimizer,
                    learning_rate, slots, stall_steps, stall_rtol, match_value, stop_on_match,
                    stop_id=None):
    """The restarts ``x0s`` (``(R, B, d)``) run ``slots`` at a time (module docstring). A
    restart ends after ``steps + 1`` evaluations, when its best distance is ``<=
    match_value``, or when it fell by ``<= stall_rtol`` (relative) over its last
    ``stall_steps`` evaluations. With ``stop_on_match`` the loop ends once a restart matched
    (here, or in the share of another worker whose :class:`StopSignal` ``stop_id`` is set);
    restarts not finished keep their start point, distance ``inf`` and 0 evaluations.
    Returns ``(best xs (R, B, d), distances (R,), evaluations per restart (R,))``."""
    n = x0s.shape[0]
    fl = objective(loss, params, target, distance)
    opt = make_optimizer(optimizer, learning_rate)
    rows = jnp.arange(slots)

    def one(s, label):
        return _step(opt, optimizer, lambda z: fl(z, label), s)

    def fresh(ids):
        x0 = x0s[jnp.minimum(ids, n - 1)]
        return optimize.BestState(x0, jax.vmap(opt.init)(x0), x0,
                                  jnp.full((slots,), jnp.inf, x0s.dtype))

    def pick(done, new, old):
        return jnp.where(done.reshape(done.shape + (1,) * (old.ndim - 1)), new, old)

    def cond(p: Pool):
        go = jnp.any(p.ids < n) & ~(stop_on_match & p.matched_any)
        if stop_id is not None:  # another worker's restart matched (stop_on_match)
            go = go & ~io_callback(StopSignal.requested,
                                   jax.ShapeDtypeStruct((), jnp.bool_), stop_id)
        return go

    def body(p: Pool):
        label = labels[jnp.minimum(p.ids, n - 1)]
        s = jax.vmap(one)(p.opt, label)
        age = p.age + 1
        ring = (age - 1) % stall_steps
        old = p.hist[rows, ring]  # best distance stall_steps evaluations ago
        hist = p.hist.at[rows, ring].set(s.best_v)
        active = p.ids < n
        matched = active & (s.best_v <= match_value)
        stalled = (age > stall_steps) & (old - s.best_v <= stall_rtol * old)
        done = active & (matched | stalled | (age > steps))
        put = jnp.where(done, p.ids, n)  # index n: dropped
        out_x = p.out_x.at[put].set(s.best_x, mode="drop")
        out_v = p.out_v.at[put].set(s.best_v, mode="drop")
        out_n = p.out_n.at[put].set(age, mode="drop")
        new_ids = jnp.minimum(jnp.where(done, p.next_id + jnp.cumsum(done) - 1, p.ids), n)
        s = jax.tree_util.tree_map(lambda a, b: pick(done, a, b), fresh(new_ids), s)
        return Pool(new_ids, s, jnp.where(done, 0, age), pick(done, jnp.inf, hist),
                    p.next_id + jnp.sum(done), out_x, out_v, out_n,
                    p.matched_any | jnp.any(matched))

    ids = jnp.arange(slots)
    init = Pool(ids, fresh(ids), jnp.zeros(slots, jnp.int32),
                jnp.full((slots, stall_steps), jnp.inf, x0s.dtype), jnp.asarray(slots), x0s,
                jnp.full((n,), jnp.inf, x0s.dtype), jnp.zeros(n, jnp.int32),
                jnp.asarray(False))
    p = jax.lax.while_loop(cond, body, init)
    return p.out_x, p.out_v, p.out_n


def default_workers(n_restarts: int) -> int:
    """Worker threads ``invert`` splits ``n_restarts`` over by default: on a CPU backend
    the usable cores, at most one per :data:`MIN_SHARE` restarts (one XLA CPU execution
    of a few-qubit program keeps about one core busy, so concurrent shares add cores);
    on an accelerator 1 (one device runs the whole vmapped batch)."""
    if jax.default_backend() != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_restarts // MIN_SHARE))
