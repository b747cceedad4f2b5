"""Finite-shot gradients: parameter-shift rules on shot estimates (``expval(..., shots=N)``).

A finite-shot estimate is a random draw (binomial counts), so differentiating the sampling
code gives zero almost everywhere: a silently wrong gradient. Instead, the estimate is
wrapped in a ``jax.custom_jvp`` whose forward value is the shot estimate itself and whose
derivative is the *parameter-shift rule*, every shifted circuit estimated from its own
shots (fresh keys), all shifted circuits batched in one ``jax.vmap``. The result is an
unbiased estimator of the exact gradient (Mitarai et al. 2018, Schuld et al. 2019,
PRA 99, 032331).

**Rules.** For a gate ``exp(-i t G)`` whose generator ``G`` has eigenvalues ``+-1/2``
the expectation is ``a + b cos t + c sin t`` and

    d<O>/dt = [<O>(t + pi/2) - <O>(t - pi/2)] / 2            (two-term rule)

This covers ``rx ry rz rxx ryy rzz``, ``phase`` (``phase(p) = e^{ip/2} rz(p)``) and each of
the three angles of ``u3`` (``U(theta, phi, lam) = e^{i(phi+lam)/2} rz(phi) ry(theta)
rz(lam)`` exactly, so each angle is one rotation). The controlled rotations ``crx cry crz``
have generator ``|1><1| (x) P/2`` with eigenvalues ``{0, +-1/2}``, frequencies ``{1/2, 1}``,
and the four-term rule of Anselmetti et al. 2021 (NJP 23, 113010):

    d<O>/dt = c+ [<O>(t + pi/2) - <O>(t - pi/2)] - c- [<O>(t + 3pi/2) - <O>(t - 3pi/2)],
    c+- = (sqrt 2 +- 1) / (4 sqrt 2).

**Angles.** Each *occurrence* of a traced angle ``scale * source + offset`` (``source`` a
``param`` or an ``inp``) is shifted separately on an *expanded* structure in which every
occurrence reads its own entry of a flat angle vector ``theta``; the chain rule then gives
``d<O>/d source = sum over occurrences of scale * d<O>/d theta_k`` (a parameter used by
several gates sums their contributions). ``Repeat`` blocks are unrolled for the shifted
circuits.

**Cost.** For an observable with ``P`` non-identity Pauli terms, one gradient evaluation
runs ``2 * n2 + 4 * n4`` shifted circuits (``n2``/``n4`` occurrences with the two-/four-term
rule, only those whose source is being differentiated), each with ``shots`` shots per Pauli
term: ``shots * P * (2 n2 + 4 n4)`` shots in total, plus the ``shots * P`` of the value.
With ``sigma^2 = sum_P coeff_P^2`` over the observable's non-identity Pauli terms (each
measured separately, so one estimate has variance at most ``sigma^2 / shots``), the
standard error of one occurrence's derivative is at most ``sigma / sqrt(2 shots)`` for the
two-term rule and ``sqrt(2 (c+^2 + c-^2)) sigma / sqrt(shots) ~ 0.61 sigma / sqrt(shots)``
for the four-term rule, times ``|scale|``; for a cut circuit every estimate's variance
carries the QPD factor ``gamma^2``. Memory: the shifted circuits run as one ``vmap``, so
the batch holds ``2 n2 + 4 n4`` states.

**No rule, no gradient.** A traced angle of a noise channel (a noise level ``p`` read from
``params`` or ``x``) has no unbiased finite-shot derivative here; differentiating with
respect to the array it is read from raises :class:`qjaxrob.errors.GradientError` at trace
time instead of returning zeros. Higher derivatives apply the rules recursively (each
level an unbiased estimate from fresh shots).

The machinery is generic over the *structure* being estimated: ``expand_circuit`` handles a
``Circuit`` (``qjr.expval``) and ``expand_cut`` a ``qjr.cutting.CutCircuit``
(``qjr.cutting.expval``: each shifted cut circuit is reconstructed from its own
QPD-sampled shots; a gate-cut gate's angle is shifted through its QPD table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from qjaxrob.ir.circuit import Circuit, Op, Repeat, param
from qjaxrob.errors import GradientError

__all__ = ["TWO_TERM", "FOUR_TERM", "SHIFT_RULES", "Occurrences", "expand_circuit",
           "expand_cut", "estimate", "GRAD_STREAM"]

TWO_TERM = ((math.pi / 2, 0.5), (-math.pi / 2, -0.5))
"""``(shift, coefficient)`` pairs of the two-term rule (generator eigenvalues ``+-1/2``)."""

_CP = (math.sqrt(2) + 1) / (4 * math.sqrt(2))
_CM = (math.sqrt(2) - 1) / (4 * math.sqrt(2))
FOUR_TERM = ((math.pi / 2, _CP), (-math.pi / 2, -_CP),
             (3 * math.pi / 2, -_CM), (-3 * math.pi / 2, _CM))
"""``(shift, coefficient)`` pairs of the four-term rule for controlled rotations."""

SHIFT_RULES = {
    **{name: TWO_TERM for name in ("rx", "ry", "rz", "phase", "u3", "rxx", "ryy", "rzz")},
    **{name: FOUR_TERM for name in ("crx", "cry", "crz")},
}
"""Gate name -> shift rule, for every gate of the table with angles."""

GRAD_STREAM = 0x5A5A
"""The shifted circuits draw from ``split(fold_in(key, GRAD_STREAM), n_shifted)``, a
stream disjoint from the value's own draws."""


@dataclass(frozen=True)
class Occurrences:
    """The traced angles of a structure, in the order of the expanded ``theta`` vector.

    Attributes:
        source: per occurrence, ``"param"`` or ``"inp"``.
        index: the entry of ``params`` / ``x`` it reads.
        scale, offset: the affine map ``theta_k = scale * source[index] + offset``.
        rule: the shift rule (``SHIFT_RULES``), or ``None`` (a channel parameter).
        what: a description for error messages.
    """

    source: tuple = ()
    index: tuple = ()
    scale: tuple = ()
    offset: tuple = ()
    rule: tuple = ()
    what: tuple = ()

    def __len__(self):
        return len(self.source)

    def angles(self, params, x):
        """``theta`` (shape ``(len(self),)``) from ``params`` and ``x``."""
        if not len(self):
            return jnp.zeros((0,), params.dtype)
        src = np.array([s == "param" for s in self.source])
        idx = np.array(self.index)
        p = params[np.where(src, idx, 0)] if params.shape[0] else jnp.zeros(len(idx))
        v = x[np.where(src, 0, idx)] if x.shape[0] else jnp.zeros(len(idx))
        raw = jnp.where(src, p, v)
        return (raw * np.array(self.scale) + np.array(self.offset)).astype(params.dtype)


class _Builder:
    def __init__(self):
        self.rows = []

    def op(self, op: Op, where: str) -> Op:
        if op.is_constant:
            return op
        angles = []
        for i, a in enumerate(op.angles):
            if a.source == "const":
                angles.append(a)
                continue
            rule = None if op.is_channel else SHIFT_RULES[op.name]
            arg = "the noise level" if op.is_channel else f"angle {i}"
            what = (f"{arg} of {op.name!r} on wires {op.wires} ({where}), read from "
                    f"{'params' if a.source == 'param' else 'x'}[{a.index}]")
            self.rows.append((a.source, a.index, a.scale, a.offset, rule, what))
            angles.append(param(len(self.rows) - 1))
        return replace(op, angles=tuple(angles))

    def result(self) -> Occurrences:
        return Occurrences(*map(tuple, zip(*self.rows))) if self.rows else Occurrences()


def _flat(ops):
    out = []
    for op in ops:
        out.extend(op.unrolled_ops() if isinstance(op, Repeat) else (op,))
    return out


def expand_circuit(c: Circuit):
    """``(expanded, occurrences)``: ``c`` unrolled, every traced angle replaced by its own
    ``param(k)`` (``k`` in order of appearance, so expanding twice changes nothing)."""
    b = _Builder()
    ops = tuple(b.op(op, f"op {i}") for i, op in enumerate(_flat(c.ops)))
    return Circuit(c.n_qubits, ops), b.result()


def expand_cut(cc):
    """``(expanded, occurrences)`` for a ``qjr.cutting.CutCircuit``: the traced angles of
    every fragment's ops (fragment order), then of every gate-cut gate (cut order). The
    expanded ``circuit`` field keeps only the width (the fragments and cuts carry the ops)."""
    b = _Builder()
    frags = tuple(
        Circuit(f.n_qubits, tuple(b.op(op, f"fragment {i}, op {j}")
                                  for j, op in enumerate(_flat(f.ops))))
        for i, f in enumerate(cc.fragments))
    cuts = tuple(replace(cut, op=b.op(cut.op, f"gate cut {cut.index}"))
                 if cut.op is not None else cut for cut in cc.cuts)
    return replace(cc, circuit=Circuit(cc.circuit.n_qubits), fragments=frags,
                   cuts=cuts), b.result()


def _value(out):
    return out[0] if isinstance(out, tuple) else out


def _zero_aux(out, tangent):
    """Tangents of the outputs: the estimate's, and zeros for auxiliary outputs (a standard
    error is returned as a constant under differentiation)."""
    if isinstance(out, tuple):
        return (tangent,) + tuple(jnp.zeros_like(a) for a in out[1:])
    return tangent


@lru_cache(maxsize=256)
def _differentiable(fn, structure, expand, static):
    kw = dict(static)
    expanded, occ = expand(structure)

    @jax.custom_jvp
    def f(params, x, key, shots):
        return fn(structure, params=params, x=x, key=key, shots=shots, **kw)

    def jvp(primals, tangents):
        params, x, key, shots = primals
        dp, dx = tangents[0], tangents[1]
        live = {"param": not isinstance(dp, SymbolicZero), "inp": not isinstance(dx, SymbolicZero)}
        out = f(params, x, key, shots)
        rows = [k for k in range(len(occ)) if live[occ.source[k]]]
        for k in rows:
            if occ.rule[k] is None:
                raise GradientError(
                    f"no unbiased finite-shot gradient with respect to {occ.what[k]}: "
                    f"differentiate with shots=None (exact), or make the noise "
                    f"level a constant")
        value = _value(out)
        if not rows:
            return out, _zero_aux(out, jnp.zeros_like(value))
        shift, coef, owner = [], [], []
        for k in rows:
            for s, c in occ.rule[k]:
                shift.append(np.eye(len(occ))[k] * s)
                coef.append(c)
                owner.append(k)
        g = _differentiable(fn, expanded, expand, static)
        theta = occ.angles(params, x)
        keys = jax.random.split(jax.random.fold_in(key, GRAD_STREAM), len(shift))
        x0 = jnp.zeros((0,), params.dtype)
        vals = jax.vmap(lambda s, k: _value(g(theta + s, x0, k, shots)))(
            jnp.asarray(np.array(shift), theta.dtype), keys)
        weighted = vals * jnp.asarray(coef, vals.dtype).reshape((-1,) + (1,) * (vals.ndim - 1))
        grad = jax.ops.segment_sum(weighted, np.array(owner), len(occ))  # (n_occ, *out)
        dtheta = jnp.zeros((len(occ),), vals.dtype)
        for name, tan in (("param", dp), ("inp", dx)):
            if live[name]:
                sel = np.array([s == name for s in occ.source])
                idx = np.where(sel, np.array(occ.index), 0)
                dtheta = dtheta + jnp.where(sel, tan[idx] * np.array(occ.scale), 0.0)
        tangent = jnp.tensordot(dtheta.astype(vals.dtype), grad, axes=1)
        return out, _zero_aux(out, tangent.astype(value.dtype))

    f.defjvp(jvp, symbolic_zeros=True)
    return f


def estimate(fn, structure, expand, params, x, key, shots, **static):
    """``fn(structure, params=, x=, key=, shots=, **static)`` (a shot estimate: an array, or
    a tuple whose first entry is the estimate), made differentiable in ``params`` and ``x``
    by the parameter-shift rules (module docs).

    Args:
        fn: the raw estimator (static; its value is returned unchanged).
        structure: a ``Circuit`` or ``CutCircuit`` (static, hashable).
        expand: ``expand_circuit`` or ``expand_cut``.
        params, x: 1-D real arrays (traced).
        key: PRNG key; the shifted circuits use ``fold_in(key, GRAD_STREAM)``.
        shots: shot count as an array (traced: a new value does not recompile).
        static: hashable keyword arguments of ``fn`` (observables, dtype, ...).
    """
    f = _differentiable(fn, structure, expand, tuple(sorted(static.items())))
    return f(params, x, key, shots)
