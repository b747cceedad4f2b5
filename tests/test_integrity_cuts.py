"""qjr.defenses.integrity.cuts: the exact tail bound against an independent Poisson-binomial
convolution and scipy's binomial, every check's level over many honest runs (binomial
quantiles), its power against a named attack, exact relabelling, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import binom

from qjaxrob.defenses import integrity
from qjaxrob.defenses.integrity import cuts
from qjaxrob.errors import ParameterError

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
    with pytest.raises(ParameterError, match="even"):
        integrity.symmetric_critical(7, 0.1)
