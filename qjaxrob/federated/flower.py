"""Flower (``flwr``, extra ``flower``) adapter: the same client and server logic as the
in-process rounds, run by real separate processes that talk gRPC.

* :class:`FlowerClient` (a ``flwr.client.NumPyClient``) computes its update with the same
  jitted :func:`~qjaxrob.federated.clients.local_updates` (a client axis of one) from the
  global parameters and the round key the server sends; it returns the update vector.
* :class:`QjrStrategy` (a ``flwr.server.strategy.Strategy``) keeps the
  :class:`~qjaxrob.federated.rounds.ServerState`: each round it samples clients with
  :func:`plan_round`, sends every connected client the global parameters, the round key
  and the sampled ids (clients that are not sampled answer with nothing), stacks the
  updates in client-id order, applies :func:`poison` (the colluding attacker's rewrite,
  simulated on the server because it needs every update) and :func:`server_update`.
  Evaluation is centralised (:func:`evaluate_round`), one JSON line per round.

With the same factory and seed the result equals :func:`~qjaxrob.federated.run`
(up to floating-point round-off of a one-client vs an m-client ``vmap``).

A *factory* is ``"module:function"``; the function takes no arguments and returns
``(model, data, test, config)`` (a model, :class:`ClientData`, ``(x_test, y_test)``,
:class:`FedConfig`). Every process calls it, so it must be deterministic.

:func:`run_local` starts one server and ``n_clients`` client processes on 127.0.0.1,
waits with a timeout and kills every process it started in a ``finally``. Command line::

    python -m qjaxrob.federated.flower --role server --factory mod:fn --address 127.0.0.1:8080 --out DIR
    python -m qjaxrob.federated.flower --role client --factory mod:fn --address 127.0.0.1:8080 --cid 3

This uses Flower's legacy ``start_server``/``start_client`` (deprecated since flwr 1.13 but
still shipped in 1.42). For many clients across machines, wrap the same
``FlowerClient``/``QjrStrategy`` in a ``ClientApp``/``ServerApp`` and run them with
``flower-superlink`` + ``flower-supernode`` or Flower's simulation engine
(``flwr.simulation.run_simulation``, Ray backend).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import socket
import subprocess
import sys
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.errors import ParameterError
from qjaxrob.extras import require
from qjaxrob.federated.clients import flatten, local_updates
from qjaxrob.federated.rounds import (
    RoundPlan,
    _check_labels,
    evaluate_round,
    init_state,
    plan_round,
    poison,
    server_update,
)
from qjaxrob.storage import (
    append_jsonl,
    locked,
    make_folder,
    read_checkpoint,
    read_jsonl,
    write_checkpoint,
)

# FlowerClient and QjrStrategy subclass flwr types and are built on first attribute access
__all__ = [
    "FlowerResult",
    "load_factory",
    "run_local",
    "serve",
    "start_client",
]

RESULT_FILE = "flower_result.npz"
METRICS_FILE = "metrics.jsonl"


class FlowerResult(NamedTuple):
    """``params``: final flat global parameters; ``records``: per-round metrics;
    ``round_seconds``: wall time of each round on the server (configure_fit to the end of
    aggregate_fit: sending, client training, receiving, aggregation, evaluation)."""

    params: np.ndarray
    records: list
    round_seconds: np.ndarray


def _flwr():
    return require("flwr", "flower", "the Flower adapter")


def load_factory(spec: str):
    """Imports ``"module:function"`` and calls it: ``(model, data, test, config)``."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ParameterError(f"factory must be 'module:function', got {spec!r}")
    mod, fn = spec.split(":")
    return getattr(importlib.import_module(mod), fn)()


def _key_bytes(key) -> bytes:
    return np.asarray(jax.random.key_data(key), np.uint32).tobytes()


def _key_from(b: bytes):
    return jax.random.wrap_key_data(jnp.asarray(np.frombuffer(b, np.uint32)))


@functools.cache
def _client_class():
    flwr = _flwr()

    class FlowerClient(flwr.client.NumPyClient):
        """One client process: ``fit`` returns ``[update]`` (or ``[]`` when not sampled)."""

        def __init__(self, model, data, config, cid: int):
            self.model, self.data, self.config, self.cid = model, data, config, int(cid)
            self.unravel = flatten(model)[1]

        def get_parameters(self, config):
            return [np.asarray(flatten(self.model)[0])]

        def fit(self, parameters, config):
            sampled = [int(i) for i in str(config["sampled"]).split(",")]
            if self.cid not in sampled:
                return [], 0, {"cid": self.cid}
            model = self.unravel(jnp.asarray(parameters[0]))
            i = self.cid
            u = local_updates(model, _key_from(config["client_key"]), jnp.asarray([i]),
                              self.data.x[i][None], self.data.y[i][None],
                              self.data.counts[i][None],
                              jnp.asarray([i in self.config.malicious]),
                              self.config.client_spec)
            return [np.asarray(u[0])], int(self.data.counts[i]), {"cid": self.cid}

        def evaluate(self, parameters, config):  # evaluation is centralised
            return 0.0, 0, {}

    return FlowerClient


@functools.cache
def _strategy_class():
    flwr = _flwr()
    from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays

    class QjrStrategy(flwr.server.strategy.Strategy):
        """The server side of :func:`~qjaxrob.federated.rounds.federated_round`."""

        def __init__(self, model, data, test, config, *, wait_timeout: float = 60.0,
                     metrics_path=None):
            self.state = init_state(model, config)
            self.n_clients = data.n_clients
            self.counts = np.asarray(data.counts)
            self.test, self.config = test, config
            self.wait_timeout = wait_timeout
            self.metrics_path = metrics_path
            self.records = []
            self.plan: RoundPlan | None = None
            self.last_updates = None
            self.round_seconds = []
            self._t0 = None

        def _params(self):
            return ndarrays_to_parameters([np.asarray(flatten(self.state.model)[0])])

        def initialize_parameters(self, client_manager):
            return self._params()

        def configure_fit(self, server_round, parameters, client_manager):
            if not client_manager.wait_for(self.n_clients, timeout=self.wait_timeout):
                raise TimeoutError(
                    f"only {client_manager.num_available()} of {self.n_clients} Flower "
                    f"clients connected within {self.wait_timeout} s"
                )
            self._t0 = time.perf_counter()
            self.plan = plan_round(self.state, self.n_clients, self.config)
            cfg = {"sampled": ",".join(str(int(i)) for i in self.plan.ids),
                   "client_key": _key_bytes(self.plan.client_key)}
            ins = FitIns(self._params(), cfg)
            return [(proxy, ins) for proxy in client_manager.all().values()]

        def aggregate_fit(self, server_round, results, failures):
            if failures:
                raise RuntimeError(f"{len(failures)} Flower client(s) failed: {failures[0]!r}")
            got = {}
            for _, res in results:
                arrays = parameters_to_ndarrays(res.parameters)
                if arrays:
                    got[int(res.metrics["cid"])] = arrays[0]
            missing = [int(i) for i in self.plan.ids if int(i) not in got]
            if missing:
                raise RuntimeError(f"sampled Flower clients {missing} sent no update")
            updates = jnp.asarray(np.stack([got[int(i)] for i in self.plan.ids]))
            updates = poison(updates, self.plan, self.config)
            self.last_updates = updates
            self.state, _ = server_update(self.state, self.plan, updates,
                                          self.counts[self.plan.ids], self.config)
            rec = {"round": self.state.round, "clients": self.plan.ids.tolist(),
                   "malicious": self.plan.ids[self.plan.malicious].tolist(),
                   **evaluate_round(self.state.model, self.test, self.config,
                                    self.state.round)}
            self.records.append(rec)
            if self.metrics_path is not None:
                append_jsonl(self.metrics_path, rec, sort_keys=True)
            self.round_seconds.append(time.perf_counter() - self._t0)
            return self._params(), {"accuracy": rec["accuracy"]}

        def configure_evaluate(self, server_round, parameters, client_manager):
            return []

        def aggregate_evaluate(self, server_round, results, failures):
            return None, {}

        def evaluate(self, server_round, parameters):
            return None

    return QjrStrategy


def __getattr__(name):
    # the classes subclass flwr types, so they are built on first access (flwr is optional)
    if name == "FlowerClient":
        return _client_class()
    if name == "QjrStrategy":
        return _strategy_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def serve(factory: str, address: str, out_dir, *, wait_timeout: float = 60.0,
          round_timeout: float = 120.0):
    """Runs the Flower server for ``config.rounds`` rounds on ``address``; writes the
    per-round JSON lines and ``flower_result.npz`` (final flat parameters) to ``out_dir``,
    which it locks for the run (a second server writing there gets ``LockError``)."""
    flwr = _flwr()
    model, data, test, config = load_factory(factory)
    config.check_clients(data.n_clients)
    _check_labels(model, data, test)
    with locked(out_dir, f"Flower out_dir {str(out_dir)!r}") as out:
        (out / METRICS_FILE).unlink(missing_ok=True)
        strategy = _strategy_class()(model, data, test, config, wait_timeout=wait_timeout,
                                     metrics_path=out / METRICS_FILE)
        flwr.server.start_server(
            server_address=address, strategy=strategy,
            config=flwr.server.ServerConfig(num_rounds=config.rounds,
                                            round_timeout=round_timeout))
        if strategy.state.round != config.rounds:
            raise RuntimeError(f"Flower server finished {strategy.state.round} of "
                               f"{config.rounds} rounds")
        write_checkpoint(out / RESULT_FILE, {}, {
            "params": np.asarray(flatten(strategy.state.model)[0]),
            "rounds": strategy.state.round,
            "round_seconds": np.asarray(strategy.round_seconds)})
    return strategy


def start_client(factory: str, address: str, cid: int):
    """Runs client ``cid`` until the server ends the session."""
    flwr = _flwr()
    model, data, _, config = load_factory(factory)
    client = _client_class()(model, data, config, cid)
    flwr.client.start_client(server_address=address, client=client.to_client(),
                             insecure=True, max_retries=30, max_wait_time=60.0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_local(factory: str, n_clients: int, out_dir, *, timeout: float = 300.0,
              env: dict | None = None):
    """One server and ``n_clients`` client processes on 127.0.0.1 (a free port).

    Waits at most ``timeout`` seconds in total; every process started here is killed in a
    ``finally`` (also on error or timeout). Returns a :class:`FlowerResult`. ``env`` is
    added to the child processes' environment (``JAX_ENABLE_X64`` follows this process's
    setting)."""
    out = make_folder(out_dir)
    address = f"127.0.0.1:{_free_port()}"
    child_env = dict(os.environ, **(env or {}))
    child_env["JAX_ENABLE_X64"] = "1" if jax.config.read("jax_enable_x64") else "0"
    base = [sys.executable, "-m", "qjaxrob.federated.flower", "--factory", factory,
            "--address", address]
    procs = []
    with contextlib.ExitStack() as logs:
        try:
            _spawn_all(base, n_clients, out, child_env, procs, logs)
            _wait(procs, timeout, out)
        finally:
            _kill(procs)
    _, result = read_checkpoint(out / RESULT_FILE, {}, required=("params", "round_seconds"))
    records = [ln.record for ln in read_jsonl(out / METRICS_FILE)]
    return FlowerResult(result["params"], records, result["round_seconds"])


def _spawn_all(base, n_clients, out, env, procs, logs):
    def spawn(args, name):
        log = logs.enter_context(open(out / f"{name}.log", "w"))  # noqa: SIM115
        procs.append(subprocess.Popen(base + args, env=env, stdout=log,
                                      stderr=subprocess.STDOUT))

    spawn(["--role", "server", "--out", str(out)], "server")
    for cid in range(n_clients):
        spawn(["--role", "client", "--cid", str(cid)], f"client{cid}")


def _wait(procs, timeout, out):
    deadline = time.monotonic() + timeout
    server = procs[0]
    while server.poll() is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Flower run exceeded {timeout} s (logs in {out})")
        if any(p.poll() not in (None, 0) for p in procs[1:]):
            raise RuntimeError(f"a Flower client process failed (logs in {out})")
        time.sleep(0.2)
    if server.returncode != 0:
        raise RuntimeError(f"the Flower server failed with exit code {server.returncode} "
                           f"(log: {out / 'server.log'})")


def _kill(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill did not take
            pass


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m qjaxrob.federated.flower")
    p.add_argument("--role", choices=("server", "client"), required=True)
    p.add_argument("--factory", required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--out")
    p.add_argument("--cid", type=int)
    a = p.parse_args(argv)
    if a.role == "server":
        serve(a.factory, a.address, a.out)
    else:
        start_client(a.factory, a.address, a.cid)


if __name__ == "__main__":
    main()
