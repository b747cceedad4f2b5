"""Federated rounds per second: the vmapped client axis vs a Python loop over clients vs
Flower with real client processes on 127.0.0.1.

Workload: a VQC (angle encoding on q qubits, 2 hardware-efficient layers, linear
post-processing, complex64), every client holds 16 examples, all n clients take part in
each round, FedAvg with 2 local SGD steps on minibatches of 8, server sgd(1.0). One round
= all client updates + aggregation + the server step (evaluation excluded).

* ``vmapped``: :func:`qjaxrob.federated.federated_round` (one jitted, vmapped call).
* ``loop``: the same client function jitted once for a single client and called in a
  Python loop over the clients, then the same server step; the updates are checked
  against the vmapped ones (max |difference| reported).
* ``flower``: :func:`qjaxrob.federated.flower.run_local`, a SuperLink and n SuperNode
  processes on loopback running the Message-API apps; median server-side round time of rounds 2.. (round 1 includes the
  clients connecting and compiling). Flower's in-process simulation engine needs Ray,
  which is not installed here.

Times: median of ``--repeats`` rounds after one warm-up round (compile excluded),
``block_until_ready`` on the new global parameters.

    python -m benchmarks.federated              # 8, 32, 128 clients x 4, 8 qubits + Flower
    python -m benchmarks.federated --quick      # 8 clients, 4 qubits
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import harness
from qjaxrob import federated as fed
from qjaxrob.qml import make_vqc

OPT = optax.sgd(0.1)  # (Adam would turn round-off in zero-gradient parameters into +-lr steps)
EXAMPLES_PER_CLIENT = 16


def setup(n_clients: int, qubits: int, rounds: int = 1):
    key = jax.random.key(0)
    model = make_vqc(key, qubits, 2, layers=2)
    rng = np.random.default_rng(qubits)
    n = n_clients * EXAMPLES_PER_CLIENT
    x = rng.uniform(0, np.pi, size=(n, qubits))
    y = (np.cos(x).sum(1) > 0).astype(np.int32)
    data = fed.stack_clients(x, y, fed.iid_split(jax.random.key(1), n, n_clients))
    cfg = fed.FedConfig(clients_per_round=n_clients, rounds=rounds, local_steps=2,
                        batch_size=8, client_optimizer=OPT)
    return model, data, (x[:64], y[:64]), cfg


def flower_factory():
    """Factory for the Flower processes (sizes from the environment)."""
    return setup(int(os.environ["QJR_BENCH_CLIENTS"]), int(os.environ["QJR_BENCH_QUBITS"]),
                 int(os.environ["QJR_BENCH_ROUNDS"]))


def time_vmapped(model, data, cfg, repeats):
    """Seconds of ``repeats`` warm rounds from the same state (each ended when the new global
    model is ready), that state and the round's ``RoundInfo``."""
    state = fed.init_state(model, cfg)
    state = jax.block_until_ready(fed.federated_round(state, data, cfg)[0])  # warm-up
    times = harness.call_times(lambda: fed.federated_round(state, data, cfg)[0].model,
                               min_reps=repeats, max_reps=repeats)
    return times, state, fed.federated_round(state, data, cfg)[1]


_one_client = jax.jit(fed.client_update, static_argnums=6)


def loop_round(state, data, cfg):
    plan = fed.plan_round(state, data.n_clients, cfg)
    rows = [_one_client(state.model, jax.random.fold_in(plan.client_key, int(i)), data.x[i],
                        data.y[i], data.counts[i], bool(m), cfg.client_spec)
            for i, m in zip(plan.ids, plan.malicious)]
    updates = fed.poison(jnp.stack(rows), plan, cfg)
    new, _ = fed.server_update(state, plan, updates, data.counts[plan.ids], cfg)
    return new, updates


def time_loop(model, data, cfg, repeats, state, vmapped_updates):
    _, updates = loop_round(state, data, cfg)  # warm-up
    times = harness.call_times(lambda: loop_round(state, data, cfg)[0].model,
                               min_reps=repeats, max_reps=repeats)
    diff = float(jnp.max(jnp.abs(updates - vmapped_updates)))
    return times, diff


def time_flower(n_clients, qubits, rounds):
    from qjaxrob.federated import flower

    env = {"QJR_BENCH_CLIENTS": str(n_clients), "QJR_BENCH_QUBITS": str(qubits),
           "QJR_BENCH_ROUNDS": str(rounds),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent),
                                          os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as d:
        res = flower.run_local("benchmarks.federated:flower_factory", n_clients, d,
                               timeout=600, env=env)
    return list(map(float, res.round_seconds[1:]))


def summary(times):
    med = statistics.median(times)
    return {"median_s": med, "min_s": min(times), "max_s": max(times), "rounds_per_s": 1 / med}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-flower", action="store_true")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "federated.json"))
    a = p.parse_args(argv)
    clients = (8,) if a.quick else (8, 32, 128)
    qubits = (4,) if a.quick else (4, 8)
    rows = []
    for q in qubits:
        for n in clients:
            model, data, _, cfg = setup(n, q)
            tv, state, info = time_vmapped(model, data, cfg, a.repeats)
            tl, diff = time_loop(model, data, cfg, a.repeats, state, info.updates)
            row = {"clients": n, "qubits": q, "vmapped": summary(tv), "loop": summary(tl),
                   "max_abs_update_diff": diff}
            if not a.no_flower and n == 8 and q == 4:
                row["flower"] = summary(time_flower(n, q, a.repeats + 1))
            rows.append(row)
            cells = [f"{k} {row[k]['rounds_per_s']:.3g} rounds/s"
                     for k in ("vmapped", "loop", "flower") if k in row]
            print(f"n={n:4d} q={q}: " + ", ".join(cells) + f"  (|dU| {diff:.1e})", flush=True)
    meta = {"jax": jax.__version__, "backend": jax.default_backend(),
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "load_avg": harness.load_average(), "command": " ".join([sys.executable, *sys.argv])}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
