"""Flower (``flwr``, extra ``flower``) adapter on Flower's Message API: the same client and
server logic as the in-process rounds, run by a SuperLink, a ``ServerApp`` and SuperNodes
that each run a ``ClientApp`` in their own processes.

* :data:`client_app` (a ``flwr.clientapp.ClientApp``): on a ``query`` message it answers
  its client id (the SuperNode's ``--node-config cid=i``); on a ``train`` message it
  computes its update with the same jitted :func:`~qjaxrob.federated.clients.local_updates`
  (a client axis of one) from the global parameters and the round's client key.
* :data:`server_app` (a ``flwr.serverapp.ServerApp``): waits for the SuperNodes, maps
  their node ids to client ids, then runs :class:`QjrStrategy` for ``config.rounds``
  rounds: it samples clients with :func:`plan_round`, sends the sampled clients' nodes the
  parameters and the key, checks every reply (a missing, failed, malformed or non-finite
  one raises ``ParameterError`` naming the client), stacks the updates in client-id order,
  applies :func:`poison` (the colluding attacker's rewrite, simulated on the server since
  it needs every update), FLTrust's root update where the aggregator needs it, and
  :func:`server_update` (aggregator or DP-FedAvg). Evaluation is centralised
  (:func:`evaluate_round`), one JSON line per round.

Flower starts a fresh process for every message a SuperNode receives, so the apps turn on
qjaxrob's persistent compilation cache (:mod:`qjaxrob.cache`; ``QJAXROB_CACHE_DIR=off``
turns it off): a client compiles its update once per machine, not once per round.

With the same factory and seed the result equals :func:`~qjaxrob.federated.run` (up to
floating-point round-off of a one-client vs an m-client ``vmap``); that in-process loop
stays the fast path for studies.

A *factory* is ``"module:function"``; the function takes no arguments and returns
``(model, data, test, config)`` or ``(model, data, test, config, root)`` (a model,
:class:`ClientData`, ``(x_test, y_test)``, :class:`FedConfig`, FLTrust's ``(x_root,
y_root)``). Every process calls it, so it must be deterministic.

The run configuration (``flwr run --run-config``) holds ``factory``, ``out`` (the folder
for ``metrics.jsonl`` and ``flower_result.npz``), ``wait-timeout`` and ``round-timeout``
(seconds). :func:`run_local` starts ``flower-superlink`` and ``n_clients``
``flower-supernode`` processes on 127.0.0.1, submits the app with ``flwr run``, waits
with a timeout and stops every process it started in a ``finally``. Across machines, run
the same app (:func:`write_app` writes its folder) with SuperNodes on the client hosts.
In flwr 1.42 the SuperLink's Fleet, Control and Runtime APIs are HTTP on one port.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob
from qjaxrob import cache
from qjaxrob.errors import MissingDependencyError, ParameterError
from qjaxrob.extras import require
from qjaxrob.federated.clients import flatten, local_updates
from qjaxrob.federated.rounds import (
    RoundPlan,
    _check_labels,
    _root_update,
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

# server_app and client_app are flwr objects, built on first attribute access
__all__ = [
    "FlowerResult",
    "QjrStrategy",
    "load_factory",
    "parse_reply",
    "run_local",
    "serve",
    "write_app",
]

RESULT_FILE = "flower_result.npz"
METRICS_FILE = "metrics.jsonl"
APP_MODULE = "qjr_flower_app"


class FlowerResult(NamedTuple):
    """``params``: final flat global parameters; ``records``: per-round metrics;
    ``round_seconds``: wall time of each round in the ``ServerApp`` (sending, client
    training, receiving, aggregation, evaluation)."""

    params: np.ndarray
    records: list
    round_seconds: np.ndarray


def _flwr(sub: str = "flwr"):
    return require(sub, "flower", "the Flower adapter")


@functools.cache
def load_factory(spec: str):
    """Imports ``"module:function"`` and calls it (once per process):
    ``(model, data, test, config, root)`` (``root`` None when the factory returns four)."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ParameterError(f"factory must be 'module:function', got {spec!r}")
    mod, fn = spec.split(":")
    out = tuple(getattr(importlib.import_module(mod), fn)())
    if len(out) not in (4, 5):
        raise ParameterError(f"factory {spec!r} must return (model, data, test, config[, "
                             f"root]), got {len(out)} values")
    return out if len(out) == 5 else (*out, None)


def _key_bytes(key) -> bytes:
    return np.asarray(jax.random.key_data(key), np.uint32).tobytes()


def _key_from(b: bytes):
    return jax.random.wrap_key_data(jnp.asarray(np.frombuffer(b, np.uint32)))


def parse_reply(reply, cid: int, dim: int) -> np.ndarray:
    """The update ``(dim,)`` in client ``cid``'s reply ``Message``, or ``ParameterError``
    naming the client: an error reply, a missing or malformed record (not one real
    array of shape ``(dim,)``, or another client id) or a non-finite value."""
    def bad(what):
        return ParameterError(f"Flower client {cid}: {what}")

    if reply.has_error():
        raise bad(f"its ClientApp failed: {reply.error.reason}")
    content = reply.content
    if "update" not in content.array_records or "meta" not in content.config_records:
        raise bad(f"malformed reply (records {sorted(content.keys())}, want 'update' "
                  f"and 'meta')")
    if content.config_records["meta"].get("cid") != cid:
        raise bad(f"reply claims client id {content.config_records['meta'].get('cid')!r}")
    arrays = content.array_records["update"].to_numpy_ndarrays()
    if len(arrays) != 1 or arrays[0].shape != (dim,) \
            or not np.issubdtype(arrays[0].dtype, np.floating):
        raise bad("malformed update: want one real array of shape "
                  f"({dim},), got {[(a.shape, str(a.dtype)) for a in arrays]}")
    if not np.all(np.isfinite(arrays[0])):
        raise bad("sent a non-finite (NaN/inf) update")
    return arrays[0]


class QjrStrategy:
    """The server side of :func:`~qjaxrob.federated.rounds.federated_round`, fed by
    Flower replies: :meth:`plan` a round, send :meth:`train_content` to the sampled
    clients, then :meth:`finish` it with their replies ``{client id: Message}``."""

    def __init__(self, model, data, test, config, root=None, *, metrics_path=None):
        self.state = init_state(model, config)
        self.n_clients = data.n_clients
        self.counts = np.asarray(data.counts)
        self.test, self.config, self.root = test, config, root
        self.metrics_path = metrics_path
        self.dim = int(flatten(model)[0].size)
        self.records = []
        self.plan_: RoundPlan | None = None

    def plan(self) -> RoundPlan:
        self.plan_ = plan_round(self.state, self.n_clients, self.config)
        return self.plan_

    def train_content(self):
        """The ``RecordDict`` every sampled client receives."""
        app = _flwr("flwr.app")
        params = np.asarray(flatten(self.state.model)[0])
        return app.RecordDict({
            "params": app.ArrayRecord([params]),
            "round": app.ConfigRecord({"client_key": _key_bytes(self.plan_.client_key)})})

    def finish(self, replies: dict) -> dict:
        """Checks and aggregates the replies of the planned round; returns its record."""
        plan = self.plan_
        missing = [int(i) for i in plan.ids if int(i) not in replies]
        if missing:
            raise ParameterError(f"sampled Flower clients {missing} sent no reply")
        updates = jnp.asarray(np.stack(
            [parse_reply(replies[int(i)], int(i), self.dim) for i in plan.ids]))
        updates = poison(updates, plan, self.config)
        g0 = None
        if getattr(self.config.aggregator, "needs_server_update", False):
            g0 = _root_update(self.state, plan, self.n_clients, self.root, self.config)
        self.state, _ = server_update(self.state, plan, updates, self.counts[plan.ids],
                                      self.config, g0)
        rec = {"round": self.state.round, "clients": plan.ids.tolist(),
               "malicious": plan.ids[plan.malicious].tolist(),
               **evaluate_round(self.state.model, self.test, self.config, self.state.round)}
        self.records.append(rec)
        if self.metrics_path is not None:
            append_jsonl(self.metrics_path, rec, sort_keys=True)
        return rec


def _node_ids(grid, n_clients: int, wait_timeout: float) -> dict:
    """``{client id: node id}`` of the connected SuperNodes (asked with a query)."""
    app = _flwr("flwr.app")
    deadline = time.monotonic() + wait_timeout
    nodes = list(grid.get_node_ids())
    while len(nodes) < n_clients and time.monotonic() < deadline:
        time.sleep(0.2)
        nodes = list(grid.get_node_ids())
    if len(nodes) < n_clients:
        raise TimeoutError(f"only {len(nodes)} of {n_clients} Flower SuperNodes connected "
                           f"within {wait_timeout} s")
    msgs = [app.Message(app.RecordDict(), dst_node_id=n, message_type=app.MessageType.QUERY)
            for n in nodes]
    cid_of = {}
    for r in grid.send_and_receive(msgs, timeout=wait_timeout):
        node = r.metadata.src_node_id
        if r.has_error() or "meta" not in r.content.config_records:
            raise ParameterError(f"Flower SuperNode {node} did not report its client id")
        cid = r.content.config_records["meta"].get("cid")
        if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid < n_clients:
            raise ParameterError(f"Flower SuperNode {node} reports client id {cid!r}, not "
                                 f"in 0..{n_clients - 1} (set --node-config cid=i)")
        if cid in cid_of:
            raise ParameterError(f"Flower SuperNodes {cid_of[cid]} and {node} both report "
                                 f"client id {cid}")
        cid_of[cid] = node
    missing = sorted(set(range(n_clients)) - set(cid_of))
    if missing:
        raise ParameterError(f"no Flower SuperNode answered for client ids {missing}")
    return cid_of


def serve(grid, factory: str, out_dir, *, wait_timeout: float = 60.0,
          round_timeout: float = 120.0) -> QjrStrategy:
    """The ``ServerApp``'s work on a Flower ``grid``: ``config.rounds`` rounds; writes the
    per-round JSON lines and ``flower_result.npz`` (final flat parameters, round count,
    seconds per round) to ``out_dir``, which it locks for the run."""
    app = _flwr("flwr.app")
    model, data, test, config, root = load_factory(factory)
    config.check_clients(data.n_clients)
    _check_labels(model, data, test)
    with locked(out_dir, f"Flower out_dir {str(out_dir)!r}") as out:
        (out / METRICS_FILE).unlink(missing_ok=True)
        strategy = QjrStrategy(model, data, test, config, root,
                               metrics_path=out / METRICS_FILE)
        node_of = _node_ids(grid, data.n_clients, wait_timeout)
        cid_of = {node: cid for cid, node in node_of.items()}
        seconds = []
        for _ in range(config.rounds):
            t0 = time.perf_counter()
            plan = strategy.plan()
            content = strategy.train_content()
            msgs = [app.Message(content, dst_node_id=node_of[int(i)],
                                message_type=app.MessageType.TRAIN) for i in plan.ids]
            replies = {cid_of[r.metadata.src_node_id]: r
                       for r in grid.send_and_receive(msgs, timeout=round_timeout)}
            strategy.finish(replies)
            seconds.append(time.perf_counter() - t0)
        write_checkpoint(out / RESULT_FILE, {}, {
            "params": np.asarray(flatten(strategy.state.model)[0]),
            "rounds": strategy.state.round, "round_seconds": np.asarray(seconds)})
    return strategy


def _server_main(grid, context):
    cache.enable()
    rc = context.run_config
    serve(grid, str(rc["factory"]), str(rc["out"]),
          wait_timeout=float(rc.get("wait-timeout", 60.0)),
          round_timeout=float(rc.get("round-timeout", 120.0)))


def _client_query(msg, context):
    app = _flwr("flwr.app")
    return app.Message(app.RecordDict({"meta": app.ConfigRecord(
        {"cid": int(context.node_config["cid"])})}), reply_to=msg)


def _client_train(msg, context):
    cache.enable()  # each message runs in a fresh process: reuse its compiled programs
    app = _flwr("flwr.app")
    cid = int(context.node_config["cid"])
    model, data, _, config, _ = load_factory(str(context.run_config["factory"]))
    unravel = flatten(model)[1]
    params = msg.content.array_records["params"].to_numpy_ndarrays()[0]
    key = _key_from(msg.content.config_records["round"]["client_key"])
    u = local_updates(unravel(jnp.asarray(params)), key, jnp.asarray([cid]),
                      data.x[cid][None], data.y[cid][None], data.counts[cid][None],
                      jnp.asarray([cid in config.malicious]), config.client_spec)
    return app.Message(app.RecordDict({
        "update": app.ArrayRecord([np.asarray(u[0])]),
        "meta": app.ConfigRecord({"cid": cid})}), reply_to=msg)


@functools.cache
def _server_app():
    s = _flwr("flwr.serverapp").ServerApp()
    s.main()(_server_main)
    return s


@functools.cache
def _client_app():
    c = _flwr("flwr.clientapp").ClientApp()
    c.query()(_client_query)
    c.train()(_client_train)
    return c


def __getattr__(name):
    # flwr is optional: the apps are built on first access
    if name == "server_app":
        return _server_app()
    if name == "client_app":
        return _client_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "qjrflower"
version = "1.0.0"
description = "qjaxrob's federated rounds on Flower"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "qjaxrob"

[tool.flwr.app.components]
serverapp = "{module}:server_app"
clientapp = "{module}:client_app"

[tool.flwr.app.config]
factory = ""
out = ""
wait-timeout = 60.0
round-timeout = 120.0
"""


def write_app(folder) -> Path:
    """Writes the Flower app folder (``pyproject.toml`` and a module exporting
    :data:`server_app` and :data:`client_app`) that ``flwr run FOLDER`` submits."""
    folder = make_folder(folder)
    (folder / "pyproject.toml").write_text(_PYPROJECT.format(module=APP_MODULE))
    (folder / f"{APP_MODULE}.py").write_text(
        "from qjaxrob.federated import flower\n\n"
        "server_app = flower.server_app\nclient_app = flower.client_app\n")
    return folder


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        raise MissingDependencyError(f"the Flower adapter needs Flower's {name!r} command "
                                     f"on PATH: pip install 'qjaxrob[flower]'")
    return found


def run_local(factory: str, n_clients: int, out_dir, *, timeout: float = 300.0,
              env: dict | None = None) -> FlowerResult:
    """A SuperLink and ``n_clients`` SuperNodes on 127.0.0.1 (free ports) run the app.

    Waits at most ``timeout`` seconds in total; every process started here is stopped in
    a ``finally`` (also on error or timeout). Logs, the app folder and Flower's home lie
    in ``out_dir``. ``env`` is added to the processes' environment; ``JAX_ENABLE_X64``
    follows this process's setting and this process's ``qjaxrob`` leads ``PYTHONPATH``.
    Returns a :class:`FlowerResult`."""
    _flwr()
    out = make_folder(out_dir).resolve()
    (out / RESULT_FILE).unlink(missing_ok=True)
    app_dir = write_app(out / "app")
    home = make_folder(out / "flwr_home")
    port = _free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\n'
        f'address = "127.0.0.1:{port}"\ninsecure = true\n')
    root = str(Path(qjaxrob.__file__).resolve().parents[1])
    child_env = dict(os.environ, **(env or {}))
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, child_env.get("PYTHONPATH", "")) if p)
    child_env["JAX_ENABLE_X64"] = "1" if jax.config.read("jax_enable_x64") else "0"
    child_env["FLWR_HOME"] = str(home)
    deadline = time.monotonic() + timeout
    procs = []
    with contextlib.ExitStack() as logs:
        def spawn(args, name):
            log = logs.enter_context(open(out / f"{name}.log", "w"))  # noqa: SIM115
            procs.append(subprocess.Popen(args, env=child_env, cwd=out, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
            return procs[-1]

        try:
            spawn([_tool("flower-superlink"), "--insecure", "--host", "127.0.0.1",
                   "--port", str(port), "--disable-runtime-dependency-installation"],
                  "superlink")
            for cid in range(n_clients):
                spawn([_tool("flower-supernode"), "--insecure", "--superlink",
                       f"127.0.0.1:{port}", "--port", str(_free_port()),
                       "--node-config", f"cid={cid}"], f"supernode{cid}")
            _wait_ready(port, procs, deadline, out)
            cfg = (f'factory="{factory}" out="{out}" '
                   f"wait-timeout={float(timeout)} round-timeout={float(timeout)}")
            runner = spawn([_tool("flwr"), "run", str(app_dir), "local", "--stream",
                            "--run-config", cfg], "run")
            _wait(runner, procs, deadline, out, timeout)
        finally:
            _stop(procs)
    if not (out / RESULT_FILE).exists():
        raise RuntimeError(f"the Flower run wrote no result (logs in {out}: run.log has "
                           f"the ServerApp's)")
    _, result = read_checkpoint(out / RESULT_FILE, {}, required=("params", "round_seconds"))
    records = [ln.record for ln in read_jsonl(out / METRICS_FILE)]
    return FlowerResult(result["params"], records, result["round_seconds"])


def _wait_ready(port, procs, deadline, out):
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if procs[0].poll() is not None:
            raise RuntimeError(f"flower-superlink exited with code {procs[0].returncode} "
                               f"(log: {out / 'superlink.log'})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"flower-superlink did not listen on port {port} in time "
                               f"(log: {out / 'superlink.log'})")
        time.sleep(0.2)


def _wait(runner, procs, deadline, out, timeout):
    while runner.poll() is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Flower run exceeded {timeout} s (logs in {out})")
        dead = [p.args[0] for p in procs[:-1] if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a Flower process ({dead[0]}) exited during the run "
                               f"(logs in {out})")
        time.sleep(0.2)
    if runner.returncode != 0:
        raise RuntimeError(f"'flwr run' failed with exit code {runner.returncode} "
                           f"(log: {out / 'run.log'})")


def _signal_group(p, sig):
    # each process leads its own session: this reaches the apps Flower started under it
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, sig)


def _stop(procs):
    """Stops the processes started here and their process groups (SIGTERM, then
    SIGKILL after 10 s)."""
    for p in procs:
        _signal_group(p, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait(timeout=10)
