"""The best-iterate optimiser scan shared by every attack that optimises with ``optax``.

An attack minimises ``f(x)`` (``x`` one array) from a start ``x0`` with an ``optax``
optimiser; each step evaluates ``f`` and its gradient at the current point, remembers the
best point seen so far, applies the update and maps the new point back into the feasible
set (``project(x, best_x) -> x``: a budget ball, a bisection back into an infidelity
budget, or a return to the best point when the step left the finite numbers). Optimisers
are not monotone (Adam overshoots, fixed-step L-BFGS can jump), so the result is the best
of the ``steps + 1`` points visited, never simply the last one.

``step`` is one such step on a :class:`BestState` (for loops that decide themselves when to
stop, e.g. pooled restarts in a ``lax.while_loop``); ``best_iterate`` runs ``steps`` of them
in one ``lax.scan`` and also evaluates the final point. Both are pure and ``vmap`` over
restarts. ``linesearch=True`` is for optimisers that need the value and gradient inside
their update (``optax.lbfgs()`` with its zoom line search).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["BestState", "best_iterate", "finish", "init", "keep_finite", "step"]


class BestState(NamedTuple):
    """One optimisation's carry: the current point ``x``, the optimiser state, the best
    point seen ``best_x`` (shape of ``x``) and its value ``best_v`` (scalar, ``inf`` before
    the first evaluation)."""

    x: jax.Array
    opt_state: Any
    best_x: jax.Array
    best_v: jax.Array


def init(opt: optax.GradientTransformation, x0) -> BestState:
    """The state before the first step from ``x0``."""
    return BestState(x0, opt.init(x0), x0, jnp.asarray(jnp.inf, x0.dtype))


def step(opt: optax.GradientTransformation, f: Callable, s: BestState, *,
         project: Callable | None = None, linesearch: bool = False) -> BestState:
    """Evaluates ``f`` and its gradient at ``s.x``, keeps the better of ``s.x`` and the best
    point, applies ``opt``'s update and ``project(x_new, best_x)`` (if given)."""
    if linesearch:
        v, g = optax.value_and_grad_from_state(f)(s.x, state=s.opt_state)
        upd, opt_state = opt.update(g, s.opt_state, s.x, value=v, grad=g, value_fn=f)
    else:
        v, g = jax.value_and_grad(f)(s.x)
        upd, opt_state = opt.update(g, s.opt_state, s.x)
    better = v < s.best_v
    best_x = jnp.where(better, s.x, s.best_x)
    best_v = jnp.where(better, v, s.best_v)
    x = optax.apply_updates(s.x, upd)
    if project is not None:
        x = project(x, best_x)
    return BestState(x, opt_state, best_x, best_v)


def finish(f: Callable, s: BestState):
    """``(best x, its value)`` over the points ``s`` visited and its current point."""
    v = f(s.x)
    better = v < s.best_v
    return jnp.where(better, s.x, s.best_x), jnp.where(better, v, s.best_v)


def best_iterate(opt: optax.GradientTransformation, f: Callable, x0, steps: int, *,
                 project: Callable | None = None, linesearch: bool = False):
    """``steps`` optimiser steps from ``x0`` in a ``lax.scan``; returns ``(best x, its
    value)`` over the ``steps + 1`` points visited."""

    def body(s, _):
        return step(opt, f, s, project=project, linesearch=linesearch), None

    s, _ = jax.lax.scan(body, init(opt, x0), None, length=steps)
    return finish(f, s)


def keep_finite(x, best_x):
    """``project`` that returns to ``best_x`` when a step left the finite numbers."""
    return jnp.where(jnp.all(jnp.isfinite(x)), x, best_x)
