"""Client computation: local training of a model on one client's padded data, and all
sampled clients of a round as ONE ``vmap`` ped, jitted computation over a stacked client axis.

Training works on the flattened trainable leaves of the model (``flatten``: the inexact
arrays of an ``equinox`` model through ``jax.flatten_util.ravel_pytree``). A client
returns its *update* as seen by the server, a vector of length ``dim``:

* FedAvg: ``w_global - w_local`` after local training (a pseudo-gradient: the server
  applies it with its optimizer; ``sgd(1.0)`` gives ``mean_i w_local_i``).
* FedSGD: ``grad L_i(w_global)``, the gradient of the client's mean loss over its data.

The per-example loss is softmax cross-entropy of the model's logits; padding rows
(``>= count``) carry zero weight.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from qjaxrob.qml.data import check_labels

__all__ = ["check_client_labels", "client_update", "flatten", "local_updates", "n_classes_of",
           "unflatten"]


def flatten(model):
    """``(flat, unravel)``: the model's trainable leaves as one vector and the inverse
    map ``unravel(flat) -> model`` (static structure taken from ``model``)."""
    arrays, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(arrays)
    return flat, lambda v: eqx.combine(unravel(v), static)


def unflatten(model, flat):
    """The update/gradient vector ``flat`` as a pytree shaped like ``model``'s trainable
    leaves (e.g. what ``attacks.invert`` takes as ``grads``)."""
    arrays = eqx.filter(model, eqx.is_inexact_array)
    return ravel_pytree(arrays)[1](flat)


def _example_loss(to_model, w, x, y):
    logits = to_model(w)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def _batch_loss(to_model, w, x, y, mask):
    model = to_model(w)
    losses = optax.softmax_cross_entropy_with_integer_labels(jax.vmap(model)(x), y)
    mask = mask.astype(losses.dtype)
    return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _train_steps(to_model, w0, key, x, y, count, spec):
    opt = spec.client_optimizer
    b = spec.batch_size
    max_n = x.shape[0]
    lp = spec.local_privacy
    k_priv, key = jax.random.split(key)
    carry0 = (w0, opt.init(w0), lp.init(w0, k_priv) if lp is not None else None)

    def grad_of(w, xb, yb, mask, ps):
        if lp is None:
            return jax.grad(lambda v: _batch_loss(to_model, v, xb, yb, mask))(w), ps
        per_example = jax.vmap(jax.grad(lambda v, xi, yi: _example_loss(to_model, v, xi, yi)),
                               in_axes=(None, 0, 0))(w, xb, yb)
        return lp.update(per_example, ps)

    def apply(carry, g, active):
        w, s, _ = carry
        upd, s_new = opt.update(g, s, w)
        w_new = optax.apply_updates(w, upd)
        keep = lambda new, old: jax.tree_util.tree_map(
            lambda a, b_: jnp.where(active, a, b_), new, old)
        return keep(w_new, w), keep(s_new, s)

    if spec.local_epochs is None:
        def step(carry, k):
            idx = jnp.floor(jax.random.uniform(k, (b,)) * count).astype(jnp.int32)
            idx = jnp.minimum(idx, count - 1)
            g, ps = grad_of(carry[0], x[idx], y[idx], jnp.ones((b,), bool), carry[2])
            w, s = apply(carry, g, True)
            return (w, s, ps), None

        keys = jax.random.split(key, spec.local_steps)
    else:
        n_batches = math.ceil(max_n / b)
        pad = n_batches * b - max_n

        def step(carry, t):
            epoch, j = t // n_batches, t % n_batches
            u = jax.random.uniform(jax.random.fold_in(key, epoch), (max_n,))
            perm = jnp.argsort(jnp.where(jnp.arange(max_n) < count, u, 2.0))
            perm = jnp.concatenate([perm, jnp.zeros((pad,), perm.dtype)])
            pos = j * b + jnp.arange(b)
            idx = jax.lax.dynamic_slice(perm, (j * b,), (b,))
            g, ps = grad_of(carry[0], x[idx], y[idx], pos < count, carry[2])
            w, s = apply(carry, g, j * b < count)
            return (w, s, ps), None

        keys = jnp.arange(spec.local_epochs * n_batches)
    (w, _, _), _ = jax.lax.scan(step, carry0, keys)
    return w


def client_update(model, key, x, y, count, malicious, spec):
    """One client's update vector ``(dim,)`` starting from the global ``model``.

    ``x`` ``(max_n, n_features)``, ``y`` ``(max_n,)`` padded data with ``count`` valid
    rows; ``malicious`` (bool scalar) switches ``spec.poison_data`` on; ``spec`` is a
    :class:`~qjaxrob.federated.config.ClientSpec` (``FedConfig.client_spec``)."""
    w0, to_model = flatten(model)
    k_poison, k_train = jax.random.split(key)
    if spec.poison_data is not None:
        px, py = spec.poison_data(x, y, count, k_poison)
        x, y = jnp.where(malicious, px, x), jnp.where(malicious, py, y)
    if spec.mode == "fedsgd":
        mask = jnp.arange(x.shape[0]) < count
        return jax.grad(lambda v: _batch_loss(to_model, v, x, y, mask))(w0)
    return w0 - _train_steps(to_model, w0, k_train, x, y, count, spec)


def n_classes_of(model, example) -> int:
    """The number of classes of ``model``: its ``n_classes`` attribute, else the length of
    its logits for one ``example`` (``jax.eval_shape``, nothing computed)."""
    n = getattr(model, "n_classes", None)
    return int(n) if n is not None else int(jax.eval_shape(model, example).shape[-1])


def check_client_labels(model, x, y, counts) -> None:
    """Raises ``ParameterError`` naming the first label of a valid row (``< counts[i]``)
    outside ``0..n_classes-1`` of ``model`` (``qjaxrob.qml.data.check_labels``); traced
    labels are not checked (check them before ``jit``)."""
    if any(isinstance(a, jax.core.Tracer) for a in (x, y, counts)):
        return
    y, counts = np.asarray(y), np.asarray(counts)
    valid = np.arange(y.shape[-1]) < counts[..., None]
    check_labels(y[valid], n_classes_of(model, jnp.asarray(x)[(0,) * (x.ndim - 1)]))


def local_updates(model, key, ids, x, y, counts, malicious, spec):
    """All clients of a round at once: ``(m, dim)`` updates for the stacked client axis
    (``ids`` ``(m,)`` client ids, ``x`` ``(m, max_n, n_features)``, ``y`` ``(m, max_n)``,
    ``counts`` ``(m,)``, ``malicious`` ``(m,)`` bool). Client ``i`` uses the key
    ``fold_in(key, ids[i])``, so its update does not depend on which other clients were
    sampled or on the layout (a sharded client axis gives the same result). Concrete
    labels are checked against the model's classes first (:func:`check_client_labels`)."""
    check_client_labels(model, x, y, counts)
    return _local_updates(model, key, ids, x, y, counts, malicious, spec)


@eqx.filter_jit
def _local_updates(model, key, ids, x, y, counts, malicious, spec):
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(ids)
    return jax.vmap(client_update, in_axes=(None, 0, 0, 0, 0, 0, None))(
        model, keys, x, y, counts, malicious, spec)
