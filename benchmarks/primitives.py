"""Qiskit's V2 primitives: time per PUB of qjaxrob's ``Estimator``/``Sampler``
(``qjaxrob.interop.primitives``) against Aer's ``EstimatorV2``/``SamplerV2`` and Qiskit's
``StatevectorEstimator``/``StatevectorSampler``, on the same PUBs.

Workload: Qiskit's ``efficient_su2(n, reps)`` (RY/RZ layers and CX entanglers) at a few
widths ``n``; ``B`` random parameter bindings (one PUB of shape ``(B,)`` per width).

* Estimator PUB: three observables (``Z`` on qubit 0, the ``ZZ...Z`` string, a sum of
  ``X`` on every qubit) as a ``(3, 1)`` array against the ``(B,)`` bindings: evs of shape
  ``(3, B)``, precision 0 (exact). Every implementation's values are checked against
  ``StatevectorEstimator``'s before timing.
* Sampler PUB: the circuit with ``measure_all``, the ``(B,)`` bindings, ``--shots`` shots.
  Checked: every implementation returns ``(B,)`` bit arrays of ``--shots`` shots and ``n``
  bits whose mean of bit 0 lies within 6 binomial standard deviations of the exact
  probability (from ``Statevector``).

Each cell: ``run([pub]).result()`` timed, the first call (for qjaxrob: conversion, trace,
compile and run) then the median of warm calls (``harness.median_time``). Aer runs with its
default options (it may use several threads, as XLA does). float64/complex128 throughout
(``harness.enable_x64``) unless ``--float32``.

Usage::

    python -m benchmarks.primitives --quick           # n = 2, 4; B = 8; 256 shots
    python -m benchmarks.primitives                   # n = 4, 8, 12; B = 32; 1024 shots
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks import harness


def _observables(n: int):
    from qiskit.quantum_info import SparsePauliOp
    return [[SparsePauliOp("I" * (n - 1) + "Z")], [SparsePauliOp("Z" * n)],
            [SparsePauliOp.from_sparse_list([("X", [q], 1.0) for q in range(n)], n)]]


def implementations(x64: bool) -> dict:
    """``{name: (estimator, sampler)}`` for the three implementations."""
    from qiskit.primitives import StatevectorEstimator, StatevectorSampler
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator
    from qiskit_aer.primitives import SamplerV2 as AerSampler

    from qjaxrob.interop.primitives import Estimator, Sampler
    dtype = np.complex128 if x64 else np.complex64
    return {
        "qjaxrob": (Estimator(dtype=dtype), Sampler(seed=1, dtype=dtype)),
        "aer": (AerEstimator(), AerSampler(seed=1)),
        "statevector": (StatevectorEstimator(), StatevectorSampler(seed=1)),
    }


def pubs(n: int, reps: int, batch: int, rng):
    """``(estimator_pub, sampler_pub, values)`` for width ``n``."""
    from qiskit.circuit.library import efficient_su2
    qc = efficient_su2(n, reps=reps)
    values = rng.uniform(-np.pi, np.pi, (batch, qc.num_parameters))
    measured = qc.copy()
    measured.measure_all()
    return (qc, _observables(n), values), (measured, values), values


def _check_estimator(evs, reference, tol: float, name: str):
    err = float(np.max(np.abs(np.asarray(evs) - reference)))
    assert err < tol, f"{name} estimator differs from StatevectorEstimator by {err}"


def _check_sampler(result, circuit, values, shots: int, name: str):
    from qiskit.quantum_info import Statevector
    bits = result.data.meas
    assert (bits.shape, bits.num_shots, bits.num_bits) == (values.shape[:1], shots,
                                                           circuit.num_qubits), name
    for row in range(values.shape[0]):
        bound = circuit.assign_parameters(values[row])
        bound.remove_final_measurements()
        p1 = float(Statevector(bound).probabilities([0])[1])
        mean = float(np.mean(bits[row].to_bool_array(order="little")[:, 0]))
        sigma = np.sqrt(max(p1 * (1 - p1), 1e-12) / shots)
        assert abs(mean - p1) <= 6 * sigma + 1e-9, (name, row, mean, p1)


def run(n: int, reps: int, batch: int, shots: int, x64: bool, budget_s: float) -> list[dict]:
    rng = np.random.default_rng(n)
    est_pub, samp_pub, values = pubs(n, reps, batch, rng)
    impls = implementations(x64)
    reference = impls["statevector"][0].run([est_pub]).result()[0].data.evs
    tol = 1e-9 if x64 else 1e-4
    rows = []
    for name, (estimator, sampler) in impls.items():
        for what, prim, pub in (("estimator", estimator, est_pub),
                                ("sampler", sampler, samp_pub)):
            def call(prim=prim, pub=pub, what=what):
                if what == "sampler":
                    return prim.run([pub], shots=shots).result()[0]
                return prim.run([pub]).result()[0]

            result, first, _ = harness.timed_call(call)
            if what == "estimator":
                _check_estimator(result.data.evs, reference, tol, name)
            else:
                _check_sampler(result, samp_pub[0], values, shots, name)
            warm = harness.median_time(call, min_reps=3, min_time=0.5, max_reps=30,
                                       budget_s=budget_s)
            rows.append({"n": n, "batch": batch, "what": what, "impl": name,
                         "first_s": first, "median_s": warm,
                         "shots": shots if what == "sampler" else None})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2, 4; B = 8; 256 shots")
    parser.add_argument("--widths", type=int, nargs="+")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--shots", type=int)
    parser.add_argument("--float32", action="store_true", help="complex64 for qjaxrob")
    parser.add_argument("--budget", type=float, default=5.0, help="seconds per warm median")
    args = parser.parse_args()
    x64 = not args.float32
    if x64:
        harness.enable_x64()
    widths = args.widths or ((2, 4) if args.quick else (4, 8, 12))
    batch = args.batch or (8 if args.quick else 32)
    shots = args.shots or (256 if args.quick else 1024)
    load = harness.load_average()
    print(f"efficient_su2(n, reps={args.reps}), {batch} bindings per PUB, "
          f"{'complex128' if x64 else 'complex64'} (qjaxrob), sampler {shots} shots; "
          f"{harness.machine()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("time per PUB: warm median (first call in brackets)\n")
    print("| n | primitive | qjaxrob | Aer | Qiskit Statevector | Aer / qjaxrob |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in widths:
        rows = run(n, args.reps, batch, shots, x64, args.budget)
        for what in ("estimator", "sampler"):
            cell = {r["impl"]: r for r in rows if r["what"] == what}
            text = [f"{cell[k]['median_s'] * 1e3:.2f} ms ({cell[k]['first_s']:.2f} s)"
                    for k in ("qjaxrob", "aer", "statevector")]
            ratio = cell["aer"]["median_s"] / cell["qjaxrob"]["median_s"]
            print(f"| {n} | {what} | {' | '.join(text)} | {ratio:.2f} |", flush=True)
    load = harness.load_average()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
