"""QML-shaped circuits through the public API: RY angle encoding + hardware-efficient
ansatz (RY, RZ, CNOT ring), complex64, jitted; forward and gradient, batched over inputs
with an all-wire ``<Z_q>`` readout, and unbatched ``<Z_0>`` at 16-20 qubits. Medians of
warm calls with ``block_until_ready``; compile (first call) reported separately.

    python benchmarks/qml_shapes.py                          # the installed tree
    PYTHONPATH=/path/to/old/tree python benchmarks/qml_shapes.py  # another checkout

Rows are printed as JSON lines (the engine's readout and product-state changes of
2026-12-01 were measured with it, ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

import qjaxrob as qjr
from benchmarks import harness
from qjaxrob.qml import angle_encoding, hardware_efficient

BATCHED = [(4, 2, 256), (6, 4, 64), (8, 2, 256), (10, 3, 256)]
UNBATCHED = [(16, 2), (20, 2)]


def _median_ms(fn, *args):
    return 1e3 * harness.median_time(fn, *args, min_reps=11)


def _row(kind, n, layers, batch, fwd, grad, args):
    cf, cg = harness.timed_call(fwd, *args)[1], harness.timed_call(grad, *args)[1]
    return {"kind": kind, "n_qubits": n, "layers": layers, "batch": batch,
            "forward_ms": _median_ms(fwd, *args), "grad_ms": _median_ms(grad, *args),
            "forward_first_s": cf, "grad_first_s": cg}


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    for n, layers, batch in BATCHED:
        c = angle_encoding(n).circuit + hardware_efficient(n, layers)
        obs = [qjr.Z(w) for w in range(n)]
        theta = jnp.linspace(0.0, 1.0, c.n_params, dtype=jnp.float32)
        xs = jax.random.uniform(jax.random.key(0), (batch, n), jnp.float32)

        def values(t, xs, c=c, obs=obs):
            return jax.vmap(lambda x: qjr.expval(c, obs, t, x))(xs)

        fwd = jax.jit(values)
        grad = jax.jit(jax.value_and_grad(lambda t, xs: jnp.mean(values(t, xs) ** 2)))
        harness.print_row(_row("batched", n, layers, batch, fwd, grad, (theta, xs)))
    for n, layers in UNBATCHED:
        c = angle_encoding(n).circuit + hardware_efficient(n, layers)
        theta = jnp.linspace(0.0, 1.0, c.n_params, dtype=jnp.float32)
        x = jnp.linspace(0.0, 2.0, n, dtype=jnp.float32)

        def value(t, x, c=c):
            return qjr.expval(c, qjr.Z(0), t, x)

        fwd = jax.jit(value)
        grad = jax.jit(jax.grad(value, argnums=(0, 1)))
        harness.print_row(_row("unbatched", n, layers, 1, fwd, grad, (theta, x)))


if __name__ == "__main__":
    main()
