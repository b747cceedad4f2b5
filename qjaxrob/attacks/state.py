"""State-level evasion: a learned unitary ``W(phi)`` applied right after the encoding.

Quantum adversarial machine learning (Lu, Duan, Deng, PRR 2, 033212, 2020; Liu & Wittek, PRA
101, 062331, 2020) perturbs the *encoded state* ``|psi(x)>`` rather than the classical
features, so robustness can be compared across encodings independently of the feature
scale. The budget is the infidelity ``1 - |<psi|W psi>|^2 <= budget`` (``budget`` in
``[0, 1]``), the quantity of the hypothesis-testing certificate of Weber et al. (npj QI 7,
76, 2021): a classifier with class probabilities ``p_A, p_B`` is robust for all states with
``1 - F < 1/2 (1 - sqrt(p_A p_B) - sqrt((1 - p_A)(1 - p_B)))``.

Two perturbations, both ``W = I`` at ``phi = 0``:

* ``perturbation="circuit"`` (default): ``W(phi)`` (``perturbation_circuit``) is ``RX RY RZ``
  on every wire, then (``entangling=True``) ``RXX RYY RZZ`` on every neighbouring pair
  ``(q, q+1)``; ``3 n + 3 (n - 1)`` parameters. Local plus nearest-neighbour rotations
  cannot reach every nearby state, so the flipping perturbation it finds can be far from
  the minimal one.
* ``perturbation="unitary"``: fully expressive, ``W = exp(-i H(phi))`` with ``H`` any
  Hermitian matrix over all wires (``near_identity_unitary``; ``4**n`` parameters, for
  ``n <= MAX_UNITARY_QUBITS``). ``W |psi>`` reaches every state, so the attack can find the
  minimal flipping perturbation (for a classifier that thresholds ``<psi|P|psi>`` of a
  projector ``P`` at 1/2, infidelity ``1/2 - sqrt(p (1 - p))`` with ``p = <psi|P|psi>``,
  which is ``O(2^-n)`` for random states: Liu & Wittek). The perturbed state is fed to the
  model's ansatz through ``qjr.qml.encodings.state_encoding``, which prepares any state.

The attack maximises the
cross-entropy (or minimises it towards a target) with Adam on ``phi``; after every step
``phi`` is pulled back along the ray ``t phi`` (bisection on ``t in [0, 1]``, 20 halvings)
until the infidelity is within budget, and the best feasible iterate is returned.

The attacked classifier is the model's own ``VQC`` with ``W`` spliced in between its
encoding and its ansatz (``attacked_model``), so logits and readout stay exactly those of
``qjr.qml.VQC``. Pure-state models without data re-uploading only (``ParameterError``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qjaxrob.attacks import optimize
from qjaxrob.attacks.evasion import check_eps, check_model_labels, example_loss
from qjaxrob.checks import check_key, check_positive_int, check_real
from qjaxrob.ir.circuit import Circuit, param
from qjaxrob.errors import ParameterError, QjrTypeError
from qjaxrob.qml import VQC
from qjaxrob.qml.encodings import state_encoding
from qjaxrob.simulate import statevector

__all__ = [
    "MAX_UNITARY_QUBITS",
    "PERTURBATIONS",
    "StateAttackResult",
    "attacked_model",
    "infidelity",
    "near_identity_unitary",
    "perturbation_circuit",
    "state_attack",
    "state_attack_model",
    "state_robust_accuracy_curve",
]

_BISECTIONS = 20
PERTURBATIONS = ("circuit", "unitary")
MAX_UNITARY_QUBITS = 8


def perturbation_circuit(n_qubits: int, *, entangling: bool = True) -> Circuit:
    """The near-identity perturbation ``W(phi)`` (module docstring); ``W(0) = I``."""
    n = Circuit(n_qubits).n_qubits
    c, k = Circuit(n), 0
    for q in range(n):
        c = c.rx(q, param(k)).ry(q, param(k + 1)).rz(q, param(k + 2))
        k += 3
    if entangling:
        for q in range(n - 1):
            c = c.rxx(q, q + 1, param(k)).ryy(q, q + 1, param(k + 1)).rzz(q, q + 1, param(k + 2))
            k += 3
    return c


def _check_model(model) -> VQC:
    if not isinstance(model, VQC):
        raise QjrTypeError(f"state attacks need a qjr.qml.VQC, got {type(model).__name__}")
    enc_ops = model.encoding.circuit.ops
    if model.mixed or model.circuit.ops[: len(enc_ops)] != enc_ops:
        raise ParameterError(
            "state attacks need a pure-state VQC whose circuit is encoding + ansatz (no noise, "
            "no data re-uploading)")
    return model


def near_identity_unitary(phi):
    """``exp(-i H)`` for real ``phi`` of length ``d**2`` (``d = 2**n``): with ``M =
    phi.reshape(d, d)``, ``H = (M + M^T)/2 + i (M - M^T)/2``, which runs over every Hermitian
    ``d x d`` matrix (``H = 0`` at ``phi = 0``). Returns ``(d, d)`` complex."""
    phi = jnp.asarray(phi)
    d = math.isqrt(phi.shape[0])
    if phi.ndim != 1 or d * d != phi.shape[0]:
        raise ParameterError(f"phi must have length d**2, got shape {phi.shape}")
    m = phi.reshape(d, d)
    h = (m + m.T) / 2 + 1j * (m - m.T) / 2
    return jax.scipy.linalg.expm(-1j * h)


class _Shadow(NamedTuple):
    """What the attack evaluates: ``vqc``, the model with ``W`` spliced in (params: model's,
    then ``W``'s) when ``w`` is the circuit ``W``; with ``w = None`` (the unitary
    perturbation) the model's ansatz and readout behind ``state_encoding``."""

    vqc: VQC
    n_model: int
    n_phi: int
    w: Circuit | None


def _check_perturbation(perturbation, n):
    if perturbation not in PERTURBATIONS:
        raise ParameterError(f"perturbation must be one of {PERTURBATIONS}, got "
                             f"{perturbation!r}")
    if perturbation == "unitary" and n > MAX_UNITARY_QUBITS:
        raise ParameterError(f"the unitary perturbation is for n <= {MAX_UNITARY_QUBITS} "
                             f"qubits (a 2^n x 2^n exponential), got n = {n}")


def _shadow(model: VQC, entangling: bool, perturbation: str = "circuit") -> _Shadow:
    model = _check_model(model)
    n = model.encoding.n_qubits
    _check_perturbation(perturbation, n)
    n_model = model.circuit.n_params
    rest = Circuit(n, model.circuit.ops[len(model.encoding.circuit.ops):])
    if perturbation == "unitary":
        encoding, ansatz, w, n_phi = state_encoding(n), rest, None, 4**n
    else:
        w = perturbation_circuit(n, entangling=entangling)
        encoding, ansatz, n_phi = model.encoding, w.shift_params(n_model) + rest, w.n_params
    vqc = VQC(jax.random.key(0), encoding, ansatz, model.n_classes,
              readout=model.readout, readout_wires=model.readout_wires,
              post=model.weights is not None, scale=model.scale, dtype=model.dtype)
    return _Shadow(vqc, n_model, n_phi, w)


def _with_leaves(vqc: VQC, model: VQC, params) -> VQC:
    out = eqx.tree_at(lambda m: m.params, vqc, params)
    if model.weights is not None:
        out = eqx.tree_at(lambda m: (m.weights, m.bias), out, (model.weights, model.bias))
    return out


def _splice(shadow: _Shadow, model: VQC, phi):
    return _with_leaves(shadow.vqc, model,
                        jnp.concatenate([model.params, phi.astype(model.params.dtype)]))


def attacked_model(model: VQC, phi, *, entangling: bool = True) -> VQC:
    """``model`` with ``W(phi)`` between its encoding and its ansatz: a ``VQC`` with the same
    readout, weights and bias whose ``params`` are ``model.params`` followed by ``phi``
    (the circuit perturbation)."""
    shadow = _shadow(model, entangling)
    phi = jnp.asarray(phi)
    if phi.shape != (shadow.n_phi,):
        raise ParameterError(f"phi must have shape ({shadow.n_phi},), got {phi.shape}")
    return _splice(shadow, model, phi)


def _encoded(model: VQC, x):
    return statevector(model.encoding.circuit, None, model.encoding.features(x),
                       dtype=model.dtype)


def _infidelity(model: VQC, w: Circuit, x, phi):
    a = model.encoding.features(x)
    psi = statevector(model.encoding.circuit, None, a, dtype=model.dtype)
    chi = statevector(model.encoding.circuit + w, phi.astype(model.params.dtype), a,
                      dtype=model.dtype)
    return 1.0 - jnp.abs(jnp.vdot(psi, chi)) ** 2


def _unitary_states(model: VQC, x, phi):
    psi = _encoded(model, x)
    return psi, near_identity_unitary(phi.astype(model.params.dtype)).astype(psi.dtype) @ psi


def _perturbed_infidelity(shadow: _Shadow, model: VQC, x, phi):
    if shadow.w is not None:
        return _infidelity(model, shadow.w, x, phi)
    psi, chi = _unitary_states(model, x, phi)
    return 1.0 - jnp.abs(jnp.vdot(psi, chi)) ** 2


def _perturbed_logits(shadow: _Shadow, model: VQC, x, phi):
    if shadow.w is not None:
        return _splice(shadow, model, phi)(x)
    _, chi = _unitary_states(model, x, phi)
    return _state_logits(shadow, model, chi)


def _state_logits(shadow: _Shadow, model: VQC, chi):
    """The model's logits on the state ``chi`` (through ``state_encoding``)."""
    return _with_leaves(shadow.vqc, model, model.params)(jnp.concatenate([chi.real, chi.imag]))


def _rotation(psi, z, t_max):
    """The geodesic move of the unit state ``psi``: ``cos t psi + sin t v`` with ``v`` the
    unit part of ``z[:d] + i z[d:2d]`` orthogonal to ``psi`` and ``t = t_max * z[-1]``."""
    d = psi.shape[0]
    u = (z[:d] + 1j * z[d:2 * d]).astype(psi.dtype)
    v = u - jnp.vdot(psi, u) * psi
    norm = jnp.linalg.norm(v)
    v = v / jnp.maximum(norm, jnp.finfo(z.dtype).tiny)
    t = t_max * z[-1]
    return jnp.cos(t) * psi + jnp.sin(t) * v, v, t


def _rotation_generator(psi, v, t):
    """``phi`` of ``near_identity_unitary`` for ``H = i t (|v><psi| - |psi><v|)``, whose
    ``exp(-i H)`` maps ``psi`` to ``cos t psi + sin t v`` (``v`` a unit vector orthogonal to
    ``psi``). ``M = Re H + Im H``."""
    a = jnp.outer(v, psi.conj())
    h = 1j * t * (a - a.conj().T)
    return (h.real + h.imag).ravel()


def infidelity(model: VQC, x, phi, *, entangling: bool = True,
               perturbation: str = "circuit"):
    """``1 - |<psi(x)| W(phi) |psi(x)>|^2`` for the model's encoding and one example ``x``."""
    shadow = _shadow(model, entangling, perturbation)
    phi = jnp.asarray(phi)
    if phi.shape != (shadow.n_phi,):
        raise ParameterError(f"phi must have shape ({shadow.n_phi},), got {phi.shape}")
    return _perturbed_infidelity(shadow, model, x, phi)


class StateAttackResult(NamedTuple):
    """Attack outcome (per example; leading batch axis from ``state_attack_model``).

    Attributes:
        phi: the perturbation parameters ``(n_phi,)``.
        infidelity: ``1 - |<psi|W psi>|^2`` reached (``<= budget``).
        loss: the attacked example's cross-entropy (against the target if targeted).
        logits: the attacked model's logits ``(n_classes,)``.
    """

    phi: jax.Array
    infidelity: jax.Array
    loss: jax.Array
    logits: jax.Array


def _attack_one(model, shadow, x, y, target, key, budget, steps, step_size, init_scale):
    if shadow.w is None:
        return _attack_one_unitary(model, shadow, x, y, target, key, budget, steps, step_size)
    sign = 1.0 if target is None else -1.0
    label = y if target is None else target
    real = model.params.dtype

    def loss(phi):
        return example_loss(_splice(shadow, model, phi), label)(x)

    def infid(phi):
        return _infidelity(model, shadow.w, x, phi)

    def pull_back(phi):
        def body(_, lohi):
            lo, hi = lohi
            mid = (lo + hi) / 2
            ok = infid(mid * phi) <= budget
            return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

        lo, _ = jax.lax.fori_loop(0, _BISECTIONS, body, (jnp.zeros((), real),
                                                          jnp.ones((), real)))
        return jnp.where(infid(phi) <= budget, phi, lo * phi)

    phi0 = jnp.zeros((shadow.n_phi,), real)
    if key is not None:
        phi0 = pull_back(init_scale * jax.random.uniform(key, phi0.shape, real, -1.0, 1.0))
    phi, _ = optimize.best_iterate(optax.adam(step_size), lambda p: -sign * loss(p), phi0,
                                   steps, project=lambda p, _: pull_back(p))
    return StateAttackResult(phi, infid(phi), loss(phi), _splice(shadow, model, phi)(x))


def _attack_one_unitary(model, shadow, x, y, target, key, budget, steps, step_size):
    """The unitary perturbation, optimised over the states it can reach: ``cos t psi + sin t
    v`` (``_rotation``) with ``t <= arcsin(sqrt(budget))`` (infidelity ``sin^2 t``, so the
    budget is a box on ``z[-1] in [0, 1]`` and the direction ``v`` is unconstrained). The
    start is at the budget, in the loss gradient's direction (with ``key``: a random
    direction on its ascent side)."""
    sign = 1.0 if target is None else -1.0
    label = y if target is None else target
    real = model.params.dtype
    psi = _encoded(model, x)
    # a hair inside the budget, so that rounding keeps the infidelity <= budget
    t_max = jnp.arcsin(jnp.sqrt(budget)) * (1 - 64 * jnp.finfo(real).eps)

    def loss_of_state(chi):
        return optax.softmax_cross_entropy_with_integer_labels(
            _state_logits(shadow, model, chi), label)

    def objective(z):
        return -sign * loss_of_state(_rotation(psi, z, t_max)[0])

    d = psi.shape[0]
    g = sign * jax.grad(lambda r: loss_of_state(psi + (r[:d] + 1j * r[d:]).astype(psi.dtype)))(
        jnp.zeros(2 * d, real))  # the ascent direction at psi
    if key is None:
        u0 = g
    else:  # a random direction on the ascent side (else the step shrinks t to 0 and stays)
        u0 = jax.random.normal(key, (2 * d,), real)
        u0 = jnp.where(jnp.dot(u0, g) < 0, -u0, u0)
    z, _ = optimize.best_iterate(
        optax.adam(step_size), objective, jnp.concatenate([u0, jnp.ones((1,), real)]), steps,
        project=lambda z, _: z.at[-1].set(jnp.clip(z[-1], 0.0, 1.0)))
    chi, v, t = _rotation(psi, z, t_max)
    phi = _rotation_generator(psi, v, t).astype(real)
    infid = jnp.where(jnp.linalg.norm(v) > 0, jnp.sin(t) ** 2, 0.0)  # 1 - |<psi|chi>|^2
    return StateAttackResult(phi, infid, loss_of_state(chi), _state_logits(shadow, model, chi))


@eqx.filter_jit
def _attack_batch(model, shadow, x, y, targets, keys, budget, steps, step_size, init_scale):
    def one(xi, yi, ti, ki):
        return _attack_one(model, shadow, xi, yi, ti, ki, budget, steps, step_size, init_scale)

    return jax.vmap(one, in_axes=(0, 0, None if targets is None else 0,
                                  None if keys is None else 0))(x, y, targets, keys)


def _check_budget(budget):
    return budget if isinstance(budget, jax.core.Tracer) else check_real(
        budget, "budget", low=0.0, high=1.0)


def _prepare(model, budget, steps, step_size, entangling, perturbation):
    shadow = _shadow(model, entangling, perturbation)
    real = model.params.dtype
    return (shadow, jnp.asarray(_check_budget(budget), real),
            check_positive_int(steps, "steps"), float(check_eps(step_size, "step_size")))


def state_attack(model: VQC, x, y, budget, *, steps: int = 100, step_size: float = 0.05,
                 key=None, target=None, entangling: bool = True,
                 init_scale: float = 0.01, perturbation: str = "circuit") -> StateAttackResult:
    """State-level attack on ONE example ``x`` (label ``y``) within infidelity ``budget``
    (module docstring). ``key``: random start ``phi ~ U(-init_scale, init_scale)`` (pulled
    into the budget); ``target``: minimise the cross-entropy towards that class instead;
    ``perturbation``: ``"circuit"`` (``entangling`` selects its two-qubit layer) or
    ``"unitary"`` (any ``exp(-i H)``, small ``n``)."""
    res = state_attack_model(model, jnp.asarray(x)[None], jnp.asarray(y)[None], budget,
                             steps=steps, step_size=step_size,
                             key=key,
                             targets=None if target is None else jnp.asarray(target)[None],
                             entangling=entangling, init_scale=init_scale,
                             perturbation=perturbation)
    return jax.tree_util.tree_map(lambda a: a[0], res)


def state_attack_model(model: VQC, x, y, budget, *, steps: int = 100, step_size: float = 0.05,
                       key=None, targets=None, entangling: bool = True,
                       init_scale: float = 0.01, perturbation: str = "circuit"
                       ) -> StateAttackResult:
    """``state_attack`` on every example of ``x`` ``(B, d)``, labels ``y`` ``(B,)``, vmapped
    in one jit; ``key`` is split per example. Robust accuracy:
    ``mean(argmax(res.logits, -1) == y)``."""
    model = _check_model(model)
    x = jnp.asarray(x).astype(model.params.dtype)  # attack in the model's own precision
    y = jnp.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ParameterError(
            f"state_attack_model needs x of shape (B, d) and y of shape (B,), got {x.shape}, "
            f"{y.shape}")
    y = check_model_labels(model, y, x)
    shadow, budget, steps, step_size = _prepare(model, budget, steps, step_size, entangling,
                                                perturbation)
    keys = None if key is None else jax.random.split(check_key(key, "state_attack"), x.shape[0])
    if targets is not None:
        targets = jnp.asarray(targets)
        if targets.shape != y.shape:
            raise ParameterError(f"targets must have shape {y.shape}, got {targets.shape}")
        targets = check_model_labels(model, targets, x, "targets")
    return _attack_batch(model, shadow, x, y, targets, keys, budget, steps, step_size,
                         float(init_scale))


def state_robust_accuracy_curve(model: VQC, x, y, budgets, **kwargs):
    """Accuracy under the state attack for every infidelity budget in ``budgets``
    (``state_attack_model`` keyword arguments pass through). Returns ``(budgets,
    accuracy)`` NumPy arrays; budget 0 gives the clean accuracy."""
    b = np.asarray([_check_budget(float(v)) for v in np.ravel(budgets)], np.float64)
    acc = [float(jnp.mean(jnp.argmax(state_attack_model(model, x, y, v, **kwargs).logits, -1)
                          == jnp.asarray(y))) for v in b]
    return b, np.asarray(acc)
