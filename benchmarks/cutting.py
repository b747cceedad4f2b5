"""qiskit-addon-cutting (cut, generate subexperiments, run on Aer, reconstruct) vs qjaxrob
on the same cut circuits, exact and sampled. ``python -m benchmarks.cutting [--quick]``.

Cases (as in shared/anchors/CUTTING.md section 7): 16 qubits in halves {0..7}, {8..15} with
2 CZ gate cuts (7,8), (0,15); 19 logical qubits, wire 9 cut between the halves {0..9} and
{9..18} plus a CZ(4,14) gate cut. Exact mode: qiskit uses its ExactSampler (branching
statevector); qjaxrob its exact reconstruction. Sampled mode: qiskit runs S shots per
subexperiment on Aer's SamplerV2; qjaxrob gets the same number of fragment executions per
fragment (S x subexperiments per partition, split evenly over the observable's Pauli terms;
qiskit measures all three qubit-wise commuting terms on the same shots) and, second row,
the same shots per Pauli term as qiskit (S x subexperiments per partition), with its
stratified allocation (shots proportional to |c_t|, one binomial per fragment and joint term).
Equal accuracy: the sampled rows report each tool's RMS error against the exact (uncut
statevector) value over independent repeats, and qjaxrob's mean reported standard error. Times are medians over repeats after one warm-up (the
qjaxrob warm-up pays its jit compile, reported separately), with ``block_until_ready``.
Writes benchmarks/cutting.md. Wire order: qiskit labels put qubit 0 right-most.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList
from qiskit_addon_cutting import (
    cut_wires, expand_observables, generate_cutting_experiments, partition_problem,
    reconstruct_expectation_values)
from qiskit_addon_cutting.instructions import CutWire
from qiskit_addon_cutting.utils.simulation import ExactSampler
from qiskit_aer.primitives import SamplerV2

import qjaxrob as qjr
from benchmarks import harness
from qjaxrob import cutting

WORDS = [(0, "Z", 15, "Z"), (3, "X", 12, "X"), (7, "Y", 8, "Z")]
COEFFS = [1.0, 0.5, -0.3]


def build(case, thetas):
    """(qjaxrob circuit with marks, qiskit circuit, qiskit partition labels, n logical)."""
    n = 16 if case == "gate16" else 19
    half = 8 if case == "gate16" else 9
    c, qc = qjr.Circuit(n), QuantumCircuit(n)
    k = 0

    def layer(c, qc, k):
        for q in range(n):
            c = c.ry(q, float(thetas[k % len(thetas)]))
            qc.ry(float(thetas[k % len(thetas)]), q)
            k += 1
        return c, qc, k

    c, qc, k = layer(c, qc, k)
    blocks = [range(0, half), range(half, n)] if case == "gate16" else [range(0, 10), range(10, n)]
    for blk in blocks:
        for q in list(blk)[:-1]:
            c = c.cz(q, q + 1)
            qc.cz(q, q + 1)
    if case == "gate16":
        c = c.cz(7, 8, cut=True).cz(0, 15, cut=True)
        qc.cz(7, 8)
        qc.cz(0, 15)
    else:
        c = c.cut(9).cz(9, 10).cz(4, 14, cut=True)
        qc.append(CutWire(), [9])
        qc.cz(9, 10)
        qc.cz(4, 14)
    c, qc, k = layer(c, qc, k)
    return c, qc


def observables(n):
    obs = 0 * qjr.I(0)
    labels = []
    for coeff, (a, la, b, lb) in zip(COEFFS, WORDS):
        obs = obs + coeff * qjr.pauli(la + lb, wires=(a, b))
        s = ["I"] * n
        s[n - 1 - a], s[n - 1 - b] = la, lb
        labels.append("".join(s))
    return obs, PauliList(labels)


def qiskit_pipeline(qc, paulis, sampler, shots):
    if any(inst.operation.name == "cut_wire" for inst in qc.data):
        qcw = cut_wires(qc)
        paulis = expand_observables(paulis, qc, qcw)
        labels = "A" * 10 + "B" * 10
        qc = qcw
    else:
        labels = "A" * 8 + "B" * 8
    prob = partition_problem(circuit=qc, partition_labels=labels, observables=paulis)
    subexp, coeffs = generate_cutting_experiments(prob.subcircuits, prob.subobservables, np.inf)
    if shots is None:
        results = {k: sampler.run(v).result() for k, v in subexp.items()}
    else:
        results = {k: sampler.run(v, shots=shots).result() for k, v in subexp.items()}
    vals = reconstruct_expectation_values(results, coeffs, prob.subobservables)
    return float(np.dot(COEFFS, vals)), len(coeffs), sum(len(v) for v in subexp.values())


def timed(fn, repeats):
    """``(value, median seconds)`` of ``repeats`` calls after one untimed warm-up call."""
    out = fn()
    return out, harness.median_time(fn, min_reps=repeats, max_reps=repeats)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    harness.enable_x64()
    repeats, shots = (1, 1000) if args.quick else (3, 10000)
    thetas = np.random.default_rng(0).uniform(-np.pi, np.pi, 64)
    rows = []
    for case in ("gate16", "wire_gate19"):
        c, qc = build(case, thetas)
        obs, paulis = observables(c.n_qubits)
        truth = float(qjr.expval(c, obs, dtype=jnp.complex128))
        cc = cutting.partition(c)
        compile_s = harness.timed_call(cutting.expval, cc, obs, None, None,
                                       dtype=jnp.complex128)[1]
        (q_exact, terms, n_sub), tq = timed(
            lambda: qiskit_pipeline(qc, paulis, ExactSampler(), None), repeats)
        mine, tj = timed(lambda: float(jax.block_until_ready(
            cutting.expval(cutting.partition(c), obs, dtype=jnp.complex128))), repeats)
        rows.append((case, "exact", terms, n_sub, tq, abs(q_exact - truth), tj,
                     abs(mine - truth), compile_s, ""))
        q_errs, q_times = [], []
        for _ in range(repeats):
            (q_s, _, _), t, _ = harness.timed_call(qiskit_pipeline, qc, paulis, SamplerV2(),
                                                   shots)
            q_times.append(t)
            q_errs.append(q_s - truth)
        per_partition = n_sub // 2
        for label, n_shots in (("equal fragment runs", shots * per_partition // len(WORDS)),
                               ("equal shots per Pauli term", shots * per_partition)):
            keys = iter(jax.random.split(jax.random.key(0), 1000))
            run = lambda: jax.block_until_ready(cutting.expval(  # noqa: E731
                cutting.partition(c), obs, dtype=jnp.complex128, shots=n_shots, key=next(keys),
                return_stderr=True))
            compile_s = harness.timed_call(run)[1]
            (mine_s, _), tjs = timed(run, repeats)
            outs = [run() for _ in range(100)]
            j_errs = [float(e) - truth for e, _ in outs]
            j_se = float(np.mean([float(s) for _, s in outs]))
            rms = lambda v: float(np.sqrt(np.mean(np.square(v))))  # noqa: E731
            rows.append((case, f"sampled, {label} ({shots}/subexp = {shots * per_partition} "
                         f"runs per partition; qjaxrob {n_shots} QPD shots/term)", terms, n_sub,
                         statistics.median(q_times), rms(q_errs), tjs, rms(j_errs), compile_s,
                         f"RMS over {repeats} (qiskit) / 100 (qjaxrob) runs; qjaxrob mean "
                         f"stderr {j_se:.2e}"))
    write(rows, args)


def write(rows, args):
    lines = [
        "# Circuit cutting: qiskit-addon-cutting + Aer vs qjaxrob", "",
        f"Command: `python -m benchmarks.cutting{' --quick' if args.quick else ''}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{jax.devices()[0].platform}, Python {sys.version.split()[0]}, JAX {jax.__version__}; "
        "complex128.", "",
        "| case | mode | joint terms | qiskit subexperiments | qiskit s | qiskit err | "
        "qjaxrob s | qjaxrob err | qjaxrob first call (compile) s | speed-up | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case, mode, terms, n_sub, tq, eq, tj, ej, comp, note in rows:
        lines.append(f"| {case} | {mode} | {terms} | {n_sub} | {tq:.3f} | {eq:.2e} | {tj:.4f} | "
                     f"{ej:.2e} | {comp:.2f} | {tq / tj:.0f}x | {note} |")
    lines += ["", "End to end per call: qiskit = cut + generate + run + reconstruct; qjaxrob = "
              "partition + one jitted reconstruction (cached compile). Errors are against the "
              "uncut statevector value."]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(os.path.dirname(__file__), "cutting.md"), "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
