"""Training with ``optax``: a jitted train step, a ``fit`` loop, and ``.npz`` checkpoints.

The trainable leaves are the model's inexact arrays (``eqx.filter(model,
eqx.is_inexact_array)``); everything else is static. ``train_step`` and the per-epoch
function are ``eqx.filter_jit`` ed at module level with the optimizer as a static
argument, so they compile once per (model architecture, optimizer object, batch shape) and
are reused by every later call with the same optimizer object.

``fit`` shuffles with ``jax.random.fold_in(key, epoch)`` and runs ``len(x) // batch_size``
full minibatches per epoch (the remainder, different each epoch, is skipped so every
batch has one shape) as one ``lax.scan``. After each epoch it evaluates, updates the
history, and (if ``checkpoint`` is a path) atomically rewrites a plain ``.npz`` with the
model and optimizer-state leaves, the best model so far, the early-stopping counters and
the history (:mod:`qjaxrob.storage`: never unpickled, a damaged file raises
``CheckpointError``). Loading rebuilds pytrees from the fresh model and ``optimizer.init``,
so a resumed run continues bit-for-bit like an uninterrupted one.

Progress: before the first epoch, ``fit`` compiles the epoch and evaluation functions
ahead of time (``.lower(...).compile()``, which fills the same cache the calls use) and
reports that time separately (``compile=`` in the bar's postfix, 0.0 s when already
compiled), so the bar's per-epoch rate and ETA count training only.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from qjaxrob.checks import check_int, check_key, check_positive_int
from qjaxrob.errors import ParameterError
from qjaxrob.qml.data import check_labels
from qjaxrob.storage import locked, read_checkpoint, write_checkpoint

__all__ = ["cross_entropy", "train_step", "evaluate", "fit", "save_checkpoint",
           "load_checkpoint", "n_classes_of"]


def cross_entropy(model, x, y):
    """Mean softmax cross-entropy of ``jax.vmap(model)(x)`` (shape ``(B, C)``) against
    integer labels ``y`` (shape ``(B,)``)."""
    logits = jax.vmap(model)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _step(model, opt_state, x, y, optimizer, loss_fn):
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    return eqx.apply_updates(model, updates), opt_state, loss


@eqx.filter_jit
def train_step(model, opt_state, x, y, optimizer, loss_fn=cross_entropy):
    """One optimiser step on the batch ``(x, y)``; returns ``(model, opt_state, loss)``.

    ``opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))``.
    """
    return _step(model, opt_state, x, y, optimizer, loss_fn)


@eqx.filter_jit
def _epoch(model, opt_state, x, y, batches, optimizer, loss_fn):
    """Steps over ``batches`` (index array ``(n_batches, batch_size)``) in a ``lax.scan``;
    returns ``(model, opt_state, mean loss)``."""
    arrays, static = eqx.partition(model, eqx.is_array)

    def body(carry, idx):
        arrays, opt_state = carry
        m, opt_state, loss = _step(eqx.combine(arrays, static), opt_state, x[idx], y[idx],
                                   optimizer, loss_fn)
        return (eqx.filter(m, eqx.is_array), opt_state), loss

    (arrays, opt_state), losses = jax.lax.scan(body, (arrays, opt_state), batches)
    return eqx.combine(arrays, static), opt_state, losses.mean()


@eqx.filter_jit
def _evaluate(model, x, y, loss_fn):
    acc = jnp.mean(jnp.argmax(jax.vmap(model)(x), axis=-1) == y)
    return loss_fn(model, x, y), acc


def n_classes_of(model, x) -> int:
    """The number of classes of ``model``: its ``n_classes`` attribute, else the length of
    its logits on one example of ``x`` (``(n, n_features)``; shapes only, no computation)."""
    n = getattr(model, "n_classes", None)
    if n is None:
        one = jax.ShapeDtypeStruct(jnp.shape(x)[1:], jnp.result_type(x))
        n = jax.eval_shape(model, one).shape[-1]
    return int(n)


def evaluate(model, x, y, loss_fn=cross_entropy):
    """``(loss, accuracy)`` of ``model`` on the batch ``(x, y)`` (``(n, n_features)``,
    ``(n,)`` labels in ``0..n_classes-1``; jitted).

    Concrete labels are checked (:func:`~qjaxrob.qml.data.check_labels`): an out-of-range
    label raises ``ParameterError`` instead of a NaN loss; traced labels (inside ``jit``)
    cannot be checked and are the caller's responsibility."""
    if not isinstance(y, jax.core.Tracer):
        y = check_labels(y, n_classes_of(model, x))
        if len(y) != jnp.shape(x)[0]:
            raise ParameterError(f"evaluate got {jnp.shape(x)[0]} examples but {len(y)} labels")
    return _evaluate(model, x, y, loss_fn)


# ---- checkpoints ---------------------------------------------------------------
def save_checkpoint(path, trees: dict, scalars: dict, history: dict) -> None:
    """Atomically writes ``trees`` (name -> pytree; its array leaves), ``scalars`` and
    ``history`` (name -> list of floats) to the ``.npz`` file ``path``
    (:func:`qjaxrob.storage.write_checkpoint`)."""
    arrays = {f"scalar/{k}": np.asarray(v) for k, v in scalars.items()}
    arrays.update({f"history/{k}": np.asarray(v, np.float64) for k, v in history.items()})
    write_checkpoint(path, {name: eqx.filter(t, eqx.is_array) for name, t in trees.items()},
                     arrays)


def load_checkpoint(path, templates: dict):
    """Reads a checkpoint written by ``save_checkpoint``; ``templates`` (name -> pytree of
    the right structure) rebuilds the trees. Returns ``(trees, scalars, history)``.

    Raises ``CheckpointError`` (a damaged or foreign file) or ``ParameterError`` (written by
    a different model or optimizer)."""
    filtered = {name: eqx.filter(t, eqx.is_array) for name, t in templates.items()}
    trees, data = read_checkpoint(path, filtered)
    trees = {name: eqx.combine(trees[name], t) for name, t in templates.items()}
    scalars = {k.split("/", 1)[1]: v[()] for k, v in data.items() if k.startswith("scalar/")}
    history = {k.split("/", 1)[1]: list(map(float, v)) for k, v in data.items()
               if k.startswith("history/")}
    return trees, scalars, history


# ---- the fit loop ------------------------------------------------------------------
def _check_data(model, x, y, what):
    x = jnp.asarray(x)
    n_features = model.encoding.n_features
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ParameterError(
            f"{what} features must have shape (n, {n_features}), got shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise ParameterError(f"{what} data is empty: features of shape {x.shape}")
    bad = np.argwhere(~np.isfinite(np.asarray(x)))
    if bad.size:
        i, j = bad[0]
        raise ParameterError(
            f"{what} features contain {len(bad)} non-finite value(s) (NaN or inf), first at "
            f"row {i}, column {j}: {float(x[i, j])!r}; clean or impute the data before fit"
        )
    y = check_labels(y, model.n_classes)
    if len(y) != x.shape[0]:
        raise ParameterError(f"{what} has {x.shape[0]} examples but {len(y)} labels")
    return x, jnp.asarray(y)


def _batches(key, epoch, n, bs):
    """The ``(n // bs, bs)`` example indices of epoch ``epoch`` (shuffled by
    ``fold_in(key, epoch)``; the remainder is skipped)."""
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    return perm[: (n // bs) * bs].reshape(n // bs, bs)


def _compile(model, opt_state, x, y, batches, optimizer, loss_fn, val) -> float:
    """Compiles the epoch and evaluation functions for these shapes (no computation);
    returns the seconds it took (about 0 when they are cached)."""
    t0 = time.perf_counter()
    _epoch.lower(model, opt_state, x, y, batches, optimizer, loss_fn).compile()
    for xe, ye in ((x, y),) + ((val,) if val is not None else ()):
        _evaluate.lower(model, xe, ye, loss_fn).compile()
    return time.perf_counter() - t0


def fit(model, optimizer, x_train, y_train, *, epochs: int, key, batch_size: int = 32,
        x_val=None, y_val=None, patience: int | None = None, min_delta: float = 0.0,
        checkpoint=None, progress: bool = True, loss_fn=cross_entropy):
    """Trains ``model`` with ``optimizer`` (any ``optax.GradientTransformation``).

    Args:
        x_train, y_train: ``(n, n_features)`` features and ``(n,)`` labels in
            ``0..n_classes-1``.
        epochs: total number of epochs, >= 1 (a resumed run continues up to this number).
        key: PRNG key for shuffling (epoch ``e`` uses ``fold_in(key, e)``).
        batch_size: examples per step (at most ``n``; the remainder of an epoch is skipped).
        x_val, y_val: evaluated after every epoch (history ``val_loss``/``val_acc``).
        patience: early stopping after ``patience`` epochs without the monitored loss
            (``val_loss`` if given, else ``loss``) improving by more than ``min_delta``;
            the best model is returned.
        checkpoint: path of a ``.npz`` file, rewritten after every epoch; if it exists,
            training resumes from it. While ``fit`` runs, ``checkpoint + ".lock"`` keeps a
            second writer out (``LockError``).
        progress: show a tqdm bar (compile time reported separately as ``compile=``).

    Raises:
        ParameterError: non-finite or empty features, wrong shapes or labels, ``epochs``
            or ``batch_size`` < 1, a key that is not a PRNG key, a checkpoint of another
            model or optimizer.
        CheckpointError: a damaged checkpoint file.
        LockError: another process is training into the same checkpoint.

    Returns:
        ``(model, history)``; ``history`` maps ``loss`` (mean train loss per epoch),
        ``train_acc`` and, with validation data, ``val_loss``/``val_acc`` to lists.
    """
    epochs = check_int(epochs, "epochs", minimum=1)
    key = check_key(key, "fit (shuffling)")
    bs = check_positive_int(batch_size, "batch_size")
    x, y = _check_data(model, x_train, y_train, "training")
    val = None if x_val is None else _check_data(model, x_val, y_val, "validation")
    bs = min(bs, x.shape[0])
    with contextlib.ExitStack() as stack:
        if checkpoint is not None:  # one writer per checkpoint file
            path = Path(checkpoint)
            stack.enter_context(locked(path.parent, f"checkpoint {str(path)!r}",
                                       name=f"{path.name}.lock"))
        opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
        best, start, best_metric, wait = model, 0, np.inf, 0
        history = {k: [] for k in ("loss", "train_acc")
                   + (("val_loss", "val_acc") if val else ())}
        if checkpoint is not None and os.path.exists(checkpoint):
            trees, s, history = load_checkpoint(
                checkpoint, {"model": model, "opt": opt_state, "best": model})
            model, opt_state, best = trees["model"], trees["opt"], trees["best"]
            start, best_metric, wait = int(s["epoch"]), float(s["best_metric"]), int(s["wait"])
        bar = tqdm(range(start, epochs), total=epochs, initial=start, disable=not progress,
                   desc="fit: compiling", unit="epoch")
        if start < epochs:
            compile_s = _compile(model, opt_state, x, y, _batches(key, start, x.shape[0], bs),
                                 optimizer, loss_fn, val)
            bar.reset(total=epochs)  # the rate and ETA start after compilation
            bar.n = bar.last_print_n = start
            bar.set_description("fit")
            bar.set_postfix(compile=f"{compile_s:.1f}s")
        for epoch in bar:
            if patience is not None and wait >= patience:
                break
            batches = _batches(key, epoch, x.shape[0], bs)
            model, opt_state, loss = _epoch(model, opt_state, x, y, batches, optimizer, loss_fn)
            history["loss"].append(float(loss))
            history["train_acc"].append(float(_evaluate(model, x, y, loss_fn)[1]))
            monitored = history["loss"][-1]
            if val is not None:
                vl, va = _evaluate(model, *val, loss_fn)
                history["val_loss"].append(float(vl))
                history["val_acc"].append(float(va))
                monitored = float(vl)
            if monitored < best_metric - min_delta:
                best, best_metric, wait = model, monitored, 0
            else:
                wait += 1
            bar.set_postfix({"compile": f"{compile_s:.1f}s",
                             **{k: f"{v[-1]:.4f}" for k, v in history.items()}})
            if checkpoint is not None:
                save_checkpoint(checkpoint, {"model": model, "opt": opt_state, "best": best},
                                {"epoch": epoch + 1, "best_metric": best_metric, "wait": wait},
                                history)
        return (best if patience is not None else model), history
