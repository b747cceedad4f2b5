"""Finite-shot expval: cost of a sweep over shot counts and of a parameter-shift gradient
(issue 12, items 1-2).

    python -m benchmarks.shots --qubits 4 --shots 100,1000,10000,100000

A hardware-efficient circuit (RY/RZ layers + CNOT chain, 2 layers, complex64), observable
``Z(0) + 0.5 X(1) Z(2)``. "first" is the first call (trace + compile + run); later rows are
medians of 5 calls (block_until_ready) with new shot counts or keys: ``shots`` is data, so
a new value does not recompile. The gradient rows time ``jax.grad`` of the shot estimate
(parameter shift: 2 shifted circuits per angle) against the exact backprop gradient.
"""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp

import qjaxrob as qjr
from benchmarks import harness
from benchmarks.observable_terms import circuit


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qubits", type=int, default=4)
    ap.add_argument("--shots", default="100,1000,10000,100000")
    a = ap.parse_args(argv)
    c = circuit(a.qubits)
    obs = qjr.Z(0) + 0.5 * qjr.X(1) @ qjr.Z(2)
    p = jnp.linspace(0.1, 1.0, c.n_params, dtype=jnp.float32)
    shots = [int(s) for s in a.shots.split(",")]
    key = jax.random.key(0)

    def value(n, k):
        return qjr.expval(c, obs, p, shots=n, key=k)

    def grad(n, k):
        return jax.grad(lambda q: qjr.expval(c, obs, q, shots=n, key=k))(p)

    exact = jax.jit(jax.grad(lambda q: qjr.expval(c, obs, q)))
    print(f"{a.qubits} qubits, {c.n_params} parameters, {2 * c.n_params} shifted circuits")
    for name, f in (("value", value), ("grad (parameter shift)", grad)):
        print(f"{name}: first call {harness.timed_call(f, shots[0], key)[1]:.2f} s")
        for n in shots:
            runs = [harness.timed_call(f, n, jax.random.fold_in(key, i))[1] for i in range(5)]
            print(f"  shots={n:>7}: median {1e3 * statistics.median(runs):.2f} ms")
    print(f"exact backprop grad: first call {harness.timed_call(exact, p)[1]:.2f} s, "
          f"median {1e3 * harness.median_time(exact, p, min_reps=5):.2f} ms")


if __name__ == "__main__":
    main()
