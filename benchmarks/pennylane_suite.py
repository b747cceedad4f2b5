"""PennyLane's own device test suite and a classifier's first jitted step, per device:
``qjaxrob.qubit`` against ``default.qubit`` and ``lightning.qubit``.

* Suite: ``python -m pytest <pennylane/devices/tests> --device=NAME`` in a fresh
  interpreter (analytic, or ``--shots``), its pass/fail counts (from a JUnit report) and
  its wall and CPU seconds (the child's ``getrusage``). A failure is reported, not hidden:
  the row carries the counts.
* Classifier demo: ``AngleEmbedding`` of a ``(batch, n)`` data batch (one broadcast tape)
  followed by ``StronglyEntanglingLayers``, ``<Z0>`` against +-1 labels, squared loss,
  one ``optax.adam`` step under ``jax.jit`` (``interface="jax"``, backprop on both
  devices). Each device runs in a fresh interpreter: ``first_s`` times trace + compile +
  run of the first step (``first_cpu_s`` its CPU seconds), ``steady_ms`` the median warm
  step. Both devices' first losses
  are compared before the row is printed.

Rows are JSON lines on stdout. The machine's load average is printed first: on a shared
machine the numbers are indicative only.

Usage::

    python -m benchmarks.pennylane_suite --quick     # test_gates.py only; demo batch 8
    python -m benchmarks.pennylane_suite             # whole suite analytic + demo batch 32
    python -m benchmarks.pennylane_suite --shots 10000 --x64
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks import harness

DEVICES = ("qjaxrob.qubit", "default.qubit", "lightning.qubit")
DEMO_DEVICES = ("qjaxrob.qubit", "default.qubit")


def _suite_dir() -> Path:
    import pennylane
    return Path(pennylane.__file__).resolve().parent / "devices" / "tests"


def _env(x64: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "JAX_"))}
    env["JAX_ENABLE_X64"] = "1" if x64 else "0"
    env["PYTHONPATH"] = os.pathsep.join([str(harness.ROOT), env.get("PYTHONPATH", "")])
    return env


def suite(device: str, *, x64: bool, shots: int | None, files=()) -> dict:
    """Runs the suite (or ``files`` of it) on ``device``; its counts and times."""
    root = _suite_dir()
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "suite.xml"
        cmd = [sys.executable, "-m", "pytest", *[str(root / f) for f in files or ["."]],
               f"--device={device}", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               "-p", "no:xdist", f"--junitxml={junit}", f"--rootdir={root}"]
        if shots:
            cmd.append(f"--shots={shots}")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=harness.ROOT, env=_env(x64), capture_output=True,
                              text=True, check=False)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        row = {"what": "suite", "device": device, "x64": x64, "shots": shots,
               "files": list(files) or "all", "wall_s": round(wall, 1),
               "cpu_s": round(after.ru_utime - before.ru_utime
                              + after.ru_stime - before.ru_stime, 1)}
        if not junit.exists():
            row["note"] = f"no report (rc {proc.returncode}): " + proc.stderr[-200:]
            return row
        suites = ET.parse(junit).getroot().iter("testsuite")
        counts = {k: 0 for k in ("tests", "failures", "errors", "skipped")}
        for s in suites:
            for k in counts:
                counts[k] += int(s.get(k, 0))
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    row.update(counts)
    return row


def demo_child(device: str, n: int, batch: int, layers: int) -> None:
    """Runs in a fresh interpreter: prints ``{"first_s", "steady_ms", "loss"}``."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import pennylane as qml

    dev = qml.device(device, wires=n)

    @qml.qnode(dev, interface="jax")
    def model(x, w):
        qml.AngleEmbedding(x, wires=range(n))
        qml.StronglyEntanglingLayers(w, wires=range(n))
        return qml.expval(qml.Z(0))

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0, np.pi, (batch, n)))
    y = jnp.asarray(np.sign(rng.normal(size=batch)))
    w = jnp.asarray(rng.normal(scale=0.3, size=(layers, n, 3)))
    opt = optax.adam(0.05)

    def loss(w):
        return jnp.mean((model(x, w) - y) ** 2)

    @jax.jit
    def step(w, state):
        value, grad = jax.value_and_grad(loss)(w)
        updates, state = opt.update(grad, state)
        return optax.apply_updates(w, updates), state, value

    state = opt.init(w)
    (w1, state1, first_loss), first, first_cpu = harness.timed_call(step, w, state)
    steady = harness.median_time(step, w1, state1, min_reps=5, min_time=0.5, max_reps=200)
    print(json.dumps({"first_s": first, "first_cpu_s": first_cpu, "steady_ms": steady * 1e3,
                      "loss": float(first_loss)}))


def demo(*, n: int, batch: int, layers: int, x64: bool) -> list[dict]:
    rows = []
    for device in DEMO_DEVICES:
        out = harness.run_fresh(["-m", "benchmarks.pennylane_suite", "--demo-child", device,
                                 "--n", n, "--batch", batch, "--layers", layers],
                                timeout=900, env=_env(x64))
        rows.append({"what": "classifier first step", "device": device, "n": n,
                     "batch": batch, "layers": layers, "x64": x64, **out})
    losses = [r["loss"] for r in rows if "loss" in r]
    if len(losses) == 2:
        assert abs(losses[0] - losses[1]) < (1e-9 if x64 else 1e-4), f"losses differ: {losses}"
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="test_gates.py only; batch 8")
    parser.add_argument("--shots", type=int, default=None)
    parser.add_argument("--x64", action="store_true")
    parser.add_argument("--devices", nargs="+", default=list(DEVICES))
    parser.add_argument("--no-suite", action="store_true")
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--demo-child", metavar="DEVICE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch = args.batch or (8 if args.quick else 32)
    if args.demo_child:
        demo_child(args.demo_child, args.n, batch, args.layers)
        return
    harness.print_row({"machine": harness.machine(), "load_average": harness.load_average()})
    if not args.no_suite:
        files = ("test_gates.py",) if args.quick else ()
        for device in args.devices:
            harness.print_row(suite(device, x64=args.x64, shots=args.shots, files=files))
    if not args.no_demo:
        for row in demo(n=args.n, batch=batch, layers=args.layers, x64=args.x64):
            harness.print_row(row)


if __name__ == "__main__":
    main()
