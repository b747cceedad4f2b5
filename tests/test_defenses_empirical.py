"""Empirical check of the certificates with the attacks package: PGD (and the mixing attack)
inside the state-level radii of a noisy classifier, the state-level attack of
qjr.attacks.state inside the hypothesis-testing radius of a noiseless one, and PGD on the
smoothed classifier inside the smoothing radius. No certified example may be broken."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob import attacks, defenses
from qjaxrob.defenses import empirical, smoothing, tradeoff
from qjaxrob.errors import ParameterError

F64 = jnp.complex128


@pytest.fixture(scope="module")
def model_and_data():
    model = qjr.qml.make_vqc(jax.random.key(4), 2, 2, readout="probs", post=False, layers=1,
                             dtype=F64)
    x = jax.random.uniform(jax.random.key(5), (4, 2), jnp.float64, 0, np.pi)
    return model, x


@pytest.mark.slow
def test_state_certificates_survive_pgd_and_the_gap_is_reported(model_and_data):
    model, x = model_and_data
    noisy = defenses.add_noise(tradeoff.classifier_channel(model), "depolarizing", 0.2)
    eff = defenses.channel_effects(noisy, model.params, wires=model.readout_wires,
                                   n_classes=2, dtype=F64)
    states = tradeoff.encoded_states(model, x)
    rows = empirical.state_check(jax.random.key(0), eff, states, pgd=attacks.pgd, restarts=2,
                                 steps=15, bisections=10)
    assert len(rows) == 4 * len(empirical.CERTIFICATES)
    assert not any(r["broken"] for r in rows)
    for r in rows:
        if r["certified_radius"] > 0:
            assert r["margin_at_radius"] > -1e-9 and r["gap"] > -1e-12
    by = {c: [r for r in rows if r["certificate"] == c] for c in empirical.CERTIFICATES}
    # the trace-distance attacks are the same for all three trace certificates, so the
    # channel-aware radius (never below the generic one) has the smaller gap; on this
    # instance the DP radius is the loosest, and the channel-aware one within 0.05
    for i in range(4):
        emp = by["trace"][i]["empirical_radius"]
        assert by["channel_trace"][i]["empirical_radius"] == emp == by["dp"][i]["empirical_radius"]
        assert by["channel_trace"][i]["gap"] <= by["trace"][i]["gap"]
        assert by["channel_trace"][i]["gap"] < 0.05
        assert by["dp"][i]["gap"] >= by["channel_trace"][i]["gap"]
    summary = {s["certificate"]: s for s in empirical.summarize(rows)}
    assert set(summary) == set(empirical.CERTIFICATES)
    assert all(s["broken"] == 0 and s["mean_gap"] >= 0 for s in summary.values())


@pytest.mark.slow
def test_hypothesis_testing_radius_survives_the_state_attack(model_and_data):
    """Noiseless pure-state classifier: qjr.attacks.state_attack at the Weber radius never
    flips the class; at four times the radius it does flip some examples."""
    model, x = model_and_data
    probs = jax.vmap(model.readout_vector)(x)
    pred, pa, pb = defenses.top_two(probs)
    radius = np.asarray(defenses.hypothesis_testing_radius(pa, pb))
    flipped_inside, flipped_outside = 0, 0
    for i in range(x.shape[0]):
        for scale in (1 - 1e-6, 4.0):
            res = attacks.state_attack(model, x[i], pred[i], min(1.0, scale * radius[i]),
                                       steps=40, step_size=0.1, key=jax.random.key(i))
            flipped = int(jnp.argmax(res.logits)) != int(pred[i])
            if scale < 1:
                flipped_inside += flipped
                assert res.infidelity <= radius[i] * (1 + 1e-9)
            else:
                flipped_outside += flipped
    assert flipped_inside == 0
    assert flipped_outside > 0


@pytest.mark.slow
def test_smoothing_certificates_survive_pgd():
    model = qjr.qml.make_vqc(jax.random.key(6), 2, 2, layers=1, dtype=F64)
    x = jnp.array([[0.3, 2.5], [2.8, 0.4], [1.5, 1.6]])
    sigma = 0.3

    def logits(xi):
        return model(xi)

    def classify(xi):
        return jnp.argmax(model(xi))

    keys = jax.random.split(jax.random.key(8), x.shape[0])
    cert = jax.vmap(lambda k, xi: smoothing.certify(k, classify, xi, sigma, n_classes=2,
                                                    n0=50, n=400))(keys, x)
    assert np.any(np.asarray(cert.radius) > 0)
    rows = empirical.smoothing_check(jax.random.key(9), logits, x, cert, sigma,
                                     pgd=attacks.pgd, max_radius=3.0, n_noise=16, steps=8,
                                     n_eval=400, bisections=4)
    assert not any(r["broken"] for r in rows)
    for r in rows:
        if r["certified_radius"] > 0:
            assert r["empirical_radius"] >= r["certified_radius"]
            assert r["p_a_at_radius"] > 0.5
    with pytest.raises(ParameterError, match="one certificate per example"):
        empirical.smoothing_check(jax.random.key(9), logits, x[:2], cert, sigma,
                                  pgd=attacks.pgd, max_radius=3.0)


def test_state_check_bad_input():
    with pytest.raises(ParameterError, match="same d"):
        empirical.state_check(jax.random.key(0), np.zeros((2, 4, 4)), np.zeros((3, 2)),
                              pgd=attacks.pgd)
    with pytest.raises(ParameterError, match="key"):
        empirical.state_check(None, np.zeros((2, 4, 4)), np.zeros((3, 4)), pgd=attacks.pgd)
