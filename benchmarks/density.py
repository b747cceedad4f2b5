"""Noisy-circuit benchmark: qjaxrob density matrix and trajectories vs PennyLane
``default.mixed`` and Qiskit Aer ``method="density_matrix"``, same circuits, one run.

Workload: hardware-efficient ansatz, L = 4 layers of [RY(theta) on every qubit, then
RZ(theta) on every qubit, then a CNOT ring i -> i+1 mod n], with a one-qubit depolarizing
channel p = 0.01 on every qubit after each of these three sub-layers; observable <Z0>;
complex128 everywhere.

Conventions: ours is rho -> (1-p) rho + p I/2; PennyLane's ``DepolarizingChannel(p')`` is
the same channel for p' = 3p/4; Qiskit's ``depolarizing_error(p, 1)`` is ours with the same
p. Qiskit orders qubits little-endian (qubit 0 is the least significant bit of a basis
index, ours is the most significant), which does not matter here: the same gates go on
the same qubit indices and <Z0> is taken on qubit 0 by index, not from a bit string.

Timing: every simulator is warmed up first (jit compile / transpile excluded), then the
median of ``reps`` calls, each ended with ``block_until_ready`` for JAX. All values are
checked to agree (density matrices to 1e-8; trajectories within 5 standard errors).

Run: ``python -m benchmarks.density`` (n = 6, 8, 10, 12; writes benchmarks/density.md) or
``python -m benchmarks.density --quick`` (n = 6, 8; prints only).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from benchmarks import harness

LAYERS, P, TRAJECTORIES = 4, 0.01, 1000


def qjaxrob_circuit(n: int) -> qjr.Circuit:
    """The workload as a qjaxrob circuit; one layer is a Repeat block (lax.scan)."""
    b = qjr.Circuit(n)
    for q in range(n):
        b = b.ry(q, qjr.param(q))
    for q in range(n):
        b = b.depolarizing(q, P)
    for q in range(n):
        b = b.rz(q, qjr.param(n + q))
    for q in range(n):
        b = b.depolarizing(q, P)
    for q in range(n):
        b = b.cnot(q, (q + 1) % n)
    for q in range(n):
        b = b.depolarizing(q, P)
    return qjr.Circuit.repeat(b, LAYERS)


def angles(n: int, layer: int, kind: int, q: int, params):
    return float(params[layer * 2 * n + kind * n + q])


def pennylane_ops(n: int, params) -> None:
    """Queues the workload's PennyLane operations (inside a QNode); ``params`` concrete or
    traced, indexed as :func:`angles`; PennyLane's ``DepolarizingChannel(3p/4)`` is ours."""
    import pennylane as qml

    for layer in range(LAYERS):
        for kind, gate in enumerate((qml.RY, qml.RZ)):
            for q in range(n):
                gate(params[layer * 2 * n + kind * n + q], wires=q)
            for q in range(n):
                qml.DepolarizingChannel(3 * P / 4, wires=q)
        for q in range(n):
            qml.CNOT(wires=[q, (q + 1) % n])
        for q in range(n):
            qml.DepolarizingChannel(3 * P / 4, wires=q)


def pennylane_fn(n: int, params):
    import pennylane as qml

    dev = qml.device("default.mixed", wires=n)
    values = [float(v) for v in params]

    @qml.qnode(dev, diff_method=None)
    def circuit():
        pennylane_ops(n, values)
        return qml.expval(qml.PauliZ(0))

    return lambda: float(circuit())


def qiskit_fn(n: int, params):
    from qiskit import QuantumCircuit
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import depolarizing_error

    noise = depolarizing_error(P, 1).to_instruction()
    qc = QuantumCircuit(n)
    for layer in range(LAYERS):
        for kind, gate in enumerate((qc.ry, qc.rz)):
            for q in range(n):
                gate(angles(n, layer, kind, q, params), q)
            for q in range(n):
                qc.append(noise, [q])
        for q in range(n):
            qc.cx(q, (q + 1) % n)
        for q in range(n):
            qc.append(noise, [q])
    qc.save_expectation_value(_z0(), [0])
    sim = AerSimulator(method="density_matrix", precision="double")
    return lambda: float(np.real(sim.run(qc, shots=1).result().data()["expectation_value"]))


def _z0():
    from qiskit.quantum_info import Pauli

    return Pauli("Z")


def qjaxrob_fns(n: int, params):
    c = qjaxrob_circuit(n)
    p = jnp.asarray(params)
    key = jax.random.key(0)
    dm = jax.jit(lambda p: qjr.expval(c, qjr.Z(0), p, mixed=True, dtype=jnp.complex128))
    traj = jax.jit(lambda p, k: qjr.expval(c, qjr.Z(0), p, trajectories=TRAJECTORIES, key=k,
                                           dtype=jnp.complex128))
    one = jax.jit(jax.vmap(lambda k: qjr.expval(c, qjr.Z(0), p, trajectories=1, key=k,
                                                dtype=jnp.complex128)))
    stderr = float(np.std(np.asarray(one(jax.random.split(key, TRAJECTORIES))))) / np.sqrt(TRAJECTORIES)
    return (lambda: float(dm(p).block_until_ready()),
            lambda: float(traj(p, key).block_until_ready()), stderr)


def timed(fn, reps: int, budget_s: float):
    """(value, median seconds, calls) after one untimed warm-up call; stops early once
    ``budget_s`` is spent (at least one timed call)."""
    value = fn()
    times = harness.call_times(fn, min_reps=reps, max_reps=reps, budget_s=budget_s)
    return value, statistics.median(times), len(times)


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def run(sizes, reps: int, budget_s: float):
    rows = []
    for n in sizes:
        params = np.random.default_rng(n).uniform(0, 2 * np.pi, 2 * n * LAYERS)
        dm_fn, traj_fn, stderr = qjaxrob_fns(n, params)
        results = {
            "qjaxrob density": timed(dm_fn, reps, budget_s),
            f"qjaxrob trajectories (T={TRAJECTORIES})": timed(traj_fn, reps, budget_s),
            "PennyLane default.mixed": timed(pennylane_fn(n, params), reps, budget_s),
            "Qiskit Aer density_matrix": timed(qiskit_fn(n, params), reps, budget_s),
        }
        exact = results["qjaxrob density"][0]
        for name, (value, _, _) in results.items():
            ok = abs(value - exact) <= (5 * stderr if "trajectories" in name else 1e-8)
            if not ok:
                raise AssertionError(f"n={n}: {name} gives {value}, qjaxrob density {exact}")
        rows.append((n, exact, stderr, results))
        print(f"n={n}: <Z0>={exact:.10f} " + ", ".join(
            f"{k}: {fmt(t)} (x{c})" for k, (_, t, c) in results.items()), flush=True)
    return rows


def machine() -> str:
    import pennylane
    import qiskit
    import qiskit_aer

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}; "
            f"jax {jax.__version__} ({jax.default_backend()}), pennylane {pennylane.__version__}, "
            f"qiskit {qiskit.__version__}, qiskit-aer {qiskit_aer.__version__}")


def markdown(rows, command: str) -> str:
    names = list(rows[0][3])
    lines = ["| n | <Z0> | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for n, exact, stderr, results in rows:
        cells = [f"{fmt(t)} ({c})" for _, t, c in results.values()]
        lines.append(f"| {n} | {exact:.6f} (traj. s.e. {stderr:.3f}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nCommand: `{command}`  \nMachine: {machine()}\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="n = 6, 8 only; print, do not write")
    ap.add_argument("--reps", type=int, default=5, help="timed calls per cell (median)")
    ap.add_argument("--budget", type=float, default=60.0, help="max seconds of timed calls per cell")
    args = ap.parse_args(argv)
    harness.enable_x64()
    sizes = (6, 8) if args.quick else (6, 8, 10, 12)
    rows = run(sizes, args.reps, args.budget)
    table = markdown(rows, "python -m benchmarks.density " + " ".join(argv or sys.argv[1:]))
    print(table)
    if not args.quick:
        out = Path(__file__).with_name("density.md")
        head = out.read_text().split("<!-- results -->")[0] if out.exists() else ""
        out.write_text(head + "<!-- results -->\n" + table)


if __name__ == "__main__":
    main()
