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
entry) and return a :class:`CheckResult`; ``pair_test`` is the pair-consistency test on
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
biased results      sees        sees         sees            cannot see
==================  ==========  ===========  ==============  =================

A uniform ``V`` on the prepared states is an honest circuit with one more gate: every
statistic of the executor's own results (pair sums, the relabelled reconstructions, the
Choi matrix of its preparations, which is that of the unitary channel ``V``) is that of an
honest run of that circuit. Only a comparison with something the adversary does not
control, a second executor (``redundancy``), can reveal it. A bias on reported results
leaves the prepared states honest, so the physicality audit (which measures the states)
cannot see it. Dishonest post-processing by the server that runs these checks is outside
what any of them can see.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.checks import check_key, check_positive_int, check_real
from qjaxrob.cutting import CutCircuit, fragment_values, qpd
from qjaxrob.defenses.integrity.levels import check_alpha
from qjaxrob.errors import CutError, ParameterError, QjrTypeError
from qjaxrob.ir.observables import PauliSum

__all__ = [
    "CLIFFORDS",
    "CheckResult",
    "MOVING",
    "PREPARED",
    "RELABELLED",
    "WireCutData",
    "check_alpha",
    "consistency_violations",
    "contract",
    "cut_choi",
    "exact_atol",
    "pair_consistency",
    "pair_test",
    "physicality",
    "prepared_bloch",
    "redundancy",
    "relabelled_coeffs",
    "relabelled_values",
    "relabelling",
    "sample_counts",
    "symmetric_critical",
    "wire_cut_data",
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


_MAX_SHOTS = 1 << 24
_CHUNK = 1 << 16  # binomials drawn per compiled call: one compilation serves every shape


def sample_counts(key, values, shots: int, trials: int):
    """``(trials,) + values.shape`` int counts of +1 outcomes: one ``Bin(shots, (1 + v) / 2)``
    per entry and trial (the executor's report of ``values`` from ``shots`` shots; at most
    ``2**24``, where float32 counts stay exact integers)."""
    trials = check_positive_int(trials, "trials")
    if check_positive_int(shots, "shots") > _MAX_SHOTS:
        raise ParameterError(f"shots must be at most {_MAX_SHOTS} (exact float32 counts), got "
                             f"{shots}")
    p = jnp.clip((1.0 + jnp.asarray(values, jnp.float32)) / 2, 0.0, 1.0)
    flat = jnp.broadcast_to(p, (trials,) + p.shape).reshape(-1)
    n = flat.shape[0]
    flat = jnp.pad(flat, (0, -n % _CHUNK))
    keys = jax.random.split(key, flat.shape[0] // _CHUNK)
    shots = jnp.asarray(shots, jnp.float32)
    out = [_binomial(k, shots, c) for k, c in zip(keys, flat.reshape(-1, _CHUNK))]
    return jnp.concatenate(out)[:n].reshape((trials,) + p.shape)


@jax.jit
def _binomial(key, shots, p):
    return jnp.round(jax.random.binomial(key, shots, p)).astype(jnp.int32)


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


# ---- the data of a single wire cut ------------------------------------------------------
class WireCutData(NamedTuple):
    """Exact per-term results of a circuit with one wire cut between two fragments.

    Attributes:
        upstream: ``(4, T)`` ``A[a, t]``: the upstream fragment's word ``t`` with Pauli
            ``IXYZ[a]`` on the cut wire.
        downstream: ``(6, T)`` ``B[b, t]``: the downstream fragment's word ``t`` after
            preparing state ``b`` (``qjr.cutting.qpd.WIRE_PREPARE``).
        weights: ``(T,)`` the observable's real term coefficients ``w_t``.
    """

    upstream: jax.Array
    downstream: jax.Array
    weights: jax.Array


def wire_cut_data(cc: CutCircuit, obs: PauliSum, params=None, x=None, *,
                  dtype=jnp.complex128) -> WireCutData:
    """The ``WireCutData`` of ``cc`` (one wire cut, two fragments; ``qjr.cutting``'s
    ``fragment_values``). Other layouts (a gate cut, several cuts) raise ``CutError``: the
    relabelling and physicality checks are defined for a wire cut's six preparations."""
    if not isinstance(cc, CutCircuit):
        raise QjrTypeError(f"expected a CutCircuit from qjr.cutting.partition, got "
                           f"{type(cc).__name__}")
    if len(cc.cuts) != 1 or len(cc.fragments) != 2:
        raise CutError(f"the cut checks need exactly one cut between two fragments, got "
                       f"{len(cc.cuts)} cuts and {len(cc.fragments)} fragments")
    cut = cc.cuts[0]
    if cut.kind != "wire":
        raise CutError(f"the cut checks test a wire cut's prepared states: cut 0 is a "
                       f"{cut.kind} cut")
    if not isinstance(obs, PauliSum):
        raise QjrTypeError(f"obs must be a PauliSum, got {type(obs).__name__}")
    tensors = [jnp.real(t) for t in fragment_values(cc, obs, params, x, dtype=dtype)]
    up, down = tensors[cut.fragments[0]], tensors[cut.fragments[1]]
    weights = jnp.asarray([c.real for c, _ in obs.terms], up.dtype)
    return WireCutData(up, down, weights)


def contract(coeffs, upstream, downstream, weights):
    """``sum_t w_t sum_{a,b} coeffs[a, b] A[a, t] B[b, t]``; batched over leading axes of
    ``upstream``/``downstream`` by broadcasting."""
    return jnp.einsum("ab,...at,...bt,t->...", coeffs, upstream, downstream, weights)


# ---- (b) redundant execution ------------------------------------------------------------
def _check_fraction(fraction, name="fraction") -> float:
    return check_real(fraction, name, low=0.0, high=1.0)


def redundancy(key, reported, honest, *, shots: int, fraction: float = 0.25,
               alpha: float = 0.01, trials: int = 200) -> CheckResult:
    """Redundant execution of a secret random subset of the fragment's entries.

    Per trial the verifier picks ``m = ceil(fraction * size)`` entries of the downstream
    tensor uniformly at random (the adversary does not know which), reruns them on a second,
    trusted executor with the same ``shots``, and compares counts: per entry
    ``D = k_1 - k_2 + shots`` is, under honesty, a sum of ``2 shots`` Bernoullis with mean
    ``shots``, so ``P(|k_1 - k_2| > t) <= P(|Bin(2 shots, 1/2) - shots| > t)`` (module
    docstring); Bonferroni over the ``m`` entries gives level ``alpha``.

    ``reported``: the exact values the untrusted executor's shots are drawn from; ``honest``:
    those of the honest fragment (same shape). Cost: ``m / size`` of the fragment's shots.
    Sees every attack that moves a checked entry by more than the shot noise, a uniform
    ``V`` included; an attack on few entries is caught with probability about the fraction
    of them checked."""
    shots = check_positive_int(shots, "shots")
    trials = check_positive_int(trials, "trials")
    alpha = check_alpha(alpha)
    fraction = _check_fraction(fraction)
    reported, honest = jnp.asarray(reported), jnp.asarray(honest)
    if reported.shape != honest.shape:
        raise ParameterError(f"reported {reported.shape} and honest {honest.shape} must have "
                             f"the same shape")
    size = int(np.prod(reported.shape))
    m = math.ceil(fraction * size)
    if m == 0:
        zeros = jnp.zeros((trials,))
        return CheckResult(zeros, math.inf, zeros > 0, 0.0, 0.0)
    k_sub, k_1, k_2 = jax.random.split(check_key(key, "redundancy"), 3)
    chosen = jnp.argsort(jax.random.uniform(k_sub, (trials, size)), axis=1) < m
    k1 = sample_counts(k_1, reported.reshape(-1), shots, trials)
    k2 = sample_counts(k_2, honest.reshape(-1), shots, trials)
    stat = jnp.max(jnp.where(chosen, jnp.abs(k1 - k2), 0), axis=1)
    t = symmetric_critical(2 * shots, alpha / m)
    flagged = stat > t
    return CheckResult(stat / shots, t / shots, flagged, float(jnp.mean(flagged)), m / size)


# ---- (c) secret relabelling -------------------------------------------------------------
_PAULIS = np.stack([np.eye(2), [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], np.diag([1.0, -1.0])])
_KETS = np.array([[1, 0], [0, 1], [1, 1], [1, -1], [1, 1j], [1, -1j]]) / np.array(
    [1, 1, math.sqrt(2), math.sqrt(2), math.sqrt(2), math.sqrt(2)])[:, None]
PREPARED = np.einsum("bi,bj->bij", _KETS, _KETS.conj())
"""``(6, 2, 2)`` the wire cut's prepared states, in ``qpd.WIRE_PREPARE`` order."""


def _cliffords() -> np.ndarray:
    """The 24 single-qubit Cliffords modulo phase (closure of ``H`` and ``S``)."""
    gens = [np.array([[1, 1], [1, -1]]) / math.sqrt(2), np.diag([1, 1j])]
    found, frontier = [np.eye(2, dtype=complex)], [np.eye(2, dtype=complex)]

    def seen(u):
        return any(abs(abs(np.trace(v.conj().T @ u)) - 2) < 1e-9 for v in found)

    while frontier:
        nxt = []
        for u in frontier:
            for g in gens:
                v = g @ u
                if not seen(v):
                    found.append(v)
                    nxt.append(v)
        frontier = nxt
    return np.stack(found)


CLIFFORDS = _cliffords()
"""``(24, 2, 2)`` single-qubit Cliffords (identity first)."""
MOVING = np.array([i for i, c in enumerate(CLIFFORDS)
                   if abs(np.trace(c.conj().T @ _PAULIS[3] @ c @ _PAULIS[3])) < 1e-9])
"""Indices of the 16 Cliffords with ``C^+ Z C != +-Z``: they move the identity term's pair."""


def relabelled_coeffs(clifford) -> np.ndarray:
    """``(4, 6)`` coefficients of the wire cut conjugated by ``clifford`` ``C``:
    ``rho = sum C[a, b] Tr(C^+ O_a C rho) C^+ rho_b C``, with ``C^+ O_a C = s O_a'`` (a signed
    Pauli) and ``C^+ rho_b C = rho_b'`` (one of the six states), so the upstream still
    measures a Pauli and the downstream still prepares one of the six states; the returned
    table maps their results ``A[a']``, ``B[b']`` to the same identity channel."""
    c = np.asarray(clifford, complex)
    base = np.asarray(qpd.wire_table().coeffs, float)
    out = np.zeros((4, 6))
    for a in range(4):
        op = c.conj().T @ _PAULIS[a] @ c
        signs = np.einsum("pij,ji->p", _PAULIS, op).real / 2
        a2 = int(np.argmax(np.abs(signs)))
        for b in range(6):
            if base[a, b]:
                st = c.conj().T @ PREPARED[b] @ c
                b2 = int(np.argmax(np.einsum("bij,ji->b", PREPARED, st).real))
                out[a2, b2] += base[a, b] * signs[a2]
    return out


RELABELLED = np.stack([relabelled_coeffs(c) for c in CLIFFORDS])
"""``(24, 4, 6)`` the relabelled tables, in ``CLIFFORDS`` order (``RELABELLED[0]`` is Peng's)."""


def relabelled_values(data: WireCutData):
    """``(24,)`` the reconstruction under each secret relabelling, from the exact
    (possibly attacked) results: all equal for an honest executor; their mean is what a
    term-dependent adversary achieves against a verifier that relabels at random (its
    perturbation twirled over the Clifford group)."""
    tables = jnp.asarray(RELABELLED, data.upstream.dtype)
    return jax.vmap(lambda t: contract(t, data.upstream, data.downstream, data.weights))(tables)


def relabelling(key, data: WireCutData, *, shots: int, alpha: float = 0.01,
                trials: int = 200) -> CheckResult:
    """Secret relabelling as a test: per trial a secret Clifford ``C`` (from the 16 that move
    the identity term's pair, ``MOVING``); ``D`` is the difference of the relabelled and
    the standard reconstructions from the same shot estimates (``shots`` per entry of
    ``upstream`` and ``downstream``). Given the upstream estimates ``A_hat``, ``D = sum_{b,t}
    w_t u[b, t] B_hat[b, t]`` with ``u = (T_C - T_0)^T A_hat``; an honest executor's results
    satisfy ``sum_b (T_C - T_0)[a, b] B[b, t] = 0``, so ``E[D | A_hat] = 0`` and one shot moves
    ``D`` by at most ``(2 / shots) |w_t u[b, t]|``. Hoeffding's inequality, conditional on
    ``A_hat``: the statistic ``|D| / sqrt(sum c^2)`` (``sum c^2 = (4 / shots) sum (w u)^2``)
    exceeds ``sqrt(ln(2 / alpha) / 2)`` with probability at most ``alpha``.

    Peng's decomposition is Clifford covariant except for the identity term, so the two
    tables differ only in which pair of states serves ``Tr(rho)``: ``D = 1/2 sum_t w_t
    A_I (B_P+ + B_P- - B_0 - B_1)``, a pair-consistency test weighted by the upstream
    identity results, weaker than ``pair_test`` on the same shots. What the relabelling adds
    is the secret: an adversary tuned to the standard table achieves only the Clifford
    average of its effect (``relabelled_values``). Cannot see a uniform ``V``. Cost: none (the
    same runs, another classical post-processing)."""
    shots = check_positive_int(shots, "shots")
    trials = check_positive_int(trials, "trials")
    alpha = check_alpha(alpha)
    if not isinstance(data, WireCutData):
        raise QjrTypeError(f"expected WireCutData from wire_cut_data, got {type(data).__name__}")
    k_c, k_a, k_b = jax.random.split(check_key(key, "relabelling"), 3)
    which = jax.random.choice(k_c, jnp.asarray(MOVING), (trials,))
    a_hat = 2.0 * sample_counts(k_a, data.upstream, shots, trials) / shots - 1.0
    b_hat = 2.0 * sample_counts(k_b, data.downstream, shots, trials) / shots - 1.0
    tables = jnp.asarray(RELABELLED, a_hat.dtype)
    w = data.weights.astype(a_hat.dtype)
    wu = jnp.einsum("nab,nat,t->nbt", tables[which] - tables[0], a_hat, w)
    d = jnp.einsum("nbt,nbt->n", wu, b_hat)
    sum_c2 = 4.0 / shots * jnp.sum(wu**2, axis=(1, 2))
    stat = jnp.abs(d) / jnp.sqrt(jnp.maximum(sum_c2, 1e-300))
    thr = math.sqrt(math.log(2.0 / alpha) / 2.0)
    flagged = stat > thr
    return CheckResult(stat, thr, flagged, float(jnp.mean(flagged)), 0.0)


# ---- (d) physicality of the cut map -----------------------------------------------------
def prepared_bloch(vs) -> np.ndarray:
    """``(6, 3)`` Bloch vectors of the states ``V_b rho_b V_b^+`` an executor applying
    ``vs`` (``(6, 2, 2)``, or one ``(2, 2)``) prepares."""
    vs = np.asarray(vs, complex)
    vs = np.broadcast_to(vs, (6, 2, 2)) if vs.shape == (2, 2) else vs
    if vs.shape != (6, 2, 2):
        raise ParameterError(f"vs must have shape (2, 2) or (6, 2, 2), got {vs.shape}")
    states = np.einsum("bij,bjk,blk->bil", vs, PREPARED, vs.conj())
    return np.einsum("pij,bji->bp", _PAULIS[1:], states).real


def cut_choi(bloch):
    """Choi matrix ``sum_{a,b} C[a, b] O_a^T (x) rho_b`` (``(4, 4)``) of the cut map when the
    downstream prepares the states with Bloch vectors ``bloch`` (``(..., 6, 3)``). The
    honest six states give the identity channel's Choi matrix (eigenvalues 0, 0, 0, 2)."""
    bloch = jnp.asarray(bloch)
    cdt = jnp.complex128 if bloch.dtype == jnp.float64 else jnp.complex64
    paulis = jnp.asarray(_PAULIS, cdt)
    rho = (paulis[0] + jnp.einsum("...bp,pij->...bij", bloch.astype(cdt), paulis[1:])) / 2
    coeffs = jnp.asarray(qpd.wire_table().coeffs, cdt).real.astype(cdt)
    left = jnp.einsum("ab,aji->bij", coeffs, paulis)  # sum_a C[a, b] O_a^T
    return jnp.einsum("bij,...bkl->...ikjl", left, rho).reshape(bloch.shape[:-2] + (4, 4))


_LEFT_NORMS = np.array([1.0, 1.0, 0.5, 0.5, 0.5, 0.5])  # ||sum_a C[a, b] O_a^T||_op


def physicality(key, bloch, *, shots: int, alpha: float = 0.01,
                trials: int = 200) -> CheckResult:
    """Positivity of the reconstructed cut map's Choi matrix under shot noise.

    Audit runs: the verifier asks the executor to prepare each of the six states and
    measures ``X, Y, Z`` on it, ``shots`` shots each (18 runs; the executor cannot tell them
    from its ordinary preparations and applies its ``V_b``). From the estimated Bloch
    vectors ``r_hat`` it builds ``J = cut_choi(r_hat)``; the statistic is ``-lambda_min(J)``.
    An honest executor's ``J`` is PSD with ``lambda_min = 0`` and ``||J_hat - J|| <=
    sum_b w_b |r_hat_b - r_b| / 2`` (``w_b`` the norm of ``b``'s Pauli coefficient
    matrix); Hoeffding's inequality on each of the 18 means at level ``alpha / 18`` gives
    the threshold ``sqrt(3) eps sum_b w_b / 2`` with ``eps = sqrt(2 ln(36 / alpha) /
    shots)``. Cost: 18 audit runs of ``shots`` shots (3x the six preparations).

    Sees term-dependent ``V_b`` whose effective map is not completely positive (e.g.
    preparing ``|1>`` for ``|0>``). Cannot see a uniform ``V``: its map is the unitary
    channel ``V``, completely positive."""
    shots = check_positive_int(shots, "shots")
    trials = check_positive_int(trials, "trials")
    alpha = check_alpha(alpha)
    bloch = jnp.asarray(bloch)
    if bloch.shape != (6, 3):
        raise ParameterError(f"bloch must have shape (6, 3), got {bloch.shape}")
    counts = sample_counts(check_key(key, "physicality"), bloch, shots, trials)
    r_hat = 2.0 * counts / shots - 1.0
    stat = -jnp.linalg.eigvalsh(cut_choi(r_hat))[:, 0]
    eps = math.sqrt(2.0 * math.log(36.0 / alpha) / shots)
    thr = math.sqrt(3.0) * eps * float(_LEFT_NORMS.sum()) / 2.0
    flagged = stat > thr
    return CheckResult(stat, thr, flagged, float(jnp.mean(flagged)), 3.0)
