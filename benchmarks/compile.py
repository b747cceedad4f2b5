"""First-call (trace + compile + run) times of the hardware-efficient ansatz, qjaxrob vs peers.

Workload: HEA on n qubits, L layers of RY and RZ on every qubit then a CNOT ring,
observable <Z0>, complex128, parameter layout ``params[l*2n + r*n + q]`` (as
``qjr.qml.hardware_efficient``). Circuits:

* ``repeat``: ``hardware_efficient(n, L)`` (one ``Circuit.repeat`` node);
* ``loop``: the same gates appended one by one in a Python loop (how converters and most
  users build circuits);
* ``random``: a circuit with no repetition, built in a loop: each layer draws its own
  pattern (seeded by n and L): on every qubit two rotations from rx/ry/rz/phase, then
  n/2 entanglers (cnot/cz/crx/rzz) on a random pairing of the wires; ``2n`` parameters
  per layer. Nothing rolls, so long runs take the interpreter (``qjaxrob.interpreter``);
* ``random-unrolled``: the same circuit with the interpreter off (``interpret_blocks=0``,
  the op-by-op program) for the run-time trade-off; ``random-interpreted``: forced on
  (``interpret_blocks=1``, also below the default threshold);
* ``naive``: plain JAX, one ``jnp.tensordot`` per gate, unrolled;
* ``pennylane``: PennyLane ``default.qubit`` with the JAX interface under ``jax.jit``.

Modes: ``forward`` = ``jax.jit(f)(p)``, ``grad`` = ``jax.jit(jax.grad(f))(p)`` (backprop),
``adjoint`` = ``jax.jit(jax.grad(f))`` with ``diff="adjoint"`` (qjaxrob only). Each
measurement runs in its own Python process (imports done, ``jax.clear_caches()``, then the
timed first call with ``block_until_ready``), so nothing is cached between measurements;
the persistent compilation cache is off. The steady time is the median of 3 later calls.
Wall time and the process's CPU time of the first call are both reported (on a loaded
machine the CPU time is the better measure of the work).

Usage::

    python -m benchmarks.compile                       # n=10, L=10/50/200, every tool
    python -m benchmarks.compile --layers 10 --tools loop repeat --timeout 120
    python -m benchmarks.compile --one loop grad 10 10 # one measurement, JSON on stdout

Writes ``benchmarks/results/compile.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmarks import harness

RESULTS = Path(__file__).resolve().parent / "results"
TOOLS = ("repeat", "loop", "random", "random-unrolled", "random-interpreted", "naive",
         "pennylane")
QJR_TOOLS = ("repeat", "loop", "random", "random-unrolled", "random-interpreted")
MODES = ("forward", "grad", "adjoint")


def random_circuit(n, layers):
    """The ``random`` workload: every layer has its own gate pattern (module docs)."""
    import numpy as np

    import qjaxrob as qjr

    rng = np.random.default_rng(1000 * n + layers)
    c = qjr.Circuit(n)
    for layer in range(layers):
        for r in range(2):
            for q in range(n):
                name = str(rng.choice(["rx", "ry", "rz", "phase"]))
                c = c.gate(name, q, qjr.param(layer * 2 * n + r * n + q))
        wires = rng.permutation(n)
        for a, b in zip(wires[0::2], wires[1::2]):
            name = str(rng.choice(["cnot", "cz", "crx", "rzz"]))
            angles = (float(rng.uniform(-3, 3)),) if name in ("crx", "rzz") else ()
            c = c.gate(name, (int(a), int(b)), *angles)
    return c


def _qjr_fn(tool, mode, n, layers):
    import jax.numpy as jnp

    import qjaxrob as qjr
    from qjaxrob.qml import hardware_efficient

    if tool.startswith("random"):
        c = random_circuit(n, layers)
        if tool != "random":
            return _engine_fn(c, mode, 0 if tool == "random-unrolled" else 1)
    elif tool == "repeat":
        c = hardware_efficient(n, layers)
    else:
        c = qjr.Circuit(n)
        for layer in range(layers):
            for r, name in enumerate(("ry", "rz")):
                for q in range(n):
                    c = c.gate(name, q, qjr.param(layer * 2 * n + r * n + q))
            for q in range(n):
                c = c.cnot(q, (q + 1) % n)
    diff = "adjoint" if mode == "adjoint" else "backprop"
    return lambda p: qjr.expval(c, qjr.Z(0), p, dtype=jnp.complex128, diff=diff)


def _engine_fn(c, mode, blocks):
    """``c`` through engine-level calls with ``interpret_blocks=blocks``."""
    import jax.numpy as jnp

    import qjaxrob as qjr
    from qjaxrob.sim import engine, measure
    from qjaxrob.sim.adjoint import adjoint_expval

    x = jnp.zeros(0)
    if mode == "adjoint":
        return lambda p: adjoint_expval(c, (qjr.Z(0),), p, x, jnp.complex128, False,
                                        interpret_blocks=blocks)[0]

    def f(p):
        t = engine.final_tensor(c, p, x, jnp.complex128, False, interpret_blocks=blocks)
        return measure.observable_value(t, qjr.Z(0), False)

    return f


def _naive_fn(n, layers):
    import jax.numpy as jnp

    cnot = jnp.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]],
                     jnp.complex128).reshape(2, 2, 2, 2)

    def apply(state, m, wires):
        k = len(wires)
        out = jnp.tensordot(m, state, axes=(tuple(range(k, 2 * k)), wires))
        return jnp.moveaxis(out, tuple(range(k)), wires)

    def ry(t):
        c, s = jnp.cos(t / 2), jnp.sin(t / 2)
        return jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])]).astype(jnp.complex128)

    def rz(t):
        e = jnp.exp(-0.5j * t)
        z = jnp.zeros((), jnp.complex128)
        return jnp.stack([jnp.stack([e, z]), jnp.stack([z, jnp.conj(e)])])

    def f(p):
        state = jnp.zeros((2,) * n, jnp.complex128).at[(0,) * n].set(1)
        for layer in range(layers):
            for r, gate in enumerate((ry, rz)):
                for q in range(n):
                    state = apply(state, gate(p[layer * 2 * n + r * n + q]), (q,))
            for q in range(n):
                state = apply(state, cnot, (q, (q + 1) % n))
        probs = jnp.abs(state) ** 2
        return jnp.sum(probs[0]) - jnp.sum(probs[1])

    return f


def _pennylane_fn(n, layers):
    import pennylane as qml

    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev, interface="jax", diff_method="backprop")
    def f(p):
        for layer in range(layers):
            for r, gate in enumerate((qml.RY, qml.RZ)):
                for q in range(n):
                    gate(p[layer * 2 * n + r * n + q], wires=q)
            for q in range(n):
                qml.CNOT(wires=[q, (q + 1) % n])
        return qml.expval(qml.PauliZ(0))

    return f


def measure_one(tool, mode, n, layers):
    """``{"first_s", "steady_s", "value"}`` of one fresh first call (this process)."""
    import jax

    harness.enable_x64()
    jax.config.update("jax_enable_compilation_cache", False)
    import jax.numpy as jnp
    import numpy as np

    if tool in QJR_TOOLS:
        f = _qjr_fn(tool, mode, n, layers)
    elif tool == "naive":
        f = _naive_fn(n, layers)
    else:
        f = _pennylane_fn(n, layers)
    fn = jax.jit(f if mode == "forward" else jax.grad(f))
    p = jnp.asarray(np.random.default_rng(0).uniform(-np.pi, np.pi, 2 * n * layers))
    jax.block_until_ready(p)
    jax.clear_caches()
    out, first, first_cpu = harness.timed_call(fn, p)
    steady = harness.median_time(fn, p, min_reps=3)
    value = float(out) if mode == "forward" else float(jnp.sum(out))
    return {"first_s": first, "first_cpu_s": first_cpu, "steady_s": steady, "value": value}


def run_measurement(tool, mode, n, layers, timeout):
    env = dict(os.environ, JAX_ENABLE_COMPILATION_CACHE="false")
    return harness.run_fresh(["-m", "benchmarks.compile", "--one", tool, mode, n, layers],
                             timeout=timeout, env=env)


def _fmt(r):
    if r is None:
        return "-"
    if r.get("first_s") is None:
        return r["note"]
    return (f"{r['first_s']:.2f} s [CPU {r['first_cpu_s']:.2f} s] "
            f"(run {r['steady_s'] * 1e3:.2f} ms)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", nargs=4, metavar=("TOOL", "MODE", "N", "L"))
    ap.add_argument("--qubits", type=int, default=10)
    ap.add_argument("--layers", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per measurement")
    ap.add_argument("--out", default=str(RESULTS / "compile.json"))
    args = ap.parse_args(argv)
    if args.one:
        tool, mode, n, layers = args.one
        print(json.dumps(measure_one(tool, mode, int(n), int(layers))))
        return
    rows = []
    for layers in args.layers:
        for tool in args.tools:
            for mode in args.modes:
                if mode == "adjoint" and tool not in QJR_TOOLS:
                    continue
                r = run_measurement(tool, mode, args.qubits, layers, args.timeout)
                r.update(tool=tool, mode=mode, n=args.qubits, layers=layers)
                rows.append(r)
                harness.print_row(r)
    meta = {"machine": harness.machine(), "load_average": harness.load_average(),
            "argv": sys.argv[1:]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"\nload average {meta['load_average']}\n")
    print("| tool | L | " + " | ".join(args.modes) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in args.modes) + " |")
    for tool in args.tools:
        for layers in args.layers:
            cells = []
            for mode in args.modes:
                hit = [r for r in rows if (r["tool"], r["mode"], r["layers"]) == (tool, mode, layers)]
                cells.append(_fmt(hit[0] if hit else None))
            print(f"| {tool} | {layers} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
