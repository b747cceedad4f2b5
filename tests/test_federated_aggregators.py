"""Aggregators vs NumPy implementations written here, their defining robustness
properties, jit composition and input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qjaxrob import federated as fed
from qjaxrob.errors import ParameterError, QjrTypeError

SIZES = [(5, 3), (12, 7)]


# ---- NumPy references ------------------------------------------------------------------
def np_krum_scores(u, f):
    n = len(u)
    scores = []
    for i in range(n):
        d = sorted(float(np.sum((u[i] - u[j]) ** 2)) for j in range(n) if j != i)
        scores.append(sum(d[: n - f - 2]))
    return np.array(scores)


def np_trimmed_mean(u, beta):
    k = int(np.floor(beta * len(u)))
    out = []
    for col in u.T:
        s = np.sort(col)
        out.append(s[k: len(s) - k].mean())
    return np.array(out)


def np_norm_clip(u, tau):
    return np.mean([g * min(1.0, tau / np.linalg.norm(g)) for g in u], axis=0)


def np_geomed(u, iters=2000):
    z = u.mean(axis=0)
    for _ in range(iters):
        w = 1.0 / np.maximum(1e-12, np.linalg.norm(u - z, axis=1))
        z = (w[:, None] * u).sum(0) / w.sum()
    return z


def np_fltrust(u, g0):
    out, tot = np.zeros_like(g0), 0.0
    for g in u:
        ts = max(0.0, g @ g0 / (np.linalg.norm(g) * np.linalg.norm(g0)))
        out += ts * np.linalg.norm(g0) / np.linalg.norm(g) * g
        tot += ts
    return out / tot


@pytest.fixture(params=SIZES, ids=lambda s: f"n{s[0]}d{s[1]}")
def updates(request):
    n, d = request.param
    return np.random.default_rng(n * 100 + d).normal(size=(n, d))


def test_fedavg_matches_numpy(updates):
    w = np.random.default_rng(0).uniform(0.5, 3.0, len(updates))
    np.testing.assert_allclose(fed.fedavg(updates), updates.mean(0), rtol=1e-12)
    np.testing.assert_allclose(fed.fedavg(updates, w), np.average(updates, 0, w), rtol=1e-12)


def test_krum_and_multi_krum_match_numpy(updates):
    n = len(updates)
    for f in sorted({0, (n - 3) // 2}):
        ref = np_krum_scores(updates, f)
        np.testing.assert_allclose(fed.krum_scores(updates, f), ref, rtol=1e-10)
        np.testing.assert_array_equal(fed.krum(updates, f), updates[np.argmin(ref)])
        for m in (1, n - 1):
            np.testing.assert_allclose(fed.multi_krum(updates, f, m),
                                       updates[np.argsort(ref)[:m]].mean(0), rtol=1e-12)


def test_krum_hand_example():
    # four points on a line and one far away; f = 1 -> n - f - 2 = 2 neighbours
    u = np.array([[0.0], [1.0], [2.0], [3.0], [100.0]])
    # scores: 0: 1+4, 1: 1+1, 2: 1+1, 3: 1+4, far: 97^2 + 98^2
    np.testing.assert_allclose(fed.krum_scores(u, 1), [5, 2, 2, 5, 97**2 + 98**2])
    assert float(fed.krum(u, 1)[0]) == 1.0  # first of the tied minimum
    np.testing.assert_allclose(fed.multi_krum(u, 1, 2), [1.5])


def test_median_and_trimmed_mean_match_numpy(updates):
    np.testing.assert_allclose(fed.median(updates), np.median(updates, 0), rtol=1e-12)
    for beta in (0.0, 0.25, 0.49):
        np.testing.assert_allclose(fed.trimmed_mean(updates, beta),
                                   np_trimmed_mean(updates, beta), rtol=1e-12)


def test_norm_clip_matches_numpy(updates):
    for tau in (0.1, 1.0, 100.0):
        np.testing.assert_allclose(fed.norm_clip(updates, tau), np_norm_clip(updates, tau),
                                   rtol=1e-12)
    np.testing.assert_allclose(fed.norm_clip(updates, 1e9), updates.mean(0), rtol=1e-12)


def test_geometric_median_matches_numpy_and_minimises(updates):
    gm = np.asarray(fed.geometric_median(updates))
    np.testing.assert_allclose(gm, np_geomed(updates), atol=1e-6)

    def obj(z):
        return np.linalg.norm(updates - z, axis=1).sum()

    rng = np.random.default_rng(1)
    for z in [updates.mean(0), *updates, *(gm + 1e-3 * rng.normal(size=(5, gm.size)))]:
        assert obj(gm) <= obj(z) + 1e-9


def test_fltrust_matches_numpy(updates):
    g0 = np.random.default_rng(3).normal(size=updates.shape[1])
    np.testing.assert_allclose(fed.fltrust(updates, g0), np_fltrust(updates, g0), rtol=1e-10)
    # every client opposed to the server: nobody is trusted -> zero update
    np.testing.assert_array_equal(fed.fltrust(-np.abs(updates) - 1, np.ones(updates.shape[1])),
                                  np.zeros(updates.shape[1]))


def test_robust_rules_resist_colluding_outliers():
    rng = np.random.default_rng(7)
    n, f, d = 11, 4, 5
    honest = rng.normal(size=(n - f, d))
    attackers = 1e3 + rng.normal(size=(f, d)) * 1e-3  # collude far away, close together
    u = np.concatenate([attackers, honest])
    picked = np.asarray(fed.krum(u, f))
    assert any(np.array_equal(picked, h) for h in honest)
    mk = np.asarray(fed.multi_krum(u, f, n - 2 * f))
    assert np.all(np.abs(mk) < 10)
    lo, hi = honest.min(0), honest.max(0)
    for agg in (fed.median(u), fed.trimmed_mean(u, f / n + 1e-9)):
        assert np.all((np.asarray(agg) >= lo) & (np.asarray(agg) <= hi))
    assert np.all(np.abs(np.asarray(fed.geometric_median(u))) < 10)
    assert np.all(np.abs(np.asarray(fed.fedavg(u))) > 100)  # the mean is dragged away
    # FLTrust with a server update along the honest mean ignores the opposite attackers
    np.testing.assert_allclose(
        fed.fltrust(np.concatenate([-attackers, honest + 5]), np.full(d, 5.0)),
        np_fltrust(honest + 5, np.full(d, 5.0)), rtol=1e-10)


def test_rules_compose_with_jit():
    updates = np.random.default_rng(5).normal(size=(9, 4))
    n = len(updates)
    f = (n - 3) // 2
    rules = {
        "krum": lambda u: fed.krum(u, f), "multi_krum": lambda u: fed.multi_krum(u, f, 2),
        "median": fed.median, "trimmed": lambda u: fed.trimmed_mean(u, 0.2),
        "clip": lambda u: fed.norm_clip(u, 0.5), "gm": fed.geometric_median,
        "fedavg": fed.fedavg, "fltrust": lambda u: fed.fltrust(u, u[0]),
    }
    for name, rule in rules.items():
        np.testing.assert_allclose(jax.jit(rule)(updates), rule(updates), rtol=1e-9,
                                   atol=1e-12, err_msg=name)


def test_aggregator_factory_binds_hyperparameters(updates):
    w = np.arange(1.0, len(updates) + 1)
    np.testing.assert_allclose(fed.aggregator("fedavg")(updates, w), np.average(updates, 0, w))
    np.testing.assert_allclose(fed.aggregator("trimmed_mean", beta=0.2)(updates, w),
                               np_trimmed_mean(updates, 0.2))
    assert fed.aggregator("krum", f=1) == fed.aggregator("krum", f=1)  # hashable by value
    g0 = updates[0] + 0.1
    np.testing.assert_allclose(fed.aggregator("fltrust")(updates, w, server_update=g0),
                               np_fltrust(updates, g0), rtol=1e-10)
    with pytest.raises(ParameterError, match="root data"):
        fed.aggregator("fltrust")(updates, w)
    with pytest.raises(ParameterError, match="one of"):
        fed.aggregator("bulyan")
    with pytest.raises(ParameterError, match="takes exactly"):
        fed.aggregator("krum")


# ---- errors ------------------------------------------------------------------------------
def test_precondition_errors():
    u = np.zeros((6, 2))
    with pytest.raises(ParameterError, match=r"n > 2f \+ 2.*n = 6.*f = 2"):
        fed.krum(u, 2)
    with pytest.raises(ParameterError, match="n > 2f"):
        fed.multi_krum(u, 2, 1)
    with pytest.raises(ParameterError, match="m must be <= n"):
        fed.multi_krum(u, 1, 7)
    with pytest.raises(QjrTypeError, match="f must be an int"):
        fed.krum(u, 1.5)
    for beta in (0.5, -0.1, 0.7):
        with pytest.raises(ParameterError, match="beta"):
            fed.trimmed_mean(u, beta)
    with pytest.raises(ParameterError, match="tau"):
        fed.norm_clip(u, 0.0)
    with pytest.raises(ParameterError, match="weights"):
        fed.fedavg(u, np.zeros(6))
    with pytest.raises(ParameterError, match="weights must have shape"):
        fed.fedavg(u, np.ones(5))
    with pytest.raises(ParameterError, match="server_update must have shape"):
        fed.fltrust(u, np.ones(3))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_update_is_rejected_naming_the_client(bad):
    u = np.random.default_rng(0).normal(size=(7, 4))
    u[3, 1] = bad
    rules = [fed.fedavg, fed.median, fed.geometric_median, lambda v: fed.krum(v, 1),
             lambda v: fed.trimmed_mean(v, 0.1), lambda v: fed.norm_clip(v, 1.0),
             lambda v: fed.fltrust(v, np.ones(4))]
    for rule in rules:
        with pytest.raises(ParameterError, match="client 3"):
            rule(u)
    with pytest.raises(Exception, match="client 3"):  # traced: equinox.branched_error_if
        jax.block_until_ready(jax.jit(fed.median)(jnp.asarray(u)))
    with pytest.raises(ParameterError, match="client 12"):
        fed.check_updates(u, client_ids=[1, 4, 8, 12, 13, 20, 21])
    v = np.ones((3, 4))
    with pytest.raises(ParameterError, match="server_update"):
        fed.fltrust(v, np.array([1.0, np.nan, 0.0, 0.0]))


def test_misshaped_updates_are_rejected():
    for bad in (np.ones(4), np.ones((0, 3)), np.ones((2, 3, 1))):
        with pytest.raises(ParameterError, match="n_clients >= 1, dim"):
            fed.median(bad)
    with pytest.raises(ParameterError, match="real"):
        fed.fedavg(np.ones((2, 2), complex))


def test_ragged_updates_name_the_row_lengths():
    for rule in (fed.fedavg, fed.median, lambda v: fed.krum(v, 0)):
        with pytest.raises(ParameterError, match=r"lengths \[2, 1, 2\]"):
            rule([[1.0, 2.0], [3.0], [4.0, 5.0]])


def test_fedconfig_checks_the_aggregator_at_construction():
    """A rule name without hyper-parameters becomes that rule; one that needs them, an
    unknown name or a non-callable is refused when the config is built, naming it."""
    cfg = fed.FedConfig(clients_per_round=2, rounds=1, aggregator="median")
    u = np.random.default_rng(1).normal(size=(5, 3))
    np.testing.assert_allclose(cfg.aggregator(u, np.ones(5)), np.median(u, axis=0), rtol=1e-6)
    assert cfg.aggregator == fed.aggregator("median")
    with pytest.raises(ParameterError, match="aggregator 'krum' needs hyper-parameters.*f"):
        fed.FedConfig(clients_per_round=2, rounds=1, aggregator="krum")
    with pytest.raises(ParameterError, match="unknown aggregator 'mean'"):
        fed.FedConfig(clients_per_round=2, rounds=1, aggregator="mean")
    with pytest.raises(QjrTypeError, match=r"aggregator must be a callable.*got 3 \(int\)"):
        fed.FedConfig(clients_per_round=2, rounds=1, aggregator=3)


def test_fedavg_refuses_traced_weights_without_a_positive_sum():
    u = jnp.ones((3, 2))
    f = jax.jit(fed.fedavg)
    np.testing.assert_allclose(f(u, jnp.array([1.0, 2.0, 3.0])), np.ones(2))
    with pytest.raises(Exception, match="positive sum"):
        jax.block_until_ready(f(u, jnp.zeros(3)))
    with pytest.raises(Exception, match="positive sum"):
        jax.block_until_ready(f(u, jnp.array([1.0, -1.0, 1.0])))
