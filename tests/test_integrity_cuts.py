"""qjr.defenses.integrity.cuts: the exact tail bound against an independent Poisson-binomial
convolution and scipy's binomial, every check's level over many honest runs (binomial
quantiles), its power against a named attack, exact relabelling, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import binom

import qjaxrob as qjr
from qjaxrob.attacks import fragments as fr
from qjaxrob.defenses import integrity
from qjaxrob.defenses.integrity import cuts
from qjaxrob.errors import CutError, ParameterError, QjrTypeError

BLOCH = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], float)


def honest_tensor(rng, n_other=3):
    """Downstream results of an honest executor: ``B_b = beta_I + beta . r_b`` with a random
    Pauli transfer (``|beta_I| + |beta| <= 1``), shape ``(6, n_other)``."""
    beta = rng.normal(size=(4, n_other))
    beta /= np.abs(beta).sum(axis=0) * rng.uniform(1.0, 1.5, size=n_other)
    return beta[0] + BLOCH @ beta[1:]


def assert_level(flagged, alpha):
    """False positives within the 99.9% binomial quantile of ``alpha`` (or below)."""
    n = flagged.size
    assert int(np.sum(flagged)) <= binom.ppf(0.999, n, alpha), (int(np.sum(flagged)), n)


def _poisson_binomial(ps):
    pmf = np.array([1.0])
    for p in ps:
        pmf = np.convolve(pmf, [1 - p, p])
    return pmf


def test_symmetric_critical_matches_scipy():
    for n in (2, 8, 40, 400, 4000):
        for level in (0.5, 0.05, 1e-3, 1e-6):
            t = integrity.symmetric_critical(n, level)
            tail = lambda u: 2 * binom.sf(n // 2 + u, n, 0.5)  # P(|S - n/2| > u)
            assert t >= 1
            assert tail(t) <= level * (1 + 1e-9) or t == n // 2
            if t > 1:
                assert tail(t - 1) > level


def test_hoeffding_bound_on_poisson_binomial(rng):
    """Every sum of Bernoullis with mean N/2 has two-sided tails below Bin(N, 1/2)'s."""
    for _ in range(60):
        n = int(rng.integers(1, 9))
        p = rng.uniform(size=(4, 1))
        p[3] = np.clip(p[0] + p[1] - p[2], 0, 1)
        p[2] = p[0] + p[1] - p[3]
        if not 0 <= p[2, 0] <= 1:
            continue
        ps = np.concatenate([np.repeat(p[0], n), np.repeat(p[1], n), np.repeat(1 - p[2], n),
                             np.repeat(1 - p[3], n)])
        pm, ref = _poisson_binomial(ps), binom.pmf(np.arange(4 * n + 1), 4 * n, 0.5)
        for t in range(1, 2 * n):
            out = lambda q: q[:2 * n - t].sum() + q[2 * n + t + 1:].sum()
            assert out(pm) <= out(ref) + 1e-12


@pytest.mark.parametrize("shots", [1, 2, 10, 30, 300])
def test_pair_consistency_level(rng, shots):
    """Worst case (every entry 0: fair coins) and a random honest transfer, 2000 runs each."""
    alpha = 0.05
    for t in (np.zeros((6, 3)), honest_tensor(rng)):
        res = integrity.pair_consistency(jax.random.key(shots), t, 0, shots=shots,
                                         alpha=alpha, trials=2000)
        assert res.cost == 0.0 and res.flagged.shape == (2000,)
        assert_level(np.asarray(res.flagged), alpha)


def test_pair_consistency_power_and_blindness(rng):
    """flip0 (the executor prepares |1> when asked for |0>): with beta_Z = 0.4 the pair
    violation is 2 beta_Z = 0.8; at 200 shots it is caught in >= 90% of 400 runs. A uniform V
    (any Bloch rotation of all six states) keeps the pair sums: flagged at the level only."""
    beta = np.array([0.1, 0.2, -0.1, 0.4])[:, None]
    honest = beta[0] + BLOCH @ beta[1:]
    flipped = honest[[1, 1, 2, 3, 4, 5]]
    res = integrity.pair_consistency(jax.random.key(0), flipped, 0, shots=200, alpha=0.05,
                                     trials=400)
    assert res.rate >= 0.9
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated = beta[0] + (BLOCH @ q.T) @ beta[1:]
    res = integrity.pair_consistency(jax.random.key(1), rotated, 0, shots=200, alpha=0.05,
                                     trials=2000)
    assert_level(np.asarray(res.flagged), 0.05)


def test_exact_atol():
    assert integrity.exact_atol(np.float32) == pytest.approx(1024 * 1.1920929e-07)
    assert integrity.exact_atol(jnp.complex128) == pytest.approx(1024 * 2.220446e-16)
    with pytest.raises(ParameterError, match="int"):
        integrity.exact_atol(np.int32)


def test_bad_inputs():
    t = np.zeros((6, 2))
    key = jax.random.key(0)
    for alpha in (0.0, 1.0, -1.0, 2.0, float("inf")):
        with pytest.raises(ParameterError, match="alpha"):
            integrity.pair_consistency(key, t, 0, shots=10, alpha=alpha)
    with pytest.raises(ParameterError, match="shots"):
        integrity.pair_consistency(key, t, 0, shots=0)
    with pytest.raises(ParameterError, match="trials"):
        integrity.pair_consistency(key, t, 0, shots=5, trials=-3)
    with pytest.raises(ParameterError, match="6 entries"):
        integrity.pair_consistency(key, np.zeros((4, 2)), 0, shots=5)
    with pytest.raises(ParameterError, match="PRNG key"):
        integrity.pair_consistency(7, t, 0, shots=5)
    with pytest.raises(ParameterError, match="at most"):
        integrity.pair_consistency(key, t, 0, shots=2**24 + 1)
    with pytest.raises(ParameterError, match="even"):
        integrity.symmetric_critical(7, 0.1)


# ---- a one-cut circuit and its data -------------------------------------------------------

PAULI = [np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1, -1])]
FLIP0 = np.stack([PAULI[1]] + [np.eye(2)] * 5)  # prepare |1> when asked for |0>


def _circuit():
    return (qjr.Circuit(3).ry(0, qjr.inp(0)).ry(1, qjr.param(0)).cnot(0, 1).rz(1, 0.4).cut(1)
            .ry(1, qjr.param(1)).cnot(1, 2).ry(2, qjr.param(2)))


P = np.array([0.3, 0.5, 0.7])
X = np.array([0.9])
OBS = qjr.Z(2) + 0.5 * qjr.Z(0) @ qjr.X(2)


@pytest.fixture(scope="module")
def case():
    cc = qjr.cutting.partition(_circuit())
    return cc, cuts.wire_cut_data(cc, OBS, P, X), fr.fragment_model(cc, OBS, P, X)


def _attacked(case, vs):
    cc, data, fm = case
    return data._replace(downstream=fr.attacked_tensors(fm, vs)[cc.cuts[0].fragments[1]])


def test_cliffords_and_relabelled_cut_is_exact(case, rng):
    """24 distinct Cliffords; every relabelled table is the identity channel (Choi matrix
    from the independent Peng sum) and reconstructs the uncut <O> exactly."""
    cl = cuts.CLIFFORDS
    assert cl.shape == (24, 2, 2) and len(cuts.MOVING) == 16
    overlaps = np.abs(np.einsum("aji,bjk->abik", cl.conj(), cl).trace(axis1=2, axis2=3))
    assert np.sum(np.isclose(overlaps, 2.0)) == 24  # distinct modulo phase
    ident = sum(np.kron(np.outer(e, f), np.outer(e, f)) for e in np.eye(2) for f in np.eye(2))
    for t in cuts.RELABELLED:
        choi = sum(t[a, b] * np.kron(PAULI[a].T, cuts.PREPARED[b])
                   for a in range(4) for b in range(6))
        np.testing.assert_allclose(choi, ident, atol=1e-12)
    cc, data, _ = case
    ref = float(qjr.expval(_circuit(), OBS, P, X, dtype=jnp.complex128))
    np.testing.assert_allclose(cuts.relabelled_values(data), ref, atol=1e-12)
    for _ in range(3):  # other parameters and inputs
        p, x = rng.uniform(-3, 3, 3), rng.uniform(-3, 3, 1)
        d = cuts.wire_cut_data(cc, OBS, p, x)
        ref = float(qjr.expval(_circuit(), OBS, p, x, dtype=jnp.complex128))
        np.testing.assert_allclose(cuts.relabelled_values(d), ref, atol=1e-12)


def test_relabelling_twirls_a_term_dependent_adversary(case, rng):
    """flip0 tuned to Peng's table moves <O> by ~0.67; under secret relabelling the value
    depends on the secret, and a uniform V gives the same value for every relabelling."""
    vals = np.asarray(cuts.relabelled_values(_attacked(case, FLIP0)))
    assert vals[0] == pytest.approx(float(fr.attacked_value(case[2], FLIP0)), abs=1e-12)
    assert np.ptp(vals) > 0.5
    v = np.linalg.qr(rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)))[0]
    uni = np.asarray(cuts.relabelled_values(_attacked(case, np.stack([v] * 6))))
    assert np.ptp(uni) < 1e-12


def test_cut_choi(rng):
    honest = cuts.prepared_bloch(np.eye(2))
    np.testing.assert_allclose(honest, BLOCH, atol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(cuts.cut_choi(honest)), [0, 0, 0, 2],
                               atol=1e-12)
    vs = np.stack([np.linalg.qr(rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)))[0]
                   for _ in range(6)])
    np.testing.assert_allclose(cuts.cut_choi(cuts.prepared_bloch(vs)), fr.effective_choi(vs),
                               atol=1e-12)


def test_redundancy_level_power_and_cost(case):
    """Honest: 2000 runs at the level. A uniform V = RY(0.6) moves every entry: with 25% of
    the 12 entries rerun at 2000 shots it is caught in >= 90% of 400 runs; flip0 moves 2 of
    the 12 entries, so a 3-entry subset catches it with probability 1 - C(10,3)/C(12,3)."""
    _, data, _ = case
    honest = data.downstream
    res = cuts.redundancy(jax.random.key(0), honest, honest, shots=50, fraction=0.5,
                          alpha=0.05, trials=2000)
    assert_level(np.asarray(res.flagged), 0.05) and res.cost == 0.5
    ry = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    uni = _attacked(case, np.stack([ry] * 6)).downstream
    res = cuts.redundancy(jax.random.key(1), uni, honest, shots=2000, fraction=0.25,
                          alpha=0.05, trials=400)
    assert res.rate >= 0.9 and res.cost == 0.25
    flip = _attacked(case, FLIP0).downstream
    res = cuts.redundancy(jax.random.key(2), flip, honest, shots=2000, fraction=0.25,
                          alpha=0.05, trials=2000)
    expect = 1 - 120 / 220
    lo, hi = binom.ppf([0.0005, 0.9995], 2000, expect) / 2000
    assert lo <= res.rate <= hi
    none = cuts.redundancy(jax.random.key(3), flip, honest, shots=10, fraction=0.0)
    assert none.rate == 0.0 and none.cost == 0.0


def test_relabelling_level_and_power(case):
    _, data, _ = case
    for shots in (20, 500):
        res = cuts.relabelling(jax.random.key(shots), data, shots=shots, alpha=0.05,
                               trials=2000)
        assert_level(np.asarray(res.flagged), 0.05)
    res = cuts.relabelling(jax.random.key(1), _attacked(case, FLIP0), shots=1000, alpha=0.05,
                           trials=400)
    assert res.rate >= 0.9


def test_physicality_level_power_and_blindness(rng):
    """Honest and uniform-V preparations (a CP map: cannot see) stay at the level over 2000
    runs; flip0 (lambda_min = -0.618) is caught in >= 90% of 400 runs at 1000 shots."""
    v = np.linalg.qr(rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)))[0]
    for vs, shots in ((np.eye(2), 10), (np.eye(2), 1000), (v, 200)):
        res = cuts.physicality(jax.random.key(shots), cuts.prepared_bloch(vs), shots=shots,
                               alpha=0.05, trials=2000)
        assert_level(np.asarray(res.flagged), 0.05) and res.cost == 3.0
    res = cuts.physicality(jax.random.key(5), cuts.prepared_bloch(FLIP0), shots=1000,
                           alpha=0.05, trials=400)
    assert res.rate >= 0.9


def test_checks_bad_inputs(case):
    cc, data, _ = case
    key = jax.random.key(0)
    t = data.downstream
    for frac in (-0.1, 1.5, float("nan")):
        with pytest.raises(ParameterError, match="fraction"):
            cuts.redundancy(key, t, t, shots=10, fraction=frac)
    with pytest.raises(ParameterError, match="same shape"):
        cuts.redundancy(key, t, t[:3], shots=10)
    for alpha in (0.0, 1.0):
        with pytest.raises(ParameterError, match="alpha"):
            cuts.relabelling(key, data, shots=10, alpha=alpha)
        with pytest.raises(ParameterError, match="alpha"):
            cuts.physicality(key, BLOCH, shots=10, alpha=alpha)
        with pytest.raises(ParameterError, match="alpha"):
            cuts.redundancy(key, t, t, shots=10, alpha=alpha)
    with pytest.raises(ParameterError, match="shape"):
        cuts.physicality(key, np.zeros((4, 3)), shots=10)
    with pytest.raises(QjrTypeError):
        cuts.relabelling(key, (1, 2, 3), shots=10)
    gate = qjr.cutting.partition(qjr.Circuit(2).h(0).cnot(0, 1, cut=True))
    with pytest.raises(CutError, match="gate cut"):
        cuts.wire_cut_data(gate, qjr.Z(1))
    two = qjr.cutting.partition(qjr.Circuit(3).h(0).cnot(0, 1).cut(1).cnot(1, 2).cut(2)
                                .ry(2, 0.3))
    with pytest.raises(CutError, match="exactly one cut"):
        cuts.wire_cut_data(two, qjr.Z(2))
