"""The ``qjaxrob`` command line.

``qjaxrob simulate --qubits N --layers L [--batch B] [--grad]`` runs a hardware-efficient
ansatz (L layers of RY+RZ on every qubit, then a CNOT ring; ``<Z0>``), optionally on a
batch of B angle-encoded inputs and with the gradient, and reports the value and how long
the first call (trace + compile + run) and later calls (median) took.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _build_simulate(sub):
    p = sub.add_parser("simulate", help="run a hardware-efficient ansatz and time it")
    p.add_argument("--qubits", type=int, default=8, help="number of qubits (default 8)")
    p.add_argument("--layers", type=int, default=4, help="ansatz layers (default 4)")
    p.add_argument("--batch", type=int, default=0,
                   help="batch of random inputs, angle-encoded with RY (default: none)")
    p.add_argument("--grad", action="store_true", help="also compute the gradient")
    p.add_argument("--diff", choices=["backprop", "adjoint"], default="backprop")
    p.add_argument("--dtype", choices=["complex64", "complex128"], default="complex64")
    p.add_argument("--repeats", type=int, default=5, help="timed calls after the first")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_simulate)


def _simulate(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    if args.dtype == "complex128":
        jax.config.update("jax_enable_x64", True)
    import qjaxrob as qjr

    n, dtype = args.qubits, getattr(jnp, args.dtype)
    circuit = qjr.qml.hardware_efficient(n, args.layers)
    if args.batch:
        enc = qjr.Circuit(n)
        for q in range(n):
            enc = enc.ry(q, qjr.inp(q))
        circuit = enc + circuit
    obs = qjr.Z(0)

    def value(p, x):
        return qjr.expval(circuit, obs, p, x, dtype=dtype, diff=args.diff)

    if args.batch:
        def loss(p, xs):
            return jnp.mean(jax.vmap(value, in_axes=(None, 0))(p, xs))
    else:
        loss = value
    fn = jax.jit(jax.value_and_grad(loss) if args.grad else loss)

    key_p, key_x = jax.random.split(jax.random.key(args.seed))
    real = jnp.float64 if args.dtype == "complex128" else jnp.float32
    params = jax.random.uniform(key_p, (circuit.n_params,), real, -np.pi, np.pi)
    xs = (jax.random.uniform(key_x, (args.batch, n), real, -np.pi, np.pi) if args.batch
          else jnp.zeros((0,), real))

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(params, xs))
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(params, xs))
        times.append(time.perf_counter() - t0)
    val, grad = out if args.grad else (out, None)

    what = f"mean <Z0> over {args.batch} inputs" if args.batch else "<Z0>"
    print(f"qjaxrob simulate: {n} qubits, {args.layers} layers, {circuit.n_params} params, "
          f"{args.dtype}, backend {jax.default_backend()}")
    print(f"  {what} = {float(val):.10f}")
    if grad is not None:
        print(f"  gradient ({args.diff}): {grad.shape[0]} entries, "
              f"norm {float(jnp.linalg.norm(grad)):.6g}")
    print(f"  first call (trace + compile + run): {first * 1e3:.1f} ms")
    print(f"  run (median of {args.repeats}): {statistics.median(times) * 1e3:.2f} ms")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="qjaxrob", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _build_simulate(sub)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
