"""Federated rounds and the resumable round loop.

One round (:func:`federated_round`):

1. the server splits its carried PRNG key, samples ``m`` clients (uniformly without
   replacement, sorted ids) and marks the malicious ones;
2. all sampled clients train as ONE jitted, ``vmap`` ped computation
   (:func:`~qjaxrob.federated.clients.local_updates`), optionally sharded over devices;
3. ``config.poison_updates`` rewrites the malicious rows (server-visible updates);
4. the updates are checked (a NaN/inf update is rejected naming the client id), then
   aggregated (``config.aggregator`` or the DP-FedAvg ``config.server_privacy``) and
   applied with ``config.server_optimizer``.

:func:`run` repeats rounds up to ``config.rounds``, shows a tqdm bar, appends one JSON
line of metrics per round to ``out_dir/metrics.jsonl`` (flushed and fsynced as the round
ends) and then atomically rewrites ``out_dir/checkpoint.npz`` (global model, server
optimizer state, DP state, PRNG key, round counter), all through :mod:`qjaxrob.storage`.
On restart it loads the checkpoint, drops JSONL lines of rounds after it (a round whose
line was written but whose checkpoint was not is recomputed identically), and continues:
no round is repeated or lost, and the result equals an uninterrupted run. What cannot be
recomputed is refused (``OutputError`` naming the file and line): a damaged line, or a
round the checkpoint covers missing from the metrics. One process writes an ``out_dir``
at a time (a second gets ``LockError``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from qjaxrob.devices import over
from qjaxrob.errors import OutputError, ParameterError
from qjaxrob.federated.aggregators import check_updates
from qjaxrob.federated.clients import flatten, local_updates
from qjaxrob.federated.config import FedConfig
from qjaxrob.federated.sharding import client_devices
from qjaxrob.federated.splits import ClientData
from qjaxrob.qml.data import check_labels
from qjaxrob.qml.train import n_classes_of
from qjaxrob.storage import (
    append_jsonl,
    drop_partial_line,
    locked,
    read_checkpoint,
    read_jsonl,
    write_checkpoint,
    write_jsonl,
)

__all__ = [
    "RoundInfo",
    "RoundPlan",
    "ServerState",
    "evaluate_round",
    "federated_round",
    "init_state",
    "plan_round",
    "poison",
    "run",
    "server_update",
]

METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.npz"


class ServerState(NamedTuple):
    """The server's state between rounds (everything a checkpoint holds)."""

    model: eqx.Module
    opt_state: optax.OptState
    privacy_state: object
    key: jax.Array  # raw uint32 key data
    round: int


class RoundPlan(NamedTuple):
    """Which clients take part in a round and with which keys (computed by the server)."""

    ids: np.ndarray          # (m,) sorted client ids
    malicious: np.ndarray    # (m,) bool
    client_key: jax.Array    # clients use fold_in(client_key, id)
    attack_key: jax.Array    # key of config.poison_updates
    next_key: jax.Array      # the server key carried to the next round


class RoundInfo(NamedTuple):
    """What the server saw in a round: ``updates`` ``(m, dim)`` (after poisoning; hand a
    row to gradient inversion with ``federated.unflatten(model, row)``: in FedSGD a row is
    the gradient of the client's mean loss, in FedAvg the change ``w_global - w_local``),
    the ``ids`` of their senders, which were ``malicious``, the ``aggregate`` ``(dim,)``
    and (FLTrust) the server's own ``server_update`` on its root data."""

    ids: np.ndarray
    malicious: np.ndarray
    updates: jax.Array
    aggregate: jax.Array
    server_update: jax.Array | None = None


def init_state(model, config: FedConfig) -> ServerState:
    """The state before round 1 (keys derived from ``config.seed``)."""
    key = jax.random.key(config.seed)
    k_run, k_priv = jax.random.split(key)
    params = eqx.filter(model, eqx.is_inexact_array)
    flat, _ = flatten(model)
    ps = None if config.server_privacy is None else config.server_privacy.init(flat, k_priv)
    return ServerState(model, config.server_optimizer.init(params), ps,
                       jax.random.key_data(k_run), 0)


@partial(jax.jit, static_argnums=(1, 2))
def _plan(key_data, n_clients, m):
    key = jax.random.wrap_key_data(key_data)
    next_key, k_sample, k_clients, k_attack = jax.random.split(key, 4)
    ids = jnp.sort(jax.random.choice(k_sample, n_clients, (m,), replace=False))
    return ids, k_clients, k_attack, jax.random.key_data(next_key)


def plan_round(state: ServerState, n_clients: int, config: FedConfig) -> RoundPlan:
    """Samples the round's clients from the server key."""
    ids, k_clients, k_attack, next_key = _plan(state.key, n_clients, config.clients_per_round)
    ids = np.asarray(ids)
    malicious = np.isin(ids, np.asarray(config.malicious, np.int64))
    return RoundPlan(ids, malicious, k_clients, k_attack, next_key)


@eqx.filter_jit
def _poison(updates, malicious, key, config):
    out = config.poison_updates(updates, malicious, key)
    return jnp.where(malicious[:, None], out, updates)


def poison(updates, plan: RoundPlan, config: FedConfig):
    """The server's view of the round's updates: ``config.poison_updates`` applied to the
    malicious rows (unchanged when no attack or no malicious client is sampled)."""
    if config.poison_updates is None or not plan.malicious.any():
        return updates
    return _poison(updates, jnp.asarray(plan.malicious), plan.attack_key, config)


@eqx.filter_jit
def _server_step(model, opt_state, privacy_state, updates, weights, g0, aggregator,
                 optimizer, server_privacy):
    if server_privacy is not None:
        agg, privacy_state = server_privacy.update(updates, privacy_state)
    elif g0 is not None:
        agg = aggregator(updates, weights, server_update=g0)
    else:
        agg = aggregator(updates, weights)
    params = eqx.filter(model, eqx.is_inexact_array)
    grads = flatten(model)[1](agg)
    grads = eqx.filter(grads, eqx.is_inexact_array)
    upd, opt_state = optimizer.update(grads, opt_state, params)
    return eqx.apply_updates(model, upd), opt_state, privacy_state, agg


def server_update(state: ServerState, plan: RoundPlan, updates, counts, config: FedConfig,
                  root_update=None):
    """Checks the server-visible ``updates`` ``(m, dim)`` (naming a client that sent
    NaN/inf), aggregates them (``root_update``: the server's own update for FLTrust) and
    applies the server optimizer. Returns ``(new_state, aggregate)``."""
    updates = check_updates(updates, "round updates", client_ids=plan.ids)
    dim = sum(a.size for a in jax.tree_util.tree_leaves(
        eqx.filter(state.model, eqx.is_inexact_array)))
    if updates.shape != (len(plan.ids), dim):
        raise ParameterError(
            f"round updates must have shape ({len(plan.ids)}, {dim}), got {updates.shape}"
        )
    model, opt_state, ps, agg = _server_step(
        state.model, state.opt_state, state.privacy_state, updates,
        jnp.asarray(counts, updates.dtype), root_update, config.aggregator,
        config.server_optimizer, config.server_privacy)
    return ServerState(model, opt_state, ps, plan.next_key, state.round + 1), agg


@jax.jit
def _gather(data, ids, malicious):
    return ids, data.x[ids], data.y[ids], data.counts[ids], malicious


def _root_update(state, plan, n_clients, root, config):
    """The server's honest update on its root data ``(x, y)`` (FLTrust), computed like a
    client's with the pseudo client id ``n_clients``."""
    if root is None:
        raise ParameterError(
            "the aggregator needs the server's root data: pass root=(x_root, y_root)")
    x, y = jnp.asarray(root[0]), jnp.asarray(root[1])
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ParameterError(f"root must be (x (n, n_features), y (n,)) with n >= 1, got "
                             f"shapes {x.shape} and {y.shape}")
    return local_updates(state.model, plan.client_key, jnp.asarray([n_clients]), x[None],
                         y[None], jnp.asarray([x.shape[0]]), jnp.asarray([False]),
                         config.client_spec)[0]


def federated_round(state: ServerState, data: ClientData, config: FedConfig, *, root=None):
    """One round over the stacked ``data``; returns ``(new_state, RoundInfo)``.
    ``root = (x, y)``: the server's clean root data (needed by the FLTrust aggregator)."""
    config.check_clients(data.n_clients)
    plan = plan_round(state, data.n_clients, config)
    arrays = _gather(data, jnp.asarray(plan.ids), jnp.asarray(plan.malicious))
    ids_, x, y, counts, mal = arrays
    updates = over(lambda *a: local_updates(state.model, plan.client_key, *a,
                                            config.client_spec),
                   ids_, x, y, counts, mal,
                   devices=client_devices() if config.shard else (), axis="clients")
    updates = poison(updates, plan, config)
    g0 = None
    if getattr(config.aggregator, "needs_server_update", False):
        g0 = _root_update(state, plan, data.n_clients, root, config)
    new_state, agg = server_update(state, plan, updates, counts, config, g0)
    return new_state, RoundInfo(plan.ids, plan.malicious, updates, agg, g0)


@eqx.filter_jit
def _metrics(model, x, y, attack_target, untargeted, trigger, target):
    logits = jax.vmap(model)(x)
    pred = jnp.argmax(logits, axis=-1)
    out = {"accuracy": jnp.mean(pred == y),
           "loss": optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()}
    if attack_target is not None:
        out["attack_success"] = jnp.mean(pred == attack_target(y))
    elif untargeted:
        out["attack_success"] = jnp.mean(pred != y)
    if trigger is not None:
        t = target
        pred_t = jnp.argmax(jax.vmap(model)(jax.vmap(trigger)(x)), axis=-1)
        other = y != t
        out["backdoor_success"] = jnp.sum((pred_t == t) & other) / jnp.maximum(jnp.sum(other), 1)
    return out


def evaluate_round(model, test, config: FedConfig, rounds_done: int) -> dict:
    """Metrics of the global ``model`` on ``test = (x, y)``: accuracy, loss,
    attack_success, backdoor_success (None when not applicable) and epsilon."""
    raw = _metrics(model, jnp.asarray(test[0]), jnp.asarray(test[1]), config.attack_target,
                   bool(config.malicious), config.backdoor_trigger, config.backdoor_target)
    m = {k: float(v) for k, v in raw.items()}
    eps = None if config.accountant is None else float(config.accountant(rounds_done))
    return {"accuracy": m["accuracy"], "loss": m["loss"],
            "attack_success": m.get("attack_success"),
            "backdoor_success": m.get("backdoor_success"), "epsilon": eps}


# ---- checkpoints, metrics, inputs -------------------------------------------------------
def _trees(state):
    return {"model": eqx.filter(state.model, eqx.is_array), "opt": state.opt_state,
            "priv": state.privacy_state}


def _save(path: Path, state: ServerState, description: str) -> None:
    write_checkpoint(path, _trees(state), {"key": np.asarray(state.key),
                                           "round": np.asarray(state.round),
                                           "config": np.asarray(description)})


def _load(path: Path, template: ServerState, description: str) -> ServerState:
    def same_config(data):
        if str(data["config"]) != description:
            raise ParameterError(
                f"checkpoint {path} was written with a different configuration:\n  "
                f"{data['config']}\nvs now\n  {description}\n(use a new out_dir)"
            )

    trees, data = read_checkpoint(path, _trees(template), required=("key", "round", "config"),
                                  check=same_config)
    model = eqx.combine(trees["model"], template.model)
    return ServerState(model, trees["opt"], trees["priv"], jnp.asarray(data["key"]),
                       int(data["round"]))


def _resume_metrics(path: Path, rounds_done: int) -> None:
    """Keeps the metric lines of rounds ``1..rounds_done`` (the checkpoint's) in ``path``;
    lines of later rounds (written before an interruption reached the checkpoint) and a
    partial last line are removed, so those rounds are recomputed. A damaged line, or a
    covered round missing or repeated, raises ``OutputError``: it cannot be recomputed."""
    lines = read_jsonl(path)
    for ln in lines:
        r = ln.record.get("round")
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise OutputError(f"{str(path)!r} line {ln.number} has no valid round number "
                              f"(round = {r!r}): restore the file or use a new out_dir")
    keep = [ln for ln in lines if ln.record["round"] <= rounds_done]
    seen = {}
    for ln in keep:
        r = ln.record["round"]
        if r in seen:
            raise OutputError(f"{str(path)!r} line {ln.number} repeats round {r} of line "
                              f"{seen[r]}: restore the file or use a new out_dir")
        if seen and r < max(seen):
            raise OutputError(f"{str(path)!r} line {ln.number} holds round {r} after round "
                              f"{max(seen)}: restore the file or use a new out_dir")
        seen[r] = ln.number
    missing = sorted(set(range(1, rounds_done + 1)) - set(seen))
    if missing:
        raise OutputError(f"{str(path)!r} lacks the metrics of rounds {missing}, which the "
                          f"checkpoint (round {rounds_done}) covers and cannot recompute: "
                          f"restore the file or use a new out_dir")
    if len(keep) < len(lines) or drop_partial_line(path):
        write_jsonl(path, [ln.record for ln in keep], sort_keys=True)


def _check_labels(model, data: ClientData, test) -> None:
    """The clients' labels (their first ``counts`` rows) and ``test``'s lie in the model's
    class range (``ParameterError`` naming the label otherwise)."""
    n = n_classes_of(model, data.x[0])
    y = np.asarray(data.y)
    valid = np.arange(y.shape[1])[None, :] < np.asarray(data.counts)[:, None]
    for what, labels in (("client training labels", y[valid]), ("test labels", test[1])):
        try:
            check_labels(labels, n)
        except ParameterError as exc:
            raise ParameterError(f"{what}: {exc}") from None


def run(config: FedConfig, out_dir, *, model, data: ClientData, test, progress: bool = True,
        on_round: Callable | None = None, root=None):
    """Runs (or resumes) a federated training in ``out_dir`` up to ``config.rounds``.

    Args:
        config: the :class:`FedConfig`.
        out_dir: directory for ``metrics.jsonl`` and ``checkpoint.npz``; an existing
            checkpoint is resumed (it must have been written with the same configuration,
            apart from ``rounds``).
        model: the initial global model (an ``equinox`` module, e.g. ``qml.VQC``).
        data: the clients' :class:`ClientData`.
        test: ``(x_test, y_test)`` for the per-round metrics.
        on_round: called as ``on_round(state, info)`` after each round is recorded
            (e.g. to hand ``info.updates`` to gradient inversion).
        root: ``(x_root, y_root)``, the server's clean root data (FLTrust).

    Returns:
        ``(state, records)``: the final :class:`ServerState` and the list of all JSONL
        records of the run (including rounds done before a resume).

    Raises:
        ParameterError: a label outside the model's classes (clients' or ``test``'s), a
            checkpoint written with another configuration or model.
        OutputError: ``out_dir`` is a file or not writable; a damaged ``metrics.jsonl``
            line, or a round the checkpoint covers missing from it.
        CheckpointError: a damaged ``checkpoint.npz``.
        LockError: another process is writing ``out_dir``.
    """
    config.check_clients(data.n_clients)
    _check_labels(model, data, test)
    with locked(out_dir, f"federated out_dir {str(out_dir)!r}") as out:
        metrics, ckpt = out / METRICS_FILE, out / CHECKPOINT_FILE
        description = config.describe()
        state = init_state(model, config)
        if ckpt.exists():
            state = _load(ckpt, state, description)
        _resume_metrics(metrics, state.round)
        bar = tqdm(total=config.rounds, initial=state.round, disable=not progress,
                   desc="federated", unit="round")
        try:
            while state.round < config.rounds:
                state, info = federated_round(state, data, config, root=root)
                rec = {"round": state.round, "clients": info.ids.tolist(),
                       "malicious": info.ids[info.malicious].tolist(),
                       **evaluate_round(state.model, test, config, state.round)}
                append_jsonl(metrics, rec, sort_keys=True)
                _save(ckpt, state, description)
                bar.update(1)
                bar.set_postfix(acc=f"{rec['accuracy']:.3f}")
                if on_round is not None:
                    on_round(state, info)
        finally:
            bar.close()
        return state, [ln.record for ln in read_jsonl(metrics)]
