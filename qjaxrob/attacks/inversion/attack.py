"""``invert``: reconstruct a client's input (and label) from the gradient it shared.

Threat model (honest-but-curious server): the attacker knows the model (its loss and
parameters) and receives the exact, noiseless gradient of the loss on one example (or a
small batch). ``invert`` draws ``restarts`` random starts ``x'_0 ~ U[low, high)``, runs
gradient matching from each (``restarts.py``: fixed-length or pooled, on worker threads or
over devices) and returns the restart with the lowest distance.

Two ways in: a ``qjr.qml.VQC`` (the loss is its cross-entropy, the default start range its
encoding's period, the label inferred by iDLG or enumerated), or any differentiable
``loss(params, x, y)`` with ``params=``, the known labels and ``n_features=`` (a published
model that is not a VQC, e.g. a plain circuit trained with an MSE on ``<Z>``).

Without a bias the label of a VQC is unknown: restart ``r`` tries class ``r mod C``, and the
best match names the label. That label need not be identifiable: for a binary ``<Z>``
readout without post-processing, another input with the other label can share the gradient
exactly (RY(pi) on every wire flips the sign of the readout), and then rounding decides.

**Success modulo periodicity**: Pauli-rotation encodings make the gradient periodic in each
feature (``qjr.qml.encodings.encoding_period``); compare reconstructions with
``circular_error``.
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob import devices as _devices
from qjaxrob.attacks.inversion import restarts as rs
from qjaxrob.attacks.inversion.objective import DISTANCES, check_grads, infer_label
from qjaxrob.checks import check_key, check_positive_int, check_real
from qjaxrob.errors import ParameterError, QjrTypeError
from qjaxrob.qml import VQC
from qjaxrob.qml.data import check_labels
from qjaxrob.qml.encodings import encoding_period
from qjaxrob.qml.train import cross_entropy

__all__ = ["InversionResult", "invert"]


class InversionResult(NamedTuple):
    """Outcome of ``invert``.

    Attributes:
        x: best reconstruction, ``(n_features,)`` (``(B, n_features)`` for ``batch > 1``).
        label: inferred label (``()``, or ``(B,)``; for a loss function, the labels given).
        distance: the best restart's gradient distance.
        xs: every restart's best point, ``(restarts, B, n_features)``.
        labels: the labels each restart used, ``(restarts, B)``.
        distances: every restart's distance, ``(restarts,)`` (``inf`` for a restart that
            ``stop_on_match`` left unfinished).
        steps_run: objective evaluations each restart ran, ``(restarts,)`` (``steps + 1``
            without ``slots``; fewer for restarts that matched or stalled; 0 if unfinished).
    """

    x: jax.Array
    label: jax.Array
    distance: jax.Array
    xs: jax.Array
    labels: jax.Array
    distances: jax.Array
    steps_run: jax.Array


def _check_range(init_range):
    low, high = init_range
    if not np.all(np.asarray(low) <= np.asarray(high)):
        raise ParameterError(f"init_range needs low <= high, got {init_range!r}")
    return low, high


def _vqc_labels(model, grads, label, batch, n_restarts):
    """``(restarts, B)`` labels of the VQC path: given, iDLG, or enumerated."""
    n_classes = model.n_classes
    if label is not None:
        lab = check_labels(np.asarray(label).reshape(-1), n_classes)
        if lab.shape != (batch,):
            raise ParameterError(f"label must be {batch} class index(es) in "
                                 f"0..{n_classes - 1}, got {label!r}")
        return jnp.broadcast_to(jnp.asarray(lab, jnp.int32), (n_restarts, batch))
    if batch > 1:
        raise ParameterError(f"batch={batch} > 1 needs the labels (label=...): iDLG and label "
                             "enumeration are defined for one example")
    if model.bias is not None:
        return jnp.full((n_restarts, 1), infer_label(model, grads), jnp.int32)
    if n_restarts < n_classes:
        raise ParameterError(f"an unknown label needs restarts >= n_classes = {n_classes}, "
                             f"got {n_restarts}")
    return (jnp.arange(n_restarts, dtype=jnp.int32) % n_classes)[:, None]


def _loss_labels(label, batch, n_restarts):
    """``(restarts, B, ...)`` labels of the loss-function path (given, any dtype)."""
    if label is None:
        raise ParameterError("invert(loss, ...) needs the labels (label=...): a loss "
                             "function has no label inference")
    lab = jnp.asarray(label)
    if batch == 1 and lab.ndim == 0:
        lab = lab[None]
    if lab.shape[:1] != (batch,):
        raise ParameterError(f"label must have a leading axis of the batch size {batch}, got "
                             f"shape {lab.shape}")
    return jnp.broadcast_to(lab, (n_restarts,) + lab.shape)


def invert(model, grads, *, key, restarts: int = 64, steps: int = 500, distance: str = "l2",
           label=None, optimizer: str = "lbfgs", learning_rate: float | None = None,
           batch: int = 1, init_range=None, slots: int | None = None, stall_steps: int = 20,
           stall_rtol: float = 1e-2, match_tol: float = 1e-12,
           stop_on_match: bool = False, workers: int | None = None, params=None,
           n_features: int | None = None, devices=None) -> InversionResult:
    """Gradient-matching inversion (module docstring) of the gradient ``grads`` shared for
    ``batch`` examples.

    Args:
        model: the ``qjr.qml.VQC`` the client used (same parameters), or a differentiable
            ``loss(params, x, y) -> scalar`` with ``x`` ``(B, n_features)``.
        grads: ``eqx.filter_grad(qjr.qml.train.cross_entropy)(model, x, y)``, or for a loss
            ``eqx.filter_grad(loss)(params, x, y)`` (``jax.grad`` for an array ``params``).
        key: PRNG key for the random starts.
        restarts: random starts, run together under ``jax.vmap``.
        steps: optimiser steps per restart.
        distance: ``"l2"`` or ``"cosine"``.
        label: known label(s). VQC: class indices, default iDLG from the bias gradient
            (batch 1), else every class is tried by ``restarts // C`` restarts (batch 1
            only). Loss: required, any array with leading axis ``B`` (e.g. regression
            targets).
        optimizer: ``"lbfgs"`` (fixed-step ``optax.lbfgs``, clipped; ``learning_rate``
            default 1), ``"lbfgs_zoom"`` (``optax.lbfgs`` with zoom line search) or ``"adam"``
            (``optax.adam``, ``learning_rate`` default 0.05).
        init_range: ``(low, high)`` of the uniform starts; default ``[0, period)`` of a VQC's
            encoding (``2 pi`` where not periodic), ``[0, 2 pi)`` for a loss.
        slots: if given, run the restarts ``slots`` at a time (at most ``restarts``) and let
            each end early: when it **matched** (distance ``<= match_tol * ||grads||^2`` for
            ``"l2"``, ``<= match_tol`` for ``"cosine"``: the exact input has distance 0 up
            to rounding) or **stalled** (its best distance fell by at most ``stall_rtol``,
            relative, over its last ``stall_steps`` evaluations: a local minimum); its slot
            then starts the next restart. Each restart follows the same trajectory as
            without ``slots`` until it ends, so a restart that neither matches nor stalls
            gives the same result. Default ``None``: every restart runs ``steps`` steps, all
            together.
        stall_steps, stall_rtol, match_tol: the early-end rules of ``slots``. On the scaling
            study's 8-qubit model restarts that end elsewhere stay at relative L2 distance
            well above ``match_tol``, restarts that find ``x`` reach rounding level.
        stop_on_match: with ``slots``, stop the whole attack as soon as one restart matched
            (the attacker's time to success); restarts not finished by then keep their
            start point with distance ``inf`` and ``steps_run`` 0.
        workers: threads that run equal shares of the restarts at once (each share one
            vmapped program; with ``slots``, each share gets ``ceil(slots / workers)``
            slots, and with ``stop_on_match`` a match in one share stops the others at
            their next step). Each restart runs the same steps whatever ``workers``; only
            the batch width changes, which can change float rounding (complex128: equal
            to 1e-10; complex64: long trajectories can drift apart). Default
            ``default_workers``: the CPU cores, one per ``MIN_SHARE`` restarts at most;
            with ``slots`` and several ``devices``, their number.
        params: with a loss function: the parameters the gradient was taken at (a pytree;
            its inexact-array leaves are the differentiated ones).
        n_features: with a loss function: the length of one example.
        devices: the devices to lay the restarts over (default: those lent by
            ``qjaxrob.devices.use``, e.g. by ``qjaxrob run --layout batch``); at most one:
            ``workers`` threads on the default device. With ``k >= 2`` devices and no
            ``slots``, the restart axis of the one vmapped program is partitioned over them
            (``qjaxrob.devices.over``, padded to a multiple of ``k``; ``workers`` unused):
            the results equal the one-device, one-worker run's. With ``slots`` (a pool's
            loop indexes the restarts, so it does not partition), share ``i`` of the
            ``workers`` shares (default ``k``) runs on device ``i mod k``, its thread
            pinned with ``jax.default_device`` (one compilation per device): as with
            ``workers``, each restart runs the same steps, equal to rounding.
    """
    key = check_key(key, "invert")
    restarts = check_positive_int(restarts, "restarts")
    steps = check_positive_int(steps, "steps")
    batch = check_positive_int(batch, "batch")
    if isinstance(model, VQC):
        if params is not None or n_features is not None:
            raise ParameterError("params= and n_features= are for a loss function; a VQC "
                                 "carries its own")
        target = check_grads(model, grads)
        loss, params, real = cross_entropy, model, model.params.dtype
        n_features = model.encoding.n_features
    elif callable(model):
        if params is None:
            raise QjrTypeError("invert(loss, grads) needs params=: the parameters the shared "
                               "gradient was taken at")
        target = check_grads(model, grads, params=params)
        loss, real = model, target.dtype
        if n_features is None:
            raise ParameterError("invert(loss, ...) needs n_features=: the length of one "
                                 "example")
        n_features = check_positive_int(n_features, "n_features")
    else:
        raise QjrTypeError(f"invert needs a qjr.qml.VQC or a loss function, got "
                           f"{type(model).__name__}")
    if distance not in DISTANCES:
        raise ParameterError(f"distance must be one of {DISTANCES}, got {distance!r}")
    if optimizer not in rs.OPTIMIZERS:
        raise ParameterError(f"optimizer must be one of {rs.OPTIMIZERS}, got {optimizer!r}")
    if isinstance(model, VQC):
        labels = _vqc_labels(model, grads, label, batch, restarts)
        if init_range is None:
            period = encoding_period(model.encoding)
            init_range = (0.0, jnp.asarray(np.where(np.isnan(period), 2 * np.pi, period)))
    else:
        labels = _loss_labels(label, batch, restarts)
        if init_range is None:
            init_range = (0.0, 2 * math.pi)
    low, high = _check_range(init_range)
    x0s = jax.random.uniform(key, (restarts, batch, n_features), real,
                             jnp.asarray(low, real), jnp.asarray(high, real))
    lr = None if learning_rate is None else check_real(learning_rate, "learning_rate", low=0.0,
                                                       low_open=True)
    devices = _devices.check_devices(devices) if devices is not None else _devices.in_use()
    if len(devices) <= 1:
        devices = ()
    if workers is None:
        workers = min(len(devices), restarts) if devices else rs.default_workers(restarts)
    else:
        workers = min(check_positive_int(workers, "workers"), restarts)
    target = target.astype(real)
    if slots is None:
        if stop_on_match:
            raise ParameterError("stop_on_match=True needs slots (the pooled restarts)")
        def fixed(x0, lab):
            return rs.fixed_restarts(loss, params, target, x0, lab, steps, distance,
                                     optimizer, lr)

        if devices:  # one program, its restart axis partitioned over the devices
            xs, dists = _devices.over(fixed, x0s, labels, devices=devices, axis="restarts")
        else:
            xs, dists = _devices.in_shares(fixed, (x0s, labels), workers)
        steps_run = jnp.full((restarts,), steps + 1, jnp.int32)
    else:
        slots = min(check_positive_int(slots, "slots"), restarts)
        stall_steps = check_positive_int(stall_steps, "stall_steps")
        stall_rtol = check_real(stall_rtol, "stall_rtol", low=0.0)
        match_tol = check_real(match_tol, "match_tol", low=0.0)
        scale = float(jnp.sum(target**2)) if distance == "l2" else 1.0
        workers = min(workers, slots)
        match_value = jnp.asarray(match_tol * scale, real)
        shared_stop = stop_on_match and workers > 1
        with (rs.StopSignal() if shared_stop else contextlib.nullcontext()) as signal:
            def pooled(x0, lab):
                out = rs.pooled_restarts(
                    loss, params, target, x0, lab, steps, distance, optimizer, lr,
                    -(-slots // workers), stall_steps, jnp.asarray(stall_rtol, real),
                    match_value, jnp.asarray(bool(stop_on_match)),
                    None if signal is None else jnp.asarray(signal.id, jnp.int32))
                if signal is not None and bool(jnp.any(out[1] <= match_value)):
                    signal.set()
                return out

            xs, dists, steps_run = _devices.in_shares(pooled, (x0s, labels), workers,
                                                      devices)
    best = jnp.argmin(jnp.where(jnp.isnan(dists), jnp.inf, dists))
    x, lab = xs[best], labels[best]
    if batch == 1:
        x, lab = x[0], lab[0]
    return InversionResult(x, lab, dists[best], xs, labels, dists, steps_run)
