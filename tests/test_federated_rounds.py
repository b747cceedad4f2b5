"""Federated rounds: vmapped clients vs per-client references, FedSGD/FedAvg against
hand-computed gradient steps, sharded == unsharded, resume == uninterrupted, the updates
handed to gradient inversion, and bad configurations."""

import json
import os
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qjaxrob import federated as fed
from qjaxrob import storage
from qjaxrob.attacks import inversion
from qjaxrob.errors import CheckpointError, LockError, OutputError, ParameterError
from qjaxrob.qml import make_vqc
from qjaxrob.qml.train import cross_entropy

LR = 0.1  # the default client optimizer is optax.sgd(0.1)
MOMENTUM = optax.sgd(1.0, momentum=0.5)  # a server optimizer with state to checkpoint
CLIENT_OPT = optax.adam(0.1)  # one object: every test (and file) using it shares compiles


def blobs(seed, n):
    """Two Gaussian blobs in angle space, class 0 around (0.7, 0.7), class 1 around (2.4, 2.4)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = np.where(y[:, None] == 0, 0.7, 2.4) + 0.35 * rng.normal(size=(n, 2))
    return x, y.astype(np.int32)


def make_setup():
    """Model (2 qubits, complex128), 10 Dirichlet(2) clients of blob data, a test set."""
    x, y = blobs(0, 160)
    xte, yte = blobs(1, 64)
    parts = fed.dirichlet_split(jax.random.key(0), y, 10, 2.0, min_size=4)
    data = fed.stack_clients(x, y, parts)
    model = make_vqc(jax.random.key(1), 2, 2, layers=1, dtype=jnp.complex128)
    return model, data, (xte, yte)


@pytest.fixture(scope="module")
def setup():
    return make_setup()


@eqx.filter_jit
def example_grads(model, x, y):
    """Per-example gradients of qml's cross-entropy, flattened: ``(len(x), dim)``."""
    def one(xi, yi):
        return fed.flatten(eqx.filter_grad(cross_entropy)(model, xi[None], yi[None]))[0]
    return jax.vmap(one)(x, y)


def flat_grad(model, x, y, n):
    """Reference gradient of the mean cross-entropy over the first ``n`` rows of ``(x, y)``."""
    return np.asarray(example_grads(model, jnp.asarray(x), jnp.asarray(y)))[:n].mean(0)


def base_config(**kw):
    """The configuration most tests share (one compiled client step for all of them)."""
    return fed.FedConfig(**{"clients_per_round": 8, "rounds": 1, "local_steps": 2,
                            "batch_size": 4, "client_optimizer": CLIENT_OPT, **kw})


def client_arrays(data, ids):
    ids = np.asarray(ids)
    return data.x[ids], data.y[ids], data.counts[ids]


def test_fedsgd_updates_are_client_gradients(setup):
    model, data, _ = setup
    cfg = fed.FedConfig(clients_per_round=8, rounds=1, mode="fedsgd")
    state = fed.init_state(model, cfg)
    new, info = fed.federated_round(state, data, cfg)
    counts = np.asarray(data.counts)[info.ids]
    for row, cid in zip(np.asarray(info.updates), info.ids):
        n = int(data.counts[cid])
        np.testing.assert_allclose(row, flat_grad(model, data.x[cid], data.y[cid], n),
                                   rtol=1e-10, atol=1e-12)
        # the server's view as a model-shaped gradient pytree (what inversion takes)
        g = fed.unflatten(model, jnp.asarray(row))
        assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(
            eqx.filter(model, eqx.is_inexact_array))
        np.testing.assert_array_equal(inversion.check_grads(model, g), row)
    # server: sgd(1.0) on the count-weighted mean gradient
    expect = fed.flatten(model)[0] - np.average(np.asarray(info.updates), 0, counts)
    np.testing.assert_allclose(fed.flatten(new.model)[0], expect, rtol=1e-12)
    assert new.round == 1 and len(set(info.ids.tolist())) == 8


def test_fedavg_full_batch_epochs_are_gradient_descent(setup):
    """With batch_size >= every client's size an epoch is one full-batch GD step, so two
    local epochs of sgd(0.1) must equal two hand-computed GD steps per client."""
    model, data, _ = setup
    max_n = data.x.shape[1]
    cfg = fed.FedConfig(clients_per_round=8, rounds=1, local_epochs=2, batch_size=max_n)
    state = fed.init_state(model, cfg)
    _, info = fed.federated_round(state, data, cfg)
    w0, to_model = fed.flatten(model)
    for row, cid in zip(np.asarray(info.updates), info.ids):
        n = int(data.counts[cid])
        w = w0
        for _ in range(2):
            w = w - LR * flat_grad(to_model(w), data.x[cid], data.y[cid], n)
        np.testing.assert_allclose(row, w0 - w, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_sharded_round_equals_unsharded(setup):
    model, data, _ = setup
    assert len(jax.devices()) == 8
    cfg, cfg_sh = base_config(), base_config(shard=True)
    s0 = fed.init_state(model, cfg)
    a, ia = fed.federated_round(s0, data, cfg)
    b, ib = fed.federated_round(s0, data, cfg_sh)
    assert len(ib.updates.sharding.device_set) == 8
    np.testing.assert_array_equal(ia.ids, ib.ids)
    np.testing.assert_allclose(ia.updates, ib.updates, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(fed.flatten(a.model)[0], fed.flatten(b.model)[0], rtol=1e-10)
    # 5 clients on 8 devices: padded to 8, the padding's updates dropped
    c5, c5_sh = (fed.FedConfig(clients_per_round=5, rounds=1, shard=s) for s in (False, True))
    a, ia = fed.federated_round(s0, data, c5)
    b, ib = fed.federated_round(s0, data, c5_sh)
    assert ib.updates.shape == ia.updates.shape == (5, ia.updates.shape[1])
    np.testing.assert_allclose(ia.updates, ib.updates, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(fed.flatten(a.model)[0], fed.flatten(b.model)[0], rtol=1e-10)


def test_fltrust_round_uses_the_server_root_update(setup):
    model, data, _ = setup
    cfg = base_config(aggregator=fed.aggregator("fltrust"))
    xr, yr = blobs(5, 12)
    state = fed.init_state(model, cfg)
    new, info = fed.federated_round(state, data, cfg, root=(xr, yr))
    assert info.server_update.shape == info.updates.shape[1:]
    assert float(jnp.linalg.norm(info.server_update)) > 0
    np.testing.assert_allclose(info.aggregate, fed.fltrust(info.updates, info.server_update),
                               rtol=1e-12)
    np.testing.assert_allclose(fed.flatten(new.model)[0],
                               fed.flatten(model)[0] - np.asarray(info.aggregate), rtol=1e-12)
    with pytest.raises(ParameterError, match="root data"):
        fed.federated_round(state, data, cfg)


class Interrupt(Exception):
    pass


def test_resume_equals_uninterrupted(setup, tmp_path):
    model, data, test = setup
    cfg = base_config(rounds=5, server_optimizer=MOMENTUM)
    full_state, full_recs = fed.run(cfg, tmp_path / "full", model=model, data=data, test=test,
                                    progress=False)
    assert [r["round"] for r in full_recs] == [1, 2, 3, 4, 5]

    def stop_after_2(state, info):
        if state.round == 2:
            raise Interrupt

    part = tmp_path / "part"
    with pytest.raises(Interrupt):
        fed.run(cfg, part, model=model, data=data, test=test, progress=False,
                on_round=stop_after_2)
    # a crash after round 3's line was written but before its checkpoint: a stale line
    # and a torn one are on disk
    with open(part / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"round": 3, "accuracy": -1.0}) + "\n" + '{"round": 4, "acc')
    state, recs = fed.run(cfg, part, model=model, data=data, test=test, progress=False)
    assert (part / "metrics.jsonl").read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()
    assert recs == full_recs
    for a, b in zip(jax.tree_util.tree_leaves((state.model, state.opt_state)),
                    jax.tree_util.tree_leaves((full_state.model, full_state.opt_state))):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(state.key, full_state.key)
    # running again does nothing; a longer run continues; another config is refused
    again, recs2 = fed.run(cfg, part, model=model, data=data, test=test, progress=False)
    assert recs2 == full_recs and again.round == 5
    other = fed.FedConfig(clients_per_round=3, rounds=6)
    with pytest.raises(ParameterError, match="different configuration"):
        fed.run(other, part, model=model, data=data, test=test, progress=False)


def test_run_records_metrics(setup, tmp_path):
    model, data, test = setup
    cfg = base_config(rounds=8, malicious=(1,))
    seen = []
    _, recs = fed.run(cfg, tmp_path, model=model, data=data, test=test, progress=False,
                      on_round=lambda s, i: seen.append(i.updates.shape))
    assert seen == [(8, fed.flatten(model)[0].size)] * 8
    assert recs[-1]["accuracy"] >= 0.85 and recs[-1]["loss"] < recs[0]["loss"]
    for r in recs:
        assert set(r) == {"round", "clients", "malicious", "accuracy", "loss", "attack_success",
                          "backdoor_success", "epsilon"}
        assert r["attack_success"] == pytest.approx(1 - r["accuracy"])
        assert r["epsilon"] is None and r["backdoor_success"] is None
        assert r["malicious"] == ([1] if 1 in r["clients"] else [])


def nan_attack(updates, malicious, key):
    return updates * jnp.nan


def test_bad_round_configurations_raise(setup, tmp_path):
    model, data, test = setup
    for kw, msg in [({"clients_per_round": 0}, "clients_per_round must be a positive int"),
                    ({"mode": "fedprox"}, "mode must be one of"),
                    ({"malicious": (1, 1)}, "repeat"),
                    ({"mode": "fedsgd", "local_privacy": object()}, "local_privacy"),
                    ({"backdoor_target": 0}, "together")]:
        with pytest.raises(ParameterError, match=msg):
            fed.FedConfig(**{"clients_per_round": 2, "rounds": 1, **kw})
    with pytest.raises(ParameterError, match="exceeds n_clients = 10"):
        fed.run(fed.FedConfig(clients_per_round=11, rounds=1), tmp_path, model=model,
                data=data, test=test, progress=False)
    with pytest.raises(ParameterError, match="malicious client id 12"):
        fed.run(fed.FedConfig(clients_per_round=2, rounds=1, malicious=(12,)), tmp_path,
                model=model, data=data, test=test, progress=False)
    with pytest.raises(ParameterError, match=r"krum needs n > 2f \+ 2 updates: n = 8 .* f = 3"):
        fed.run(base_config(aggregator=fed.aggregator("krum", f=3)), tmp_path / "krum",
                model=model, data=data, test=test, progress=False)
    cfg = fed.FedConfig(clients_per_round=8, rounds=1, mode="fedsgd", malicious=range(10),
                        poison_updates=nan_attack)
    state = fed.init_state(model, cfg)
    first = fed.plan_round(state, data.n_clients, cfg).ids[0]
    with pytest.raises(ParameterError, match=f"client {first} sent a non-finite"):
        fed.federated_round(state, data, cfg)


@pytest.fixture(scope="module")
def finished_run(setup, tmp_path_factory):
    """A finished 5-round run: (config, its folder's metrics.jsonl and checkpoint bytes)."""
    model, data, test = setup
    cfg = base_config(rounds=5)
    out = tmp_path_factory.mktemp("finished")
    _, recs = fed.run(cfg, out, model=model, data=data, test=test, progress=False)
    assert [r["round"] for r in recs] == [1, 2, 3, 4, 5]
    return cfg, (out / "metrics.jsonl").read_text(), (out / "checkpoint.npz").read_bytes()


def copy_run(finished, folder, metrics=None, checkpoint=None):
    _, text, ckpt = finished
    folder.mkdir()
    (folder / "metrics.jsonl").write_text(text if metrics is None else metrics)
    (folder / "checkpoint.npz").write_bytes(ckpt if checkpoint is None else checkpoint)
    return folder


@pytest.mark.parametrize("damage, match", [
    (lambda ls: ls[:2] + ['{"round": 3, "accur'] + ls[3:], r"line 3 is damaged"),
    (lambda ls: ls[:2] + ["\x00\x00garbage"] + ls[3:], r"line 3 is damaged"),
    (lambda ls: ls[:2] + ls[3:], r"lacks the metrics of rounds \[3\]"),
    (lambda ls: ls[:3] + [ls[2]] + ls[3:], r"line 4 repeats round 3 of line 3"),
    (lambda ls: ls[:2] + [ls[3], ls[2]] + ls[4:], r"line 4 holds round 3 after round 4"),
    (lambda ls: ls[:2] + ['{"accuracy": 1.0}'] + ls[3:], r"line 3 has no valid round number"),
])
def test_resume_refuses_damaged_metrics_instead_of_dropping_them(setup, finished_run,
                                                                 tmp_path, damage, match):
    """A finished run whose metrics.jsonl was damaged is never 'resumed' into a file with a
    round silently missing: the damage is refused naming the file and line, and the file is
    left as it was."""
    model, data, test = setup
    cfg, text, _ = finished_run
    bad = "\n".join(damage(text.splitlines())) + "\n"
    out = copy_run(finished_run, tmp_path / "run", metrics=bad)
    with pytest.raises(OutputError, match=r"metrics.jsonl'.* " + match):
        fed.run(cfg, out, model=model, data=data, test=test, progress=False)
    assert (out / "metrics.jsonl").read_text() == bad


def test_a_damaged_checkpoint_is_refused_naming_it(setup, finished_run, tmp_path):
    model, data, test = setup
    cfg, _, ckpt = finished_run
    for i, bad in enumerate([ckpt[:100], ckpt[: len(ckpt) - 50], os.urandom(600), b""]):
        out = copy_run(finished_run, tmp_path / f"run{i}", checkpoint=bad)
        with pytest.raises(CheckpointError, match=r"checkpoint '.*run\d/checkpoint.npz'") as e:
            fed.run(cfg, out, model=model, data=data, test=test, progress=False)
        assert "pickle" not in str(e.value)
    # a checkpoint of another program (a qml.fit checkpoint) is named as such
    out = copy_run(finished_run, tmp_path / "other")
    storage.write_checkpoint(out / "checkpoint.npz", {"model": [np.zeros(2)]}, {"epoch": 1})
    with pytest.raises(CheckpointError, match=r"lacks the entries \['key', 'round', 'config'\]"):
        fed.run(cfg, out, model=model, data=data, test=test, progress=False)


def test_labels_outside_the_classes_are_refused_before_any_round(setup, tmp_path):
    model, data, test = setup
    cfg = base_config(rounds=1)
    xte, yte = test
    for bad, match in [(np.full(len(yte), 5), "test labels: label 5 outside the class range 0..1"),
                       (yte - 1, "test labels: label -1 outside")]:
        with pytest.raises(ParameterError, match=re.escape(match)):
            fed.run(cfg, tmp_path / "t", model=model, data=data, test=(xte, bad),
                    progress=False)
    row = int(np.argmax(np.asarray(data.counts) < data.y.shape[1]))  # a client with padding
    n = int(data.counts[row])
    with pytest.raises(ParameterError, match="client training labels: label 5 outside"):
        fed.run(cfg, tmp_path / "t", model=model, data=data._replace(y=data.y.at[row, 0].set(5)),
                test=test, progress=False)
    assert not (tmp_path / "t" / "metrics.jsonl").exists()
    # padding rows beyond a client's count are not labels
    padded = data._replace(y=data.y.at[row, n].set(5))
    _, recs = fed.run(cfg, tmp_path / "p", model=model, data=padded, test=test, progress=False)
    assert [r["round"] for r in recs] == [1]


def test_a_second_writer_is_refused(setup, finished_run, tmp_path):
    model, data, test = setup
    cfg, text, _ = finished_run
    out = copy_run(finished_run, tmp_path / "run")
    with storage.locked(out):  # another process is writing here
        with pytest.raises(LockError, match=rf"federated out_dir '.*run' is in use by another "
                                            rf"writer \(pid {os.getpid()} on host"):
            fed.run(cfg, out, model=model, data=data, test=test, progress=False)
    _, recs = fed.run(cfg, out, model=model, data=data, test=test, progress=False)
    assert (out / "metrics.jsonl").read_text() == text and len(recs) == 5
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "metrics.jsonl"]
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        fed.run(cfg, tmp_path / "file", model=model, data=data, test=test, progress=False)
