"""Scaling over devices.

``python -m benchmarks.scale sharded``: one state vector over 1, 2, 4 and 8 devices
(``mesh=``), :func:`sharded_main`. ``python -m benchmarks.scale [options]``: a study's units
per second over devices, :func:`benchmarks.scale_study.main` (the same options).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchmarks import harness, scale_study

ROOT = harness.ROOT


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sharded"]:
        return sharded_main(argv[1:])
    return scale_study.main(argv)


# ---- one state vector over many devices (mesh=) -------------------------------------------
SHARDED_DOC = """One state vector over 1, 2, 4 and 8 devices (``qjr.expval(..., mesh=)``).

Workload: the hardware-efficient ansatz (``qml.hardware_efficient``: RY and RZ on every
wire, then a CNOT ring, ``--layers`` times), observable ``sum_q Z_q + X_0 X_{n-1}``,
complex64. For each device count d (a fresh process with
``XLA_FLAGS=--xla_force_host_platform_device_count=d``; on an accelerator machine the first
d accelerators) and each width n: strong scaling at a fixed n (``--strong-qubits``) and
weak scaling at ``n = --weak-qubits + log2(d)`` (the same amplitudes per device). d = 1 is
the ordinary one-device path.

Per (d, n, what) row, what being the forward value, the backprop gradient and the adjoint
gradient: the plan's exchanges per circuit, global wires, amplitudes and state bytes per
device and bytes sent per exchange (``qjr.sharding_plan``); the compiled program's
per-device temp/argument/output bytes (``memory_analysis``); compile seconds and the
median warm call; and the largest deviation from the one-device result at the same n.
Host devices share this machine's cores: the numbers show correctness, memory per device,
exchange counts and overhead, not speed-ups.

Writes ``benchmarks/results/scale-sharded[-quick].json``."""


def _sharded_case(n, layers):
    import qjaxrob as qjr
    from qjaxrob import qml

    obs = qjr.X(0) @ qjr.X(n - 1)
    for q in range(n):
        obs = obs + qjr.Z(q)
    return qml.hardware_efficient(n, layers), obs


def sharded_point(devices: int, n: int, layers: int, reps: int) -> list[dict]:
    """Rows for one device count and width (runs in the worker process)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh

    import qjaxrob as qjr

    if len(jax.devices()) < devices:
        raise SystemExit(f"{devices} devices asked, {len(jax.devices())} present")
    c, obs = _sharded_case(n, layers)
    dtype = jnp.complex64
    plan = qjr.sharding_plan(c, devices)
    params = jax.random.uniform(jax.random.key(n), (c.n_params,), jnp.float32, -np.pi, np.pi)

    def program(mesh, what):
        def value(p):
            diff = "adjoint" if what == "grad-adjoint" else "backprop"
            return qjr.expval(c, obs, p, mesh=mesh, dtype=dtype, diff=diff)
        return jax.jit(value if what == "forward" else jax.grad(value))

    mesh = Mesh(np.array(jax.devices()[:devices]), ("state",))
    base = {"devices": devices, "n_qubits": n, "layers": layers, "dtype": "complex64",
            "platform": jax.devices()[0].platform, "global_wires": plan.global_wires,
            "exchanges": plan.exchanges, "amplitudes_per_device": plan.amplitudes_per_device,
            "state_bytes_per_device": plan.state_bytes_per_device(dtype),
            "exchange_bytes_per_device": plan.exchange_bytes_per_device(dtype)}
    # the one-device value and gradient at this n (one program), to compare every row with
    ref_value, ref_grad = jax.jit(jax.value_and_grad(
        lambda p: qjr.expval(c, obs, p, dtype=dtype)))(params)
    rows = []
    for what in ("forward", "grad-backprop", "grad-adjoint"):
        fn = program(mesh, what)
        t0 = time.perf_counter()
        compiled = fn.lower(params).compile()
        compile_s = time.perf_counter() - t0
        mem = compiled.memory_analysis()
        out = np.asarray(jax.block_until_ready(compiled(params)))
        warm = harness.median_time(compiled, params, min_reps=reps, budget_s=30.0)
        ref = np.asarray(ref_value if what == "forward" else ref_grad)
        rows.append({**base, "what": what, "compile_s": round(compile_s, 3),
                     "warm_s": round(warm, 6), "temp_bytes": mem.temp_size_in_bytes,
                     "argument_bytes": mem.argument_size_in_bytes,
                     "output_bytes": mem.output_size_in_bytes,
                     "max_abs_diff_vs_1_device": float(np.max(np.abs(out - ref))),
                     "load_average": harness.load_average()})
    return rows


def _sharded_worker(devices: int, points: list, layers: int, reps: int) -> None:
    rows = [r for n in points for r in sharded_point(devices, n, layers, reps)]
    print(json.dumps({"rows": rows}))


def sharded_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale sharded",
                                description=SHARDED_DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--strong-qubits", type=int, default=20,
                   help="n of the strong-scaling rows (default 20)")
    p.add_argument("--weak-qubits", type=int, default=17,
                   help="local wires of the weak-scaling rows: n = this + log2(d) (default 17)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--reps", type=int, default=5, help="warm calls per median (default 5)")
    p.add_argument("--quick", action="store_true",
                   help="n = 8 (strong), 6 + log2(d) (weak), 1 layer, 2 reps")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds per device count (default 1800)")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--points", type=int, nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick:
        a.strong_qubits, a.weak_qubits, a.layers, a.reps = 8, 6, 1, 2
    if a.worker is not None:
        _sharded_worker(a.worker, a.points, a.layers, a.reps)
        return 0
    bad = [d for d in a.devices if d < 1 or d & (d - 1)]
    if bad:
        p.error(f"device counts must be powers of two, got {bad}")
    rows = []
    for d in a.devices:
        k = d.bit_length() - 1
        points = sorted({a.strong_qubits, a.weak_qubits + k})
        env = dict(os.environ, PYTHONPATH=str(ROOT),
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={d}")
        got = harness.run_fresh(
            ["-m", "benchmarks.scale", "sharded", "--worker", str(d), "--points",
             *map(str, points), "--layers", str(a.layers), "--reps", str(a.reps)],
            timeout=a.timeout, env=env)
        for row in got.get("rows", [{"devices": d, "points": points, "note": got.get("note")}]):
            n = row.get("n_qubits")
            row["scaling"] = "+".join(name for name, m in
                                      (("strong", a.strong_qubits), ("weak", a.weak_qubits + k))
                                      if n == m)
            harness.print_row(row)
            rows.append(row)
    meta = {"machine": harness.machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average": harness.load_average(), "layers": a.layers,
            "strong_qubits": a.strong_qubits, "weak_local_qubits": a.weak_qubits}
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    path = results / ("scale-sharded-quick.json" if a.quick else "scale-sharded.json")
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {path}")
    ok = all("note" not in r and r["max_abs_diff_vs_1_device"] < 1e-3 for r in rows)
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
