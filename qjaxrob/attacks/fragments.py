"""Adversarial fragments: an adversary who runs the downstream fragment of a wire cut
perturbs the states it is asked to prepare, to steer the reconstructed expectation value.

Setting (Kananian & Jacobsen, arXiv 2502.20403):
Peng's wire cut reconstructs ``<O> = sum_{a,b} C[a, b] A_a B_b`` from upstream results
``A_a`` (measure ``I, X, Y, Z``) and downstream results ``B_b`` (prepare
``|0>, |1>, |+>, |->, |+i>, |-i>``). The adversary applies ``V_b`` right after preparing
state ``b``:

* **uniform** ``V_b = V``: by linearity the reconstruction equals the *uncut* circuit with
  ``V`` inserted on the cut wire at the cut (``qjr.cutting.perturb``/``insert``): a
  physical circuit, so values stay in ``[-||O||, ||O||]`` and no statistic of the fragment
  results can tell it from an honest circuit with one more gate.
* **term-dependent** ``V_b`` (the adversary sees which state it prepares): the effective
  cut map ``Lambda'(rho) = sum C[a, b] Tr(O_a rho) V_b rho_b V_b^+`` is trace preserving but
  in general not completely positive (``effective_choi``), so values can leave the physical
  range.

Budget: ``||V_b - I||_op <= budget`` for every ``b``. ``V = exp(-i a . sigma / 2)`` (SU(2),
the representative closest to ``I`` up to phase) has ``||V - I|| = 2 sin(|a| / 4)``, so the
budget is the ball ``|a| <= 4 arcsin(budget / 2)`` (``budget >= 2``: every unitary). A uniform
``V`` shifts ``<O>`` by at most ``2 ||O|| budget`` (``||O||`` bounded by the sum of
``|coefficients|``).

**Differentiable attack without re-simulation.** Every downstream result is linear in the
prepared state ``sigma``: ``B(sigma) = sum_P beta_P Tr(P sigma)`` with ``beta_I = (B_0 +
B_1)/2``, ``beta_Z = (B_0 - B_1)/2``, ``beta_X = B_+ - beta_I``, ``beta_Y = B_{+i} - beta_I``
(from the honest per-term results of ``qjr.cutting.fragment_values``). The attacked result is
``B'_b = sum_P beta_P Tr(P V_b rho_b V_b^+)``, and the reconstruction is the QPD contraction
of every fragment tensor with every cut's coefficient matrix (``Cut.table``). So the honest
fragments run once and the attack optimises ``a`` (projected Adam, vmapped random starts) on
a tiny contraction.

**Detector.** Honest results satisfy ``B_0 + B_1 = B_+ + B_- = B_{+i} + B_{-i}`` (each pair of
prepared states sums to ``I``) for every other index of the fragment tensor. A uniform ``V``
keeps these relations; a term-dependent one generally breaks them. ``detect`` tests them
from shot estimates with the calibrated ``qjr.defenses.integrity.pair_test`` (an exact
binomial bound: the false-positive rate on honest runs is at most ``alpha`` at every shot
count).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qjaxrob import cutting
from qjaxrob.attacks import optimize
from qjaxrob.checks import check_key, check_positive_int, check_real
from qjaxrob.ir.circuit import Circuit
from qjaxrob.cutting import CutCircuit, qpd
from qjaxrob.defenses.integrity.cuts import (check_alpha, consistency_violations, exact_atol,
                                             pair_consistency)
from qjaxrob.errors import CutError, ParameterError, QjrTypeError
from qjaxrob.ir.observables import PauliSum
from qjaxrob.simulate import expval

__all__ = [
    "MODES",
    "Detection",
    "FragmentAttackResult",
    "FragmentModel",
    "attacked_tensors",
    "attacked_value",
    "budget_radius",
    "compare_uncut",
    "consistency_violations",
    "detect",
    "effective_choi",
    "fragment_attack",
    "fragment_model",
    "operator_distance",
    "su2",
    "uncut_with",
]

MODES = ("uniform", "term")

_PAULI = np.stack([np.eye(2), [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], np.diag([1.0, -1.0])])
_PREP_STATES = np.array([  # rho_b for qpd.WIRE_PREPARE = 0, 1, +, -, +i, -i
    np.outer(v, np.conj(v)) for v in (
        [1, 0], [0, 1], np.array([1, 1]) / math.sqrt(2), np.array([1, -1]) / math.sqrt(2),
        np.array([1, 1j]) / math.sqrt(2), np.array([1, -1j]) / math.sqrt(2))])


def su2(a):
    """``exp(-i a . sigma / 2)`` for a real 3-vector ``a`` (smooth at ``a = 0``); ``(2, 2)``."""
    a = jnp.asarray(a)
    theta = jnp.sqrt(jnp.sum(a * a))
    c = jnp.cos(theta / 2)
    s = 0.5 * jnp.sinc(theta / (2 * jnp.pi))  # sin(theta/2) / theta
    gen = jnp.tensordot(a, jnp.asarray(_PAULI[1:], jnp.result_type(a.dtype, jnp.complex64)), 1)
    return c * jnp.eye(2, dtype=gen.dtype) - 1j * s * gen


def _check_budget(budget) -> float:
    return check_real(budget, "budget", low=0.0)


def budget_radius(budget) -> float:
    """``|a|`` allowed by ``||exp(-i a.sigma/2) - I||_op <= budget``: ``4 arcsin(budget/2)``
    (``2 pi`` for ``budget >= 2``)."""
    b = _check_budget(budget)
    return 4.0 * math.asin(min(b, 2.0) / 2.0)


def operator_distance(v) -> float:
    """``max_b ||V_b - I||_op`` of a ``(2, 2)`` or ``(n, 2, 2)`` array of unitaries."""
    v = np.asarray(v).reshape(-1, 2, 2)
    return float(max(np.linalg.norm(m - np.eye(2), 2) for m in v))


def effective_choi(vs) -> np.ndarray:
    """Choi matrix ``sum_ij |i><j| (x) Lambda'(|i><j|)`` of the cut map with term-dependent
    preparations ``vs`` (``(6, 2, 2)``), ``Lambda'(s) = sum C[a,b] Tr(O_a s) V_b rho_b V_b^+``.
    All ``V_b = I`` gives the identity channel's Choi matrix (eigenvalues 0, 0, 0, 2)."""
    vs = np.asarray(vs, complex)
    coeffs = np.asarray(qpd.wire_table().coeffs, np.float64)
    prepared = np.einsum("bij,bjk,blk->bil", vs, _PREP_STATES, vs.conj())
    out = np.zeros((4, 4), complex)
    for i in range(2):
        for j in range(2):
            e = np.zeros((2, 2))
            e[i, j] = 1.0
            tr = np.einsum("aij,ji->a", _PAULI, e)
            out += np.kron(e, np.einsum("ab,a,bij->ij", coeffs, tr, prepared))
    return out


# ---- the differentiable reconstruction -----------------------------------------------------
class FragmentModel(eqx.Module):
    """Honest fragment results of a cut circuit at fixed ``params``/``x`` and how to contract
    them (``fragment_model``); ``attacked_value(model, vs)`` is the reconstruction with
    ``vs``. Arrays are leaves; the contraction layout is static."""

    tensors: tuple
    coeffs: tuple
    term_coeffs: jax.Array
    honest: jax.Array
    labels: tuple = eqx.field(static=True)
    fragment: int = eqx.field(static=True)
    axis: int = eqx.field(static=True)
    norm_bound: float = eqx.field(static=True)


def _check_wire_cut(cc, cut_index):
    if not isinstance(cc, CutCircuit):
        raise QjrTypeError(f"expected a CutCircuit from qjr.cutting.partition, got "
                           f"{type(cc).__name__}")
    if isinstance(cut_index, bool) or not isinstance(cut_index, int) or not (
            0 <= cut_index < len(cc.cuts)):
        raise CutError(f"cut_index must be an int in [0, {len(cc.cuts)}), got {cut_index!r}")
    cut = cc.cuts[cut_index]
    if cut.kind != "wire":
        raise CutError(f"fragment attacks perturb prepared states: cut {cut_index} is a "
                       f"{cut.kind} cut, not a wire cut")
    return cut


def _pauli_transfer(g, axis):
    """Honest results along the prepare axis (6) -> Pauli coefficients ``beta`` (4: IXYZ)."""
    g = jnp.moveaxis(g, axis, 0)
    b_i = (g[0] + g[1]) / 2
    return jnp.stack([b_i, g[2] - b_i, g[4] - b_i, (g[0] - g[1]) / 2])


def _as_unitaries(fm: FragmentModel, vs):
    """``vs`` as a complex ``(6, 2, 2)`` array (one ``(2, 2)`` is broadcast)."""
    cdt = jnp.complex128 if fm.honest.dtype == jnp.float64 else jnp.complex64
    vs = jnp.asarray(vs).astype(cdt)
    if vs.shape == (2, 2):
        vs = jnp.broadcast_to(vs, (6, 2, 2))
    if vs.shape != (6, 2, 2):
        raise ParameterError(f"vs must have shape (2, 2) or (6, 2, 2), got {vs.shape}")
    return vs


def _attacked_tensor(g, axis, vs):
    beta = _pauli_transfer(g, axis)
    rho = jnp.asarray(_PREP_STATES, vs.dtype)
    prepared = jnp.einsum("bij,bjk,blk->bil", vs, rho, vs.conj())
    bloch = jnp.einsum("pij,bji->bp", jnp.asarray(_PAULI, vs.dtype), prepared).real
    out = jnp.tensordot(bloch.astype(beta.dtype), beta, 1)  # (6, ...)
    return jnp.moveaxis(out, 0, axis)


def _contract(fm: FragmentModel, tensors):
    operands = []
    for j, c in enumerate(fm.coeffs):
        operands += [c, [2 * j, 2 * j + 1]]
    term = 2 * len(fm.coeffs)
    for t, lab in zip(tensors, fm.labels):
        operands += [t, list(lab) + [term]]
    per_term = jnp.einsum(*operands, [term])
    return jnp.dot(per_term, fm.term_coeffs)


def _value(fm: FragmentModel, vs):
    tensors = list(fm.tensors)
    tensors[fm.fragment] = _attacked_tensor(tensors[fm.fragment], fm.axis, vs)
    return _contract(fm, tensors)


def fragment_model(cc: CutCircuit, obs: PauliSum, params=None, x=None, *, cut_index: int = 0,
                   dtype=jnp.complex128) -> FragmentModel:
    """Runs the honest fragments of ``cc`` once (``qjr.cutting.fragment_values``) and
    prepares the differentiable reconstruction under perturbations of wire cut
    ``cut_index``'s prepared states (module docstring)."""
    cut = _check_wire_cut(cc, cut_index)
    if not isinstance(obs, PauliSum):
        raise QjrTypeError(f"obs must be a PauliSum, got {type(obs).__name__}")
    tensors = [jnp.real(t) for t in cutting.fragment_values(cc, obs, params, x, dtype=dtype)]
    axes = cutting.fragment_axes(cc)
    labels = tuple(tuple(2 * a[0] + (0 if a[1] == "measure" else a[1]) for a in ax[:-1])
                   for ax in axes)
    f = cut.fragments[1]
    axis = axes[f].index((cut_index, 1))
    real = tensors[0].dtype
    coeffs = tuple(jnp.real(jnp.asarray(c.table(params, x, dtype).coeffs)).astype(real)
                   for c in cc.cuts)
    term_coeffs = jnp.asarray([c.real for c, _ in obs.terms], real)
    norm_bound = float(sum(abs(c) for c, w in obs.terms if w))
    fm = FragmentModel(tuple(tensors), coeffs, term_coeffs, jnp.zeros((), real), labels, f,
                       axis, norm_bound)
    return eqx.tree_at(lambda m: m.honest, fm, _contract(fm, tensors))


def attacked_value(fm: FragmentModel, vs):
    """The reconstructed ``<O>`` when the adversary applies ``vs`` (``(6, 2, 2)``, or one
    ``(2, 2)`` ``V`` for all prepared states); differentiable in ``vs``."""
    return _value(fm, _as_unitaries(fm, vs))


def attacked_tensors(fm: FragmentModel, vs) -> list:
    """The fragment tensors the adversary reports under ``vs`` ``(6, 2, 2)`` (for ``detect``)."""
    tensors = list(fm.tensors)
    tensors[fm.fragment] = _attacked_tensor(tensors[fm.fragment], fm.axis,
                                            _as_unitaries(fm, vs))
    return tensors


# ---- the attack ----------------------------------------------------------------------------
class FragmentAttackResult(NamedTuple):
    """Outcome of ``fragment_attack``.

    Attributes:
        generators: ``a`` with ``V = exp(-i a.sigma/2)``: ``(3,)`` uniform, ``(6, 3)`` term.
        vs: the unitaries, ``(2, 2)`` uniform or ``(6, 2, 2)``.
        honest, attacked: the reconstructed ``<O>`` without and with the attack.
        distance: ``max_b ||V_b - I||_op`` (``<= budget``).
        flipped: the sign of ``<O>`` (the binary prediction) changed.
    """

    generators: jax.Array
    vs: jax.Array
    honest: jax.Array
    attacked: jax.Array
    distance: float
    flipped: bool


def _project_ball(a, radius):
    n = jnp.sqrt(jnp.sum(a * a, axis=-1, keepdims=True))
    return a * jnp.minimum(1.0, radius / jnp.maximum(n, 1e-300))


def fragment_attack(fm: FragmentModel, budget, *, mode: str = "uniform", objective=None,
                    steps: int = 200, step_size: float = 0.05, restarts: int = 8,
                    key=None) -> FragmentAttackResult:
    """Optimises the adversary's unitaries within ``||V_b - I|| <= budget``.

    ``objective(value) -> scalar`` is minimised; default: push the reconstructed value
    across zero (``sign(honest) * value``), i.e. flip a binary prediction. ``mode``:
    ``"uniform"`` (one ``V``) or ``"term"`` (``V_b`` per prepared state). ``restarts``
    random starts inside the budget ball (``key``; without a key one start at ``V = I``)
    run under ``jax.vmap``; projected Adam, best iterate."""
    if not isinstance(fm, FragmentModel):
        raise QjrTypeError(f"expected a FragmentModel from fragment_model, got "
                           f"{type(fm).__name__}")
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {MODES}, got {mode!r}")
    radius = budget_radius(budget) * (1.0 - 1e-12)  # stay inside despite rounding
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    step_size = check_real(step_size, "step_size", low=0.0, low_open=True)
    real = fm.honest.dtype
    shape = (3,) if mode == "uniform" else (6, 3)
    if key is None:
        starts = jnp.zeros((1,) + shape, real)
    else:
        raw = jax.random.normal(check_key(key, "fragment_attack"), (restarts,) + shape, real)
        starts = _project_ball(raw * radius / 2, radius)
    a = _optimize(fm, starts, jnp.asarray(radius, real), mode, objective, steps, step_size)
    vs = _unitaries(fm, a, mode)
    attacked = _value(fm, vs)
    out_vs = vs[0] if mode == "uniform" else vs
    return FragmentAttackResult(a, out_vs, fm.honest, attacked, operator_distance(out_vs),
                                bool(jnp.sign(attacked) != jnp.sign(fm.honest)))


def _unitaries(fm, a, mode):
    cdt = jnp.complex128 if fm.honest.dtype == jnp.float64 else jnp.complex64
    return jax.vmap(su2)(jnp.broadcast_to(a, (6, 3)) if mode == "uniform" else a).astype(cdt)


@eqx.filter_jit
def _optimize(fm, starts, radius, mode, objective, steps, step_size):
    """Projected Adam from every start (vmapped); the best generators found."""
    sign = jnp.where(fm.honest >= 0, 1.0, -1.0)

    def loss(a):
        v = _value(fm, _unitaries(fm, a, mode))
        return sign * v if objective is None else objective(v)

    opt = optax.adam(step_size)

    def run(a0):
        return optimize.best_iterate(opt, loss, a0, steps,
                                     project=lambda a, _: _project_ball(a, radius))

    a_all, v_all = jax.vmap(run)(starts)
    return a_all[jnp.argmin(v_all)]


# ---- comparison with the uncut circuit ------------------------------------------------------
def uncut_with(cc: CutCircuit, cut_index: int, v) -> Circuit:
    """The uncut circuit of ``cc`` with the ``2x2`` unitary ``v`` in place of wire cut
    ``cut_index`` (the circuit a uniform fragment attack is equivalent to)."""
    cut = _check_wire_cut(cc, cut_index)
    ops = cc.circuit.ops
    gate = Circuit(cc.circuit.n_qubits).unitary(np.asarray(v), cut.wires).ops
    return Circuit(cc.circuit.n_qubits, ops[:cut.location] + gate + ops[cut.location + 1:])


def compare_uncut(cc: CutCircuit, obs: PauliSum, params=None, x=None, *, cut_index: int = 0,
                  budget, dtype=jnp.complex128, **attack_kwargs) -> dict:
    """Uniform vs term-dependent fragment attacks at one budget, and the uniform ``V`` on
    the uncut circuit. Returns ``honest``, ``uniform_cut`` (reconstruction),
    ``uniform_uncut`` (``qjr.expval`` of ``uncut_with(V)``: equal), ``term`` (term-dependent
    attack's value), ``bound`` (``2 ||O|| budget``, the uniform shift limit), ``norm``
    (``||O||`` bound) and ``term_unphysical`` (``|term| > ||O||``)."""
    fm = fragment_model(cc, obs, params, x, cut_index=cut_index, dtype=dtype)
    uni = fragment_attack(fm, budget, mode="uniform", **attack_kwargs)
    term = fragment_attack(fm, budget, mode="term", **attack_kwargs)
    uncut = expval(uncut_with(cc, cut_index, np.asarray(uni.vs)), obs, params, x, dtype=dtype)
    return dict(honest=float(fm.honest), uniform_cut=float(uni.attacked),
                uniform_uncut=float(uncut), term=float(term.attacked),
                bound=2.0 * fm.norm_bound * float(budget), norm=fm.norm_bound,
                term_unphysical=bool(abs(float(term.attacked)) > fm.norm_bound + 1e-9))


# ---- the detector ---------------------------------------------------------------------------
class Detection(NamedTuple):
    """``detect`` outcome: ``statistic`` (per trial: the largest shot-estimated pair-sum
    violation, or the exact one), ``threshold``, ``flagged`` per trial, and the flagged
    ``rate``."""

    statistic: jax.Array
    threshold: float
    flagged: jax.Array
    rate: float


def detect(fm: FragmentModel, tensors=None, *, shots: int | None = None, key=None,
           trials: int = 200, alpha: float = 0.01, atol: float | None = None) -> Detection:
    """Physicality (pair-consistency) test of the downstream fragment results of ``fm``'s cut.

    ``tensors``: the fragment tensors reported (default: the honest ones of ``fm``; use
    ``attacked_tensors`` or ``qjr.cutting.fragment_values`` of a perturbed circuit).
    Without ``shots`` the exact violations are compared with ``atol`` (default
    ``qjr.defenses.integrity.exact_atol`` of the reported tensors' dtype: results computed in
    complex64 anywhere, the unitaries included, carry float32 rounding and belong in
    float32). With ``shots`` each entry is estimated from ``shots`` +-1 outcomes
    (``trials`` independent repetitions) and tested by the calibrated
    ``qjr.defenses.integrity.pair_test``: false-positive rate at most ``alpha`` at every shot
    count (an exact binomial bound, not a normal approximation)."""
    alpha = check_alpha(alpha)
    t = jnp.real(jnp.asarray((fm.tensors if tensors is None else tensors)[fm.fragment]))
    if t.shape != fm.tensors[fm.fragment].shape:
        raise ParameterError(f"tensors[{fm.fragment}] must have shape "
                             f"{fm.tensors[fm.fragment].shape}, got {t.shape}")
    if shots is None:
        atol = exact_atol(t.dtype) if atol is None else check_real(atol, "atol", low=0.0)
        stat = jnp.max(jnp.abs(consistency_violations(t, fm.axis)))
        flagged = (stat > atol)[None]
        return Detection(stat[None], float(atol), flagged, float(flagged.mean()))
    res = pair_consistency(check_key(key, "detect"), t, fm.axis, shots=shots, alpha=alpha,
                           trials=trials)
    return Detection(res.statistic, res.threshold, res.flagged, res.rate)
