"""Quantum-native integrity checks for a wire cut whose downstream fragment runs on an
untrusted executor.

Setting: Peng's wire cut reconstructs ``<O> = sum_t w_t sum_{a,b} C[a, b] A[a, t] B[b, t]``
from the upstream results ``A`` (measure ``I, X, Y, Z`` on the cut wire, ``(4, T)``) and the
downstream results ``B`` (prepare ``|0>, |1>, |+>, |->, |+i>, |-i>``, ``(6, ...)``), each
entry a signed expectation in ``[-1, 1]`` estimated from ``shots`` +-1 outcomes (``k`` of
them +1: ``estimate = 2 k / shots - 1``). The executor of the downstream fragment may apply
``V_b`` after preparing state ``b``.

Every check is a hypothesis test of "the executor is honest" at level ``alpha`` (its
false-positive rate is at most ``alpha`` at every shot count, by a finite-sample bound, not a
normal approximation), with a stated cost in extra shots. The simulation helpers
(``pair_consistency``, ``redundancy``, ``relabelling``, ``physicality``) draw the shot
counts from exact per-entry values for ``trials`` independent repetitions (one binomial per
entry, vmapped) and return a :class:`CheckResult`; the core tests (``pair_test``, ...) take
observed counts.

**Exact tail bound.** Let ``S`` be a sum of ``N`` independent Bernoulli variables with mean
``N / 2`` (a Poisson-binomial). Hoeffding (1956, Ann. Math. Statist. 27, Thm 4): for integers
``b <= N/2 - 1`` and ``c >= N/2 + 1``, ``P(b <= S <= c)`` is smallest when every
probability equals ``1/2``. Hence ``P(|S - N/2| > t) <= P(|Bin(N, 1/2) - N/2| > t)`` for
every integer ``t >= 1``, whatever the unknown success probabilities: the critical values
below come from ``Bin(N, 1/2)`` (``symmetric_critical``) and hold the level exactly at every
shot count (Bonferroni over several statistics).

What each check sees (``cannot see`` is a statement about information, not power):

==================  ==========  ===========  ==============  =================
attack              pair        redundancy   relabelling     physicality
==================  ==========  ===========  ==============  =================
uniform ``V``       cannot see  sees         cannot see      cannot see
term ``V_b``        sees        sees         sees            sees (non-CP)
biased terms        sees        sees         sees            sees if non-CP
==================  ==========  ===========  ==============  =================

A uniform ``V`` on the prepared states is an honest circuit with one more gate: every
statistic of the executor's own results (pair sums, the relabelled reconstructions, the
Choi matrix of its preparations, which is that of the unitary channel ``V``) is that of an
honest run of that circuit. Only a comparison with something the adversary does not
control, a second executor (``redundancy``), can reveal it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.checks import check_key, check_positive_int, check_real
from qjaxrob.errors import ParameterError

__all__ = [
    "CheckResult",
    "check_alpha",
    "consistency_violations",
    "exact_atol",
    "pair_consistency",
    "pair_test",
    "sample_counts",
    "symmetric_critical",
]


class CheckResult(NamedTuple):
    """Outcome of a simulated check over ``trials`` repetitions.

    Attributes:
        statistic: ``(trials,)`` the test statistic of each repetition (units per check).
        threshold: the critical value (flag when ``statistic > threshold``).
        flagged: ``(trials,)`` bool.
        rate: the flagged fraction (the false-positive rate on honest inputs, the power on
            attacked ones).
        cost: extra shots the check spends, relative to the shots of the protocol it
            guards (``0`` for checks on data the protocol has anyway).
    """

    statistic: jax.Array
    threshold: float
    flagged: jax.Array
    rate: float
    cost: float


def check_alpha(alpha) -> float:
    """``alpha`` as a float in the open interval ``(0, 1)`` (a test's level)."""
    return check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)


@lru_cache(maxsize=256)
def symmetric_critical(n: int, level: float) -> int:
    """The smallest integer ``t >= 1`` with ``P(|Bin(n, 1/2) - n/2| > t) <= level``
    (``n`` even). By Hoeffding's theorem (module docstring) it bounds the two-sided tail of
    every sum of ``n`` independent Bernoullis with mean ``n / 2``."""
    n = check_positive_int(n, "n")
    if n % 2:
        raise ParameterError(f"symmetric_critical needs an even number of trials, got {n}")
    level = check_real(level, "level", low=0.0, high=1.0, low_open=True)
    m = n // 2
    top = min(n, m + int(60 * math.sqrt(n)) + 60)  # pmf beyond is below exp(-1800)
    j = np.arange(m, top)
    log_ratio = np.concatenate([[0.0], np.cumsum(np.log((n - j) / (j + 1.0)))])  # k = m..top
    log_pm = math.lgamma(n + 1) - 2 * math.lgamma(m + 1) - n * math.log(2.0)
    pmf = np.exp(log_pm + log_ratio)
    upper = np.cumsum(pmf[::-1])[::-1]  # upper[i] = P(S >= m + i)
    two_sided = 2.0 * np.append(upper[1:], 0.0)  # P(|S - m| > i) = 2 P(S >= m + i + 1)
    ok = np.nonzero(two_sided <= level)[0]
    return max(1, int(ok[0]))


def exact_atol(dtype) -> float:
    """Tolerance of an exact (noise-free) consistency check on values of real ``dtype``:
    ``1024 * eps`` (float32: ``1.2e-4``, float64: ``2.3e-13``), far above the rounding of a
    simulation in that precision, far below any violation that moves a reconstruction."""
    dt = np.dtype(dtype)
    if dt.kind not in "fc":
        raise ParameterError(f"exact_atol needs a float or complex dtype, got {dt}")
    return float(1024 * np.finfo(dt).eps)


def sample_counts(key, values, shots: int, trials: int):
    """``(trials,) + values.shape`` int counts of +1 outcomes: one ``Bin(shots, (1 + v) / 2)``
    per entry and trial (the executor's report of ``values`` from ``shots`` shots)."""
    p = jnp.clip((1.0 + jnp.asarray(values, jnp.float32)) / 2, 0.0, 1.0)
    k = jax.random.binomial(key, shots, jnp.broadcast_to(p, (trials,) + p.shape))
    return jnp.round(k).astype(jnp.int32)


# ---- (a) pair consistency ---------------------------------------------------------------
def consistency_violations(tensor, axis: int):
    """``(B_0 + B_1) - (B_+ + B_-)`` and ``(B_0 + B_1) - (B_{+i} + B_{-i})`` along the
    prepare ``axis`` (6 entries) of a downstream fragment tensor; shape ``(2,) + other
    axes``. Zero for honest (and uniformly perturbed) fragments: each pair of prepared states
    sums to ``I``. Works on values or on counts."""
    g = jnp.moveaxis(jnp.asarray(tensor), axis, 0)
    if g.shape[0] != 6:
        raise ParameterError(f"the prepare axis {axis} must have 6 entries (the six states "
                             f"of a wire cut), got {g.shape[0]}")
    s = g[0] + g[1]
    return jnp.stack([s - g[2] - g[3], s - g[4] - g[5]])


def _pair_threshold(n_checks: int, shots: int, alpha: float) -> int:
    return symmetric_critical(4 * shots, alpha / n_checks)


def pair_test(counts, axis: int, *, shots: int, alpha: float = 0.01):
    """The calibrated pair-consistency test on observed counts.

    ``counts``: ``(trials,) + tensor shape`` ints, +1 outcomes out of ``shots`` per entry of
    the downstream tensor (prepare ``axis`` of the tensor, not counting ``trials``). Per
    check, ``D = k_0 + k_1 - k_+ - k_-`` (likewise with ``+i, -i``) is, under honesty, a sum
    of ``4 shots`` independent Bernoullis minus ``2 shots`` with mean ``0``, so
    ``P(|D| > t) <= P(|Bin(4 shots, 1/2) - 2 shots| > t)`` (module docstring); with
    Bonferroni over the ``m`` checks, flag when ``max |D| > t(alpha / m)``: false-positive
    rate ``<= alpha`` at every shot count.

    Returns ``(statistic, threshold, flagged)``: ``statistic = 2 max |D| / shots`` (the
    largest violation in units of the estimates), ``threshold = 2 t / shots``."""
    shots = check_positive_int(shots, "shots")
    alpha = check_alpha(alpha)
    counts = jnp.asarray(counts)
    d = jax.vmap(lambda c: consistency_violations(c, axis))(counts)
    n_checks = int(np.prod(d.shape[1:]))
    t = _pair_threshold(n_checks, shots, alpha)
    stat = jnp.max(jnp.abs(d).reshape(d.shape[0], -1), axis=1)
    return 2.0 * stat / shots, 2.0 * t / shots, stat > t


def pair_consistency(key, reported, axis: int, *, shots: int, alpha: float = 0.01,
                     trials: int = 200) -> CheckResult:
    """``pair_test`` on ``trials`` shot-noise repetitions of the downstream results
    ``reported`` (exact per-entry values the executor's shots are drawn from).

    Cost: none (the six preparations are the protocol's own runs). Cannot see a uniform
    ``V`` (it keeps every pair sum); sees term-dependent ``V_b`` and biased terms that break
    a pair sum."""
    shots = check_positive_int(shots, "shots")
    trials = check_positive_int(trials, "trials")
    counts = sample_counts(check_key(key, "pair_consistency"), reported, shots, trials)
    stat, thr, flagged = pair_test(counts, axis, shots=shots, alpha=alpha)
    return CheckResult(stat, float(thr), flagged, float(jnp.mean(flagged)), 0.0)
