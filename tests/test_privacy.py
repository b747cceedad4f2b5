"""Differential privacy: DP-SGD and DP-FedAvg clipping against NumPy, noise scales against
the multiplier, epsilon against dp-accounting called directly, and DP inside rounds."""

import sys

import dp_accounting
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_federated_rounds import CLIENT_OPT, base_config, make_setup

from qjaxrob import federated as fed
from qjaxrob.defenses import privacy
from qjaxrob.errors import MissingDependencyError, ParameterError


def np_clip(rows, c):
    return np.array([r * min(1.0, c / np.linalg.norm(r)) for r in rows])


def test_dp_sgd_clips_per_example_across_leaves():
    rng = np.random.default_rng(0)
    grads = {"a": rng.normal(size=(6, 3)), "b": rng.normal(size=(6, 2, 2))}
    t = privacy.dp_sgd(1.0, 0.0)
    state = t.init(None, jax.random.key(0))
    out, state = t.update(jax.tree_util.tree_map(jnp.asarray, grads), state)
    flat = np.concatenate([grads["a"], grads["b"].reshape(6, 4)], axis=1)
    ref = np_clip(flat, 1.0).mean(0)
    np.testing.assert_allclose(out["a"], ref[:3], rtol=1e-12)
    np.testing.assert_allclose(out["b"], ref[3:].reshape(2, 2), rtol=1e-12)
    assert int(state.count) == 1


@pytest.mark.parametrize("sigma,clip,batch", [(1.0, 1.0, 4), (0.5, 3.0, 16), (2.0, 0.1, 1)])
def test_dp_sgd_noise_scale_matches_multiplier(sigma, clip, batch):
    t = privacy.dp_sgd(clip, sigma)
    state = t.init(None, jax.random.key(1))
    zeros = jnp.zeros((batch, 20000))
    out, state2 = t.update(zeros, state)
    assert float(jnp.std(out)) == pytest.approx(sigma * clip / batch, rel=0.03)
    out2, _ = t.update(zeros, state2)
    assert not np.allclose(out, out2)  # fresh noise each step


def test_dp_fedavg_clipping_and_noise_scale():
    rng = np.random.default_rng(2)
    u = rng.normal(size=(5, 7)) * np.array([[0.1], [1.0], [3.0], [10.0], [0.5]])
    t = privacy.dp_fedavg(1.5, 0.0, expected_clients=8)
    out, _ = t.update(jnp.asarray(u), t.init(None, jax.random.key(0)))
    np.testing.assert_allclose(out, np_clip(u, 1.5).sum(0) / 8, rtol=1e-12)
    sigma, clip, m = 1.2, 0.7, 10
    t = privacy.dp_fedavg(clip, sigma, expected_clients=m)
    out, state = t.update(jnp.zeros((m, 20000)), t.init(None, jax.random.key(3)))
    assert float(jnp.std(out)) == pytest.approx(sigma * clip / m, rel=0.03)
    assert int(state.count) == 1


def direct_rdp(q, sigma, steps, delta):
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(dp_accounting.dp_event.PoissonSampledDpEvent(
        q, dp_accounting.dp_event.GaussianDpEvent(sigma)), steps)
    return acc.get_epsilon(delta)


def test_epsilon_matches_dp_accounting_and_anchors():
    assert privacy.epsilon(4.0, 0.01, 1000, 1e-5) == direct_rdp(0.01, 4.0, 1000, 1e-5)
    # shared/anchors/ROBUSTNESS.md section 7 (dp-accounting 0.6.0)
    assert privacy.epsilon(4.0, 0.01, 1000, 1e-5) == pytest.approx(0.3012, abs=5e-4)
    assert privacy.epsilon(4.0, 0.01, 1000, 1e-5, "pld") == pytest.approx(0.2722, abs=5e-4)
    assert privacy.epsilon(1.0, 1.0, 1, 1e-5) == pytest.approx(4.7285, abs=5e-4)
    assert privacy.epsilon(1.0, 0.5, 0, 1e-5) == 0.0
    assert privacy.epsilon(0.0, 0.5, 3, 1e-5) == np.inf


def test_accountant_is_monotone_in_rounds():
    acc = privacy.Accountant(noise_multiplier=1.1, sampling_rate=0.2, delta=1e-5,
                             steps_per_round=3)
    eps = [acc(r) for r in range(6)]
    assert eps[0] == 0.0 and all(np.diff(eps) > 0)
    assert eps[4] == direct_rdp(0.2, 1.1, 12, 1e-5)


def test_bad_privacy_parameters_raise():
    with pytest.raises(ParameterError, match="noise_multiplier must be >= 0.0"):
        privacy.dp_sgd(1.0, -0.5)
    with pytest.raises(ParameterError, match="clipping norm must be > 0.0"):
        privacy.dp_fedavg(0.0, 1.0, 4)
    with pytest.raises(ParameterError, match="expected_clients"):
        privacy.dp_fedavg(1.0, 1.0, 0)
    with pytest.raises(ParameterError, match="delta"):
        privacy.epsilon(1.0, 0.1, 10, 0.0)
    with pytest.raises(ParameterError, match="sampling_rate"):
        privacy.epsilon(1.0, 0.0, 10, 1e-5)
    with pytest.raises(ParameterError, match="'rdp' or 'pld'"):
        privacy.Accountant(1.0, 0.1, 1e-5, accountant="gdp")
    with pytest.raises(ParameterError, match="PRNG key"):
        privacy.dp_sgd(1.0, 1.0).init(None, 3)


class Interrupt(Exception):
    pass


def test_dp_fedavg_rounds_report_epsilon_and_resume(tmp_path):
    model, data, test = make_setup()
    acc = privacy.Accountant(noise_multiplier=0.8, sampling_rate=8 / 10, delta=1e-5)
    cfg = base_config(rounds=3, server_privacy=privacy.dp_fedavg(0.5, 0.8, 8), accountant=acc)
    full, recs = fed.run(cfg, tmp_path / "a", model=model, data=data, test=test,
                         progress=False)
    assert [r["epsilon"] for r in recs] == [acc(1), acc(2), acc(3)]

    def stop(state, info):
        if state.round == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        fed.run(cfg, tmp_path / "b", model=model, data=data, test=test, progress=False,
                on_round=stop)
    resumed, recs_b = fed.run(cfg, tmp_path / "b", model=model, data=data, test=test,
                              progress=False)
    assert recs_b == recs  # the DP noise key was checkpointed with the model
    np.testing.assert_array_equal(fed.flatten(resumed.model)[0], fed.flatten(full.model)[0])


def test_local_dp_sgd_in_a_round():
    """DP-SGD's per-example path inside the vmapped clients: without clipping or noise it
    reproduces the plain minibatch step (the noise itself is tested on the transform)."""
    model, data, _ = make_setup()
    plain = base_config()
    no_noise = base_config(local_privacy=privacy.dp_sgd(1e6, 0.0))
    s0 = fed.init_state(model, plain)
    u_plain = fed.federated_round(s0, data, plain)[1].updates
    u_clip = fed.federated_round(s0, data, no_noise)[1].updates
    # per-example gradients averaged without clipping or noise == the minibatch gradient
    np.testing.assert_allclose(u_clip, u_plain, rtol=1e-8, atol=1e-8)
    assert plain.client_optimizer is CLIENT_OPT


def test_missing_dp_accounting_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dp_accounting", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'qjaxrob\[dp\]'"):
        privacy.epsilon(1.0, 0.1, 10, 1e-5)


def test_dp_fedavg_refuses_a_non_finite_client_row():
    t = privacy.dp_fedavg(1.0, 0.5, expected_clients=4)
    u = np.ones((4, 3))
    u[2, 1] = np.nan
    with pytest.raises(ParameterError, match="client 2"):
        t.update(jnp.asarray(u), t.init(None, jax.random.key(0)))
    with pytest.raises(ParameterError, match="shape"):
        t.update(jnp.ones(3), t.init(None, jax.random.key(0)))
