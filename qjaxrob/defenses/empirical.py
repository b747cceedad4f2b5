"""Empirical check of certificates: attack every certified example inside its certified
radius, confirm none is broken, and measure the certified-vs-empirical gap.

Layering: ``defenses`` does not import ``attacks`` (only adversarial training does), so the
gradient attack is passed in: ``pgd`` is any function with the signature of
``qjr.attacks.pgd(loss_fn, x, eps, *, steps, step_size, norm, key, bounds, targeted)``
(PGD of Madry et al., ICLR 2018, ascending ``loss_fn``).

State-level certificates (:func:`state_check`): the classifier is ``y_k(sigma) =
Tr(A_k sigma)`` with Heisenberg effects ``A_k`` of a (noisy) channel + measurement, the
clean inputs are pure encoded states ``psi``, and the margin is
``y_A(sigma) - max_{B != A} y_B(sigma)`` (``A`` the clean prediction). Two attacks, the
stronger (lower margin) counts:

* mixing: ``sigma = (1 - t) |psi><psi| + t |phi><phi|`` with ``phi`` perpendicular to ``psi``,
  the minimising eigenvector of ``P (A_A - A_B) P`` (``P`` the projector off ``psi``) for
  each ``B``; trace distance and infidelity to ``psi`` are both exactly ``t``;
* pure: ``|psi'> = cos(theta) |psi> + sin(theta) |phi>`` with ``phi`` free (normalised, made
  perpendicular to ``psi``) and ``theta = theta_max sin^2(u)``, optimised by ``pgd`` from
  the mixing direction and random restarts; trace distance ``sin(theta)``, infidelity
  ``sin^2(theta)``.

Certificates: ``"trace"`` ((p_A - p_B)/2), ``"channel_trace"`` (spread of ``A_A - A_B``),
``"dp"`` (Lecuyer condition with Guan's ``kappa``), all trace distances; ``"fidelity"``
(Weber et al.'s infidelity radius). For each, the attack runs at the certified radius times
``1 - 1e-6`` (certificates are strict), and a bisection over the budget finds the smallest
budget at which the attack flips the class (margin below ``-tol``): the empirical radius (1
when nothing up to the whole space flips). A certificate is broken when the margin at the
radius is below ``-tol`` or the bisection found a flip inside the radius.

Smoothing (:func:`smoothing_check`): the smoothed classifier of
:mod:`qjaxrob.defenses.smoothing` is attacked with ``pgd`` (``norm="l2"``) on the
soft-smoothed loss ``-log mean_i softmax(logits(x' + sigma z_i))[c_A]`` over fixed draws
``z_i`` (SmoothAdv, Salman et al., NeurIPS 2019), and ``g(x_adv)`` is re-estimated with
fresh draws; broken means the certified class is *significantly* (Clopper-Pearson upper
bound < 1/2) not the majority.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.checks import check_key, check_positive_int, check_real
from qjaxrob.defenses.certify import (
    channel_trace_radius,
    dp_radius,
    hypothesis_testing_radius,
    top_two,
    trace_distance_radius,
)
from qjaxrob.defenses.qdp import check_effects, kappa
from qjaxrob.defenses.smoothing import SmoothingCertificate, clopper_pearson_lower, noise_counts
from qjaxrob.errors import ParameterError

__all__ = ["CERTIFICATES", "state_check", "smoothing_check", "summarize"]

CERTIFICATES = ("trace", "channel_trace", "dp", "fidelity")
"""State-level certificates checked by :func:`state_check` (``fidelity`` is an infidelity
radius, the others trace distances)."""

_SHRINK = 1 - 1e-6


def _margin(effects, rho, a):
    """``y_A - max_{B != A} y_B`` for a density matrix ``rho`` and class ``a``."""
    y = jnp.einsum("kij,ji->k", effects, rho).real
    others = jnp.where(jnp.arange(y.shape[0]) == a, -jnp.inf, y)
    return y[a] - jnp.max(others)


def _pure_margin(effects, psi, a):
    return _margin(effects, jnp.outer(psi, jnp.conj(psi)), a)


def _mixing_directions(effects, psi, a):
    """For every class ``B``, the unit ``phi`` perpendicular to ``psi`` minimising
    ``<phi|A_A - A_B|phi>``; shape ``(K, d)`` (row ``A`` is unused)."""
    d = psi.shape[0]
    proj = jnp.eye(d, dtype=psi.dtype) - jnp.outer(psi, jnp.conj(psi))
    diff = effects[a][None] - effects
    diff = (diff + jnp.conj(jnp.swapaxes(diff, -1, -2))) / 2
    shift = 4.0 * jnp.outer(psi, jnp.conj(psi))  # pushes psi's direction to the top
    m = proj @ diff @ proj + shift
    _, vecs = jnp.linalg.eigh(m)
    return vecs[..., 0]


def _mixing_margin(effects, psi, a, t):
    rho = jnp.outer(psi, jnp.conj(psi))
    phis = _mixing_directions(effects, psi, a)

    def one(phi):
        return _margin(effects, (1 - t) * rho + t * jnp.outer(phi, jnp.conj(phi)), a)

    return jnp.min(jax.vmap(one)(phis))


def _pure_state(v, psi, theta_max):
    d = psi.shape[0]
    phi = (v[:d] + 1j * v[d:2 * d]).astype(psi.dtype)
    phi = phi - jnp.vdot(psi, phi) * psi
    nrm = jnp.sqrt(jnp.maximum(jnp.vdot(phi, phi).real, jnp.finfo(v.dtype).tiny))
    theta = theta_max * jnp.sin(v[2 * d]) ** 2
    return jnp.cos(theta) * psi + jnp.sin(theta) * phi / nrm


def _pure_attack_margin(effects, psi, a, theta_max, key, pgd, restarts, steps, step_size):
    d = psi.shape[0]
    real = jnp.finfo(psi.dtype).dtype

    def loss(v):
        return -_pure_margin(effects, _pure_state(v, psi, theta_max), a)

    phis = _mixing_directions(effects, psi, a)
    worst = jnp.argmin(jax.vmap(lambda p: _pure_margin(effects, p, a))(phis)
                       + jnp.where(jnp.arange(phis.shape[0]) == a, jnp.inf, 0.0))
    start = jnp.concatenate([phis[worst].real, phis[worst].imag]).astype(real)
    rand = jax.random.normal(key, (restarts - 1, 2 * d), real)
    starts = jnp.concatenate([start[None], rand], axis=0)
    starts = jnp.concatenate([starts, jnp.full((restarts, 1), jnp.pi / 2, real)], axis=1)

    def run(v0):
        v = pgd(loss, v0, 1e6, steps=steps, step_size=step_size, norm="l2")
        return -loss(v)

    return jnp.min(jax.vmap(run)(starts))


def _attack_margin(effects, psi, a, budget, kind_infidelity, key, pgd, restarts, steps,
                   step_size):
    """Lowest margin of both attacks within ``budget`` (trace distance, or infidelity)."""
    theta_max = jnp.where(kind_infidelity, jnp.arcsin(jnp.sqrt(budget)), jnp.arcsin(budget))
    mix = _mixing_margin(effects, psi, a, budget)
    pure = _pure_attack_margin(effects, psi, a, theta_max, key, pgd, restarts, steps,
                               step_size)
    return jnp.minimum(mix, pure)


def _probe(attack, at, top, bottom, bisections, flips):
    """One traced ``attack(budget) -> result`` evaluated at ``at``, then at ``top``, then
    ``bisections`` times bisecting ``[bottom, top]`` for the smallest flipping budget
    (``flips(result)``). Returns ``(result at `at`, flips at top, smallest flipping
    budget found)``; one ``fori_loop`` so the attack is traced once."""

    def body(i, carry):
        first, flip_top, lo, hi = carry
        budget = jnp.where(i == 0, at, jnp.where(i == 1, top, (lo + hi) / 2))
        res = attack(budget)
        f = flips(res)
        first = jax.tree_util.tree_map(lambda new, old: jnp.where(i == 0, new, old), res, first)
        flip_top = jnp.where(i == 1, f, flip_top)
        bisect = i >= 2
        lo = jnp.where(bisect & ~f, budget, lo)
        hi = jnp.where(bisect & f, budget, hi)
        return first, flip_top, lo, hi

    init = (jax.eval_shape(attack, at), jnp.zeros((), bool), bottom, top)
    init = (jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), init[0]),) + init[1:]
    first, flip_top, _, hi = jax.lax.fori_loop(0, bisections + 2, body, init)
    return first, flip_top, hi


@eqx.filter_jit
def _state_check(effects, states, keys, tol, pgd, restarts, steps, step_size, bisections):
    k = kappa(effects)
    y = jnp.einsum("bi,kij,bj->bk", jnp.conj(states), effects, states).real
    y = jnp.clip(y, 0.0, 1.0)
    pred, pa, pb = top_two(y)
    radii = jnp.stack([trace_distance_radius(y), channel_trace_radius(effects, y),
                       dp_radius(y, k), hypothesis_testing_radius(pa, pb)], axis=-1)
    infid = jnp.array([False, False, False, True])

    def per_example(psi, a, r, key):
        def per_cert(radius, is_inf, ck):
            def attack(budget):
                return _attack_margin(effects, psi, a, budget, is_inf, ck, pgd, restarts,
                                      steps, step_size)

            return _probe(attack, radius * _SHRINK, jnp.ones_like(radius),
                          jnp.zeros_like(radius), bisections, lambda m: m < -tol)

        cks = jax.random.split(key, len(CERTIFICATES))
        return jax.vmap(per_cert)(r, infid, cks)

    at_radius, flips_max, hi = jax.vmap(per_example)(states, pred, radii, keys)
    empirical = jnp.where(flips_max, hi, 1.0)
    broken = (radii > 0) & ((at_radius < -tol) | (empirical < radii * _SHRINK))
    return pred, radii, at_radius, empirical, broken


def state_check(key, effects, states, *, pgd, restarts: int = 3, steps: int = 40,
                step_size: float = 0.1, bisections: int = 12, tol=None) -> list[dict]:
    """Attacks every state-level certificate of every example (module docstring).

    Args:
        key: PRNG key for the random restarts.
        effects: ``(K, d, d)`` Heisenberg effects of the classifier
            (:func:`qjaxrob.defenses.channel_effects`).
        states: ``(B, d)`` clean pure input states (e.g.
            :func:`qjaxrob.defenses.tradeoff.encoded_states`).
        pgd: the gradient attack (``qjr.attacks.pgd``).
        restarts, steps, step_size: pure-state attack settings (restart 0 starts from the
            mixing direction).
        bisections: halvings of the budget interval [0, 1] for the empirical radius.
        tol: margin tolerance for "broken" (default ``1e3 * eps`` of the dtype).

    Returns:
        One dict per (example, certificate): ``example, certificate, prediction,
        certified_radius, empirical_radius, gap (empirical - certified),
        margin_at_radius, broken``. ``empirical_radius`` is within ``2**-bisections`` above
        the smallest flipping budget the attacks found.
    """
    key = check_key(key, "state_check")
    states, shape = jnp.asarray(states), np.shape(effects)
    if len(shape) != 3 or states.ndim != 2 or states.shape[1] != shape[1]:
        raise ParameterError(
            f"effects must be (K, d, d) and states (B, d) with the same d, got "
            f"{shape} and {states.shape}"
        )
    effects = check_effects(effects)
    restarts = check_positive_int(restarts, "restarts")
    steps = check_positive_int(steps, "steps")
    bisections = check_positive_int(bisections, "bisections")
    step_size = check_real(step_size, "step_size", low=0.0, low_open=True)
    real = jnp.finfo(states.dtype).dtype
    tol = 1e3 * float(jnp.finfo(real).eps) if tol is None else check_real(tol, "tol", low=0.0)
    keys = jax.random.split(key, states.shape[0])
    pred, radii, at_r, emp, broken = (np.asarray(v) for v in _state_check(
        effects, states, keys, jnp.asarray(tol, real), pgd, restarts, steps,
        jnp.asarray(step_size, real), bisections))
    rows = []
    for b in range(states.shape[0]):
        for c, name in enumerate(CERTIFICATES):
            rows.append(dict(
                example=b, certificate=name, prediction=int(pred[b]),
                certified_radius=float(radii[b, c]), empirical_radius=float(emp[b, c]),
                gap=float(emp[b, c] - radii[b, c]), margin_at_radius=float(at_r[b, c]),
                broken=bool(broken[b, c]),
            ))
    return rows


def _soft_loss(logits_fn, zs, sigma, c):
    def loss(x):
        probs = jax.vmap(lambda z: jax.nn.softmax(logits_fn(x + sigma * z)))(zs)
        return -jnp.log(jnp.mean(probs[:, c]) + 1e-12)

    return loss


@eqx.filter_jit
def _smoothing_check(key, logits_fn, x, prediction, radius, sigma, max_radius, alpha, pgd,
                     n_noise, steps, n_eval, bisections, n_classes):
    def classify(xi):
        return jnp.argmax(logits_fn(xi))

    def per_example(xi, c, r, k):
        kz, ke = jax.random.split(k)
        zs = jax.random.normal(kz, (n_noise,) + xi.shape, xi.dtype)
        loss = _soft_loss(logits_fn, zs, sigma, jnp.maximum(c, 0))

        def attack(eps):
            x_adv = pgd(loss, xi, eps, steps=steps, step_size=2.5 * eps / steps, norm="l2")
            return noise_counts(ke, classify, x_adv, sigma, n_eval, n_classes)

        counts, flips_max, hi = _probe(attack, r * _SHRINK, max_radius, r, bisections,
                                       lambda cnt: jnp.argmax(cnt) != c)
        hits = counts[jnp.maximum(c, 0)]
        upper = 1 - clopper_pearson_lower(n_eval - hits, n_eval, alpha)
        broken = (c >= 0) & (r > 0) & (upper < 0.5)
        empirical = jnp.where(flips_max, hi, jnp.inf)
        return hits / n_eval, broken, empirical

    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(per_example)(x, prediction, radius, keys)


def smoothing_check(key, logits_fn, x, cert: SmoothingCertificate, sigma, *, pgd,
                    max_radius: float, n_noise: int = 32, steps: int = 20, n_eval: int = 1000,
                    bisections: int = 8, alpha: float = 0.001) -> list[dict]:
    """Attacks the smoothing certificates ``cert`` (from ``jax.vmap(certify)`` over ``x``).

    Args:
        key: PRNG key (noise draws for the attack and the re-estimation).
        logits_fn: ``x -> logits`` of the base classifier for ONE example (its argmax is
            the base classifier that was certified).
        x: ``(B, n_features)`` the certified examples.
        cert: their :class:`~qjaxrob.defenses.smoothing.SmoothingCertificate` (batched).
        sigma: the smoothing noise level used to certify.
        pgd: the gradient attack (``qjr.attacks.pgd``), run with ``norm="l2"``.
        max_radius: the largest L2 budget tried for the empirical radius.
        n_noise: fixed noise draws in the attacked soft-smoothed loss.
        steps: PGD steps (step size ``2.5 eps / steps``).
        n_eval: fresh draws to re-estimate the smoothed class at an adversarial point.
        bisections: halvings of ``[certified radius, max_radius]`` for the empirical radius.
        alpha: significance of "broken" (upper confidence bound of ``p_A`` below 1/2).

    Returns:
        One dict per example: ``example, prediction, certified_radius, empirical_radius``
        (``inf`` when no flip up to ``max_radius``), ``gap``, ``p_a_at_radius`` (estimated
        ``P(c_A)`` at the attack point inside the radius) and ``broken``. Abstained examples
        (prediction -1) have radius 0 and are never broken.
    """
    key = check_key(key, "smoothing_check")
    x = jnp.asarray(x)
    if x.ndim != 2 or jnp.shape(cert.radius) != (x.shape[0],):
        raise ParameterError(
            f"x must be (B, n_features) with one certificate per example, got x {x.shape} and "
            f"radius {jnp.shape(cert.radius)}"
        )
    check_real(sigma, "sigma", low=0.0, low_open=True)
    max_radius = check_real(max_radius, "max_radius", low=0.0, low_open=True)
    n_classes = int(cert.counts.shape[-1])
    real = x.dtype
    p_at, broken, emp = (np.asarray(v) for v in _smoothing_check(
        key, logits_fn, x, jnp.asarray(cert.prediction), jnp.asarray(cert.radius, real),
        jnp.asarray(sigma, real), jnp.asarray(max_radius, real), jnp.asarray(alpha, real), pgd,
        check_positive_int(n_noise, "n_noise"), check_positive_int(steps, "steps"),
        check_positive_int(n_eval, "n_eval"), check_positive_int(bisections, "bisections"),
        n_classes))
    radius = np.asarray(cert.radius, np.float64)
    pred = np.asarray(cert.prediction)
    return [dict(example=b, prediction=int(pred[b]), certified_radius=float(radius[b]),
                 empirical_radius=float(emp[b]), gap=float(emp[b] - radius[b]),
                 p_a_at_radius=float(p_at[b]), broken=bool(broken[b]))
            for b in range(x.shape[0])]


def summarize(rows: list[dict]) -> list[dict]:
    """Per certificate (``"smoothing"`` for :func:`smoothing_check` rows): examples with a
    positive certified radius, how many were broken, mean certified and empirical radius
    and mean gap over those examples (finite empirical radii only)."""
    out = {}
    for r in rows:
        if r["certified_radius"] <= 0:
            continue
        s = out.setdefault(r.get("certificate", "smoothing"),
                           dict(certified=0, broken=0, certified_radii=[], gaps=[], emp=[]))
        s["certified"] += 1
        s["broken"] += int(r["broken"])
        s["certified_radii"].append(r["certified_radius"])
        if np.isfinite(r["empirical_radius"]):
            s["gaps"].append(r["gap"])
            s["emp"].append(r["empirical_radius"])
    return [dict(certificate=name, certified=s["certified"], broken=s["broken"],
                 mean_certified_radius=float(np.mean(s["certified_radii"])),
                 mean_empirical_radius=float(np.mean(s["emp"])) if s["emp"] else float("inf"),
                 mean_gap=float(np.mean(s["gaps"])) if s["gaps"] else float("inf"))
            for name, s in out.items()]
