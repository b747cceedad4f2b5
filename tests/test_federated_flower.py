"""The Flower adapter (Message API): a SuperLink, a ServerApp and three SuperNodes on
127.0.0.1 give the same rounds as the in-process simulation with the same seed; a
missing, failed, malformed or non-finite client reply is rejected naming the client."""

from pathlib import Path

import jax
import numpy as np
import pytest
from test_federated_rounds import CLIENT_OPT, blobs, make_setup

from qjaxrob import federated as fed
from qjaxrob.attacks import byzantine as byz
from qjaxrob.errors import ParameterError

pytest.importorskip("flwr")

ROUNDS = 2


def factory():
    """3 clients (2 sampled per round: 0 and 2 with seed 7), client 2 flips its sign."""
    model, _, test = make_setup()
    x, y = blobs(2, 48)
    data = fed.stack_clients(x, y, fed.iid_split(jax.random.key(3), len(x), 3))
    config = fed.FedConfig(clients_per_round=2, rounds=ROUNDS, local_steps=2, batch_size=4,
                           client_optimizer=CLIENT_OPT, malicious=(2,),
                           poison_updates=byz.SignFlip(1.0), seed=7)
    return model, data, test, config


def factory_fltrust():
    """All 3 clients each round, client 2 flips its sign, FLTrust with a root set."""
    model, data, test, config = factory()
    config = fed.FedConfig(clients_per_round=3, rounds=1, local_steps=2, batch_size=4,
                           client_optimizer=CLIENT_OPT, malicious=(2,),
                           poison_updates=byz.SignFlip(1.0), seed=11,
                           aggregator=fed.aggregator("fltrust"))
    return model, data, test, config, blobs(5, 8)


def _compare(result, spec, tmp_path):
    from qjaxrob.federated import flower

    model, data, test, config, root = flower.load_factory(spec)
    state, expect = fed.run(config, tmp_path / "sim", model=model, data=data, test=test,
                            root=root, progress=False)
    params, records, seconds = result
    np.testing.assert_allclose(params, fed.flatten(state.model)[0], rtol=1e-9, atol=1e-12)
    assert [r["clients"] for r in records] == [r["clients"] for r in expect]
    assert len(seconds) == config.rounds and np.all(seconds > 0)
    assert any(r["malicious"] for r in expect)  # the attacker took part
    for r, e in zip(records, expect):
        assert r["accuracy"] == pytest.approx(e["accuracy"], abs=1e-9)
        assert r["loss"] == pytest.approx(e["loss"], rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["test_federated_flower:factory",
                                  "test_federated_flower:factory_fltrust"])
def test_superlink_and_supernodes_match_in_process_run(tmp_path, spec):
    from qjaxrob.federated import flower

    tests_dir = str(Path(__file__).resolve().parent)
    result = flower.run_local(spec, 3, tmp_path / "flwr", timeout=300,
                              env={"PYTHONPATH": tests_dir,
                                   "QJAXROB_CACHE_DIR": str(tmp_path / "jax_cache")})
    _compare(result, spec, tmp_path)
    assert any((tmp_path / "jax_cache").iterdir())  # the apps shared their compiled code
    assert not list((tmp_path / "flwr").glob(".qjaxrob.lock"))  # the ServerApp finished


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """Messages made outside a Flower runtime need the task's run and node ids."""
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 5)
    monkeypatch.setattr(TaskIdentity, "_task_id", 9)


def _reply(content):
    from flwr.app import Message, RecordDict

    msg = Message(RecordDict(), dst_node_id=5, message_type="train")
    return Message(content, reply_to=msg)


def _content(cid, update):
    from flwr.app import ArrayRecord, ConfigRecord, RecordDict

    return RecordDict({"update": ArrayRecord([np.asarray(update)]),
                       "meta": ConfigRecord({"cid": cid})})


@pytest.mark.parametrize("update, match", [
    (np.array([0.1, np.nan, 0.3]), "client 4: sent a non-finite"),
    (np.array([0.1, np.inf, 0.3]), "client 4: sent a non-finite"),
    (np.zeros(2), r"client 4: malformed update.*\(3,\)"),
    (np.zeros((3, 1)), "client 4: malformed update"),
    (np.array([1, 2, 3]), "client 4: malformed update"),
])
def test_bad_client_reply_is_rejected_naming_the_client(update, match):
    from qjaxrob.federated.flower import parse_reply

    with pytest.raises(ParameterError, match=match):
        parse_reply(_reply(_content(4, update)), 4, 3)


def test_reply_without_records_or_with_another_id_is_rejected():
    from flwr.app import RecordDict

    from qjaxrob.federated.flower import parse_reply

    with pytest.raises(ParameterError, match="client 4: malformed reply"):
        parse_reply(_reply(RecordDict()), 4, 3)
    with pytest.raises(ParameterError, match="client 4: reply claims client id 2"):
        parse_reply(_reply(_content(2, np.zeros(3))), 4, 3)
    good = np.array([0.5, -1.0, 2.0])
    np.testing.assert_array_equal(parse_reply(_reply(_content(4, good)), 4, 3), good)


def test_strategy_names_a_sampled_client_that_sent_nothing_or_nan():
    from qjaxrob.federated.flower import QjrStrategy

    model, data, test, config = factory()
    s = QjrStrategy(model, data, test, config)
    plan = s.plan()
    dim = s.dim
    first, second = (int(i) for i in plan.ids)
    with pytest.raises(ParameterError, match=rf"clients \[{second}\] sent no reply"):
        s.finish({first: _reply(_content(first, np.zeros(dim)))})
    bad = np.zeros(dim)
    bad[0] = np.nan
    with pytest.raises(ParameterError, match=f"client {second}: sent a non-finite"):
        s.finish({first: _reply(_content(first, np.zeros(dim))),
                  second: _reply(_content(second, bad))})
    assert s.state.round == 0  # nothing was applied


def test_factory_spec_errors():
    from qjaxrob.federated import flower

    with pytest.raises(ParameterError, match="module:function"):
        flower.load_factory("no_colon")
    with pytest.raises(ParameterError, match="must return"):
        flower.load_factory("builtins:tuple")


def _config(kind):
    """The server-side variants the Flower strategy must reproduce."""
    from qjaxrob.defenses import privacy

    kw = {"dp": {"server_privacy": privacy.dp_fedavg(0.5, 0.8, 3)},
          "fltrust": {"aggregator": fed.aggregator("fltrust")},
          "median": {"aggregator": fed.aggregator("median")}}[kind]
    return fed.FedConfig(clients_per_round=3, rounds=2, local_steps=2, batch_size=4,
                         client_optimizer=CLIENT_OPT, malicious=(2,),
                         poison_updates=byz.SignFlip(1.0), seed=5, **kw)


def factory_dp():
    return (*factory()[:3], _config("dp"))


def factory_fltrust_root():
    return (*factory()[:3], _config("fltrust"), blobs(5, 8))


def factory_median():
    return (*factory()[:3], _config("median"))


class _Context:
    def __init__(self, cid, spec):
        self.node_config, self.run_config = {"cid": cid}, {"factory": spec}


@pytest.mark.parametrize("name", ["factory_dp", "factory_fltrust_root", "factory_median"])
def test_strategy_with_client_app_handlers_equals_federated_rounds(name):
    """The ServerApp's strategy fed by the ClientApp's train handler (no processes)
    follows federated_round for DP-FedAvg, FLTrust and the median, round by round."""
    from flwr.app import Message, MessageType

    from qjaxrob.federated import flower

    spec = f"test_federated_flower:{name}"
    model, data, test, config, root = flower.load_factory(spec)
    strategy = flower.QjrStrategy(model, data, test, config, root)
    state = fed.init_state(model, config)
    for _ in range(config.rounds):
        plan = strategy.plan()
        content = strategy.train_content()
        replies = {int(i): flower._client_train(
            Message(content, dst_node_id=int(i) + 1, message_type=MessageType.TRAIN),
            _Context(int(i), spec)) for i in plan.ids}
        strategy.finish(replies)
        state, info = fed.federated_round(state, data, config, root=root)
        np.testing.assert_array_equal(plan.ids, info.ids)
        np.testing.assert_allclose(fed.flatten(strategy.state.model)[0],
                                   fed.flatten(state.model)[0], rtol=1e-9, atol=1e-12)
    assert strategy.records[-1]["malicious"] == [2]
