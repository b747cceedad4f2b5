"""Partitions of a dataset over federated clients, and the stacked client-data layout.

Every split takes an explicit ``jax.random`` key and returns a list of ``n_clients`` sorted
NumPy index arrays (disjoint, together covering the examples they use):

* :func:`iid_split`: a random permutation cut into ``n_clients`` near-equal parts.
* :func:`dirichlet_split`: label skew (Hsu, Qi, Brown 2019): for each class, the class's
  examples are divided among the clients in proportions ``p ~ Dirichlet(alpha * 1)``;
  small ``alpha`` -> each client sees few classes, large ``alpha`` -> IID.
* :func:`quantity_skew_split`: IID labels but client sizes in proportions
  ``p ~ Dirichlet(alpha * 1)`` (every client keeps at least ``min_size`` examples).

:func:`stack_clients` pads the parts to one length so all clients of a round can be
``vmap`` ped: :class:`ClientData` ``x`` ``(n_clients, max_n, n_features)``, ``y``
``(n_clients, max_n)``, ``counts`` ``(n_clients,)`` (rows ``>= counts[i]`` are padding).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.checks import check_key, check_positive_int, check_real
from qjaxrob.errors import ParameterError
from qjaxrob.qml.data import check_labels

__all__ = [
    "ClientData",
    "dirichlet_split",
    "iid_split",
    "quantity_skew_split",
    "stack_clients",
]

_MAX_TRIES = 100


class ClientData(NamedTuple):
    """Padded per-client data: ``x`` ``(n_clients, max_n, n_features)``, ``y``
    ``(n_clients, max_n)`` int32, ``counts`` ``(n_clients,)`` int32 (valid rows)."""

    x: jax.Array
    y: jax.Array
    counts: jax.Array

    @property
    def n_clients(self) -> int:
        return self.x.shape[0]


def _check_clients(n_clients, n_examples):
    n_clients = check_positive_int(n_clients, "n_clients")
    if n_clients > n_examples:
        raise ParameterError(
            f"n_clients = {n_clients} exceeds the {n_examples} examples: some client would be empty"
        )
    return n_clients


def iid_split(key, n_examples: int, n_clients: int) -> list[np.ndarray]:
    """IID partition of ``range(n_examples)`` into ``n_clients`` near-equal random parts."""
    key = check_key(key, "iid_split")
    n_examples = check_positive_int(n_examples, "n_examples")
    n_clients = _check_clients(n_clients, n_examples)
    perm = np.asarray(jax.random.permutation(key, n_examples))
    return [np.sort(p) for p in np.array_split(perm, n_clients)]


def _numpy_rng(key) -> np.random.Generator:
    """A NumPy generator seeded from 128 bits drawn with the JAX ``key`` (host-side work
    on index arrays stays in NumPy; the result is a deterministic function of ``key``)."""
    return np.random.default_rng(np.asarray(jax.random.bits(key, (4,), jnp.uint32)))


def _round_sizes(p, total):
    """Integer sizes summing to ``total`` in proportions ``p`` (largest remainders)."""
    raw = p * total
    sizes = np.floor(raw).astype(int)
    extra = total - sizes.sum()
    sizes[np.argsort(-(raw - sizes), kind="stable")[:extra]] += 1
    return sizes


def dirichlet_split(key, y, n_clients: int, alpha: float, *, min_size: int = 1):
    """Label-skewed partition: class ``c`` 's examples go to the clients in proportions
    ``Dirichlet(alpha)`` (independent per class, rounded by largest remainders). Redraws
    (up to 100 times) until every client has ``>= min_size`` examples, else raises."""
    key = check_key(key, "dirichlet_split")
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"labels y must be a non-empty 1-D array, got shape {y.shape}")
    n_clients = _check_clients(n_clients, y.size)
    alpha = check_real(alpha, "alpha", low=0.0, low_open=True)
    min_size = check_positive_int(min_size, "min_size")
    classes = np.unique(y)
    rng = _numpy_rng(key)
    for _ in range(_MAX_TRIES):
        parts = [[] for _ in range(n_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            sizes = _round_sizes(rng.dirichlet(np.full(n_clients, alpha)), idx.size)
            for i, chunk in enumerate(np.split(idx, np.cumsum(sizes)[:-1])):
                parts[i].append(chunk)
        parts = [np.sort(np.concatenate(p)) for p in parts]
        if min(p.size for p in parts) >= min_size:
            return parts
    raise ParameterError(
        f"dirichlet_split: no partition with >= {min_size} examples per client after "
        f"{_MAX_TRIES} draws (alpha = {alpha}, n_clients = {n_clients}, {y.size} examples); "
        f"use fewer clients or a larger alpha"
    )


def quantity_skew_split(key, n_examples: int, n_clients: int, alpha: float, *,
                        min_size: int = 1):
    """IID labels; client ``i`` gets ``min_size`` examples plus a share ``p_i`` of the
    rest, ``p ~ Dirichlet(alpha)`` (rounded by largest remainders)."""
    key = check_key(key, "quantity_skew_split")
    n_examples = check_positive_int(n_examples, "n_examples")
    n_clients = _check_clients(n_clients, n_examples)
    alpha = check_real(alpha, "alpha", low=0.0, low_open=True)
    min_size = check_positive_int(min_size, "min_size")
    if min_size * n_clients > n_examples:
        raise ParameterError(
            f"{n_clients} clients x min_size {min_size} exceeds the {n_examples} examples"
        )
    rng = _numpy_rng(key)
    rest = n_examples - min_size * n_clients
    sizes = min_size + _round_sizes(rng.dirichlet(np.full(n_clients, alpha)), rest)
    perm = rng.permutation(n_examples)
    return [np.sort(p) for p in np.split(perm, np.cumsum(sizes)[:-1])]


def _check_part(i: int, p, n: int) -> np.ndarray:
    p = np.asarray(p)
    if p.ndim != 1 or p.size == 0:
        raise ParameterError(f"client {i} has no examples (part of shape {p.shape})")
    if not np.issubdtype(p.dtype, np.integer):
        frac = p[np.mod(p, 1) != 0] if p.dtype.kind == "f" else p[:0]
        shown = frac[0].item() if frac.size else p[0].item()
        raise ParameterError(f"client {i}: indices must be integers (never truncated), got "
                             f"index {shown!r} of dtype {p.dtype}")
    bad = p[(p < 0) | (p >= n)]
    if bad.size:
        raise ParameterError(f"client {i} has index {bad[0].item()} outside [0, {n})")
    return p.astype(np.int64)


def stack_clients(x, y, parts, *, n_classes: int | None = None) -> ClientData:
    """Gathers ``x[part]``, ``y[part]`` per client and zero-pads them to the largest part.

    ``y`` holds integer class labels (``qjaxrob.qml.data.check_labels``): with
    ``n_classes`` each must lie in ``0..n_classes-1``; without it they must be non-negative
    (the model's class count is checked again when clients train). ``parts`` are integer
    index arrays into ``x``."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ParameterError(
            f"need x of shape (n, n_features) and y of shape (n,), got {x.shape} and {y.shape}"
        )
    if n_classes is None:
        n_classes = int(np.max(y, initial=0)) + 1 if y.size and np.all(np.isfinite(y)) else 1
    y = check_labels(y, check_positive_int(n_classes, "n_classes"))
    parts = [_check_part(i, p, x.shape[0]) for i, p in enumerate(parts)]
    if not parts:
        raise ParameterError("stack_clients needs at least one client part, got none")
    max_n = max(p.size for p in parts)
    xs = np.zeros((len(parts), max_n, x.shape[1]), x.dtype)
    ys = np.zeros((len(parts), max_n), np.int32)
    for i, p in enumerate(parts):
        xs[i, : p.size], ys[i, : p.size] = x[p], y[p]
    counts = np.array([p.size for p in parts], np.int32)
    return ClientData(jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(counts))
