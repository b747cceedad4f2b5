"""The same PennyLane QNode on ``default.qubit`` and on ``qjaxrob.qubit``, side by side.

Workload (shared/anchors/PEERS.md): a hardware-efficient ansatz written in PennyLane,
L layers of RY(theta) and RZ(theta) on every qubit followed by a CNOT ring, observable
<Z0>, ``interface="jax"`` (backprop on both devices), float64/complex128. Timed under
``jax.jit``: the forward value and the full gradient (``jax.grad``). Times are medians
over repeated calls after one warm-up call (compile excluded); the first-call column
times trace + compile + run of a fresh jit. Both devices' values and gradients are
checked against each other before timing. The ratio is default.qubit / qjaxrob.qubit
(> 1: qjaxrob is faster).

Usage::

    python -m benchmarks.pennylane_device            # n = 8, 12; L = 4 (~2-3 min)
    python -m benchmarks.pennylane_device --quick    # n = 4, 8
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml

from benchmarks import harness

DEVICES = ("default.qubit", "qjaxrob.qubit")


def hea(n: int, layers: int):
    def qfunc(params):
        p = params.reshape(layers, 2, n)
        for layer in range(layers):
            for q in range(n):
                qml.RY(p[layer, 0, q], wires=q)
                qml.RZ(p[layer, 1, q], wires=q)
            for q in range(n):
                qml.CNOT(wires=[q, (q + 1) % n])
        return qml.expval(qml.Z(0))

    return qfunc


def run(n: int, layers: int) -> dict:
    params = jnp.asarray(np.random.default_rng(n).uniform(-np.pi, np.pi, 2 * n * layers))
    out, values = {}, {}
    for name in DEVICES:
        node = qml.QNode(hea(n, layers), qml.device(name, wires=n), interface="jax")
        out[name] = {}
        for what, fn in (("forward", jax.jit(node)), ("grad", jax.jit(jax.grad(node)))):
            values[name, what], first, _ = harness.timed_call(fn, params)  # fresh jit
            out[name][what] = (first, harness.median_time(fn, params, min_reps=5,
                                                          min_time=0.5, max_reps=50))
    for what in ("forward", "grad"):
        diff = float(jnp.max(jnp.abs(values[DEVICES[0], what] - values[DEVICES[1], what])))
        assert diff < 1e-9, f"devices disagree on the {what}: {diff}"
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    harness.enable_x64()
    sizes = (4, 8) if args.quick else (8, 12)
    print(f"HEA, L={args.layers}, <Z0>, jax.jit, complex128; medians (first call in brackets)\n")
    print("| n | what | default.qubit | qjaxrob.qubit | ratio default/qjaxrob |")
    print("| --- | --- | --- | --- | --- |")
    for n in sizes:
        res = run(n, args.layers)
        for what in ("forward", "grad"):
            (f0, m0), (f1, m1) = res[DEVICES[0]][what], res[DEVICES[1]][what]
            print(f"| {n} | {what} | {m0 * 1e3:.3f} ms ({f0:.2f} s) | {m1 * 1e3:.3f} ms "
                  f"({f1:.2f} s) | {m0 / m1:.2f} |", flush=True)


if __name__ == "__main__":
    main()
