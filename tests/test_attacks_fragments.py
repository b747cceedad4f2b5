"""Adversarial fragments: the differentiable reconstruction against qjr.cutting and the uncut
circuit, the budgeted attack, the effective map's Choi matrix, the physicality detector."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import random_unitary
from scipy.linalg import expm
from scipy.stats import binom

import qjaxrob as qjr
from qjaxrob import attacks
from qjaxrob.attacks import fragments as fr
from qjaxrob.errors import CutError, ParameterError, QjrTypeError

PAULI = [np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1, -1])]


def _circuit():
    """3 wires: (a, c) -> wire cut on c -> (c, b); one input, three parameters."""
    return (qjr.Circuit(3).ry(0, qjr.inp(0)).ry(1, qjr.param(0)).cnot(0, 1).rz(1, 0.4).cut(1)
            .ry(1, qjr.param(1)).cnot(1, 2).ry(2, qjr.param(2)))


P = np.array([0.3, 0.5, 0.7])
X = np.array([0.9])
OBS = qjr.Z(2) + 0.5 * qjr.Z(0) @ qjr.X(2)


@pytest.fixture(scope="module")
def case():
    cc = qjr.cutting.partition(_circuit())
    return cc, fr.fragment_model(cc, OBS, P, X)


def test_honest_reconstruction(case):
    cc, fm = case
    ref = qjr.expval(_circuit(), OBS, P, X, dtype=jnp.complex128)
    assert float(fm.honest) == pytest.approx(float(ref), abs=1e-12)
    assert fm.norm_bound == pytest.approx(1.5)


def test_uniform_perturbation_equals_insert_and_uncut(case, rng):
    cc, fm = case
    for _ in range(1):  # each perturbed circuit is a new static structure (one compile)
        v = random_unitary(rng, 2)
        mine = float(fr.attacked_value(fm, v))
        perturbed = float(qjr.cutting.expval(qjr.cutting.perturb(cc, 0, v), OBS, P, X,
                                             dtype=jnp.complex128))
        frag, wire = cc.cuts[0].fragments[1], cc.cuts[0].local_wires[1]
        pos = [i for i, op in enumerate(cc.fragments[frag].ops) if op.is_marker][0] + 1
        inserted = float(qjr.cutting.expval(qjr.cutting.insert(cc, frag, pos, v, wire), OBS, P,
                                            X, dtype=jnp.complex128))
        uncut = float(qjr.expval(fr.uncut_with(cc, 0, v), OBS, P, X, dtype=jnp.complex128))
        assert mine == pytest.approx(perturbed, abs=1e-12)
        assert mine == pytest.approx(inserted, abs=1e-12)
        assert mine == pytest.approx(uncut, abs=1e-12)


def test_term_dependent_perturbation_equals_cutting_perturb(case, rng):
    cc, fm = case
    vs = np.stack([random_unitary(rng, 2) for _ in range(6)])
    ref = qjr.cutting.expval(qjr.cutting.perturb(cc, 0, vs), OBS, P, X, dtype=jnp.complex128)
    assert float(fr.attacked_value(fm, vs)) == pytest.approx(float(ref), abs=1e-12)
    frag = cc.cuts[0].fragments[1]
    direct = qjr.cutting.fragment_values(qjr.cutting.perturb(cc, 0, vs), OBS, P, X,
                                         dtype=jnp.complex128)[frag]
    np.testing.assert_allclose(fr.attacked_tensors(fm, vs)[frag], np.real(direct), atol=1e-12)


def test_su2_and_budget(rng):
    for _ in range(4):
        a = rng.normal(size=3)
        v = np.asarray(fr.su2(a))
        ref = expm(-0.5j * sum(ai * p for ai, p in zip(a, PAULI[1:])))
        np.testing.assert_allclose(v, ref, atol=1e-12)
        theta = np.linalg.norm(a)
        if theta <= 2 * np.pi:
            assert fr.operator_distance(v) == pytest.approx(2 * math.sin(theta / 4), abs=1e-12)
    np.testing.assert_allclose(fr.su2(np.zeros(3)), np.eye(2), atol=1e-15)
    assert fr.budget_radius(2 * math.sin(0.3 / 4)) == pytest.approx(0.3)
    assert fr.budget_radius(5.0) == pytest.approx(2 * np.pi)


def test_attack_flips_prediction_within_budget(case):
    cc, fm = case
    budget = 0.8
    res = attacks.fragment_attack(fm, budget, key=jax.random.key(0), steps=150)
    assert res.flipped and res.distance <= budget + 1e-12
    v = np.asarray(res.vs)
    check = qjr.cutting.expval(qjr.cutting.perturb(cc, 0, v), OBS, P, X, dtype=jnp.complex128)
    assert float(check) == pytest.approx(float(res.attacked), abs=1e-10)
    assert np.sign(float(check)) != np.sign(float(fm.honest))
    # the uniform shift obeys |delta <O>| <= 2 ||O|| ||V - I||
    assert abs(float(check) - float(fm.honest)) <= 2 * fm.norm_bound * res.distance + 1e-12
    # a tiny budget cannot flip it
    small = attacks.fragment_attack(fm, 0.01, key=jax.random.key(0), steps=50)
    assert not small.flipped and small.distance <= 0.01 + 1e-12


def _peng_map(vs, sigma):
    """Lambda'(sigma) from Peng's 8 terms (CUTTING.md 2.1), written out independently."""
    kets = {"0": [1, 0], "1": [0, 1], "+": [1, 1], "-": [1, -1], "+i": [1, 1j], "-i": [1, -1j]}
    order = ["0", "1", "+", "-", "+i", "-i"]
    terms = [(0, "0", .5), (0, "1", .5), (1, "+", .5), (1, "-", -.5), (2, "+i", .5),
             (2, "-i", -.5), (3, "0", .5), (3, "1", -.5)]
    out = np.zeros((2, 2), complex)
    for m, p, c in terms:
        k = np.array(kets[p], complex)
        rho = np.outer(k, k.conj()) / np.vdot(k, k).real
        v = vs[order.index(p)]
        out += c * np.trace(PAULI[m] @ sigma) * (v @ rho @ v.conj().T)
    return out


def test_effective_choi(rng):
    eye = np.stack([np.eye(2)] * 6)
    np.testing.assert_allclose(np.linalg.eigvalsh(fr.effective_choi(eye)), [0, 0, 0, 2],
                               atol=1e-12)
    v = random_unitary(rng, 2)
    assert np.linalg.eigvalsh(fr.effective_choi(np.stack([v] * 6))).min() >= -1e-12
    vs = np.stack([random_unitary(rng, 2) for _ in range(6)])
    ref = sum(np.kron(np.outer(np.eye(2)[i], np.eye(2)[j]),
                      _peng_map(vs, np.outer(np.eye(2)[i], np.eye(2)[j])))
              for i in range(2) for j in range(2))
    np.testing.assert_allclose(fr.effective_choi(vs), ref, atol=1e-12)
    flip0 = eye.copy()
    flip0[0] = PAULI[1]  # prepare |1> when asked for |0>
    assert np.linalg.eigvalsh(fr.effective_choi(flip0)).min() < -0.1  # not CP


@pytest.mark.slow
def test_term_dependent_attack_leaves_physical_range():
    """Upstream |+> (A_X = 1): term-dependent preparations reach |<Z>| ~ 2 > ||Z||."""
    c = qjr.Circuit(1).ry(0, qjr.inp(0)).cut(0).ry(0, qjr.param(0))
    cc = qjr.cutting.partition(c)
    fm = fr.fragment_model(cc, qjr.Z(0), [0.0], [np.pi / 2])
    assert float(fm.honest) == pytest.approx(0.0, abs=1e-12)
    res = attacks.fragment_attack(fm, 2.0, mode="term", key=jax.random.key(1),
                                  objective=lambda v: -v, steps=150)
    assert float(res.attacked) >= 1.9
    out = attacks.compare_uncut(cc, qjr.Z(0), [0.0], [np.pi / 2], budget=2.0,
                                key=jax.random.key(1), steps=100)
    assert out["uniform_cut"] == pytest.approx(out["uniform_uncut"], abs=1e-12)
    assert abs(out["uniform_cut"] - out["honest"]) <= out["bound"] + 1e-12


def test_detector_exact_and_with_shots(case, rng):
    cc, fm = case
    v = random_unitary(rng, 2)
    flip0 = np.stack([PAULI[1]] + [np.eye(2)] * 5)
    honest = attacks.detect(fm)
    uniform = attacks.detect(fm, fr.attacked_tensors(fm, np.stack([v] * 6)))
    term = attacks.detect(fm, fr.attacked_tensors(fm, flip0))
    assert honest.rate == 0.0 and uniform.rate == 0.0 and term.rate == 1.0
    # the same through the real perturbed circuit
    direct = qjr.cutting.fragment_values(qjr.cutting.perturb(cc, 0, flip0), OBS, P, X,
                                         dtype=jnp.complex128)
    assert attacks.detect(fm, [np.real(t) for t in direct]).rate == 1.0
    # shot noise: false positives near alpha, the fixed term attack always caught
    key = jax.random.key(2)
    fp = attacks.detect(fm, shots=2000, key=key, trials=400, alpha=0.01)
    assert fp.rate <= 0.04
    assert attacks.detect(fm, fr.attacked_tensors(fm, np.stack([v] * 6)), shots=2000, key=key,
                          trials=400, alpha=0.01).rate <= 0.04
    assert attacks.detect(fm, fr.attacked_tensors(fm, flip0), shots=2000, key=key,
                          trials=400, alpha=0.01).rate == 1.0
    viol = fr.consistency_violations(fr.attacked_tensors(fm, flip0)[fm.fragment], fm.axis)
    assert viol.shape[0] == 2


def test_bad_input(case):
    cc, fm = case
    with pytest.raises(ParameterError, match="budget"):
        attacks.fragment_attack(fm, -0.1)
    with pytest.raises(ParameterError, match="mode"):
        attacks.fragment_attack(fm, 0.1, mode="global")
    with pytest.raises(QjrTypeError):
        attacks.fragment_attack(cc, 0.1)
    with pytest.raises(CutError, match="cut_index"):
        fr.fragment_model(cc, OBS, P, X, cut_index=1)
    gate = qjr.cutting.partition(qjr.Circuit(2).h(0).cnot(0, 1, cut=True))
    with pytest.raises(CutError, match="not a wire cut"):
        fr.fragment_model(gate, qjr.Z(1), cut_index=0)
    with pytest.raises(ParameterError, match="shape"):
        fr.attacked_value(fm, np.eye(3))
    with pytest.raises(ParameterError, match="shape"):
        attacks.detect(fm, [np.zeros((4, 2)), np.zeros((5, 2))])
    with pytest.raises(ParameterError, match="PRNG key"):
        attacks.detect(fm, shots=10)
    for alpha in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ParameterError, match="alpha"):
            attacks.detect(fm, shots=10, key=jax.random.key(0), alpha=alpha)
        with pytest.raises(ParameterError, match="alpha"):
            attacks.detect(fm, alpha=alpha)
    with pytest.raises(ParameterError, match="atol"):
        attacks.detect(fm, atol=-1.0)


@pytest.mark.parametrize("shots", [1, 3, 10, 30])
def test_detect_level_holds_at_few_shots(case, shots):
    """4000 honest repetitions (one vmapped call): the false-positive count is within the
    99.9% binomial quantile of alpha = 0.01, 61 (the normal-approximation detector it
    replaces flagged 99-133 at 3 shots and 94-112 at 10 on this fragment, two keys each;
    the calibrated one 2-12)."""
    _, fm = case
    trials, alpha = 4000, 0.01
    res = attacks.detect(fm, shots=shots, key=jax.random.key(shots), trials=trials,
                         alpha=alpha)
    assert res.flagged.shape == (trials,)
    assert int(res.flagged.sum()) <= binom.ppf(0.999, trials, alpha)


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_detect_exact_tolerance_follows_dtype(dtype):
    """A pure global phase rounded to the simulation's precision is honest; a term-dependent
    flip is flagged in both precisions."""
    cc = qjr.cutting.partition(_circuit())
    fm = fr.fragment_model(cc, OBS, P.astype(np.float32 if dtype == jnp.complex64 else float),
                           X.astype(np.float32 if dtype == jnp.complex64 else float),
                           dtype=dtype)
    phase = (np.exp(0.7j) * np.eye(2)).astype(dtype)
    res = attacks.detect(fm, fr.attacked_tensors(fm, phase))
    assert not bool(res.flagged[0]) and res.threshold == pytest.approx(
        1024 * np.finfo(np.finfo(dtype).dtype).eps)
    flip0 = np.stack([PAULI[1]] + [np.eye(2)] * 5).astype(dtype)
    assert attacks.detect(fm, fr.attacked_tensors(fm, flip0)).rate == 1.0
