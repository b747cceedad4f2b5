"""Expression angles out: a circuit whose angles include ``Expr`` s becomes an affine
circuit over *augmented* parameters.

Every distinct expression of a scope (the top level, or one ``Repeat`` block) becomes one
new parameter ``param(n + k)`` (``n`` the scope's ``n_params``), and the simulation reads

    params_aug = concat(params, [e_k(params, x)], rows of each rewritten Repeat)

computed, traced, inside a jitted program (:func:`affine_angles`). Everything downstream
(lowering, the forward walk, the adjoint's ``custom_vjp``, parameter-shift shots, vmap)
sees only affine angles; gradients w.r.t. ``params`` and ``x`` flow through the
expressions by JAX's chain rule.

A ``Repeat`` whose block holds expressions stays one ``Repeat`` (one ``lax.scan``): its
block is rewritten the same way (block-local stride ``s`` grows to ``s + K``), it moves
to a fresh parameter offset, and its rows of ``params_aug`` are the block's augmented
parameters evaluated per repetition (``vmap`` over ``params[o + r s : o + (r + 1) s]``),
so repetition ``r`` reads exactly its own parameters. Nested ``Repeat`` s recurse.
``Repeat`` s without expressions, and the original parameters, are left where they were.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import jax
import jax.numpy as jnp

from qjaxrob.ir.circuit import Circuit, Repeat, expression_angles, param
from qjaxrob.ir.expressions import Expr

__all__ = ["Plan", "Rows", "rewrite", "augment", "affine_angles"]


@dataclass(frozen=True)
class Rows:
    """The augmented parameters of a rewritten ``Repeat``: ``times`` rows, row ``r`` being
    ``plan`` applied to ``params[offset + r * stride : offset + (r + 1) * stride]``."""

    offset: int
    stride: int
    times: int
    plan: Plan


@dataclass(frozen=True)
class Plan:
    """How ``params_aug`` is built: the ``n_prefix`` original parameters, then per slot an
    ``Expr`` value (one entry) or a ``Rows`` block (``times`` x its plan's size)."""

    n_prefix: int
    slots: tuple

    @property
    def size(self) -> int:
        return self.n_prefix + sum(1 if isinstance(s, Expr) else s.times * s.plan.size
                                   for s in self.slots)


def _has_expressions(c: Circuit) -> bool:
    return next(expression_angles(c), None) is not None


def _rewrite(c: Circuit) -> tuple[Circuit, Plan]:
    n = c.n_params
    slots, ops, seen = [], [], {}
    nxt = n
    for op in c.ops:
        if isinstance(op, Repeat):
            if not _has_expressions(op.block):
                ops.append(op)
                continue
            block, sub = _rewrite(op.block)
            ops.append(Repeat(block, op.times, nxt))
            slots.append(Rows(op.param_offset, op.block.n_params, op.times, sub))
            nxt += op.times * sub.size
            continue
        if not any(isinstance(a, Expr) for a in op.angles):
            ops.append(op)
            continue
        angles = []
        for a in op.angles:
            if isinstance(a, Expr):
                if a not in seen:
                    seen[a] = nxt
                    slots.append(a)
                    nxt += 1
                a = param(seen[a])
            angles.append(a)
        ops.append(replace(op, angles=tuple(angles)))
    return Circuit(c.n_qubits, tuple(ops)), Plan(n, tuple(slots))


@lru_cache(maxsize=512)
def rewrite(c: Circuit) -> tuple[Circuit, Plan | None]:
    """``(affine circuit, plan)``; ``(c, None)`` when ``c`` has no expression angles.
    The affine circuit's ``n_params`` is ``plan.size``."""
    if not _has_expressions(c):
        return c, None
    return _rewrite(c)


def _evaluate(plan: Plan, params, x):
    parts = [params]
    for slot in plan.slots:
        if isinstance(slot, Expr):
            parts.append(jnp.reshape(jnp.asarray(slot.resolve(params, x), params.dtype), (1,)))
            continue
        rows = params[slot.offset:slot.offset + slot.times * slot.stride]
        rows = rows.reshape(slot.times, slot.stride)
        block = jax.vmap(lambda p, s=slot: _evaluate(s.plan, p, x))(rows)
        parts.append(block.reshape(-1))
    return jnp.concatenate(parts)


augment = jax.jit(_evaluate, static_argnums=0)
"""``augment(plan, params, x) -> params_aug`` (shape ``(plan.size,)``, ``params``' dtype)."""


def affine_angles(c: Circuit, params, x):
    """``(affine circuit, params_aug)`` for simulating ``c`` at ``params``/``x`` (checked
    1-D arrays); ``(c, params)`` unchanged when ``c`` has no expression angles."""
    affine, plan = rewrite(c)
    if plan is None:
        return c, params
    return affine, augment(plan, params, x)
