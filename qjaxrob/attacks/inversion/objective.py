"""The gradient-matching objective: what a client shares and how far a guess is from it.

A client shares ``g = eqx.filter_grad(loss)(params, x, y)``, the gradient of a
differentiable ``loss(params, x, y) -> scalar`` (``x`` ``(B, n_features)``, ``y`` the ``B``
labels) with respect to every inexact-array leaf of ``params``. For a ``qjr.qml.VQC`` the
loss is the mean softmax cross-entropy ``qjr.qml.train.cross_entropy(model, x, y)`` and
``params`` is the model itself. The attacker minimises over dummy inputs ``x'`` the
distance between the flattened ``G(x', y')`` and ``g``:

* ``"l2"``: ``||G - g||_2^2`` (DLG, Zhu, Liu, Han, NeurIPS 2019);
* ``"cosine"``: ``1 - <G, g> / (||G|| ||g||)`` (Geiping et al., NeurIPS 2020).

The objective needs second derivatives through the simulator (``jax.grad`` of
``jax.grad``).

**Labels** (iDLG, Zhao, Mopuri, Bilen, arXiv 2001.02610): for a VQC with a bias (``post``
layer), ``dL/db = softmax(z) - onehot(y)`` is negative exactly at the true class, so
``label = argmin(grads.bias)`` (batch 1).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.errors import ParameterError, QjrTypeError
from qjaxrob.qml import VQC
from qjaxrob.qml.train import cross_entropy

__all__ = ["DISTANCES", "check_grads", "flat", "gradient_distance", "infer_label",
           "objective", "shared_gradient"]

DISTANCES = ("l2", "cosine")


def flat(tree):
    """Every array leaf of ``tree`` raveled and concatenated (1-D)."""
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree_util.tree_leaves(tree)])


_grad_ce = eqx.filter_jit(eqx.filter_grad(cross_entropy))


def shared_gradient(model, x, y):
    """What a client shares: ``eqx.filter_grad(cross_entropy)(model, x, y)`` for a batch
    ``x`` ``(B, d)``, ``y`` ``(B,)`` (jitted)."""
    return _grad_ce(model, jnp.asarray(x), jnp.asarray(y))


def _leaf_shapes(tree):
    return [np.shape(a) for a in jax.tree_util.tree_leaves(tree)]


def check_grads(model, grads, *, params=None):
    """``grads`` flattened (1-D), after checking it has the structure and leaf shapes of the
    trainable leaves (``eqx.filter(p, eqx.is_inexact_array)``) of ``model`` (a VQC), or of
    ``params`` when ``model`` is a loss function, and only finite entries."""
    if params is None:
        if not isinstance(model, VQC):
            raise QjrTypeError(f"inversion needs a qjr.qml.VQC (or a loss function with "
                               f"params=...), got {type(model).__name__}")
        params = model
    ref = eqx.filter(params, eqx.is_inexact_array)
    try:
        got = eqx.filter(grads, eqx.is_array)
        same = jax.tree_util.tree_structure(ref) == jax.tree_util.tree_structure(got)
    except Exception:  # noqa: BLE001 - any non-pytree input is a structure error
        same = False
    if same:
        same = _leaf_shapes(got) == _leaf_shapes(ref)
    if not same:
        raise ParameterError(
            "grads must have the structure of eqx.filter_grad(loss)(params, x, y) "
            f"(trainable leaves of shapes {_leaf_shapes(ref)}), got {type(grads).__name__} "
            f"with leaves {_leaf_shapes(grads)}")
    out = flat(got)
    if not bool(jnp.all(jnp.isfinite(out))):
        raise ParameterError("grads contain non-finite entries")
    return out


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


def objective(loss, params, target, distance):
    """``f(x, label)``: the gradient distance of dummy inputs ``x`` ``(B, d)`` with labels
    ``label`` to the flattened shared gradient ``target``."""

    def f(x, label):
        return gradient_distance(flat(eqx.filter_grad(loss)(params, x, label)), target,
                                 distance)

    return f
