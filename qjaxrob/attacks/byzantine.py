"""Byzantine (malicious) client behaviours for federated learning.

Two kinds, matching the hooks of :class:`qjaxrob.federated.FedConfig`:

* **model poisoning**, ``attack(updates, malicious, key) -> updates``: ``updates`` is the
  round's ``(m, dim)`` update matrix and ``malicious`` the ``(m,)`` bool mask; the round
  keeps the benign rows and takes the malicious rows from the result. Attacks may read the
  benign rows (an omniscient, colluding adversary, as in the papers):
  :class:`SignFlip`, :class:`GaussianNoise`, :class:`Scaling` (boosting / model
  replacement), :class:`ALIE`, :class:`IPM`.
* **data poisoning**, ``attack(x, y, count, key) -> (x, y)`` on one malicious client's
  padded data: :class:`LabelFlip`, :class:`Backdoor`.

Every attack is a frozen dataclass (hashable by value, so equal attacks share compiled
rounds). :func:`malicious_clients` picks ``f`` of ``n`` client ids. Each attack's docstring
gives its definition.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

from qjaxrob.checks import check_int, check_key, check_positive_int, check_probability, check_real
from qjaxrob.errors import ParameterError

__all__ = [
    "ALIE",
    "IPM",
    "Backdoor",
    "stamp_fraction",
    "GaussianNoise",
    "LabelFlip",
    "Scaling",
    "SignFlip",
    "alie_z",
    "malicious_clients",
]


def malicious_clients(key, n_clients: int, f: int) -> tuple[int, ...]:
    """``f`` distinct client ids out of ``range(n_clients)``, drawn with ``key`` (sorted)."""
    key = check_key(key, "malicious_clients")
    n_clients = check_positive_int(n_clients, "n_clients")
    f = check_int(f, "f (number of malicious clients)", minimum=0)
    if f > n_clients:
        raise ParameterError(f"f = {f} malicious clients exceeds n_clients = {n_clients}")
    ids = np.asarray(jax.random.choice(key, n_clients, (f,), replace=False))
    return tuple(sorted(int(i) for i in ids))


def _benign_stats(updates, malicious):
    """Mean and sample standard deviation (ddof 1) over the benign rows."""
    w = (~malicious).astype(updates.dtype)
    nb = jnp.sum(w)
    mu = (w @ updates) / jnp.maximum(nb, 1.0)
    var = (w @ (updates - mu) ** 2) / jnp.maximum(nb - 1.0, 1.0)
    return mu, jnp.sqrt(var)


@dataclasses.dataclass(frozen=True)
class SignFlip:
    """Malicious clients send ``-scale * g_i`` (their honest update, reversed)."""

    scale: float = 1.0

    def __post_init__(self):
        check_real(self.scale, "SignFlip scale", low=0.0, low_open=True)

    def __call__(self, updates, malicious, key):
        return -self.scale * updates


@dataclasses.dataclass(frozen=True)
class GaussianNoise:
    """Malicious clients send ``N(0, sigma^2 I)`` instead of an update."""

    sigma: float = 1.0

    def __post_init__(self):
        check_real(self.sigma, "GaussianNoise sigma", low=0.0, low_open=True)

    def __call__(self, updates, malicious, key):
        return self.sigma * jax.random.normal(key, updates.shape, updates.dtype)


@dataclasses.dataclass(frozen=True)
class Scaling:
    """Boosting / model replacement (Bagdasaryan et al., AISTATS 2020): malicious clients
    send ``factor * g_i``; with ``factor = n / eta`` (``n`` clients, server rate ``eta``)
    a malicious client's update replaces the averaged one. Combine with
    :class:`Backdoor` data to replace the model by a backdoored one."""

    factor: float = 10.0

    def __post_init__(self):
        check_real(self.factor, "Scaling factor")

    def __call__(self, updates, malicious, key):
        return self.factor * updates


def alie_z(n, f):
    """``z_max = Phi^{-1}((n - f - s) / (n - f))`` with ``s = floor(n/2 + 1) - f``
    (Baruch et al., NeurIPS 2019, as implemented in their code); ``n``, ``f`` may be traced."""
    if not (isinstance(n, jax.core.Tracer) or isinstance(f, jax.core.Tracer)):
        nn, ff = float(n), float(f)
        if not (nn >= 3 and 0 <= ff < math.floor(nn / 2 + 1)):
            raise ParameterError(
                f"alie_z needs n >= 3 clients and 0 <= f < floor(n/2 + 1) malicious ones (a "
                f"finite z), got n={n!r}, f={f!r}")
    s = jnp.floor(n / 2 + 1) - f
    return norm.ppf((n - f - s) / (n - f))


@dataclasses.dataclass(frozen=True)
class ALIE:
    """"A little is enough" (Baruch et al. 2019): every malicious client sends
    ``mu - z sigma`` (per coordinate mean and sample std of the benign updates); ``z``
    defaults to :func:`alie_z` of the round's ``n`` and number of malicious clients."""

    z: float | None = None

    def __post_init__(self):
        if self.z is not None:
            check_real(self.z, "ALIE z")

    def __call__(self, updates, malicious, key):
        mu, sigma = _benign_stats(updates, malicious)
        n = updates.shape[0]
        z = alie_z(n, jnp.sum(malicious)) if self.z is None else self.z
        return jnp.broadcast_to(mu - z * sigma, updates.shape)


@dataclasses.dataclass(frozen=True)
class IPM:
    """Inner-product manipulation (Xie, Koyejo, Gupta, UAI 2019): every malicious client
    sends ``-epsilon * mean(benign updates)`` (small ``epsilon`` ~ 0.1 targets Krum, large
    ~ 100 targets median / trimmed mean)."""

    epsilon: float = 0.1

    def __post_init__(self):
        check_real(self.epsilon, "IPM epsilon", low=0.0, low_open=True)

    def __call__(self, updates, malicious, key):
        mu, _ = _benign_stats(updates, malicious)
        return jnp.broadcast_to(-self.epsilon * mu, updates.shape)


@dataclasses.dataclass(frozen=True)
class LabelFlip:
    """Malicious clients train on labels ``y -> n_classes - 1 - y``. :meth:`target` is the
    attack's goal label, for ``FedConfig.attack_target``."""

    n_classes: int

    def __post_init__(self):
        if check_int(self.n_classes, "LabelFlip n_classes") < 2:
            raise ParameterError(f"LabelFlip n_classes must be >= 2, got {self.n_classes}")

    def target(self, y):
        return self.n_classes - 1 - y

    def __call__(self, x, y, count, key):
        return x, self.target(y).astype(y.dtype)


def stamp_fraction(backdoor, x, y, count, key):
    """A malicious client's data poisoning: ``backdoor.trigger`` stamped on a random
    ``backdoor.fraction`` (at least one) of the first ``count`` examples of ``x``
    ``(B, n_features)``, whose labels ``y`` ``(B,)`` become ``backdoor.target``; padding
    rows (index >= ``count``) are never chosen. Returns the new ``(x, y)``."""
    valid = jnp.arange(x.shape[0]) < count
    n_poison = jnp.maximum(1, jnp.ceil(backdoor.fraction * count)).astype(jnp.int32)
    rank = jnp.argsort(jnp.argsort(jnp.where(valid, jax.random.uniform(key, valid.shape), 2.0)))
    hit = rank < n_poison
    xt = jax.vmap(backdoor.trigger)(x)
    return (jnp.where(hit[:, None], xt, x),
            jnp.where(hit, jnp.asarray(backdoor.target, y.dtype), y))


@dataclasses.dataclass(frozen=True)
class Backdoor:
    """A trigger on inputs: features ``features`` set to ``value``. A malicious client
    stamps the trigger on a random ``fraction`` of its examples (at least one) and labels
    them ``target``. :meth:`trigger` stamps one example (``FedConfig.backdoor_trigger``);
    backdoor success = triggered test examples of other classes predicted ``target``."""

    features: tuple
    value: float
    target: int
    fraction: float = 0.5

    def __post_init__(self):
        feats = tuple(check_int(i, "Backdoor feature", minimum=0) for i in self.features)
        if not feats or len(set(feats)) != len(feats):
            raise ParameterError(f"Backdoor features must be distinct, got {self.features}")
        object.__setattr__(self, "features", feats)
        check_real(self.value, "Backdoor value")
        check_int(self.target, "Backdoor target", minimum=0)
        if check_probability(self.fraction, "Backdoor fraction") == 0.0:
            raise ParameterError("Backdoor fraction must be > 0")

    def trigger(self, x):
        """One example ``x`` ``(n_features,)`` with the trigger stamped on; a trigger
        feature outside ``x`` is a ``ParameterError``."""
        if max(self.features) >= x.shape[-1]:
            raise ParameterError(f"Backdoor feature {max(self.features)} is outside examples "
                                 f"of {x.shape[-1]} features")
        return x.at[jnp.asarray(self.features)].set(self.value)

    def __call__(self, x, y, count, key):
        return stamp_fraction(self, x, y, count, key)

