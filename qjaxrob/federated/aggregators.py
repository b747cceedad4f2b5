"""Aggregation rules for federated learning: ``updates`` of shape ``(n_clients, dim)`` (one
flattened update per row, see ``jax.flatten_util.ravel_pytree``) -> aggregate ``(dim,)``.

Every rule is a pure function that composes with ``jit``. Input checks:

* the shape (static) is always checked eagerly: ``updates`` must be 2-D with at least one
  row, and preconditions of a rule (Krum's ``n > 2f + 2``, ``beta`` in ``[0, 1/2)``, ...)
  raise :class:`~qjaxrob.errors.ParameterError`;
* non-finite rows are rejected, never averaged in: eagerly (naming the client row) when the
  values are concrete, and with ``equinox.branched_error_if`` (also naming the first bad
  row) when traced under ``jit``.

Definitions (``g_i`` the rows, ``n`` their number):

* FedAvg (McMahan et al. 2017): ``sum_i w_i g_i / sum_i w_i``.
* Krum (Blanchard et al. 2017): score ``s(i) = sum_{j in N_i} ||g_i - g_j||^2`` over the
  ``n - f - 2`` nearest other rows; returns the row of lowest score. Multi-Krum: the mean
  of the ``m`` rows of lowest score (scores computed once).
* Coordinate-wise median and ``beta``-trimmed mean (Yin et al. 2018): per coordinate drop
  the ``floor(beta n)`` largest and smallest values and average the rest.
* Norm clipping (Sun et al. 2019): ``mean_i g_i min(1, tau / ||g_i||)``.
* Geometric median (Pillutla et al. 2022, RFA): smoothed Weiszfeld iterations
  ``z <- sum_i w_i g_i / sum_i w_i``, ``w_i = 1 / max(nu, ||z - g_i||)``.
* FLTrust (Cao et al., NDSS 2021): ``TS_i = relu(cos(g_i, g_0))``,
  ``g = sum_i TS_i (||g_0|| / ||g_i||) g_i / sum_i TS_i`` (zero when every ``TS_i = 0``).
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.checks import check_int, check_real
from qjaxrob.errors import ParameterError

__all__ = [
    "AGGREGATORS",
    "aggregator",
    "check_updates",
    "fedavg",
    "fltrust",
    "geometric_median",
    "krum",
    "krum_scores",
    "median",
    "multi_krum",
    "norm_clip",
    "trimmed_mean",
    "weiszfeld",
]


def _is_traced(a) -> bool:
    return isinstance(a, jax.core.Tracer)


def _as_array(updates, name: str) -> np.ndarray:
    """``np.asarray(updates)``, or ``ParameterError`` naming the row lengths of ragged
    rows (or the value that is not a number)."""
    try:
        return np.asarray(updates)
    except (ValueError, TypeError) as exc:
        try:
            lengths = [len(row) for row in updates]
        except TypeError:
            lengths = None
        if lengths is not None and len(set(lengths)) > 1:
            raise ParameterError(
                f"{name} rows must all have one length (dim), got rows of lengths {lengths}"
            ) from None
        raise ParameterError(f"{name} must be a 2-D array of numbers, got {updates!r:.200}: "
                             f"{exc}") from None


def check_updates(updates, name: str = "updates", client_ids=None):
    """``updates`` as a 2-D float array ``(n_clients, dim)`` with finite rows.

    A non-finite row raises :class:`ParameterError` naming the client (``client_ids[row]``
    if given, else the row index): eagerly for concrete values, through
    ``equinox.branched_error_if`` under ``jit``."""
    if not (_is_traced(updates) or isinstance(updates, jax.Array)):
        updates = _as_array(updates, name)
    if updates.ndim != 2 or updates.shape[0] < 1:
        raise ParameterError(
            f"{name} must have shape (n_clients >= 1, dim), got shape {tuple(updates.shape)}"
        )
    if not jnp.issubdtype(updates.dtype, jnp.floating):
        if jnp.issubdtype(updates.dtype, jnp.integer) or updates.dtype == bool:
            updates = jnp.asarray(updates, jnp.result_type(float))
        else:
            raise ParameterError(f"{name} must be real, got dtype {updates.dtype}")
    n = updates.shape[0]
    ids = list(range(n)) if client_ids is None else [int(i) for i in client_ids]
    if _is_traced(updates):
        bad = ~jnp.all(jnp.isfinite(updates), axis=1)
        msgs = [f"{name}: client {i} sent a non-finite (NaN/inf) update" for i in ids]
        return eqx.branched_error_if(updates, jnp.any(bad), jnp.argmax(bad), msgs)
    bad_rows = np.flatnonzero(~np.all(np.isfinite(np.asarray(updates)), axis=1))
    if bad_rows.size:
        raise ParameterError(
            f"{name}: client {ids[bad_rows[0]]} sent a non-finite (NaN/inf) update "
            f"(rows {bad_rows.tolist()} are bad)"
        )
    return jnp.asarray(updates)


def _check_f(f, n: int, rule: str) -> int:
    f = check_int(f, f"{rule} f", minimum=0)
    if not n > 2 * f + 2:
        raise ParameterError(
            f"{rule} needs n > 2f + 2 updates: n = {n} is too few for f = {f} "
            f"(at most f = {max((n - 3) // 2, 0)} for n = {n})" if n >= 3 else
            f"{rule} needs n > 2f + 2 updates, got n = {n} for f = {f}"
        )
    return f


def fedavg(updates, weights=None):
    """Weighted mean ``sum_i w_i g_i / sum_i w_i`` (plain mean when ``weights`` is None).

    ``weights``: shape ``(n_clients,)``, non-negative with a positive sum (typically the
    clients' example counts)."""
    u = check_updates(updates)
    if weights is None:
        return jnp.mean(u, axis=0)
    w = weights if _is_traced(weights) else np.asarray(weights)
    if w.shape != (u.shape[0],):
        raise ParameterError(f"weights must have shape ({u.shape[0]},), got {tuple(w.shape)}")
    if not _is_traced(w) and not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ParameterError(f"weights must be finite, >= 0 with a positive sum, got {w}")
    return _wmean(u, jnp.asarray(w, u.dtype))


@jax.jit
def _wmean(u, w):
    # traced weights cannot be checked eagerly: a zero, negative or non-finite weight set
    # raises at run time instead of averaging to NaN
    bad = ~(jnp.all(jnp.isfinite(w)) & jnp.all(w >= 0) & (jnp.sum(w) > 0))
    w = eqx.error_if(w, bad, "fedavg weights must be finite, >= 0 with a positive sum")
    return (w @ u) / jnp.sum(w)


def _sq_dists(u):
    sq = jnp.sum(u * u, axis=1)
    d = sq[:, None] + sq[None, :] - 2.0 * (u @ u.T)
    # exact zeros on the diagonal, and no negative round-off elsewhere
    return jnp.maximum(d, 0.0) * (1.0 - jnp.eye(u.shape[0], dtype=u.dtype))


@partial(jax.jit, static_argnums=1)
def _krum_scores(u, n_near):
    n = u.shape[0]
    d = _sq_dists(u) + jnp.diag(jnp.full((n,), jnp.inf, u.dtype))
    return jnp.sum(jnp.sort(d, axis=1)[:, :n_near], axis=1)


def krum_scores(updates, f):
    """Krum scores ``(n,)``: sum of squared L2 distances from each row to its
    ``n - f - 2`` nearest other rows (Blanchard et al. 2017)."""
    u = check_updates(updates)
    n = u.shape[0]
    return _krum_scores(u, n - _check_f(f, n, "krum") - 2)


@jax.jit
def _pick(u, scores):
    return u[jnp.argmin(scores)]


@partial(jax.jit, static_argnums=2)
def _mean_lowest(u, scores, m):
    return jnp.mean(u[jnp.argsort(scores)[:m]], axis=0)


def krum(updates, f):
    """The update of lowest Krum score (:func:`krum_scores`); needs ``n > 2f + 2``."""
    u = check_updates(updates)
    return _pick(u, krum_scores(u, f))


def multi_krum(updates, f, m):
    """Mean of the ``m`` updates of lowest Krum score; ``1 <= m <= n``, ``n > 2f + 2``."""
    u = check_updates(updates)
    m = check_int(m, "multi_krum m", minimum=1)
    if m > u.shape[0]:
        raise ParameterError(f"multi_krum m must be <= n = {u.shape[0]}, got m = {m}")
    return _mean_lowest(u, krum_scores(u, f), m)


@jax.jit
def _median(u):
    return jnp.median(u, axis=0)


def median(updates):
    """Coordinate-wise median (mean of the two middle values for even ``n``)."""
    return _median(check_updates(updates))


@partial(jax.jit, static_argnums=1)
def _trimmed(u, k):
    return jnp.mean(jnp.sort(u, axis=0)[k: u.shape[0] - k], axis=0)


def trimmed_mean(updates, beta):
    """Coordinate-wise ``beta``-trimmed mean: per coordinate drop the ``floor(beta n)``
    largest and smallest values, average the rest; ``beta`` in ``[0, 1/2)``."""
    u = check_updates(updates)
    beta = check_real(beta, "trimmed_mean beta", low=0.0, high=0.5, high_open=True)
    n = u.shape[0]
    return _trimmed(u, int(np.floor(beta * n)))


def norm_clip(updates, tau):
    """Mean of the updates after scaling each by ``min(1, tau / ||g_i||)``; ``tau > 0``."""
    u = check_updates(updates)
    return _norm_clip(u, check_real(tau, "norm_clip tau", low=0.0, low_open=True))


@jax.jit
def _norm_clip(u, tau):
    norms = jnp.linalg.norm(u, axis=1)
    scale = jnp.minimum(1.0, tau / jnp.maximum(norms, jnp.finfo(u.dtype).tiny))
    return jnp.mean(u * scale[:, None], axis=0)


def weiszfeld(updates, *, nu: float = 1e-8, iters: int = 200):
    """Smoothed Weiszfeld iterations for ``argmin_z sum_i ||z - g_i||`` started from the
    mean: ``w_i = 1 / max(nu, ||z - g_i||)``, ``z <- sum_i w_i g_i / sum_i w_i``."""
    u = check_updates(updates)
    nu = check_real(nu, "weiszfeld nu", low=0.0, low_open=True)
    return _weiszfeld(u, nu, check_int(iters, "weiszfeld iters", minimum=1))


@partial(jax.jit, static_argnums=2)
def _weiszfeld(u, nu, iters):
    def body(_, z):
        w = 1.0 / jnp.maximum(nu, jnp.linalg.norm(u - z, axis=1))
        return (w @ u) / jnp.sum(w)

    return jax.lax.fori_loop(0, iters, body, jnp.mean(u, axis=0))


def geometric_median(updates):
    """Geometric median by :func:`weiszfeld` (``nu = 1e-8``, 200 iterations)."""
    return weiszfeld(updates)


def fltrust(updates, server_update):
    """FLTrust (Cao et al. 2021) with the server's root-set update ``server_update``
    (shape ``(dim,)``): cosine trust scores clipped at 0, client updates rescaled to the
    server update's norm, trust-weighted mean (zeros when no client is trusted)."""
    u = check_updates(updates)
    g0 = check_updates(jnp.reshape(server_update, (1, -1)) if _is_traced(server_update)
                       else np.reshape(np.asarray(server_update), (1, -1)), "server_update")[0]
    if g0.shape[0] != u.shape[1]:
        raise ParameterError(
            f"server_update must have shape ({u.shape[1]},), got {tuple(np.shape(server_update))}"
        )
    return _fltrust(u, g0)


@jax.jit
def _fltrust(u, g0):
    tiny = jnp.finfo(u.dtype).tiny
    n0 = jnp.linalg.norm(g0)
    ni = jnp.linalg.norm(u, axis=1)
    cos = (u @ g0) / jnp.maximum(ni * n0, tiny)
    ts = jnp.maximum(cos, 0.0)
    rescaled = u * (n0 / jnp.maximum(ni, tiny))[:, None]
    total = jnp.sum(ts)
    return jnp.where(total > 0, (ts @ rescaled) / jnp.maximum(total, tiny), jnp.zeros_like(g0))


AGGREGATORS = ("fedavg", "krum", "multi_krum", "median", "trimmed_mean", "norm_clip",
               "geometric_median", "fltrust")


class _Rule(eqx.Module):
    """A named rule with its hyper-parameters bound: ``rule(updates, weights) -> (dim,)``
    (FLTrust: ``rule(updates, weights, server_update=g0)``). Hashable (usable as a static
    ``jit`` argument), with a readable ``repr``."""

    name: str = eqx.field(static=True)
    kwargs: tuple = eqx.field(static=True)

    @property
    def needs_server_update(self) -> bool:
        """Whether the round loop must pass the server's root-data update."""
        return self.name == "fltrust"

    def __call__(self, updates, weights=None, server_update=None):
        if self.name == "fedavg":
            return fedavg(updates, weights)
        if self.name == "fltrust":
            if server_update is None:
                raise ParameterError(
                    "the fltrust aggregator needs the server's update on its root data "
                    "(federated.run(..., root=(x_root, y_root)))"
                )
            return fltrust(updates, server_update)
        return _RULES[self.name](updates, **dict(self.kwargs))


_RULES = {"krum": krum, "multi_krum": multi_krum, "median": median,
          "trimmed_mean": trimmed_mean, "norm_clip": norm_clip,
          "geometric_median": geometric_median}


def aggregator(name: str, **kwargs):
    """``rule(updates, weights) -> (dim,)`` for the round loop: ``name`` in
    :data:`AGGREGATORS` with its hyper-parameters (``f``, ``m``, ``beta``, ``tau``) bound;
    only ``fedavg`` uses the weights (client example counts); ``fltrust`` takes the
    server's update on its root data, which the round loop computes when given ``root``."""
    needs = {"fedavg": (), "krum": ("f",), "multi_krum": ("f", "m"), "median": (), "fltrust": (),
             "trimmed_mean": ("beta",), "norm_clip": ("tau",), "geometric_median": ()}
    if name not in needs:
        raise ParameterError(f"aggregator must be one of {AGGREGATORS}, got {name!r}")
    if set(kwargs) != set(needs[name]):
        raise ParameterError(
            f"aggregator {name!r} takes exactly {needs[name]} as keywords, got {tuple(kwargs)}"
        )
    return _Rule(name, tuple(sorted(kwargs.items())))
