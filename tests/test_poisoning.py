"""Training-time QFL attacks (qjaxrob.attacks.poisoning): model replacement's boost and
constrain-and-scale, the circuit-level backdoor's input map against the circuit with the
trigger gates inserted (dense NumPy reference), and both inside federated training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import reference
import qjaxrob as qjr
from qjaxrob import federated as fed
from qjaxrob.attacks import poisoning
from qjaxrob.errors import ParameterError


def test_model_replacement_boost_and_constraints():
    rng = np.random.default_rng(0)
    u = jnp.asarray(rng.normal(size=(5, 7)))
    mal = jnp.asarray([True, False, True, False, False])
    att = poisoning.ModelReplacement(n_clients=10, server_lr=0.5)
    assert att.gamma == 20.0
    assert np.allclose(att(u, mal, None), 20.0 * np.asarray(u))
    # the replaced global model: w - eta * mean(updates) = w - u_attacker when the benign
    # updates cancel
    benign = jnp.asarray(rng.normal(size=(9, 7)))
    benign = benign - benign.mean(0)
    rows = jnp.concatenate([att(u[:1], mal[:1], None), benign])
    assert np.allclose(0.5 * rows.mean(0), u[0], atol=1e-12)
    c = poisoning.ModelReplacement(10, norm_bound=1.5)(u, mal, None)
    assert np.allclose(np.linalg.norm(c, axis=1), 1.5)
    assert np.allclose(c / np.linalg.norm(c, axis=1, keepdims=True),
                       u / np.linalg.norm(u, axis=1, keepdims=True))
    small = poisoning.ModelReplacement(2, norm_bound=1e6)(u, mal, None)
    assert np.allclose(small, 2 * u)
    clip = poisoning.ModelReplacement(10, max_abs=0.3)(u, mal, None)
    assert np.allclose(clip, np.clip(10 * np.asarray(u), -0.3, 0.3))


@pytest.mark.parametrize("axis,gate", [("y", "x"), ("y", "y"), ("y", "z"), ("x", "x"),
                                       ("x", "y"), ("x", "z")])
def test_trigger_input_map_equals_the_trigger_gates(axis, gate):
    enc = qjr.qml.angle_encoding(3, axis=axis, scaling=0.7)
    ansatz = qjr.qml.hardware_efficient(3, 2)
    model = qjr.qml.VQC(jax.random.key(1), enc, ansatz, 2)
    bd = poisoning.CircuitBackdoor(enc, wires=(0, 2), target=1, gate=gate)
    trig = poisoning.triggered_model(model, bd)
    assert len(trig.circuit.ops) == len(model.circuit.ops) + 2
    rng = np.random.default_rng(2)
    for x in rng.uniform(0, np.pi, (5, 3)):
        a = np.asarray(bd.trigger(jnp.asarray(x)))
        z_map = reference.expval_ref(model.circuit, qjr.Z(2), np.asarray(model.params), a)
        z_gate = reference.expval_ref(trig.circuit, qjr.Z(2), np.asarray(model.params), x)
        assert z_map == pytest.approx(z_gate, abs=1e-9)
        assert np.allclose(model(jnp.asarray(a)), trig(jnp.asarray(x, jnp.float32)),
                           atol=1e-5)
    assert not np.allclose(np.asarray(bd.trigger(jnp.asarray([0.3, 0.4, 0.5]))),
                           [0.3, 0.4, 0.5])


def test_backdoor_poisons_a_fraction_with_the_target_label():
    enc = qjr.qml.angle_encoding(2)
    bd = poisoning.CircuitBackdoor(enc, wires=(1,), target=0, fraction=0.25)
    x = jnp.asarray(np.random.default_rng(0).uniform(0, np.pi, (10, 2)))
    y = jnp.ones(10, jnp.int32)
    px, py = bd(x, y, 8, jax.random.key(0))
    hit = np.asarray(py == 0)
    assert hit.sum() == 2 and not hit[8:].any()
    assert np.allclose(px[hit][:, 1], np.pi - x[hit][:, 1]) and np.allclose(px[~hit], x[~hit])


def fl(malicious, poison_updates, poison_data, backdoor, rounds=12, seed=0):
    n = 6
    x, y = qjr.qml.data.teacher(jax.random.key(seed), n * 16 + 96, n_qubits=2)
    x = x.astype(np.float32)
    data = fed.stack_clients(x[:n * 16], y[:n * 16], fed.iid_split(jax.random.key(1), n * 16, n))
    model = qjr.qml.make_vqc(jax.random.key(2), 2, 2, layers=2)
    cfg = fed.FedConfig(clients_per_round=n, rounds=rounds, local_steps=4, batch_size=8,
                        client_optimizer=optax.sgd(0.5), malicious=malicious,
                        poison_updates=poison_updates, poison_data=poison_data,
                        backdoor_trigger=backdoor.trigger, backdoor_target=backdoor.target)
    state = fed.init_state(model, cfg)
    for _ in range(rounds):
        state, _ = fed.federated_round(state, data, cfg)
    test = (x[n * 16:], y[n * 16:])
    return poisoning.attack_metrics(state.model, *test, backdoor.trigger, backdoor.target), \
        fed.evaluate_round(state.model, test, cfg, rounds)


@pytest.mark.slow
def test_model_replacement_with_circuit_backdoor_in_federated_training():
    """One malicious client of 6 (FedAvg, 12 rounds), bit-flip trigger on wire 1, target 0:
    with model replacement (gamma = 6) the backdoor success rate rises by more than 0.3
    over the clean model's (measured: 0.12 -> 0.69); attack_metrics agrees with the
    federated loop's own backdoor metric."""
    enc = qjr.qml.angle_encoding(2)
    bd = poisoning.CircuitBackdoor(enc, wires=(1,), target=0, gate="x", fraction=0.5)
    clean, _ = fl((), None, None, bd)
    boosted, ev = fl((0,), poisoning.ModelReplacement(6), bd, bd)
    assert boosted["attack_success_rate"] == pytest.approx(ev["backdoor_success"])
    assert boosted["attack_success_rate"] > clean["attack_success_rate"] + 0.3
    assert clean["clean_accuracy"] > 0.7


def test_bad_inputs():
    enc = qjr.qml.angle_encoding(2)
    with pytest.raises(ParameterError, match="server_lr"):
        poisoning.ModelReplacement(4, server_lr=0.0)
    with pytest.raises(ParameterError, match="norm_bound"):
        poisoning.ModelReplacement(4, norm_bound=-1.0)
    with pytest.raises(ParameterError, match="max_abs"):
        poisoning.ModelReplacement(4, max_abs=-0.1)
    with pytest.raises(ParameterError, match="n_clients"):
        poisoning.ModelReplacement(0)
    with pytest.raises(ParameterError, match="wires"):
        poisoning.CircuitBackdoor(enc, wires=(2,), target=0)
    with pytest.raises(ParameterError, match="gate"):
        poisoning.CircuitBackdoor(enc, wires=(0,), target=0, gate="h")
    with pytest.raises(ParameterError, match="fraction"):
        poisoning.CircuitBackdoor(enc, wires=(0,), target=0, fraction=1.5)
    with pytest.raises(ParameterError, match="angle encoding"):
        poisoning.CircuitBackdoor(qjr.qml.iqp_encoding(2), wires=(0,), target=0)
    with pytest.raises(ParameterError, match="input map"):
        poisoning.CircuitBackdoor(qjr.qml.angle_encoding(2, axis="z"), wires=(0,), target=0)
    model = qjr.qml.make_vqc(jax.random.key(0), 2, 2, layers=1, reupload=True)
    with pytest.raises(ParameterError, match="re-uploading"):
        poisoning.triggered_model(model, poisoning.CircuitBackdoor(enc, (0,), 0))
    with pytest.raises(ParameterError, match="target"):
        poisoning.attack_metrics(model, jnp.zeros((2, 2)), jnp.zeros(2, jnp.int32),
                                 lambda v: v)
