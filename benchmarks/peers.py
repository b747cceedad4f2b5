"""qjaxrob against peer simulators on the same hardware-efficient-ansatz circuits, in one run.

Workload (shared/anchors/PEERS.md): L layers of RY(theta) and RZ(theta) on every qubit
followed by a CNOT ring (q -> q+1 mod n), observable <Z0>, complex128 everywhere. Batched
cases angle-encode x with RY(x_i) first. Parameter layout (qjaxrob's hardware_efficient):
``params[l*2n + r*n + q]`` for layer l, rotation r (0 = RY, 1 = RZ), qubit q.

Peers: PennyLane default.qubit under jax.jit, lightning.qubit (adjoint gradients), Qiskit
Aer statevector (double precision; Qiskit's qubit 0 is the least significant bit, which
does not change <Z0> since wire i maps to qubit i), qujax (angles in half turns).
Every peer's value is checked against qjaxrob before it is timed. Times are medians over
repeated calls after warm-up (compile excluded, except in the first-call rows, which time
trace + compile + run of a fresh jit in a process with cleared JAX caches).

Usage::

    python -m benchmarks.peers            # full table (several minutes)
    python -m benchmarks.peers --quick    # small sizes, well under a minute

Writes ``benchmarks/results/peers[-quick].json`` and ``.csv`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from benchmarks import harness
from qjaxrob.qml import hardware_efficient

RESULTS = Path(__file__).resolve().parent / "results"
DT = jnp.complex128
TOL = 1e-8


def timeit(fn, *args, min_time=0.5, max_reps=30, min_reps=3):
    """(median, min, max) seconds of ``fn(*args)`` after one warm-up call."""
    jax.block_until_ready(fn(*args))
    times = harness.call_times(fn, *args, min_reps=min_reps, min_time=min_time,
                               max_reps=max_reps)
    return statistics.median(times), min(times), max(times)


# ---- circuits ------------------------------------------------------------------------
def qjr_circuit(n, layers, encode=False):
    c = hardware_efficient(n, layers)
    if encode:
        c = qjr.Circuit(n, tuple(qjr.Circuit(n).ry(q, qjr.inp(q)).ops[0] for q in range(n))) + c
    return c


def angles(n, layers, seed=0):
    return np.random.default_rng(seed).uniform(-np.pi, np.pi, 2 * n * layers)


def inputs(n, batch, seed=1):
    return np.random.default_rng(seed).uniform(-np.pi, np.pi, (batch, n))


def qjr_forward(n, layers, diff="backprop", encode=False):
    c = qjr_circuit(n, layers, encode)
    if encode:
        return lambda p, x: qjr.expval(c, qjr.Z(0), p, x, dtype=DT, diff=diff)
    return lambda p: qjr.expval(c, qjr.Z(0), p, dtype=DT, diff=diff)


def pl_circuit(qml, n, layers, p, x=None):
    if x is not None:
        for q in range(n):
            qml.RY(x[..., q], wires=q)
    p = p.reshape(layers, 2, n)
    for layer in range(layers):
        for q in range(n):
            qml.RY(p[layer, 0, q], wires=q)
        for q in range(n):
            qml.RZ(p[layer, 1, q], wires=q)
        for q in range(n):
            if n > 2 or q < n - 1:
                qml.CNOT(wires=[q, (q + 1) % n])
    return qml.expval(qml.PauliZ(0))


def pennylane_fn(n, layers, device, encode=False):
    import pennylane as qml

    if device == "default.qubit":
        dev = qml.device("default.qubit", wires=n)
        node = qml.QNode(lambda *a: pl_circuit(qml, n, layers, *a), dev, interface="jax")
    else:
        dev = qml.device("lightning.qubit", wires=n)
        node = qml.QNode(lambda *a: pl_circuit(qml, n, layers, *a), dev, diff_method="adjoint")
    return node


def qiskit_fn(n, layers, batch_x=None):
    """A callable ``p -> <Z0>`` (or the vector over ``batch_x``) running Aer."""
    from qiskit import QuantumCircuit, transpile
    from qiskit.circuit import ParameterVector
    from qiskit.quantum_info import Pauli
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="statevector", precision="double")
    theta = ParameterVector("t", 2 * n * layers)
    xs = ParameterVector("x", n)
    qc = QuantumCircuit(n)
    if batch_x is not None:
        for q in range(n):
            qc.ry(xs[q], q)
    for layer in range(layers):
        for r, gate in enumerate((qc.ry, qc.rz)):
            for q in range(n):
                gate(theta[layer * 2 * n + r * n + q], q)
        for q in range(n):
            if n > 2 or q < n - 1:
                qc.cx(q, (q + 1) % n)
    qc.save_expectation_value(Pauli("Z"), [0])
    qc = transpile(qc, sim, optimization_level=0)

    def run(p):
        binds = {theta[i]: [float(v)] * (1 if batch_x is None else len(batch_x))
                 for i, v in enumerate(p)}
        if batch_x is not None:
            binds.update({xs[q]: [float(v) for v in batch_x[:, q]] for q in range(n)})
        res = sim.run(qc, parameter_binds=[binds]).result()
        if batch_x is None:
            return np.asarray(res.data(0)["expectation_value"])
        return np.asarray([res.data(i)["expectation_value"] for i in range(len(batch_x))])

    return run


def qujax_fn(n, layers, encode=False):
    import qujax

    gates, wires, pidx = [], [], []
    off = n if encode else 0
    if encode:
        gates += ["Ry"] * n
        wires += [[q] for q in range(n)]
        pidx += [[q] for q in range(n)]
    for layer in range(layers):
        for r, g in enumerate(("Ry", "Rz")):
            for q in range(n):
                gates.append(g)
                wires.append([q])
                pidx.append([off + layer * 2 * n + r * n + q])
        for q in range(n):
            if n > 2 or q < n - 1:
                gates.append("CX")
                wires.append([q, (q + 1) % n])
                pidx.append([])
    to_state = qujax.get_params_to_statetensor_func(gates, wires, pidx, n)
    to_exp = qujax.get_statetensor_to_expectation_func([["Z"]], [[0]], [1.0])
    if encode:
        return lambda p, x: to_exp(to_state(jnp.concatenate([x, p]) / jnp.pi))
    return lambda p: to_exp(to_state(p / jnp.pi))


# ---- workloads -----------------------------------------------------------------------
class Table:
    def __init__(self):
        self.rows = []

    def add(self, workload, engine, value, ref, timing, note=""):
        med, lo, hi = timing
        err = float(np.max(np.abs(np.asarray(value) - np.asarray(ref))))
        ok = err <= TOL
        self.rows.append(dict(workload=workload, engine=engine, median_s=med, min_s=lo,
                              max_s=hi, max_abs_diff=err, agrees=ok, note=note))
        print(f"  {workload:38s} {engine:28s} {med * 1e3:10.2f} ms"
              f"  [{lo * 1e3:.2f}, {hi * 1e3:.2f}]  diff {err:.1e}{'' if ok else '  MISMATCH'}",
              flush=True)


def forward(table, n, layers, peers):
    p = angles(n, layers)
    f = jax.jit(qjr_forward(n, layers))
    ref = np.asarray(f(jnp.asarray(p)))
    w = f"forward n={n} L={layers}"
    table.add(w, "qjaxrob", ref, ref, timeit(f, jnp.asarray(p)))
    if "default.qubit" in peers:
        g = jax.jit(pennylane_fn(n, layers, "default.qubit"))
        table.add(w, "pennylane default.qubit+jit", g(jnp.asarray(p)), ref, timeit(g, jnp.asarray(p)))
    if "lightning" in peers:
        g = pennylane_fn(n, layers, "lightning")
        table.add(w, "lightning.qubit", g(p), ref, timeit(g, p))
    if "aer" in peers:
        g = qiskit_fn(n, layers)
        table.add(w, "qiskit aer", g(p), ref, timeit(g, p))
    if "qujax" in peers:
        g = jax.jit(qujax_fn(n, layers))
        table.add(w, "qujax", g(jnp.asarray(p)), ref, timeit(g, jnp.asarray(p)))


def gradient(table, n, layers, peers):
    p = jnp.asarray(angles(n, layers))
    f = jax.jit(jax.grad(qjr_forward(n, layers)))
    ref = np.asarray(f(p))
    w = f"gradient n={n} L={layers}"
    table.add(w, "qjaxrob backprop", ref, ref, timeit(f, p))
    g = jax.jit(jax.grad(qjr_forward(n, layers, diff="adjoint")))
    table.add(w, "qjaxrob adjoint", g(p), ref, timeit(g, p))
    if "default.qubit" in peers:
        g = jax.jit(jax.grad(pennylane_fn(n, layers, "default.qubit")))
        table.add(w, "pennylane default.qubit+jit", g(p), ref, timeit(g, p))
    if "lightning" in peers:
        import pennylane as qml
        from pennylane import numpy as pnp

        node = pennylane_fn(n, layers, "lightning")
        g = qml.grad(node)
        pp = pnp.array(np.asarray(p), requires_grad=True)
        table.add(w, "lightning.qubit adjoint", g(pp), ref, timeit(g, pp))
    if "qujax" in peers:
        g = jax.jit(jax.grad(qujax_fn(n, layers)))
        table.add(w, "qujax", g(p), ref, timeit(g, p))


def batched(table, n, layers, batch, peers):
    p, xs = jnp.asarray(angles(n, layers)), jnp.asarray(inputs(n, batch))
    fwd = qjr_forward(n, layers, encode=True)
    f = jax.jit(jax.vmap(fwd, in_axes=(None, 0)))
    ref = np.asarray(f(p, xs))
    gf = jax.jit(jax.grad(lambda p, xs: jnp.mean(jax.vmap(fwd, in_axes=(None, 0))(p, xs))))
    gref = np.asarray(gf(p, xs))
    wf, wg = f"batched forward n={n} L={layers} B={batch}", f"batched grad n={n} L={layers} B={batch}"
    table.add(wf, "qjaxrob", ref, ref, timeit(f, p, xs))
    table.add(wg, "qjaxrob backprop", gref, gref, timeit(gf, p, xs))
    if "default.qubit" in peers:
        node = pennylane_fn(n, layers, "default.qubit", encode=True)
        g = jax.jit(lambda p, xs: node(p, xs))
        table.add(wf, "pennylane default.qubit+jit", g(p, xs), ref, timeit(g, p, xs))
        g = jax.jit(jax.grad(lambda p, xs: jnp.mean(node(p, xs))))
        table.add(wg, "pennylane default.qubit+jit", g(p, xs), gref, timeit(g, p, xs))
    if "lightning" in peers:
        import pennylane as qml
        from pennylane import numpy as pnp

        node = pennylane_fn(n, layers, "lightning", encode=True)
        pp = pnp.array(np.asarray(p), requires_grad=True)
        xx = pnp.array(np.asarray(xs), requires_grad=False)
        table.add(wf, "lightning.qubit", node(pp, xx), ref, timeit(node, pp, xx))
        g = qml.grad(lambda p: pnp.mean(node(p, xx)))
        table.add(wg, "lightning.qubit adjoint", g(pp), gref, timeit(g, pp))
    if "aer" in peers:
        g = qiskit_fn(n, layers, batch_x=np.asarray(xs))
        table.add(wf, "qiskit aer", g(np.asarray(p)), ref, timeit(g, np.asarray(p)))
    if "qujax" in peers:
        q = qujax_fn(n, layers, encode=True)
        g = jax.jit(jax.vmap(q, in_axes=(None, 0)))
        table.add(wf, "qujax", g(p, xs), ref, timeit(g, p, xs))
        g = jax.jit(jax.grad(lambda p, xs: jnp.mean(jax.vmap(q, in_axes=(None, 0))(p, xs))))
        table.add(wg, "qujax", g(p, xs), gref, timeit(g, p, xs))


def first_call(table, n, layers, what, engine="qjaxrob"):
    """Trace + compile + run of a fresh jit (caches cleared)."""
    jax.clear_caches()
    p = jnp.asarray(angles(n, layers))
    if engine == "qjaxrob":
        fn = qjr_forward(n, layers)
    else:
        fn = pennylane_fn(n, layers, "default.qubit")
    fn = jax.jit(fn if what == "forward" else jax.grad(fn))
    out, dt, _ = harness.timed_call(fn, p)
    ref = jax.jit(qjr_forward(n, layers) if what == "forward" else
                  jax.grad(qjr_forward(n, layers)))(p)
    name = engine if engine == "qjaxrob" else "pennylane default.qubit+jit"
    table.add(f"first call jit({what}) n={n} L={layers}", name, out, ref, (dt, dt, dt))


def kernel_costs(table, n=20):
    """Per-kernel time (19 applications in one jit) that calibrates fusion.KERNEL_COST."""
    from qjaxrob.kernels import apply_diagonal, apply_matrix
    from qjaxrob.kernels.structured import apply_permutation

    g = 19
    s = jnp.ones((2,) * n, DT)
    cases = {f"dense {k}q": (k, lambda s, m, w: apply_matrix(s, m, w)) for k in (1, 2, 3, 4)}
    cases["diagonal 1q"] = (1, lambda s, m, w: apply_diagonal(s, m[0], w))
    cases["permutation 2q (cnot)"] = (2, lambda s, m, w: apply_permutation(s, (0, 1, 3, 2), None, w))
    for name, (k, kern) in cases.items():
        ms = jnp.asarray(np.random.default_rng(0).normal(size=(g, 2**k, 2**k)), DT)

        def run(s, ms, k=k, kern=kern):
            for i in range(g):
                s = kern(s, ms[i], tuple((i + j) % n for j in range(k)))
            return s

        med, lo, hi = timeit(jax.jit(run), s, ms)
        table.add(f"kernel n={n}", name, 0.0, 0.0, (med / g, lo / g, hi / g))


# ---- driver --------------------------------------------------------------------------
def available_peers():
    found = []
    for name, mod in [("default.qubit", "pennylane"), ("lightning", "pennylane_lightning"),
                      ("aer", "qiskit_aer"), ("qujax", "qujax")]:
        try:
            __import__(mod)
            found.append(name)
        except ImportError:
            print(f"peer {name} not installed ({mod}); skipped")
    return found


def summary(rows):
    """Markdown table: one row per workload, one column per engine, plus ratios of qjaxrob
    (backprop/forward) to each peer."""
    by = {}
    for r in rows:
        by.setdefault(r["workload"], {})[r["engine"]] = r["median_s"]
    lines = ["| workload | engine | median | qjaxrob / engine |", "| --- | --- | --- | --- |"]
    for w, engines in by.items():
        ours = engines.get("qjaxrob", engines.get("qjaxrob backprop"))
        for e, t in engines.items():
            ratio = f"{ours / t:.2f}" if ours and not e.startswith("qjaxrob") else ""
            lines.append(f"| {w} | {e} | {t * 1e3:.2f} ms | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (well under a minute)")
    ap.add_argument("--kernels", action="store_true", help="also time single kernels at n=20")
    args = ap.parse_args(argv)
    harness.enable_x64()
    peers = available_peers()
    table = Table()
    if args.quick:
        layers, fwd_sizes, grad_sizes, batch, call_n, calls, pl_first = \
            1, (4, 8), (8,), (4, 8), 4, (2, 4), ()
    else:
        layers, fwd_sizes, grad_sizes, batch, call_n, calls, pl_first = \
            4, (8, 12, 16, 20), (16, 20), (10, 256), 10, (10, 50, 200), (10,)
    t0 = time.perf_counter()
    for n in fwd_sizes:
        forward(table, n, layers, peers)
    for n in grad_sizes:
        gradient(table, n, layers, [p for p in peers if p != "aer"])
    batched(table, batch[0], layers, batch[1], peers)
    for what in ("forward", "grad"):
        for layers in calls:
            first_call(table, call_n, layers, what)
    if "default.qubit" in peers:
        for layers in pl_first:
            first_call(table, call_n, layers, "forward", engine="pennylane")
    if args.kernels:
        kernel_costs(table)
    print(f"total {time.perf_counter() - t0:.1f} s")
    RESULTS.mkdir(exist_ok=True)
    stem = "peers-quick" if args.quick else "peers"
    meta = dict(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
                jax=jax.__version__, platform=platform.platform(), dtype="complex128",
                when=time.strftime("%Y-%m-%d %H:%M:%S"), load_average=harness.load_average())
    (RESULTS / f"{stem}.json").write_text(json.dumps(dict(meta=meta, rows=table.rows), indent=1))
    with open(RESULTS / f"{stem}.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(table.rows[0]))
        wr.writeheader()
        wr.writerows(table.rows)
    print(summary(table.rows))
    bad = [r for r in table.rows if not r["agrees"]]
    if bad:
        raise SystemExit(f"{len(bad)} peer value(s) disagree with qjaxrob beyond {TOL}")


if __name__ == "__main__":
    main()
