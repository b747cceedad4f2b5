"""Automatic rolling: repeated layers of a flat op sequence become one ``lax.scan``.

A circuit built gate by gate (a Python loop, a converter from Qiskit/PennyLane/OpenQASM) is a
flat tuple of ops; traced op by op, its compile time grows with depth. :func:`roll` finds
maximal runs of a repeated layer -- ``times`` consecutive copies of a ``period``-op block
whose ops agree in everything but the *indices* of their ``param``/``inp`` angles (same gate
names, wires, constant angles, affine scales and offsets, matrices, cut flags) -- and replaces
each run by a :class:`Roll` node. Lowering (:func:`qjaxrob.lower.pipeline.lower`) makes a
``Roll`` exactly what it makes of ``Circuit.repeat``: a scanned node, one ``lax.scan``
whose body is the block, here with the per-repetition angle values gathered by static index
tables (:func:`roll_rows`), so any index pattern is allowed (strided, shuffled, shared).
The result is the same circuit: values and derivatives of every order are unchanged up to
floating-point reassociation (fusion does not merge gates across a layer boundary).

Detection is greedy from the left: at each position the (period, repetitions) pair covering
the most ops wins (ties: the shorter period), provided it covers at least ``min_ops`` ops in
at least two repetitions; otherwise the op is kept as it is. ``Repeat`` nodes are never
rolled here; :func:`repeat_as_roll` lowers them to the same node kind. Channels and cut
markers are compared by their full structure like gates. Cost:
``O(N * max_period)`` NumPy work for N ops, once per circuit (cached).

Trade-off: a rolled run runs like its ``Circuit.repeat`` twin. For reverse-mode gradients
through the scan (residuals stacked per repetition) that can be slower than the unrolled
program at small depth (``benchmarks/README.md``), which is why runs shorter than
``ROLL_MIN_OPS`` ops are left unrolled; ``qjaxrob.sim.engine.final_tensor(..., roll_ops=0)``
turns rolling off.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import jax.numpy as jnp
import numpy as np

from qjaxrob.ir.circuit import Angle, Circuit, Op, Repeat

__all__ = ["MAX_PERIOD", "ROLL_MIN_OPS", "Roll", "repeat_as_roll", "roll", "roll_rows"]

ROLL_MIN_OPS = 24
"""Smallest number of ops a rolled run must cover. Short runs are left unrolled: their
compile time is small, and a scan boundary stops fusion across it."""

MAX_PERIOD = 1024
"""Longest layer (in ops) looked for."""


@dataclass(frozen=True)
class Roll:
    """``times`` repetitions of ``block``; repetition r reads the block's ``params[s]`` from
    ``params[param_table[r][s]]`` and its ``x[s]`` from ``x[input_table[r][s]]``. The one
    scanned node kind of a lowered program: ``lax.scan`` over the gathered rows.

    ``block`` is a template circuit whose ``param``/``inp`` indices are *slots*: one per
    angle occurrence, numbered in op order, for a run found by :func:`roll`; the block's own
    parameter and input indices for a ``Circuit.repeat`` node (:func:`repeat_as_roll`)."""

    block: Circuit
    times: int
    param_table: tuple  # (times, n_param_slots) ints
    input_table: tuple  # (times, n_input_slots) ints

    def unrolled_ops(self) -> tuple:
        """The flat ops this node stands for (inverse of :func:`roll`; blocks of plain ops)."""
        out = []
        for prow, xrow in zip(self.param_table, self.input_table):
            for op in self.block.ops:
                angles = tuple(
                    replace(a, index=(prow if a.source == "param" else xrow)[a.index])
                    if a.source != "const" else a for a in op.angles)
                out.append(replace(op, angles=angles))
        return tuple(out)


def _key(op):
    """Structure of an op with the indices of its traced angles left out; ``None`` for
    anything that is not a plain ``Op`` (never rolled)."""
    if not isinstance(op, Op):
        return None
    angles = tuple((a.source, a.scale, a.offset) if a.source != "const" else ("const", a.offset)
                   for a in op.angles)
    return (op.name, op.wires, angles, op.matrices, op.cut, op.meta)


def _template(ops):
    """``(template ops, param slot indices, input slot indices)`` of one repetition."""
    out, pslots, xslots = [], [], []
    for op in ops:
        angles = []
        for a in op.angles:
            if a.source == "param":
                angles.append(Angle("param", len(pslots), a.scale, a.offset))
                pslots.append(a.index)
            elif a.source == "inp":
                angles.append(Angle("inp", len(xslots), a.scale, a.offset))
                xslots.append(a.index)
            else:
                angles.append(a)
        out.append(replace(op, angles=tuple(angles)))
    return tuple(out), tuple(pslots), tuple(xslots)


def _best_runs(codes: np.ndarray, max_period: int):
    """Per position i: ``(cover, period, times)`` of the repeated run starting at i that
    covers the most ops (ties: the shortest period); ``cover`` is 0 where nothing repeats.
    Rollable ops have ``codes >= 0``."""
    n = len(codes)
    best_cover = np.zeros(n, np.int64)
    best_p = np.ones(n, np.int64)
    best_t = np.ones(n, np.int64)
    pos = np.arange(n)
    for p in range(1, max_period + 1):
        eq = np.zeros(n, bool)
        eq[: n - p] = (codes[: n - p] == codes[p:]) & (codes[: n - p] >= 0)
        # length of the run of equalities starting at each i, from the right
        nxt = np.minimum.accumulate(np.where(eq, n, pos)[::-1])[::-1]
        times = 1 + (nxt - pos) // p
        cover = np.where(times >= 2, times * p, 0)
        better = cover > best_cover
        best_cover = np.where(better, cover, best_cover)
        best_p = np.where(better, p, best_p)
        best_t = np.where(better, times, best_t)
    return best_cover, best_p, best_t


@lru_cache(maxsize=256)
def roll(ops: tuple, n_qubits: int, min_ops: int = ROLL_MIN_OPS) -> tuple:
    """``ops`` with every long repeated run replaced by a :class:`Roll` node (module docs).

    ``min_ops <= 0`` disables rolling (``ops`` is returned unchanged)."""
    n = len(ops)
    if min_ops <= 0 or n < max(2, min_ops):
        return ops
    registry: dict = {}
    codes = np.array([-1 if (k := _key(op)) is None else registry.setdefault(k, len(registry))
                      for op in ops], np.int64)
    cover, period, reps = _best_runs(codes, min(MAX_PERIOD, n // 2))
    out, i = [], 0
    while i < n:
        if cover[i] < min_ops:
            out.append(ops[i])
            i += 1
            continue
        p, times = int(period[i]), int(reps[i])
        block, _, _ = _template(ops[i : i + p])
        ptab, xtab = [], []
        for r in range(times):
            _, pr, xr = _template(ops[i + r * p : i + (r + 1) * p])
            ptab.append(pr)
            xtab.append(xr)
        out.append(Roll(Circuit(n_qubits, block), times, tuple(ptab), tuple(xtab)))
        i += p * times
    return tuple(out)


@lru_cache(maxsize=256)
def repeat_as_roll(node: Repeat) -> Roll:
    """A ``Circuit.repeat`` node as the :class:`Roll` it lowers to: repetition r reads the
    block's parameters ``0..stride-1`` from ``params[offset + r * stride + s]`` (one slice,
    :func:`roll_rows`) and every input from the same ``x``. The block is kept as it is
    (nested ``Repeat`` nodes included): its indices are the slots."""
    stride, times = node.block.n_params, node.times
    ptab = tuple(tuple(node.param_offset + r * stride + s for s in range(stride))
                 for r in range(times))
    xtab = (tuple(range(node.block.n_inputs)),) * times
    return Roll(node.block, times, ptab, xtab)


def _gather(source, table, times: int):
    """``source[table]`` for a static ``(times, k)`` index table: a slice and reshape when
    the rows are consecutive blocks (``Circuit.repeat``'s layout), an index computed from
    ``iota`` when they advance by a fixed stride, else a gather with the literal table (so
    the lowered program does not grow with ``times`` in the common layouts)."""
    tab = np.asarray(table, np.int64).reshape(times, -1)
    k = tab.shape[1]
    if k == 0:
        return jnp.zeros((times, 0), source.dtype)
    d = int(tab[1, 0] - tab[0, 0]) if times > 1 else 0
    if np.array_equal(tab, tab[0] + d * np.arange(times)[:, None]):
        first = int(tab[0, 0])
        if np.array_equal(tab[0], first + np.arange(k)) and d == k:
            return source[first : first + times * k].reshape(times, k)
        step = jnp.arange(times, dtype=jnp.int32)[:, None] * d
        return source[jnp.asarray(tab[0], jnp.int32)[None, :] + step]
    return source[jnp.asarray(tab, jnp.int32)]


def roll_rows(node: Roll, params, x):
    """The ``(times, n_param_slots)`` and ``(times, n_input_slots)`` angle rows a ``Roll``
    node scans over, gathered from the 1-D ``params`` and ``x``."""
    return (_gather(params, node.param_table, node.times),
            _gather(x, node.input_table, node.times))
