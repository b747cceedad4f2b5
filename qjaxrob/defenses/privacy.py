"""Differential privacy for federated QML: example-level DP-SGD, client-level DP-FedAvg,
and their privacy accounting with Google's ``dp-accounting`` (extra ``dp``).

Both mechanisms are optax-style ``(init, update)`` pairs with NamedTuple states holding
their PRNG key (plug them into ``federated.FedConfig``):

* :func:`dp_sgd` (Abadi et al., CCS 2016): clip each example's gradient to L2 norm ``C``,
  sum, add ``N(0, (sigma C)^2 I)``, divide by the batch size ``B``. The noise on the
  averaged gradient has standard deviation ``sigma C / B`` per coordinate.
  ``init(params, key)``, ``update(per_example_grads, state) -> (grad, state)`` where
  ``per_example_grads`` is a pytree whose leaves carry a leading example axis.
* :func:`dp_fedavg` (McMahan, Ramage, Talwar, Zhang, ICLR 2018, fixed-denominator
  estimator): clip each client update to norm ``S``, sum, add ``N(0, (sigma S)^2 I)``,
  divide by the expected number of clients per round ``m``; noise std ``sigma S / m``.
  ``init(params, key)``, ``update(updates, state) -> (aggregate, state)`` with
  ``updates`` ``(m, dim)``. It replaces the aggregator (its guarantee is for this
  clipped mean only, not for robust aggregators).

Accounting (:func:`epsilon`, :class:`Accountant`): ``T`` compositions of the Poisson-
subsampled Gaussian mechanism (sampling rate ``q``, noise multiplier ``sigma``) in the RDP
or PLD accountant of ``dp-accounting``, add/remove-one neighbours. For DP-FedAvg ``q =
clients_per_round / n_clients`` and one composition per round (the federated round samples
a fixed-size cohort uniformly; Poisson sampling at the same rate is the standard stand-in).
For DP-SGD on a client with ``n_i`` examples, ``q = B / n_i`` and ``local_steps``
compositions per round the client takes part in (``steps_per_round``); counting every
round is an upper bound. The federated clients draw fixed-size minibatches (uniformly,
with replacement); accounting them as Poisson sampling at ``q = B / n_i`` is the usual
approximation, not an exact bound for that sampler.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from qjaxrob.checks import check_int, check_key, check_positive_int, check_real
from qjaxrob.errors import ParameterError
from qjaxrob.federated.aggregators import check_updates
from qjaxrob.extras import require

__all__ = [
    "Accountant",
    "DPFedAvgState",
    "DPSGDState",
    "PrivacyTransform",
    "clip_rows",
    "dp_fedavg",
    "dp_sgd",
    "epsilon",
]


class PrivacyTransform(NamedTuple):
    """A DP mechanism as a pair of pure functions (optax style)."""

    init: Callable
    update: Callable


class DPSGDState(NamedTuple):
    key: jax.Array
    count: jax.Array  # steps taken


class DPFedAvgState(NamedTuple):
    key: jax.Array
    count: jax.Array  # rounds aggregated


def clip_rows(rows, clip):
    """Each row of ``rows`` ``(n, dim)`` scaled by ``min(1, clip / ||row||)``."""
    norms = jnp.linalg.norm(rows, axis=1, keepdims=True)
    return rows * jnp.minimum(1.0, clip / jnp.maximum(norms, jnp.finfo(rows.dtype).tiny))


def _check_mech(clip, sigma, what):
    clip = check_real(clip, f"{what} clipping norm", low=0.0, low_open=True)
    sigma = check_real(sigma, f"{what} noise_multiplier", low=0.0)
    return clip, sigma


def dp_sgd(l2_norm_clip: float, noise_multiplier: float) -> PrivacyTransform:
    """Example-level DP-SGD aggregation of per-example gradients (module docstring)."""
    clip, sigma = _check_mech(l2_norm_clip, noise_multiplier, "dp_sgd")

    def init(params, key):
        del params
        return DPSGDState(check_key(key, "dp_sgd.init"), jnp.zeros((), jnp.int32))

    def update(per_example_grads, state):
        leaves, treedef = jax.tree_util.tree_flatten(per_example_grads)
        b = leaves[0].shape[0]
        flat = jnp.concatenate([leaf.reshape(b, -1) for leaf in leaves], axis=1)
        total = jnp.sum(clip_rows(flat, clip), axis=0)
        key, sub = jax.random.split(state.key)
        noisy = (total + sigma * clip * jax.random.normal(sub, total.shape, total.dtype)) / b
        out, start = [], 0
        for leaf in leaves:
            size = leaf[0].size
            out.append(noisy[start: start + size].reshape(leaf.shape[1:]))
            start += size
        return jax.tree_util.tree_unflatten(treedef, out), DPSGDState(key, state.count + 1)

    return PrivacyTransform(init, update)


def dp_fedavg(clip_norm: float, noise_multiplier: float,
              expected_clients: int) -> PrivacyTransform:
    """Client-level DP-FedAvg aggregation of ``(m, dim)`` client updates (module docstring)."""
    clip, sigma = _check_mech(clip_norm, noise_multiplier, "dp_fedavg")
    m = check_positive_int(expected_clients, "dp_fedavg expected_clients")

    def init(params, key):
        del params
        return DPFedAvgState(check_key(key, "dp_fedavg.init"), jnp.zeros((), jnp.int32))

    def update(updates, state):
        updates = check_updates(updates, "dp_fedavg updates")
        total = jnp.sum(clip_rows(updates, clip), axis=0)
        key, sub = jax.random.split(state.key)
        noise = sigma * clip * jax.random.normal(sub, total.shape, total.dtype)
        return (total + noise) / m, DPFedAvgState(key, state.count + 1)

    return PrivacyTransform(init, update)


def _dp_accounting():
    return require("dp_accounting", "dp", "privacy accounting (Google's dp-accounting)")


def epsilon(noise_multiplier: float, sampling_rate: float, steps: int, delta: float,
            accountant: str = "rdp") -> float:
    """``epsilon`` at ``delta`` after ``steps`` Poisson-subsampled Gaussian mechanisms
    (rate ``sampling_rate``, noise multiplier ``noise_multiplier``), with the ``"rdp"`` or
    ``"pld"`` accountant of ``dp-accounting``. ``steps = 0`` gives 0; ``sigma = 0`` gives
    ``inf``."""
    sigma = check_real(noise_multiplier, "noise_multiplier", low=0.0)
    q = check_real(sampling_rate, "sampling_rate", low=0.0, high=1.0, low_open=True)
    steps = check_int(steps, "steps", minimum=0)
    delta = check_real(delta, "delta", low=0.0, high=1.0, low_open=True, high_open=True)
    if accountant not in ("rdp", "pld"):
        raise ParameterError(f"accountant must be 'rdp' or 'pld', got {accountant!r}")
    if steps == 0:
        return 0.0
    if sigma == 0.0:
        return float("inf")
    dpa = _dp_accounting()
    acc = dpa.rdp.RdpAccountant() if accountant == "rdp" else dpa.pld.PLDAccountant()
    event = dpa.dp_event.PoissonSampledDpEvent(q, dpa.dp_event.GaussianDpEvent(sigma))
    acc.compose(event, steps)
    return float(acc.get_epsilon(delta))


@dataclasses.dataclass(frozen=True)
class Accountant:
    """``accountant(rounds_done) -> epsilon`` for ``FedConfig.accountant``:
    ``steps_per_round`` compositions per round (:func:`epsilon`)."""

    noise_multiplier: float
    sampling_rate: float
    delta: float
    steps_per_round: int = 1
    accountant: str = "rdp"

    def __post_init__(self):
        check_positive_int(self.steps_per_round, "steps_per_round")
        epsilon(self.noise_multiplier, self.sampling_rate, 0, self.delta, self.accountant)

    def __call__(self, rounds_done: int) -> float:
        rounds_done = check_int(rounds_done, "rounds_done", minimum=0)
        return epsilon(self.noise_multiplier, self.sampling_rate,
                       rounds_done * self.steps_per_round, self.delta, self.accountant)
