"""Full-batch training shared by the studies: one compilation per model architecture.

``qml.fit`` (minibatches, validation, checkpoints) is the general tool; the studies train
small models on small data sets, where ``steps`` full-batch Adam steps in one ``lax.scan``
compile once and run in milliseconds.
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from qjaxrob.qml.train import cross_entropy

__all__ = ["accuracy", "fit_full_batch"]


@partial(eqx.filter_jit, donate="none")
def _fit(model, x, y, steps, learning_rate):
    opt = optax.adam(learning_rate)
    arrays, static = eqx.partition(model, eqx.is_inexact_array)

    def step(carry, _):
        arrays, state = carry
        g = jax.grad(lambda a: cross_entropy(eqx.combine(a, static), x, y))(arrays)
        u, state = opt.update(g, state, arrays)
        return (optax.apply_updates(arrays, u), state), None

    (arrays, _), _ = jax.lax.scan(step, (arrays, opt.init(arrays)), None, length=steps)
    return eqx.combine(arrays, static)


def fit_full_batch(model, x, y, *, steps: int, learning_rate: float):
    """``model`` (an ``equinox`` classifier of one example) after ``steps`` full-batch Adam
    steps on the softmax cross-entropy of ``(x, y)`` (``qml.train.cross_entropy``)."""
    return _fit(model, jnp.asarray(x), jnp.asarray(y), steps, learning_rate)


@eqx.filter_jit
def accuracy(model, x, y):
    """Fraction of ``x`` (``(B, d)``) classified as ``y``."""
    return jnp.mean(jnp.argmax(jax.vmap(model)(x), axis=-1) == y)
