"""Evasion attacks on inputs: FGSM and PGD over the loss of ONE example, and model-level
helpers (adversarial inputs, robust accuracy, robust accuracy versus epsilon).

Conventions:

* ``loss_fn`` maps one example ``x`` (shape ``(d,)``) to a scalar; batch with ``jax.vmap``
  (every function here is pure and composes with ``jit``/``vmap``).
* ``norm="linf"``: the ball ``||delta||_inf <= eps``; the step follows ``sign(grad)``.
  ``norm="l2"``: ``||delta||_2 <= eps``; the step follows ``grad / ||grad||_2``.
* ``bounds=(low, high)`` (scalars or arrays broadcastable to ``x``): the valid feature
  range; every returned point is clipped into it after the projection onto the ball. When
  ``x`` lies in the range the result lies in ball and range at once (clipping moves every
  coordinate towards ``x``, so it cannot leave either ball).

FGSM (Goodfellow, Shlens, Szegedy, ICLR 2015): ``x + eps * sign(grad loss(x))``.
PGD (Madry et al., ICLR 2018): from ``x`` (or a uniform random point of the ball when a
``key`` is given), ``steps`` times ``x_{t+1} = clip(Proj_ball(x_t + step_size * dir_t))``
with ``dir`` the signed (linf) or normalised (l2) gradient; ascent for an untargeted attack,
descent (``targeted=True``: ``loss_fn`` is then the loss *towards the target*). The
iterate with the best loss (highest, or lowest when targeted) is returned, so PGD never
ends worse than its start or any intermediate point.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qjaxrob.checks import check_key, check_positive_int, check_real
from qjaxrob.devices import over
from qjaxrob.errors import ParameterError
from qjaxrob.qml.data import check_labels

__all__ = [
    "NORMS",
    "AttackResult",
    "attack_model",
    "check_bounds",
    "check_eps",
    "check_model_labels",
    "check_norm",
    "example_loss",
    "fgsm",
    "pgd",
    "project",
    "robust_accuracy_curve",
]

NORMS = ("linf", "l2")


# ---- validation -----------------------------------------------------------------------
def _traced(value) -> bool:
    return isinstance(value, jax.core.Tracer)


def check_eps(eps, name: str = "eps"):
    """``eps`` as a float >= 0 (a traced value is passed through unchecked)."""
    return eps if _traced(eps) else check_real(eps, name, low=0.0)


def check_norm(norm) -> str:
    """``norm`` in ``NORMS``, or ``ParameterError``."""
    if norm not in NORMS:
        raise ParameterError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def check_bounds(bounds, shape=None):
    """``None`` or ``(low, high)`` as arrays with ``low <= high`` everywhere; with ``shape``
    (one example's), ``low`` and ``high`` must broadcast to it without changing it."""
    if bounds is None:
        return None
    try:
        low, high = bounds
    except (TypeError, ValueError):
        raise ParameterError(f"bounds must be None or a pair (low, high), got {bounds!r}") from None
    if shape is not None:
        for name, b in (("low", low), ("high", high)):
            try:
                ok = np.broadcast_shapes(np.shape(b), tuple(shape)) == tuple(shape)
            except ValueError:
                ok = False
            if not ok:
                raise ParameterError(f"bounds {name} of shape {np.shape(b)} does not broadcast "
                                     f"to one example's shape {tuple(shape)}")
    if not (_traced(low) or _traced(high)):
        lo, hi = np.asarray(low, np.float64), np.asarray(high, np.float64)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ParameterError(f"bounds must be finite, got low={low!r}, high={high!r}")
        if np.any(lo > hi):
            raise ParameterError(f"bounds need low <= high, got low={low!r} > high={high!r}")
    return jnp.asarray(low), jnp.asarray(high)


def check_model_labels(model, y, x, name: str = "labels"):
    """``y`` checked by ``qjr.qml.data.check_labels`` against the classes of ``model``
    (``model.n_classes``, else the length of its logits on ``x[0]``); traced labels pass
    through unchecked. Returns ``y`` as an int32 array; errors start with ``name``."""
    if _traced(y):
        return y
    n_classes = getattr(model, "n_classes", None)
    if n_classes is None:
        n_classes = jax.eval_shape(model, x[0]).shape[-1]
    try:
        return jnp.asarray(check_labels(y, n_classes))
    except ParameterError as e:
        raise ParameterError(f"{name}: {e}") from None


def _check_x(x):
    x = jnp.asarray(x)
    if x.ndim != 1:
        raise ParameterError(
            f"attacks take ONE example x of shape (d,), got shape {x.shape} (use jax.vmap)")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


# ---- geometry -------------------------------------------------------------------------
def _safe_norm(v):
    s = jnp.sum(v * v)
    return jnp.where(s > 0, jnp.sqrt(jnp.where(s > 0, s, 1.0)), 0.0)


def project(delta, eps, norm: str = "linf"):
    """``delta`` projected onto the ``norm`` ball of radius ``eps`` (Euclidean projection)."""
    norm = check_norm(norm)
    if norm == "linf":
        return jnp.clip(delta, -eps, eps)
    n = _safe_norm(delta)
    return delta * jnp.minimum(1.0, eps / jnp.where(n > 0, n, 1.0))


def _direction(g, norm):
    if norm == "linf":
        return jnp.sign(g)
    n = _safe_norm(g)
    return g / jnp.where(n > 0, n, 1.0)


def _clip(x, bounds):
    return x if bounds is None else jnp.clip(x, bounds[0], bounds[1])


def _random_start(key, x, eps, norm):
    """A uniform random point of the ball of radius ``eps`` around 0, shape of ``x``."""
    if norm == "linf":
        return jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps
    k1, k2 = jax.random.split(key)
    v = jax.random.normal(k1, x.shape, x.dtype)
    r = jax.random.uniform(k2, (), x.dtype) ** (1.0 / x.shape[0])
    return v / jnp.maximum(_safe_norm(v), jnp.finfo(x.dtype).tiny) * r * eps


# ---- the attacks ------------------------------------------------------------------------
def fgsm(loss_fn, x, eps, *, norm: str = "linf", bounds=None):
    """Fast gradient (sign) method: one step of size ``eps`` up the gradient of
    ``loss_fn`` at ``x`` (``sign`` for ``linf``, the unit gradient for ``l2``), clipped to
    ``bounds``. Returns ``x_adv`` of the shape of ``x``."""
    x = _check_x(x)
    eps, norm, bounds = check_eps(eps), check_norm(norm), check_bounds(bounds, x.shape)
    g = jax.grad(loss_fn)(x)
    return _clip(x + eps * _direction(g, norm), bounds)


def pgd(loss_fn, x, eps, *, steps: int, step_size, norm: str = "linf", key=None,
        bounds=None, targeted: bool = False):
    """Projected gradient descent/ascent (module docstring); one ``lax.scan`` of ``steps``
    gradient evaluations plus one final loss evaluation. ``key``: random start inside the
    ball (``None``: start at ``x``). Returns the best iterate, shape of ``x``."""
    x = _check_x(x)
    eps, norm, bounds = check_eps(eps), check_norm(norm), check_bounds(bounds, x.shape)
    steps = check_positive_int(steps, "steps")
    step_size = check_eps(step_size, "step_size")
    sign = -1.0 if targeted else 1.0
    x0 = x if key is None else _clip(x + _random_start(check_key(key, "pgd"), x, eps, norm),
                                     bounds)
    value_and_grad = jax.value_and_grad(loss_fn)

    def body(carry, _):
        xt, best_x, best_v = carry
        v, g = value_and_grad(xt)
        v = sign * v
        better = v > best_v
        best_x = jnp.where(better, xt, best_x)
        best_v = jnp.where(better, v, best_v)
        nxt = _clip(x + project(xt + step_size * sign * _direction(g, norm) - x, eps, norm),
                    bounds)
        return (nxt, best_x, best_v), None

    init = (x0, x0, jnp.asarray(-jnp.inf, jnp.result_type(float)))
    (xt, best_x, best_v), _ = jax.lax.scan(body, init, None, length=steps)
    return jnp.where(sign * loss_fn(xt) > best_v, xt, best_x)


# ---- model level ----------------------------------------------------------------------
def example_loss(model, y, target=None):
    """The loss of one example for ``model`` (any callable ``x -> logits``): cross-entropy
    against the true label ``y`` (untargeted), or against ``target`` (targeted)."""
    label = y if target is None else target
    return lambda x: optax.softmax_cross_entropy_with_integer_labels(model(x), label)


class AttackResult(NamedTuple):
    """Model-level attack outcome.

    Attributes:
        x_adv: adversarial inputs ``(B, d)``.
        clean_accuracy, robust_accuracy: accuracy on ``x`` and on ``x_adv``.
        success: ``(B,)`` bool, the attack changed a correct prediction (untargeted) or
            reached the target (targeted).
    """

    x_adv: jax.Array
    clean_accuracy: jax.Array
    robust_accuracy: jax.Array
    success: jax.Array


@eqx.filter_jit
def _attack_rows(model, x, y, targets, keys, eps, step_size, method, norm, steps, bounds):
    """Per example: the adversarial input and the clean and adversarial predictions."""
    def one(xi, yi, ti, ki):
        loss = example_loss(model, yi, None if targets is None else ti)
        if method == "fgsm":
            return fgsm(loss, xi, eps, norm=norm, bounds=bounds)
        return pgd(loss, xi, eps, steps=steps, step_size=step_size, norm=norm, key=ki,
                   bounds=bounds, targeted=targets is not None)

    t = y if targets is None else targets
    x_adv = jax.vmap(one, in_axes=(0, 0, 0, None if keys is None else 0))(x, y, t, keys)
    return x_adv, jnp.argmax(jax.vmap(model)(x), -1), jnp.argmax(jax.vmap(model)(x_adv), -1)


def _attack_batch(model, x, y, targets, keys, eps, step_size, method, norm, steps, bounds,
                  devices):
    x_adv, clean, adv = over(
        lambda *rows: _attack_rows(model, *rows, eps, step_size, method, norm, steps, bounds),
        x, y, targets, keys, devices=devices, axis="examples")
    success = (adv == targets) if targets is not None else (clean == y) & (adv != y)
    return AttackResult(x_adv, jnp.mean(clean == y), jnp.mean(adv == y), success)


def attack_model(model, x, y, eps, *, method: str = "pgd", norm: str = "linf", steps: int = 20,
                 step_size=None, key=None, bounds=None, targets=None,
                 devices=None) -> AttackResult:
    """Attacks ``model`` (a ``qjr.qml.VQC`` or any ``x -> logits`` equinox module) on the
    batch ``x`` ``(B, d)`` with labels ``y`` ``(B,)``: FGSM or PGD on each example's
    cross-entropy (vmapped, one jit). ``step_size`` defaults to ``2.5 * eps / steps``
    (Madry et al.); ``key`` gives every example its own random start; ``targets`` ``(B,)``
    makes the attack targeted; ``devices`` (default: those lent by ``qjaxrob.devices.use``)
    lays the examples over devices (``qjaxrob.devices.over``). Returns an
    :class:`AttackResult`."""
    if method not in ("fgsm", "pgd"):
        raise ParameterError(f"method must be 'fgsm' or 'pgd', got {method!r}")
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    params = getattr(model, "params", None)
    if params is not None and jnp.issubdtype(params.dtype, jnp.floating):
        x = x.astype(params.dtype)  # attack in the model's own precision
    elif not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ParameterError(
            f"attack_model needs x of shape (B, d) and y of shape (B,), got {x.shape}, {y.shape}")
    y = check_model_labels(model, y, x)
    eps, norm, bounds = check_eps(eps), check_norm(norm), check_bounds(bounds, x.shape[1:])
    steps = check_positive_int(steps, "steps")
    step_size = 2.5 * eps / steps if step_size is None else check_eps(step_size, "step_size")
    keys = None if key is None else jax.random.split(check_key(key, "attack_model"), x.shape[0])
    if targets is not None:
        targets = jnp.asarray(targets)
        if targets.shape != y.shape:
            raise ParameterError(f"targets must have shape {y.shape}, got {targets.shape}")
        targets = check_model_labels(model, targets, x, "targets")
    real = x.dtype
    return _attack_batch(model, x, y, targets, keys, jnp.asarray(eps, real),
                         jnp.asarray(step_size, real), method, norm, steps, bounds, devices)


def robust_accuracy_curve(model, x, y, eps_values, **kwargs):
    """Robust accuracy of ``model`` on ``(x, y)`` for every epsilon in ``eps_values``
    (``attack_model`` keyword arguments pass through; with ``step_size`` unset each epsilon
    uses ``2.5 eps / steps``). Returns ``(eps, accuracy)`` NumPy arrays; ``eps = 0`` gives the
    clean accuracy."""
    eps = np.asarray([check_eps(float(e)) for e in np.ravel(eps_values)], np.float64)
    acc = [float(attack_model(model, x, y, e, **kwargs).robust_accuracy) for e in eps]
    return eps, np.asarray(acc)
