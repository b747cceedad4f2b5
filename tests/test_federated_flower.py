"""The Flower adapter: one server and three client processes on 127.0.0.1 give the same
rounds as the in-process simulation with the same seed."""

import os

import jax
import numpy as np
import pytest
from test_federated_rounds import CLIENT_OPT, blobs, make_setup

from qjaxrob import federated as fed
from qjaxrob.attacks import byzantine as byz

pytest.importorskip("flwr")

ROUNDS = 3


def factory():
    """3 clients (2 sampled per round), client 1 flips its sign; run by every process."""
    model, _, test = make_setup()
    x, y = blobs(2, 48)
    data = fed.stack_clients(x, y, fed.iid_split(jax.random.key(3), len(x), 3))
    config = fed.FedConfig(clients_per_round=2, rounds=ROUNDS, local_steps=2, batch_size=4,
                           client_optimizer=CLIENT_OPT, malicious=(1,),
                           poison_updates=byz.SignFlip(1.0), seed=7)
    return model, data, test, config


@pytest.mark.slow
def test_flower_processes_match_in_process_simulation(tmp_path):
    from qjaxrob.federated import flower

    tests_dir = os.path.dirname(os.path.abspath(__file__))
    path = os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")])
    params, records, seconds = flower.run_local("test_federated_flower:factory", 3, tmp_path / "flwr",
                                       timeout=240, env={"PYTHONPATH": path})
    model, data, test, config = factory()
    state, expect = fed.run(config, tmp_path / "sim", model=model, data=data, test=test,
                            progress=False)
    np.testing.assert_allclose(params, fed.flatten(state.model)[0], rtol=1e-9, atol=1e-12)
    assert [r["clients"] for r in records] == [r["clients"] for r in expect]
    assert len(seconds) == ROUNDS and np.all(seconds > 0)
    assert any(r["malicious"] == [1] for r in expect)  # the attacker took part
    for r, e in zip(records, expect):
        assert r["accuracy"] == pytest.approx(e["accuracy"], abs=1e-9)
        assert r["loss"] == pytest.approx(e["loss"], rel=1e-9)


def test_factory_spec_errors():
    from qjaxrob.errors import ParameterError
    from qjaxrob.federated import flower

    with pytest.raises(ParameterError, match="module:function"):
        flower.load_factory("no_colon")
