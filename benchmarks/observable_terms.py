"""Compile and run time of the first ``jax.grad(qjr.expval)`` against the number of Pauli
terms of the observable (issue 18, item 7).

    python -m benchmarks.observable_terms --terms 10,40,80,200 --diff backprop,adjoint

5 qubits, a 2-layer RY/RZ + CNOT-chain circuit (20 parameters), random Pauli words with
Gaussian coefficients. "first" is the first call of the jitted gradient (trace + compile +
one run); "run" the median of 5 further calls (block_until_ready).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from benchmarks import harness


def circuit(n: int, layers: int = 2) -> qjr.Circuit:
    c, k = qjr.Circuit(n), 0
    for _ in range(layers):
        for q in range(n):
            c = c.ry(q, qjr.param(k)).rz(q, qjr.param(k + 1))
            k += 2
        for q in range(n - 1):
            c = c.cnot(q, q + 1)
    return c


def observable(n: int, terms: int, seed: int = 0) -> qjr.PauliSum:
    rng = np.random.default_rng(seed)
    obs = 0.0 * qjr.I()
    while len(obs.terms) < terms:
        word = "".join(rng.choice(list("IXYZ"), n))
        if set(word) != {"I"}:
            obs = obs + float(rng.normal()) * qjr.pauli(word)
    return obs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qubits", type=int, default=5)
    ap.add_argument("--terms", default="10,40,80,200")
    ap.add_argument("--diff", default="backprop,adjoint")
    args = ap.parse_args()
    c = circuit(args.qubits)
    p = jnp.asarray(np.random.default_rng(1).normal(size=c.n_params), jnp.float32)
    for diff in args.diff.split(","):
        for terms in (int(t) for t in args.terms.split(",")):
            obs = observable(args.qubits, terms)
            grad = jax.jit(jax.grad(lambda q, o=obs, d=diff: qjr.expval(c, o, q, diff=d)))
            first = harness.timed_call(grad, p)[1]
            run = harness.median_time(grad, p, min_reps=5)
            print(f"{diff:8s} terms={terms:4d} first={first:7.2f} s "
                  f"run={run * 1e3:8.3f} ms", flush=True)


if __name__ == "__main__":
    main()
