r"""Quantum-native integrity checks for quantum federated learning (QFL).

Three server-side tests of client updates, each a hypothesis test of
``H0: the client computed honestly`` with a stated false-positive level and cost. They take
arrays (updates, measurement records, the global model), never attack objects.

**(a) Physically bounded updates** (:func:`shift_bound`, :func:`update_bound`,
:func:`bounded_updates`). For a gate ``exp(-i t G)`` whose generator has spectral range
``Delta_G`` and an observable with spectral range ``Delta_O``,
``|d<O>/dt| = |<i[G, O]>| <= ||[G - g, O - o]|| <= Delta_G Delta_O / 2``. Every
parametrised gate of the gate table (``rx ry rz phase u3 rxx ryy rzz crx cry crz``) has
``Delta_G = 1`` (eigenvalues ``+-1/2``; ``{0, 1}`` for ``phase``; ``{0, +-1/2}`` for the
controlled rotations), and a parameter read ``scale * params[j]`` by several gates adds
``|scale|`` per occurrence, so

    |d<O>/d params[j]| <= m_j * Delta_O / 2,   m_j = sum over occurrences of |scale|,

with ``Delta_O / 2 <= sum_P |c_P|`` over the non-identity Pauli terms of ``O``. Noise
channels keep the bound (the adjoint of a channel is unital and positive, so it maps
``O`` into the same spectral interval). For the project's VQC loss, softmax
cross-entropy of logits ``z = W r + b`` with readouts ``r_k = <Z_{w_k}>``,
``dL/dparams[j] = d<O_eff>/dparams[j]`` with ``O_eff = sum_k (W^T delta)_k Z_{w_k}`` and
``delta = softmax(z) - e_y``. The readout wires are distinct, so ``Delta_{O_eff} / 2 =
||W^T delta||_1``, and ``delta`` ranges over a set whose extreme points are
``e_a - e_b``: the exact supremum is ``D(W) = max_{a != b} ||W_a - W_b||_1`` (rows of
``W``). Hence, for any data, labels and any number of shots (a finite-shot
parameter-shift estimate is a difference of two means of ``+-1`` outcomes, so it obeys
the same bound):

* circuit parameters: ``|g_j| <= m_j D(W)``; classical ``W`` and ``b``: ``|g| <= 1``
  (``|delta_c| <= 1``, ``|r_k| <= 1``); and ``sum_c g[W_ck] = sum_c g[b_c] = 0``
  (``sum_c delta_c = 0``);
* without the linear layer: binary logits ``scale (r_0, -r_0) / 2`` give ``m_j |scale|``,
  multi-class logits ``scale * r`` give ``2 m_j |scale|``.

A FedAvg update after ``K`` plain-SGD steps at rate ``eta`` is ``eta`` times a sum of
``K`` such gradients at models whose ``W`` moved by at most ``eta`` per entry and step,
so ``|u_j| <= eta m_j (K D(W_0) + eta n_r K (K - 1))`` (``n_r`` readouts), ``|u| <=
eta K`` for ``W`` and ``b``, and the zero sums hold. Level: an honest update never
violates the bound (false-positive rate 0 up to float rounding, ``rtol``); cost: none
(arithmetic on the update). **Cannot detect**: sign flipping (the bound is symmetric and
sign flipping keeps the zero sums), inner-product manipulation with ``epsilon <= 1``, and
any constrain-and-scale attack that knows the (public) bound; the check caps how far one
round can move the model, it cannot see a poisoned update inside the physical region.
Readout ``"probs"`` (logits ``log p``) has no bound (``d log p`` is unbounded as
``p -> 0``) and is refused.

**(b) Shot-noise consistency** (:func:`shift_probabilities`, :func:`shot_record`,
:func:`shot_consistency`). With its update a client reports the record of the
measurements it was computed from (here: the parameter-shift circuits of its gradient):
for every measured ``+-1`` observable, ``K`` independent split counts of ``+1`` outcomes,
``shots`` shots each. Under ``H0`` the counts of one observable are ``K`` binomials with
a common ``p``: Cochran's dispersion statistic ``T = sum_j (N - 1)/N *
sum_k (n_kj - shots p_j)^2 / (shots p_j (1 - p_j))`` (``p_j`` pooled, ``N = K shots``;
observables with fewer than ``min_count`` expected outcomes of either kind are left out,
Cochran's rule) is approximately ``chi^2`` with ``(K - 1) * used`` degrees of freedom,
and the two-sided test at level ``alpha`` rejects both a record with too little noise (a
fabricated or exactly computed update, as an ALIE adversary sends) and one with too much
(fewer shots than claimed, added noise). Cost: ``K`` splits of the client's own shots
(no extra shots; ``K - 1`` more reported numbers per observable). **Cannot detect**: a
fabricator that draws its record from binomials around means of its choice (the noise is
then exactly that of ``shots`` shots): it checks the noise, not the means; and
observables it leaves out (expected counts under ``min_count``).

**(c) Audit rounds** (:func:`audit_schedule`, :func:`audit`,
:func:`catch_probability`). With probability ``fraction`` per client and round, the
server sends the current global model and a batch of public data drawn like the client's
own (so a round looks like any other), and knows what an honest client returns: exactly
(deterministic clients; the server fixed the client's PRNG key) or in distribution
(finite shots: the server simulates ``M`` honest replies). The Monte Carlo rank test
(:func:`audit`) has level ``alpha`` exactly (the client's reply and the ``M`` simulated
ones are exchangeable under ``H0``). Cost: ``M`` simulated client computations per
audited client (none in the deterministic case) and the public data. A client that
behaves dishonestly on every round is caught within ``R`` rounds with probability
``1 - (1 - fraction * power)^R``. **Cannot detect**: a client that behaves honestly
whenever it receives data it could recognise as public (indistinguishability is a
property of the protocol, not of the test), and deviations smaller than the shot noise.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.stats import chi2

from qjaxrob.checks import check_int, check_key, check_positive_int, check_probability, check_real
from qjaxrob.ir.circuit import Circuit, check_affine
from qjaxrob.defenses.integrity.levels import check_alpha
from qjaxrob.errors import ParameterError
from qjaxrob.ir.observables import PauliSum, Z
from qjaxrob.sim.param_shift import expand_circuit
from qjaxrob.simulate import expval

__all__ = [
    "AuditCheck",
    "BoundCheck",
    "ShotCheck",
    "audit",
    "audit_schedule",
    "bounded_updates",
    "catch_probability",
    "check_alpha",
    "shift_bound",
    "shift_probabilities",
    "shot_consistency",
    "shot_record",
    "update_bound",
]


# ---- (a) physically bounded updates -------------------------------------------------------
def _half_range(obs: PauliSum) -> float:
    """An upper bound on half the spectral range of ``obs``: ``sum |c_P|`` over the
    non-identity Pauli terms."""
    if not isinstance(obs, PauliSum):
        raise ParameterError(f"observable must be a PauliSum (e.g. qjr.Z(0)), got {obs!r}")
    return float(sum(abs(c) for c, word in obs.terms if word))


def _multiplicity(circuit: Circuit) -> np.ndarray:
    """``m_j = sum |scale|`` over the gate occurrences reading ``params[j]``."""
    if not isinstance(circuit, Circuit):
        raise ParameterError(f"expected a qjr.Circuit, got {type(circuit).__name__}")
    check_affine(circuit, "the parameter-shift gradient bound")
    _, occ = expand_circuit(circuit)
    m = np.zeros(circuit.n_params)
    for src, idx, scale, rule, what in zip(occ.source, occ.index, occ.scale, occ.rule,
                                           occ.what):
        if src != "param":
            continue
        if rule is None:
            raise ParameterError(f"the gradient bound covers gate angles only, got {what}")
        m[idx] += abs(scale)
    return m


def shift_bound(circuit: Circuit, observable: PauliSum) -> np.ndarray:
    """Per-parameter bound ``m_j * sum_P |c_P|`` on ``|d<O>/d params[j]|`` (module
    docstring), shape ``(circuit.n_params,)``; holds for every state, input and noise."""
    return _multiplicity(circuit) * _half_range(observable)


def _vqc_parts(model):
    for name in ("circuit", "readout", "readout_wires", "weights", "params"):
        if not hasattr(model, name):
            raise ParameterError(f"update_bound needs a qml.VQC model, got {type(model).__name__}")
    if model.readout != "expval":
        raise ParameterError(
            f"readout {model.readout!r} has no gradient bound (logits log p have unbounded "
            "derivatives as p -> 0); use readout='expval'")
    return _multiplicity(model.circuit), len(model.readout_wires)


def update_bound(model, *, lr=None, steps: int = 1):
    """The bound on each coordinate of an honest client's update, shape ``(dim,)`` in the
    layout of ``federated.flatten(model)``.

    Args:
        model: the global ``qml.VQC`` (readout ``"expval"``) the client started from.
        lr: ``None`` for a FedSGD update (the gradient of the client's mean loss); else the
            client's plain-SGD learning rate, for a FedAvg update ``w_global - w_local``.
        steps: local SGD steps ``K`` (FedAvg); ignored for FedSGD.
    """
    m, n_r = _vqc_parts(model)
    steps = check_positive_int(steps, "steps (local SGD steps)")
    if lr is None:
        eta, steps = 1.0, 1
    else:
        eta = check_real(lr, "lr (client learning rate)", low=0.0, low_open=True)
    k = float(steps)
    if model.weights is not None:
        w = np.asarray(model.weights, np.float64)
        d0 = max(np.abs(w[a] - w[b]).sum() for a in range(len(w)) for b in range(len(w))
                 if a != b)
        quantum = eta * m * (k * d0 + eta * n_r * k * (k - 1))
        classical = eta * k
    else:
        factor = 1.0 if model.n_classes == 2 else 2.0
        quantum = eta * k * m * factor * abs(model.scale)
        classical = None
    tree = eqx.filter(model, eqx.is_inexact_array)
    tree = eqx.tree_at(lambda t: t.params, tree, jnp.asarray(quantum, model.params.dtype))
    if model.weights is not None:
        tree = eqx.tree_at(lambda t: (t.weights, t.bias), tree,
                           (jnp.full_like(model.weights, classical),
                            jnp.full_like(model.bias, classical)))
    return ravel_pytree(tree)[0]


class BoundCheck(NamedTuple):
    """Result of :func:`bounded_updates` for ``m`` updates: ``reject`` ``(m,)`` bool,
    ``ratio`` ``(m,)`` = ``max_j |u_j| / bound_j`` (``> 1`` outside the physical region),
    ``zero_sum`` ``(m,)`` = the largest ``|sum_c u|`` over the linear layer's columns and
    bias, relative to ``sum_c |u|`` (at least ``max_j |u_j|``, so float rounding of
    tiny entries does not count)."""

    reject: jax.Array
    ratio: jax.Array
    zero_sum: jax.Array


def _zero_sums(model, updates):
    if model.weights is None:
        return jnp.zeros(updates.shape[0], updates.dtype)
    c, width = model.weights.shape
    n_p = model.params.shape[0]
    w = updates[:, n_p:n_p + c * width].reshape(-1, c, width)
    b = updates[:, n_p + c * width:n_p + c * width + c]
    sums = jnp.concatenate([jnp.abs(w.sum(1)), jnp.abs(b.sum(1))[:, None]], axis=1)
    scale = jnp.concatenate([jnp.abs(w).sum(1), jnp.abs(b).sum(1)[:, None]], axis=1)
    floor = jnp.max(jnp.abs(updates), axis=1, keepdims=True)
    scale = jnp.maximum(scale, jnp.maximum(floor, jnp.finfo(updates.dtype).tiny))
    return jnp.max(sums / scale, axis=1)


def bounded_updates(updates, model, *, lr=None, steps: int = 1, rtol: float = 1e-4
                    ) -> BoundCheck:
    """Check (a): rejects the updates (rows of ``updates`` ``(m, dim)``) that leave the
    physical region of :func:`update_bound` or break the softmax zero sums (relative
    tolerance ``rtol``, for float rounding). False-positive rate 0 (module docstring).
    The layout check assumes ``federated.flatten`` order: ``params``, ``weights``, ``bias``."""
    rtol = check_real(rtol, "rtol", low=0.0)
    bound = update_bound(model, lr=lr, steps=steps)
    updates = jnp.asarray(updates)
    if updates.ndim != 2 or updates.shape[1] != bound.shape[0]:
        raise ParameterError(f"updates must have shape (m, {bound.shape[0]}), got "
                             f"{updates.shape}")
    ratio = jnp.max(jnp.abs(updates) / bound, axis=1)
    zs = _zero_sums(model, updates)
    reject = (ratio > 1.0 + rtol) | (zs > rtol) | ~jnp.all(jnp.isfinite(updates), axis=1)
    return BoundCheck(reject, ratio, zs)


# ---- (b) shot-noise consistency -----------------------------------------------------------
def shift_probabilities(model, xs):
    """``P(Z_w = +1)`` of every circuit behind a parameter-shift gradient of ``model`` (a
    ``qml.VQC`` with readout ``"expval"``) on the examples ``xs`` ``(B, n_features)``: per
    example the unshifted circuit and each shifted circuit of every parameter occurrence,
    each read on every readout wire. Shape ``(B * (1 + n_shifted) * n_r,)``."""
    _vqc_parts(model)
    check_affine(model.circuit, "shift_probabilities")
    expanded, occ = expand_circuit(model.circuit)
    shifts = [np.zeros(len(occ))]
    for k, (src, rule) in enumerate(zip(occ.source, occ.rule)):
        if src == "param":
            for s, _ in rule:
                v = np.zeros(len(occ))
                v[k] = s
                shifts.append(v)
    shifts = jnp.asarray(np.stack(shifts), model.params.dtype)
    return _shift_probs(model, jnp.asarray(xs, model.params.dtype), shifts, expanded, occ)


@eqx.filter_jit
def _shift_probs(model, xs, shifts, expanded, occ):
    obs = [Z(w) for w in model.readout_wires]

    def one(x):
        base = occ.angles(model.params, model.encoding.features(x))
        return jax.vmap(lambda sh: expval(expanded, obs, base + sh, mixed=model.mixed,
                                          dtype=model.dtype))(shifts)

    r = jax.vmap(one)(xs)
    return jnp.clip((1.0 + r.reshape(-1)) / 2.0, 0.0, 1.0)


def shot_record(key, p, shots: int, splits: int):
    """An honest measurement record: ``(splits, n)`` counts of ``+1`` outcomes, each a
    ``Binomial(shots, p_j)`` draw (``p`` ``(n,)``, e.g. :func:`shift_probabilities`)."""
    key = check_key(key, "shot_record")
    shots = check_positive_int(shots, "shots")
    splits = check_positive_int(splits, "splits")
    return _binomial(key, jnp.asarray(p), shots, splits)


@partial(jax.jit, static_argnums=(2, 3))
def _binomial(key, p, shots, splits):
    return jax.random.binomial(key, jnp.asarray(float(shots), p.dtype), p,
                               (splits,) + p.shape).astype(jnp.int32)


class ShotCheck(NamedTuple):
    """Result of :func:`shot_consistency` (leading axes of ``counts`` kept): ``reject``
    (bool), ``statistic`` ``T``, ``dof`` (degrees of freedom), ``p_value`` (two-sided)."""

    reject: jax.Array
    statistic: jax.Array
    dof: jax.Array
    p_value: jax.Array


def shot_consistency(counts, shots: int, alpha: float, *, min_count: float = 5.0
                     ) -> ShotCheck:
    """Check (b): is the split-to-split dispersion of a measurement record that of
    ``shots`` shots per split? ``counts`` ``(..., K, n)`` (``K >= 2`` splits of ``n``
    ``+-1`` observables; leading axes, e.g. clients, are batched). Two-sided ``chi^2``
    test of level ``alpha`` (module docstring); a record with no observable usable
    (``dof = 0``) is not rejected."""
    shots = check_positive_int(shots, "shots")
    alpha = check_alpha(alpha)
    min_count = check_real(min_count, "min_count", low=0.0)
    counts = jnp.asarray(counts)
    if counts.ndim < 2 or counts.shape[-2] < 2:
        raise ParameterError(f"counts must have shape (..., K, n) with K >= 2 splits, got "
                             f"{counts.shape}")
    if not jnp.issubdtype(counts.dtype, jnp.integer):
        raise ParameterError(f"counts must be integer outcome counts, got dtype {counts.dtype}")
    return _dispersion(counts, shots, alpha, min_count)


@partial(jax.jit, static_argnums=(1, 2, 3))
def _dispersion(counts, shots, alpha, min_count):
    k = counts.shape[-2]
    c = counts.astype(jnp.float32)
    total = k * shots
    p = c.sum(-2) / total
    var = shots * p * (1.0 - p)
    use = (shots * p >= min_count) & (shots * (1.0 - p) >= min_count)
    ok_range = jnp.all((counts >= 0) & (counts <= shots), axis=(-2, -1))
    dev = jnp.sum((c - shots * p[..., None, :]) ** 2, axis=-2)
    t = jnp.sum(jnp.where(use, dev / jnp.where(use, var, 1.0), 0.0), -1) * (total - 1) / total
    dof = (k - 1) * jnp.sum(use, -1)
    cdf = chi2.cdf(t, jnp.maximum(dof, 1))
    p_value = jnp.where(dof > 0, jnp.minimum(1.0, 2 * jnp.minimum(cdf, 1.0 - cdf)), 1.0)
    reject = (p_value <= alpha) | ~ok_range
    return ShotCheck(reject, t, dof, p_value)


# ---- (c) audit rounds -------------------------------------------------------------------
def audit_schedule(key, rounds: int, n_clients: int, fraction: float):
    """Which (round, client) replies are audits: ``(rounds, n_clients)`` bool, each
    ``True`` independently with probability ``fraction`` (secret to the clients)."""
    key = check_key(key, "audit_schedule")
    rounds = check_int(rounds, "rounds", minimum=0)
    n_clients = check_positive_int(n_clients, "n_clients")
    fraction = check_probability(fraction, "audit fraction")
    return jax.random.uniform(key, (rounds, n_clients)) < fraction


class AuditCheck(NamedTuple):
    """Result of :func:`audit`: ``reject`` (bool) and ``p_value``."""

    reject: jax.Array
    p_value: jax.Array


def audit(update, reference, alpha: float, *, rtol: float = 1e-4) -> AuditCheck:
    """Check (c): compares a client's reply on an audit round with the server's own.

    Args:
        update: the client's update on the audit round, ``(dim,)`` (or ``(m, dim)`` for
            ``m`` clients audited on the same round).
        reference: what honest clients return: ``(1, dim)`` for a deterministic client
            (the reply must match to relative tolerance ``rtol``: level 0), or
            ``(M, dim)`` independent simulated honest replies (finite shots), for the
            Monte Carlo rank test of exact level ``alpha`` (needs ``M + 1 >= 1 / alpha``).
        alpha: false-positive level in (0, 1).

    The rank statistic is the standardised distance ``sum_j (u_j - mu_j)^2 / s_j^2`` to
    the mean and spread of the pooled set {reply} + reference, so the reply and the
    reference replies are exchangeable under ``H0``; ``p = (1 + #{reference >= reply}) /
    (M + 1)``.
    """
    alpha = check_alpha(alpha)
    rtol = check_real(rtol, "rtol", low=0.0)
    update, reference = jnp.asarray(update), jnp.asarray(reference)
    single = update.ndim == 1
    u = update[None] if single else update
    if reference.ndim != 2 or u.ndim != 2 or reference.shape[1] != u.shape[1]:
        raise ParameterError(f"update (dim,) or (m, dim) and reference (M, dim) must agree, "
                             f"got {update.shape} and {reference.shape}")
    m_ref = reference.shape[0]
    if m_ref == 1:
        g = reference[0]
        err = jnp.linalg.norm(u - g, axis=1)
        reject = err > rtol * jnp.maximum(jnp.linalg.norm(g), 1.0)
        p = jnp.where(reject, 0.0, 1.0)
    else:
        if (m_ref + 1) * alpha < 1:
            raise ParameterError(f"an audit at alpha = {alpha} needs >= {math.ceil(1 / alpha) - 1}"
                                 f" reference replies, got {m_ref}")

        def one(v):
            pool = jnp.concatenate([v[None], reference])
            mu, s2 = pool.mean(0), pool.var(0)
            s2 = jnp.maximum(s2, jnp.finfo(s2.dtype).tiny)
            d = jnp.sum((pool - mu) ** 2 / s2, axis=1)
            return (1.0 + jnp.sum(d[1:] >= d[0])) / (m_ref + 1.0)

        p = jax.vmap(one)(u)
        reject = p <= alpha
    reject = reject | ~jnp.all(jnp.isfinite(u), axis=1)
    if single:
        return AuditCheck(reject[0], p[0])
    return AuditCheck(reject, p)


def catch_probability(power, fraction, rounds):
    """``1 - (1 - fraction * power)^rounds``: the chance that a client dishonest in every
    round is caught by audits within ``rounds`` rounds (``power``: per-audit detection
    probability)."""
    power = check_probability(power, "power")
    fraction = check_probability(fraction, "audit fraction")
    rounds = check_int(rounds, "rounds", minimum=0)
    return 1.0 - (1.0 - fraction * power) ** rounds
