"""The matrix cotangent of ``slice_combine_p`` (``kernels.dense._matrix_cotangent``): the
former single ``einsum`` against the current formulations, next to the forward kernel.

Sections (``--sections``, default all):

* ``kernel``: per grouped layout ``(B, n, wires)`` (k = 1, 2, 3; shared and per-example
  matrices; complex128 and complex64), the medians of one forward ``slice_combine_p.bind``,
  the einsum (``old``) and ``_matrix_cotangent`` (``new``), timed alternately; ratios to
  the forward. Both cotangents are checked against each other first.
* ``e2e``: the engine's batched gradient (``benchmarks.peers`` batched row: HEA n = 10,
  L = 4, B = 256, ``QJAXROB_DENSE=0``) and one backprop gradient of HEA n = 16, L = 4 with
  ``<Z0>``, compiled twice in this process (``_matrix_cotangent`` swapped for the einsum
  at trace time; the optimization barrier of ``_transpose_matrix`` is in both) and timed
  alternately.
* ``trees``: the two ``e2e`` workloads in fresh interpreters run alternately in this tree
  and in ``--base`` (default ``/work/wt-base``), ``--tree-rounds`` rounds; each run reports
  the median of repeated calls after compiling.

complex128 unless the row says otherwise; load average before and after each row. Run:
``python -m benchmarks.cotangent`` (about 5 min on 2 cores) or ``--sections kernel``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness

harness.enable_x64()

from qjaxrob.kernels import dense as kd

KERNEL_CASES = [  # (B, n, wires, shared, dtype)
    (256, 10, (2, 3), True, "c128"), (256, 10, (0, 1), True, "c128"),
    (256, 10, (8, 9), True, "c128"), (256, 10, (4, 5), True, "c128"),
    (1, 20, (5, 6), False, "c128"), (1, 20, (0, 1), False, "c128"),
    (1, 20, (18, 19), False, "c128"), (1, 20, (12, 13), False, "c128"),
    (1, 16, (5, 6), False, "c128"), (1, 16, (14, 15), False, "c128"),
    (1, 16, (0, 15), False, "c128"), (1, 16, (3, 9), False, "c128"),
    (1, 16, (5,), False, "c128"), (1, 16, (4, 5, 6), False, "c128"),
    (1, 16, (2, 7, 12), False, "c128"),
    (256, 8, (3, 4), False, "c128"), (256, 4, (1, 2), False, "c128"),
    (256, 10, (2, 3), True, "c64"), (1, 20, (5, 6), False, "c64"),
]
DTYPES = {"c128": jnp.complex128, "c64": jnp.complex64}


def einsum_cotangent(ct, x, k: int, shared: bool):
    """The former ``_matrix_cotangent``: one ``einsum`` over the grouped views."""
    groups, rows, cols = "abcd"[: k + 1], "efg"[:k], "hij"[:k]

    def view(bits):
        return "z" + "".join(g + b for g, b in zip(groups, bits)) + groups[k]

    out = ("" if shared else "z") + rows + cols
    t = jnp.einsum(f"{view(rows)},{view(cols)}->{out}", ct, x)
    return t.reshape((1 if shared else x.shape[0], 2**k, 2**k))


def alternate(fns: dict, args: dict, rounds: int, reps: int = 5) -> dict:
    """Median seconds of each fn on its args, timed alternately (``rounds`` x ``reps``)."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].extend(harness.call_times(fn, *args[name], min_reps=reps,
                                                  max_reps=reps))
    return {name: statistics.median(v) for name, v in times.items()}


def kernel(rounds: int):
    rng = np.random.default_rng(0)
    for batch, n, wires, shared, dt in KERNEL_CASES:
        load0 = harness.load_average()[0]
        k, shape = len(wires), (batch,) + kd.grouped_shape(n, wires)
        ct, x = (jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), DTYPES[dt])
                 for _ in range(2))
        m = jnp.asarray(rng.normal(size=(1 if shared else batch, 2**k, 2**k)), DTYPES[dt])
        fns = {"fwd": jax.jit(lambda x, m, k=k: kd.slice_combine_p.bind(x, m, k=k)),
               "old": jax.jit(lambda c, x, k=k, s=shared: einsum_cotangent(c, x, k, s)),
               "new": jax.jit(lambda c, x, k=k, s=shared: kd._matrix_cotangent(c, x, k, s))}
        args = {"fwd": (x, m), "old": (ct, x), "new": (ct, x)}
        a, b = np.asarray(fns["old"](ct, x)), np.asarray(fns["new"](ct, x))
        tol = 1e-4 if dt == "c64" else 1e-10
        assert np.abs(a - b).max() <= tol * np.abs(a).max(), (batch, n, wires)
        for fn, arg in zip(fns.values(), args.values()):
            jax.block_until_ready(fn(*arg))
        t = alternate(fns, args, rounds)
        harness.print_row({
            "case": f"B={batch} n={n} wires={wires} {'shared' if shared else 'per-example'} {dt}",
            "fwd_ms": 1e3 * t["fwd"], "old_ms": 1e3 * t["old"], "new_ms": 1e3 * t["new"],
            "old_per_fwd": t["old"] / t["fwd"], "new_per_fwd": t["new"] / t["fwd"],
            "new_per_old": t["new"] / t["old"],
            "load": f"{load0:.1f}-{harness.load_average()[0]:.1f}"})


# One source for both workloads, run in this process and in fresh interpreters of either
# tree (it uses only the public API and benchmarks.peers, present in both).
WORKLOAD_SOURCE = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from benchmarks import peers

    def batched_grad():
        n, layers, batch = 10, 4, 256
        p, xs = jnp.asarray(peers.angles(n, layers)), jnp.asarray(peers.inputs(n, batch))
        fwd = peers.qjr_forward(n, layers, encode=True)
        g = jax.jit(jax.grad(lambda p, xs: jnp.mean(jax.vmap(fwd, in_axes=(None, 0))(p, xs))))
        return g, (p, xs)

    def single_grad():
        n, layers = 16, 4
        g = jax.jit(jax.grad(peers.qjr_forward(n, layers, diff="backprop")))
        return g, (jnp.asarray(peers.angles(n, layers)),)

    WORKLOADS = {"batched grad n=10 L=4 B=256": batched_grad,
                 "backprop grad n=16 L=4": single_grad}
""")
exec(WORKLOAD_SOURCE)  # noqa: S102  (defines WORKLOADS here too)

WORKER = WORKLOAD_SOURCE + textwrap.dedent("""
    import json, statistics, sys
    from benchmarks import harness
    fn, args = WORKLOADS[sys.argv[1]]()
    out = fn(*args)
    t = harness.call_times(fn, *args, min_reps=int(sys.argv[2]), max_reps=int(sys.argv[2]))
    print(json.dumps({"ms": 1e3 * statistics.median(t),
                      "check": float(np.abs(np.asarray(out)).sum())}))
""")


def e2e(rounds: int):
    os.environ["QJAXROB_DENSE"] = "0"
    original = kd._matrix_cotangent
    for name, make in WORKLOADS.items():  # noqa: F821  (from exec)
        load0 = harness.load_average()[0]
        fns, args = {}, {}
        for label, impl in (("old", einsum_cotangent), ("new", original)):
            kd._matrix_cotangent = impl  # read by the transpose rule at trace time
            try:
                jax.clear_caches()
                fn, arg = make()
                fns[label] = jax.jit(fn).lower(*arg).compile()
                args[label] = arg
            finally:
                kd._matrix_cotangent = original
        a, b = (np.asarray(fns[k](*args[k])) for k in ("old", "new"))
        assert np.abs(a - b).max() < 1e-10, name
        t = alternate(fns, args, rounds, reps=3)
        harness.print_row({"workload": name, "old_ms": 1e3 * t["old"], "new_ms": 1e3 * t["new"],
                               "new_per_old": t["new"] / t["old"],
                               "load": f"{load0:.1f}-{harness.load_average()[0]:.1f}"})


def trees(base: str, rounds: int, reps: int):
    env = dict(os.environ, QJAXROB_DENSE="0", JAX_ENABLE_X64="1")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in WORKLOADS:  # noqa: F821
        load0 = harness.load_average()[0]
        times = {"this": [], "base": []}
        checks = set()
        for _ in range(rounds):
            for label, root in (("this", here), ("base", base)):
                out = harness.run_fresh(["-c", WORKER, name, reps], timeout=300, env=env,
                                        cwd=root)
                if out.get("ms") is None:
                    raise RuntimeError(f"{label} ({root}): {out}")
                times[label].append(out["ms"])
                checks.add(round(out["check"], 8))
        assert len(checks) == 1, (name, checks)
        t = {k: statistics.median(v) for k, v in times.items()}
        harness.print_row({"workload": name, "this_ms": t["this"], "base_ms": t["base"],
                               "this_per_base": t["this"] / t["base"], "runs": times,
                               "load": f"{load0:.1f}-{harness.load_average()[0]:.1f}"})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="kernel,e2e,trees",
                    help="comma-separated subset of kernel,e2e,trees")
    ap.add_argument("--rounds", type=int, default=5, help="alternation rounds in-process")
    ap.add_argument("--tree-rounds", type=int, default=3, help="fresh runs per tree")
    ap.add_argument("--tree-reps", type=int, default=10, help="timed calls per fresh run")
    ap.add_argument("--base", default="/work/wt-base", help="baseline checkout for trees")
    a = ap.parse_args(argv)
    print(f"# {harness.machine()}, jax {jax.__version__}", file=sys.stderr)
    sections = a.sections.split(",")
    if "kernel" in sections:
        kernel(a.rounds)
    if "e2e" in sections:
        e2e(a.rounds)
    if "trees" in sections:
        trees(a.base, a.tree_rounds, a.tree_reps)


if __name__ == "__main__":
    main()
