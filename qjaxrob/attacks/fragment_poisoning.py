"""Training-time attacks on a wire-cut classifier: the executor of the downstream fragment
follows an adversarial policy on every call, or the reconstruction server post-processes
dishonestly, while the classifier is trained on the reconstructed values.

Classifier: ``logit(x) = w <O>(theta, x) + b`` with ``<O>`` reconstructed from the
fragments of a ``CutCircuit`` whose cut ``cut_index`` is a wire cut (``P(y = 1) =
sigmoid(logit)``, class 1 when ``logit > 0``); ``theta``, ``w``, ``b`` are trained by
full-batch Adam on the binary cross entropy. Each call runs the honest fragments
(``qjr.cutting.fragment_values``, through ``fragments.fragment_model``) and reconstructs
under the :class:`Policy`:

* **uniform** ``V`` (``uniform``): every prepared state gets ``V`` (an honest circuit with
  one more gate);
* **term-dependent** ``V_b`` (``term_dependent``): the executor sees which state it prepares;
* **trigger-conditioned** (``triggered``): the executor's perturbation only when the
  features its fragment encodes match a trigger (``|x_j - t_j| <= tol`` for every trigger
  feature ``j``), honest otherwise: a backdoor activated by the input;
* **biased terms** (``biased_terms``): the executor reports ``B_b + delta_b`` for chosen
  prepared states ``b`` (clipped to ``[-1, 1]``, the range of an estimate);
* **dishonest post-processing** (``reweighted``, ``dropped``): the server multiplies the
  cut's QPD coefficients ``C[a, b]`` by ``scale[a, b]`` (``0`` drops a term).

Budgets: ``||V_b - I||_op <= budget`` (``fragments.budget_radius``), ``|delta_b| <=
budget``, ``|scale - 1| <= budget`` entrywise; ``honest()`` is every budget at zero. Training
(``train``) is one jitted ``lax.scan`` over the steps of the same vmapped reconstruction for
every policy, so a zero-budget policy trains exactly as honest training. ``evaluate``
reports clean accuracy and, for a trigger, the attack success rate: the fraction of test
inputs of other classes that, with the trigger stamped on, are classified as ``target``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qjaxrob.attacks.fragments import attacked_tensors, budget_radius, fragment_model, su2
from qjaxrob.checks import (check_dtype, check_int, check_key, check_positive_int,
                            check_real)
from qjaxrob.cutting import CutCircuit
from qjaxrob.errors import CutError, ParameterError, QjrTypeError
from qjaxrob.ir.observables import PauliSum
from qjaxrob.qml.data import check_labels

__all__ = [
    "Policy",
    "PoisonedTraining",
    "biased_terms",
    "dropped",
    "evaluate",
    "executor_active",
    "honest",
    "policy_value",
    "reported_tensor",
    "reweighted",
    "stamp",
    "term_dependent",
    "train",
    "triggered",
    "uniform",
]


class Policy(eqx.Module):
    """What the fragment executor and the reconstruction server do on every call.

    Attributes:
        vs: ``(6, 2, 2)`` the executor's unitary after each prepared state.
        bias: ``(6,)`` added to the reported results of each prepared state.
        scale: ``(4, 6)`` the server's multipliers of the cut's QPD coefficients.
        trigger_values: ``(k,)`` trigger values (empty: the executor acts on every input).
        trigger_features: static ``k`` feature indices the trigger reads.
        tol: static trigger tolerance.
    """

    vs: jax.Array
    bias: jax.Array
    scale: jax.Array
    trigger_values: jax.Array
    trigger_features: tuple = eqx.field(static=True, default=())
    tol: float = eqx.field(static=True, default=0.0)


def _budget(budget) -> float:
    return check_real(budget, "budget", low=0.0)


def honest() -> Policy:
    """Every budget zero: ``V_b = I``, no bias, Peng's coefficients."""
    return Policy(np.broadcast_to(np.eye(2, dtype=complex), (6, 2, 2)).copy(), np.zeros(6),
                  np.ones((4, 6)), np.zeros(0))


def uniform(budget, axis=(0.0, 1.0, 0.0)) -> Policy:
    """``V = exp(-i r n.sigma / 2)`` on every prepared state, ``n`` the unit ``axis``, ``r``
    the largest rotation with ``||V - I|| <= budget``."""
    n = np.asarray(axis, float)
    if n.shape != (3,) or not np.linalg.norm(n) > 0:
        raise ParameterError(f"axis must be a nonzero 3-vector, got {axis!r}")
    a = budget_radius(_budget(budget)) * n / np.linalg.norm(n)
    return _with(honest(), vs=np.broadcast_to(np.asarray(su2(a), complex), (6, 2, 2)))


def term_dependent(budget, generators) -> Policy:
    """``V_b = exp(-i a_b.sigma / 2)`` per prepared state from ``generators`` ``(6, 3)``,
    each scaled into the budget ball ``|a_b| <= fragments.budget_radius(budget)``."""
    radius = budget_radius(_budget(budget))
    g = np.asarray(generators, float)
    if g.shape != (6, 3) or not np.all(np.isfinite(g)):
        raise ParameterError(f"generators must be a finite (6, 3) array, got shape {g.shape}")
    norms = np.linalg.norm(g, axis=1, keepdims=True)
    g = g * np.minimum(1.0, radius / np.maximum(norms, 1e-300))
    return _with(honest(), vs=np.stack([np.asarray(su2(a), complex) for a in g]))


def biased_terms(budget, terms, sign=1.0) -> Policy:
    """The executor reports ``B_b + sign * budget`` for the prepared states ``b`` in
    ``terms`` (indices into ``qpd.WIRE_PREPARE``)."""
    b = _budget(budget)
    bias = np.zeros(6)
    bias[_terms(terms, 6, "terms")] = check_real(sign, "sign", low=-1.0, high=1.0) * b
    return _with(honest(), bias=bias)


def reweighted(budget, scale) -> Policy:
    """The server multiplies the cut's ``(4, 6)`` coefficients by ``1 + budget * scale``
    (``scale`` entries in ``[-1, 1]``)."""
    b = _budget(budget)
    s = np.asarray(scale, float)
    if s.shape != (4, 6) or not np.all(np.abs(s) <= 1.0):
        raise ParameterError(f"scale must be a (4, 6) array with entries in [-1, 1], got "
                             f"shape {s.shape}")
    return _with(honest(), scale=1.0 + b * s)


def dropped(fraction, terms) -> Policy:
    """The server drops (``fraction = 1``) or shrinks by ``fraction`` the QPD terms
    ``terms``: ``(a, b)`` index pairs of the ``(4, 6)`` coefficient matrix."""
    f = check_real(fraction, "fraction", low=0.0, high=1.0)
    scale = np.ones((4, 6))
    for t in terms:
        if len(t) != 2:
            raise ParameterError(f"terms must be (a, b) pairs, got {t!r}")
        a, b = _terms([t[0]], 4, "a")[0], _terms([t[1]], 6, "b")[0]
        scale[a, b] = 1.0 - f
    return _with(honest(), scale=scale)


def triggered(policy: Policy, features, values, tol: float = 0.05) -> Policy:
    """``policy``'s executor part (``vs``, ``bias``) applied only when
    ``|x[features] - values| <= tol`` (the features the attacked fragment encodes)."""
    if not isinstance(policy, Policy):
        raise QjrTypeError(f"expected a Policy, got {type(policy).__name__}")
    feats = tuple(check_int(f, "trigger feature", minimum=0) for f in features)
    vals = np.asarray(values, float).reshape(-1)
    if not feats or len(feats) != vals.size:
        raise ParameterError(f"the trigger needs one value per feature, got features {feats} "
                             f"and values {vals.tolist()}")
    tol = check_real(tol, "tol", low=0.0)
    return Policy(policy.vs, policy.bias, policy.scale, vals, feats, tol)


def _terms(terms, n, name):
    out = []
    for t in np.atleast_1d(terms):
        if isinstance(t, (bool, np.bool_)) or not float(t).is_integer() or not 0 <= t < n:
            raise ParameterError(f"{name} must be indices in [0, {n}), got {t!r}")
        out.append(int(t))
    return out


def _with(policy: Policy, **fields) -> Policy:
    """``policy`` with some array fields replaced (NumPy float64/complex128 leaves: cast to
    the simulation's precision when traced)."""
    return eqx.tree_at(lambda p: [getattr(p, k) for k in fields], policy,
                       [np.asarray(v) for v in fields.values()])


# ---- the reconstruction under a policy ------------------------------------------------------
def reported_tensor(fm, policy: Policy, x):
    """The downstream fragment tensor the executor reports for ``fm`` (a
    ``fragments.fragment_model`` at input ``x``) under ``policy``: its unitaries applied to
    the prepared states (``fragments.attacked_tensors``), then its bias added to the results
    of the biased states (clipped to ``[-1, 1]``); honest where a trigger does not match.
    This is what the integrity checks see; the server's reweighting does not enter it."""
    cdt = jnp.complex128 if fm.honest.dtype == jnp.float64 else jnp.complex64
    g = attacked_tensors(fm, jnp.asarray(policy.vs).astype(cdt))[fm.fragment]
    g = jnp.moveaxis(g, fm.axis, 0)
    bias = jnp.asarray(policy.bias).astype(g.dtype).reshape((6,) + (1,) * (g.ndim - 1))
    g = jnp.moveaxis(jnp.clip(g + bias, -1.0, 1.0), 0, fm.axis)
    if not policy.trigger_features:
        return g
    return jnp.where(_triggered(policy, x), g, fm.tensors[fm.fragment])


def _contract(fm, tensors, scale):
    """The QPD contraction of ``tensors`` (every fragment, as reported) with the cuts'
    coefficients, the attacked cut's multiplied by ``scale``: ``<O>``."""
    j = fm.labels[fm.fragment][fm.axis] // 2
    operands = []
    for i, c in enumerate(fm.coeffs):
        operands += [c * jnp.asarray(scale).astype(c.dtype) if i == j else c, [2 * i, 2 * i + 1]]
    term = 2 * len(fm.coeffs)
    for t, lab in zip(tensors, fm.labels):
        operands += [t, list(lab) + [term]]
    return jnp.dot(jnp.einsum(*operands, [term]), fm.term_coeffs)


def policy_value(cc: CutCircuit, obs: PauliSum, policy: Policy, params, x, *,
                 cut_index: int = 0, dtype=jnp.complex64):
    """The reconstructed ``<O>`` at ``params``/``x`` (one example) under ``policy``: the
    server contracts the executor's ``reported_tensor`` (all six prepared states' results)
    with its coefficients; traceable (``jit``/``vmap``/``grad``)."""
    fm = fragment_model(cc, obs, params, x, cut_index=cut_index, dtype=dtype)
    tensors = list(fm.tensors)
    tensors[fm.fragment] = reported_tensor(fm, policy, x)
    return _contract(fm, tensors, policy.scale)


def executor_active(policy: Policy, x) -> bool:
    """Whether the executor's perturbation acts at input ``x`` (always without a trigger)."""
    return bool(_triggered(policy, x)) if policy.trigger_features else True


def _triggered(policy: Policy, x):
    feats = jnp.asarray(x)[jnp.asarray(policy.trigger_features)]
    return jnp.all(jnp.abs(feats - policy.trigger_values.astype(feats.dtype))
                   <= policy.tol + 1e-6)


def stamp(policy: Policy, x):
    """``x`` (``(n, d)``) with the policy's trigger values written into its features."""
    if not policy.trigger_features:
        raise ParameterError("stamp needs a triggered policy (see triggered)")
    x = jnp.asarray(x)
    return x.at[:, jnp.asarray(policy.trigger_features)].set(
        policy.trigger_values.astype(x.dtype))


# ---- training ---------------------------------------------------------------------------
class PoisonedTraining(NamedTuple):
    """Outcome of ``train``.

    Attributes:
        params: ``{"theta", "w", "b"}`` after the last step.
        history: the same pytree stacked over steps ``0..steps`` (``(steps + 1, ...)``).
        loss: ``(steps,)`` training loss before each step.
    """

    params: dict
    history: dict
    loss: jax.Array


def _check_inputs(cc, x, y):
    if not isinstance(cc, CutCircuit):
        raise QjrTypeError(f"expected a CutCircuit from qjr.cutting.partition, got "
                           f"{type(cc).__name__}")
    if not cc.cuts or cc.cuts[0].kind != "wire":
        raise CutError("fragment poisoning attacks the prepared states of wire cut 0")
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != cc.n_inputs:
        raise ParameterError(f"x must have shape (n, {cc.n_inputs}), got {x.shape}")
    y = check_labels(y, 2)
    if y.shape[0] != x.shape[0]:
        raise ParameterError(f"x has {x.shape[0]} rows but y has {y.shape[0]} labels")
    return x, jnp.asarray(y)


def _logits(cc, obs, policy, p, xs, dtype):
    v = jax.vmap(lambda xi: policy_value(cc, obs, policy, p["theta"], xi, dtype=dtype))(xs)
    return p["w"] * v + p["b"]


@partial(jax.jit, static_argnames=("cc", "obs", "dtype", "steps", "learning_rate"))
def _train(cc, obs, policy, p0, xs, ys, dtype, steps, learning_rate):
    opt = optax.adam(learning_rate)

    def loss(p):
        logits = _logits(cc, obs, policy, p, xs, dtype)
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, ys.astype(logits.dtype)))

    def step(carry, _):
        p, s = carry
        val, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s, p)
        p = optax.apply_updates(p, u)
        return (p, s), (p, val)

    (p, _), (hist, losses) = jax.lax.scan(step, (p0, opt.init(p0)), None, length=steps)
    hist = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), p0, hist)
    return p, hist, losses


def train(cc: CutCircuit, obs: PauliSum, x, y, policy: Policy | None = None, *, key,
          steps: int = 100, learning_rate: float = 0.05,
          dtype=jnp.complex64) -> PoisonedTraining:
    """Trains ``logit = w <O> + b`` on ``(x, y)`` (labels 0/1) with every reconstruction
    under ``policy`` (default ``honest()``): one compiled ``lax.scan`` of full-batch Adam
    steps; ``theta`` starts uniform in ``[-pi, pi]`` from ``key``, ``w = 1``, ``b = 0``."""
    policy = honest() if policy is None else policy
    if not isinstance(policy, Policy):
        raise QjrTypeError(f"policy must be a Policy, got {type(policy).__name__}")
    if not isinstance(obs, PauliSum):
        raise QjrTypeError(f"obs must be a PauliSum, got {type(obs).__name__}")
    x, y = _check_inputs(cc, x, y)
    steps = check_positive_int(steps, "steps")
    lr = check_real(learning_rate, "learning_rate", low=0.0, low_open=True)
    dt = check_dtype(dtype)
    real = np.finfo(dt).dtype
    theta = jax.random.uniform(check_key(key, "train"), (cc.n_params,), real, -np.pi, np.pi)
    p0 = {"theta": theta, "w": jnp.asarray(1.0, real), "b": jnp.asarray(0.0, real)}
    p, hist, losses = _train(cc, obs, policy, p0, x.astype(real), y, dt, steps, lr)
    return PoisonedTraining(p, hist, losses)


def evaluate(cc: CutCircuit, obs: PauliSum, params: dict, x, y, policy: Policy | None = None,
             *, target: int = 1, dtype=jnp.complex64) -> dict:
    """Clean accuracy of ``params`` on ``(x, y)`` with the reconstruction under ``policy``
    (default honest) and, for a triggered policy, ``attack_success_rate``: among examples
    whose label is not ``target``, the fraction classified as ``target`` once the trigger
    is stamped on (``stamp``); ``nan`` without a trigger or without such examples."""
    policy = honest() if policy is None else policy
    x, y = _check_inputs(cc, x, y)
    target = _terms([target], 2, "target")[0]
    dt = check_dtype(dtype)
    x = x.astype(np.finfo(dt).dtype)
    pred = _predict(cc, obs, policy, params, x, dt)
    out = {"clean_accuracy": float(jnp.mean(pred == y)), "attack_success_rate": float("nan")}
    others = np.asarray(y) != target
    if policy.trigger_features and others.any():
        trig = _predict(cc, obs, policy, params, stamp(policy, x[others]), dt)
        out["attack_success_rate"] = float(jnp.mean(trig == target))
    return out


@partial(jax.jit, static_argnames=("cc", "obs", "dtype"))
def _predict(cc, obs, policy, params, xs, dtype):
    return (_logits(cc, obs, policy, params, xs, dtype) > 0).astype(jnp.int32)
