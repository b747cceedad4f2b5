"""Byzantine client behaviours: each attack against a NumPy version written here, the
data-poisoning functions, choosing f of n, and FedAvg collapsing under sign flipping while
Krum and the median keep learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm
from test_federated_rounds import base_config, make_setup

from qjaxrob import federated as fed
from qjaxrob.attacks import byzantine as byz
from qjaxrob.errors import ParameterError


@pytest.fixture
def round_updates():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(10, 6))
    mal = np.zeros(10, bool)
    mal[[1, 4, 7]] = True
    return u, mal


def test_model_poisoning_attacks_match_numpy(round_updates):
    u, mal = round_updates
    key = jax.random.key(0)
    benign = u[~mal]
    mu, sd = benign.mean(0), benign.std(0, ddof=1)
    np.testing.assert_allclose(byz.SignFlip()(u, mal, key), -u)
    np.testing.assert_allclose(byz.SignFlip(2.5)(u, mal, key), -2.5 * u)
    np.testing.assert_allclose(byz.Scaling(10.0)(u, mal, key), 10 * u)
    n, f = 10, 3
    z = norm.ppf((n - f - (np.floor(n / 2 + 1) - f)) / (n - f))
    assert float(byz.alie_z(n, f)) == pytest.approx(z, rel=1e-10)
    np.testing.assert_allclose(byz.ALIE()(u, jnp.asarray(mal), key),
                               np.tile(mu - z * sd, (10, 1)), rtol=1e-10)
    np.testing.assert_allclose(byz.ALIE(1.5)(u, mal, key), np.tile(mu - 1.5 * sd, (10, 1)))
    np.testing.assert_allclose(byz.IPM(0.1)(u, mal, key), np.tile(-0.1 * mu, (10, 1)))
    g = np.asarray(byz.GaussianNoise(3.0)(np.zeros((400, 50)), np.ones(400, bool), key))
    assert g.std() == pytest.approx(3.0, rel=0.03) and abs(g.mean()) < 5 * 3.0 / np.sqrt(g.size)


def test_alie_z_anchor_values():
    # shared/anchors/ROBUSTNESS.md section 9: alie_z = ppf((n - f - s) / (n - f))
    for n, f in [(50, 12), (20, 4), (10, 1)]:
        s = np.floor(n / 2 + 1) - f
        assert float(byz.alie_z(n, f)) == pytest.approx(norm.ppf((n - f - s) / (n - f)))


def test_poison_only_touches_malicious_rows(round_updates):
    u, mal = round_updates
    cfg = fed.FedConfig(clients_per_round=10, rounds=1, poison_updates=byz.SignFlip(),
                        malicious=(3,))
    plan = fed.RoundPlan(np.arange(10), mal, jax.random.key(1), jax.random.key(2), None)
    out = np.asarray(fed.poison(jnp.asarray(u), plan, cfg))
    np.testing.assert_array_equal(out[~mal], u[~mal])
    np.testing.assert_array_equal(out[mal], -u[mal])


def test_label_flip_and_backdoor_data():
    x = np.arange(24.0).reshape(12, 2)
    y = np.array([0, 1, 2] * 4, np.int32)
    xf, yf = byz.LabelFlip(3)(x, y, 12, jax.random.key(0))
    np.testing.assert_array_equal(yf, 2 - y)
    np.testing.assert_array_equal(xf, x)
    bd = byz.Backdoor(features=(1,), value=-5.0, target=2, fraction=0.25)
    count = 9  # rows 9..11 are padding
    xb, yb = map(np.asarray, bd(jnp.asarray(x), jnp.asarray(y), count, jax.random.key(3)))
    hit = xb[:, 1] == -5.0
    assert hit.sum() == np.ceil(0.25 * count) and not hit[count:].any()
    np.testing.assert_array_equal(yb[hit], 2)
    np.testing.assert_array_equal(yb[~hit], y[~hit])
    np.testing.assert_array_equal(xb[:, 0], x[:, 0])
    np.testing.assert_array_equal(bd.trigger(jnp.array([1.0, 2.0, 3.0])), [1.0, -5.0, 3.0])
    assert byz.Backdoor((1,), -5.0, 2) == byz.Backdoor((1,), -5.0, 2)  # hashable by value


def test_malicious_clients_and_bad_attack_parameters():
    ids = byz.malicious_clients(jax.random.key(0), 20, 6)
    assert len(set(ids)) == 6 and all(0 <= i < 20 for i in ids) and list(ids) == sorted(ids)
    assert byz.malicious_clients(jax.random.key(0), 20, 0) == ()
    with pytest.raises(ParameterError, match="f = 21 malicious clients exceeds n_clients = 20"):
        byz.malicious_clients(jax.random.key(0), 20, 21)
    with pytest.raises(ParameterError, match="n_clients must be a positive int, got 0"):
        byz.malicious_clients(jax.random.key(0), 0, 0)
    for bad in (lambda: byz.SignFlip(-1.0), lambda: byz.GaussianNoise(0.0),
                lambda: byz.IPM(0.0), lambda: byz.LabelFlip(1),
                lambda: byz.Backdoor((), 1.0, 0), lambda: byz.Backdoor((0,), 1.0, 0, 0.0)):
        with pytest.raises(ParameterError):
            bad()


@pytest.mark.slow
def test_sign_flip_collapses_fedavg_but_not_krum_or_median(tmp_path):
    """3 of 10 clients send -3 x their update (1-3 of the 8 sampled per round)."""
    model, data, test = make_setup()
    final = {}
    for name, agg in [("fedavg", fed.aggregator("fedavg")),
                      ("krum", fed.aggregator("krum", f=2)),
                      ("median", fed.aggregator("median"))]:
        cfg = base_config(rounds=8, malicious=(0, 1, 2), poison_updates=byz.SignFlip(3.0),
                          aggregator=agg)
        _, recs = fed.run(cfg, tmp_path / name, model=model, data=data, test=test,
                          progress=False)
        assert all(r["malicious"] for r in recs)  # attackers took part in every round
        final[name] = np.mean([r["accuracy"] for r in recs[-3:]])
    assert final["fedavg"] < 0.6
    assert min(final["krum"], final["median"]) > 0.8


def test_label_flip_clients_send_gradients_of_flipped_labels():
    from test_federated_rounds import flat_grad

    model, data, _ = make_setup()
    flip = byz.LabelFlip(2)
    cfg = fed.FedConfig(clients_per_round=8, rounds=1, mode="fedsgd", malicious=(0, 3, 5, 8),
                        poison_data=flip)
    _, info = fed.federated_round(fed.init_state(model, cfg), data, cfg)
    assert info.malicious.any() and not info.malicious.all()
    for row, cid, bad in zip(np.asarray(info.updates), info.ids, info.malicious):
        n = int(data.counts[cid])
        y = np.asarray(data.y[cid])
        ref = flat_grad(model, data.x[cid], 1 - y if bad else y, n)
        np.testing.assert_allclose(row, ref, rtol=1e-10, atol=1e-12)


def test_attack_and_backdoor_metrics_match_numpy():
    model, _, (x, y) = make_setup()
    bd = byz.Backdoor(features=(0,), value=3.0, target=1)
    flip = byz.LabelFlip(2)
    cfg = fed.FedConfig(clients_per_round=2, rounds=1, backdoor_trigger=bd.trigger,
                        backdoor_target=1, attack_target=flip.target)
    m = fed.evaluate_round(model, (x, y), cfg, 0)
    pred = np.argmax(np.asarray(jax.vmap(model)(jnp.asarray(x))), axis=1)
    xt = np.array(x)
    xt[:, 0] = 3.0
    pred_t = np.argmax(np.asarray(jax.vmap(model)(jnp.asarray(xt))), axis=1)
    assert m["accuracy"] == pytest.approx(np.mean(pred == y))
    assert m["attack_success"] == pytest.approx(np.mean(pred == 1 - y))
    assert m["backdoor_success"] == pytest.approx(np.mean(pred_t[y != 1] == 1))
    assert m["epsilon"] is None


def test_alie_z_refuses_undefined_rounds():
    """``alie_z`` is finite only for n >= 3 and f < floor(n/2 + 1): elsewhere it raises,
    naming n and f, instead of returning -inf or nan."""
    for n, f in [(2, 5), (2, 1), (10, 6), (10, 10), (5, -1)]:
        with pytest.raises(ParameterError, match=rf"n={n}, f={f}"):
            byz.alie_z(n, f)
    for n, f in [(3, 0), (3, 1), (10, 5)]:
        assert np.isfinite(float(byz.alie_z(n, f)))


def test_backdoor_feature_outside_the_data_is_refused():
    bd = byz.Backdoor(features=(10,), value=1.0, target=0)
    x = jnp.zeros((4, 2))
    with pytest.raises(ParameterError, match="feature 10 is outside examples of 2 features"):
        bd(x, jnp.zeros(4, jnp.int32), 4, jax.random.key(0))
    with pytest.raises(ParameterError, match="feature 10"):
        bd.trigger(x[0])
