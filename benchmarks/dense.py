"""The dense small-state path (``qjaxrob.sim.dense``) against the engine, side by side.

Every row compiles the same function twice, once per path (``QJAXROB_DENSE=1`` / ``0`` at
trace time, ``jax.clear_caches()`` between), then times the two compiled executables
**alternately** (``--rounds`` rounds, each a median of a few calls) and reports the medians
and the ratio dense / engine, with the load average before and after. complex128.

Sections (``--sections``, default all):

* ``costs``: the cost-model constants ``qjaxrob.sim.dense.COST_SINGLE``, ``COST`` and
  ``COST_FORWARD``, from ``<Z0>`` of the HEA (RY, RZ on every wire then a CNOT ring, L = 4,
  ``Circuit.repeat``) at n = 2..12 (pure) and 2..7 (density with no channel), per path: one
  unbatched forward (``COST_SINGLE``, seconds per call), batched gradients (``COST``,
  seconds per example): ``jax.vmap(jax.grad)`` over ``dense.COST_BATCH`` parameter vectors
  and (pure) the gradient of the mean over ``dense.COST_BATCH`` inputs sharing the
  parameters (an RY encoding layer first, ``jax.vmap`` inside ``jax.grad``), and the same
  two batches evaluated without a derivative (``COST_FORWARD``); non-negative least-squares
  fits (relative errors) of ``passes * (a + b * size)`` (engine) and ``layers * (c + g *
  size) + macs * (d or e) + other * (a + f * size)`` (dense; ``e`` when the parameters are
  shared), then
  the fitted model's pick per row. ``--fits`` restricts the run to some of the constants.
* ``inversion``: the 8-qubit inversion objective (``benchmarks/attacks.py``'s model: RY
  encoding, HEA L = 2, linear readout; 64 restarts vmapped): forward (the loss), the
  gradient w.r.t. the model, and the second-order "distance + its gradient w.r.t. x".
* ``density``: gradient of ``<Z0>`` of ``benchmarks/density.py``'s noisy circuit at
  n = 6, 8, 10 (dense path up to ``MAX_QUBITS_MIXED``), and PennyLane ``default.mixed``
  (``diff_method="backprop"``, ``jax.jit``) on the same circuit.
* ``products``: ``qjaxrob.lower.tables.small_product`` against plain ``dot`` products
  (``SMALL_PRODUCT = 0`` at trace time), on both paths: forward and gradient of one call,
  the gradient of the mean over ``dense.COST_BATCH`` inputs sharing the parameters, and
  ``jax.vmap(jax.grad)`` over as many parameter vectors (encoded HEA, L = 4); ``ratio`` is
  small products / dots.
* ``batched``: ``benchmarks/peers.py``'s batched gradient row (n = 10, L = 4, B = 256) and
  the batched forward of the same circuit and batch, each also
  under ``QJAXROB_DENSE=auto`` (the ``auto_ms`` column: the path the cost model picks for
  the batch).

Run: ``python -m benchmarks.dense`` (about 10 min on 2 cores) or ``--quick``.
"""

from __future__ import annotations

import argparse
import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness

harness.enable_x64()

import qjaxrob as qjr  # noqa: E402
from qjaxrob.sim import dense  # noqa: E402

DT = jnp.complex128


def compiled(make, args, mode):
    """``make()`` jitted and compiled for ``args`` with ``QJAXROB_DENSE=mode`` at trace time."""
    old = os.environ.get(dense.ENV)
    os.environ[dense.ENV] = mode
    jax.clear_caches()
    try:
        fn = jax.jit(make()).lower(*args).compile()
    finally:
        if old is None:
            os.environ.pop(dense.ENV)
        else:
            os.environ[dense.ENV] = old
    jax.block_until_ready(fn(*args))
    return fn


def side_by_side(fns: dict, args, rounds: int, reps: int = 3):
    """Median seconds of each compiled fn, timed alternately (``rounds`` x ``reps`` calls)."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].extend(harness.call_times(fn, *args, min_reps=reps, max_reps=reps))
    return {k: statistics.median(v) for k, v in times.items()}


def row(name, make, args, rounds, check=True, extra=None, show=True):
    load0 = harness.load_average()[0]
    fns = {"dense": compiled(make, args, "1"), "engine": compiled(make, args, "0")}
    if check:
        a, b = (np.asarray(jax.tree_util.tree_leaves(fns[k](*args))[0]) for k in fns)
        diff = float(np.max(np.abs(a - b)))
        assert diff < 1e-8, (name, diff)
    fns.update(extra or {})
    t = side_by_side(fns, args, rounds)
    out = dict(workload=name, **{f"{k}_ms": 1e3 * v for k, v in t.items()},
               ratio=t["dense"] / t["engine"],
               load=f"{load0:.1f}-{harness.load_average()[0]:.1f}")
    if show:
        harness.print_row(out)
    return out


def hea(n, layers=4, noise=False, encode=False):
    block = qjr.Circuit(n)
    for q in range(n):
        block = block.ry(q, qjr.param(q)).rz(q, qjr.param(n + q))
    for q in range(n):
        block = block.cnot(q, (q + 1) % n)
    c = qjr.Circuit.repeat(block, layers)
    if encode:
        enc = qjr.Circuit(n)
        for q in range(n):
            enc = enc.ry(q, qjr.inp(q))
        c = enc + c
    return c


REGIMES = {"forward B=1": "COST_SINGLE", "vmap grad": "COST", "grad shared": "COST",
           "vmap forward": "COST_FORWARD", "forward shared": "COST_FORWARD"}
"""The regimes of :func:`costs` and the constants each fits."""


def costs(qubits, mixed_qubits, rounds, fits=None):
    """Seconds per call of each path in the :data:`REGIMES` whose constants are in ``fits``
    (default all; ``dense.COST_BATCH`` examples when batched), then :func:`fit`."""
    fits = set(REGIMES.values()) if fits is None else set(fits)
    b = dense.COST_BATCH
    rows = []
    for mixed, ns in ((False, qubits), (True, mixed_qubits)):
        for n in ns:
            c = hea(n)
            rng = np.random.default_rng(n)
            p1 = jnp.asarray(rng.uniform(-2, 2, c.n_params))
            ps = jnp.asarray(rng.uniform(-2, 2, (b, c.n_params)))

            def f(q, c=c, mixed=mixed):
                return qjr.expval(c, qjr.Z(0), q, mixed=mixed, dtype=DT)

            cases = [("forward B=1", c, 1, False, lambda f=f: f, (p1,)),
                     ("vmap grad", c, b, False, lambda f=f: jax.vmap(jax.grad(f)), (ps,)),
                     ("vmap forward", c, b, False, lambda f=f: jax.vmap(f), (ps,))]
            if not mixed:
                ce = hea(n, encode=True)
                xs = jnp.asarray(rng.uniform(0, np.pi, (b, n)))

                def fx(q, x, ce=ce):
                    return qjr.expval(ce, qjr.Z(0), q, x, dtype=DT)

                def shared(fx=fx):
                    return jax.grad(lambda q, v: jnp.mean(jax.vmap(fx, (None, 0))(q, v)))

                cases.append(("grad shared", ce, b, True, shared, (p1, xs)))
                cases.append(("forward shared", ce, b, True,
                              lambda fx=fx: jax.vmap(fx, (None, 0)), (p1, xs)))
            for regime, circ, batch, is_shared, make, args in cases:
                if REGIMES[regime] not in fits:
                    continue
                derivative = "grad" in regime
                r = row(f"{regime} {'density' if mixed else 'pure'} n={n}", make, args, rounds)
                engine_s, dense_s = dense.costs(circ, mixed, batch, is_shared, derivative)
                r.update(n=n, mixed=mixed, regime=regime, batch=batch, shared=is_shared,
                         derivative=derivative,
                         model_engine_ms=1e3 * engine_s, model_dense_ms=1e3 * dense_s,
                         counts=dense.counts(circ, mixed))
                rows.append(r)
    fit(rows)
    return rows


def fit(rows):
    """Non-negative least-squares constants of ``COST_SINGLE``, ``COST`` and ``COST_FORWARD``
    (those the rows measure) from the
    ``costs`` rows (per call and per example; each equation divided by its measured time:
    relative errors), printed as the dicts to paste into ``qjaxrob/sim/dense.py``, then
    the fitted model's pick per row."""
    from scipy.optimize import nnls

    def solve(design, times):
        a = np.array(design, float) / np.array(times)[:, None]
        return nnls(a, np.ones(len(times)))[0]

    fitted = {}
    for name in dict.fromkeys(REGIMES[r["regime"]] for r in rows):
        sel = [r for r in rows if REGIMES[r["regime"]] == name]
        per = [r["batch"] for r in sel]
        ea, eb = solve([[r["counts"]["passes"] + r["counts"]["channels"],
                         (r["counts"]["passes"] + r["counts"]["channels"])
                         * r["counts"]["size"]] for r in sel],
                       [r["engine_ms"] / 1e3 / b for r, b in zip(sel, per)])
        # the dense path's other passes share the engine's fixed cost per pass
        den, times = [], []
        for r, b in zip(sel, per):
            k = r["counts"]
            den.append([k["formed"], 0 if r["shared"] else k["macs"],
                        k["macs"] if r["shared"] else 0, k["other"] * k["size"],
                        k["formed"] * k["size"]])
            times.append(max(r["dense_ms"] / 1e3 / b - k["other"] * ea, 1e-8))
        da, db, dg, dp, dl = solve(den, times)
        fitted[name] = dict(engine_pass=ea, engine_amp=eb, dense_layer=da,
                            dense_layer_amp=dl, dense_mac=db, dense_amp=dp)
        if name != "COST_SINGLE":
            fitted[name]["dense_gemm"] = dg
        print(f"fit: {name} = {{" + ", ".join(f"'{k}': {v:.2e}"
                                            for k, v in fitted[name].items()) + "}")
    old = {k: dict(getattr(dense, k)) for k in fitted}
    for k, v in fitted.items():
        getattr(dense, k).update(v)
    try:
        for r in rows:
            e, d = dense.costs(hea(r["n"], encode=r["shared"]), r["mixed"], r["batch"],
                               r["shared"], r["derivative"])
            print(f"  {r['workload']}: measured dense/engine {r['ratio']:.2f}, "
                  f"fit {d / e:.2f}, fit picks {'dense' if d < e else 'engine'}")
    finally:
        for k, v in old.items():
            getattr(dense, k).update(v)


def products(qubits, rounds):
    """Rows of ``qjaxrob.lower.tables.small_product`` against ``dot`` products (module docs)."""
    from qjaxrob.lower import tables

    limit, b, rows = tables.SMALL_PRODUCT, dense.COST_BATCH, []
    for n in qubits:
        c = hea(n, encode=True)
        rng = np.random.default_rng(n)
        p1 = jnp.asarray(rng.uniform(-2, 2, c.n_params))
        ps = jnp.asarray(rng.uniform(-2, 2, (b, c.n_params)))
        xs = jnp.asarray(rng.uniform(0, np.pi, (b, n)))

        def f(q, x, c=c):
            return qjr.expval(c, qjr.Z(0), q, x, dtype=DT)

        cases = [("fwd B=1", lambda f=f: f, (p1, xs[0])),
                 ("grad B=1", lambda f=f: jax.grad(f), (p1, xs[0])),
                 ("grad shared", lambda f=f: jax.grad(
                     lambda q, v: jnp.mean(jax.vmap(f, (None, 0))(q, v))), (p1, xs)),
                 ("vmap grad", lambda f=f: jax.vmap(jax.grad(f)), (ps, xs))]
        for mode, path in (("1", "dense"), ("0", "engine")):
            if mode == "1" and n > dense.MAX_QUBITS:
                continue
            for name, make, args in cases:
                fns = {}
                try:
                    for key, value in (("dots", 0), ("small", limit)):
                        tables.SMALL_PRODUCT = value
                        fns[key] = compiled(make, args, mode)
                finally:
                    tables.SMALL_PRODUCT = limit
                a, s = (jax.tree_util.tree_leaves(fns[k](*args))[0] for k in fns)
                assert float(jnp.max(jnp.abs(a - s))) < 1e-9, (n, path, name)
                t = side_by_side(fns, args, rounds)
                r = dict(workload=f"products {path} {name} n={n}", dots_ms=1e3 * t["dots"],
                         small_ms=1e3 * t["small"], ratio=t["small"] / t["dots"])
                harness.print_row(r)
                rows.append(r)
    return rows


def inversion(n, restarts, rounds):
    import equinox as eqx

    from qjaxrob.attacks import inversion as inv
    from qjaxrob.attacks.inversion.objective import flat, objective
    from qjaxrob.experiments.inversion_scaling import study_model
    from qjaxrob.qml.train import cross_entropy

    model = study_model(jax.random.key(n), "angle", n, 2, 0, DT)
    x = jax.random.uniform(jax.random.key(1), (n,), jnp.float64, 0, 2 * np.pi)
    grads = inv.shared_gradient(model, x[None], jnp.array([1]))
    target = inv.check_grads(model, grads)
    label = jnp.array([int(inv.infer_label(model, grads))], jnp.int32)
    x0s = jax.random.uniform(jax.random.key(2), (restarts, 1, n), jnp.float64, 0, 2 * np.pi)
    fl = objective(cross_entropy, model, target, "l2")
    rows = [
        row(f"inversion n={n} forward x{restarts}", lambda: jax.vmap(
            lambda x: cross_entropy(model, x, label)), (x0s,), rounds),
        row(f"inversion n={n} gradient x{restarts}", lambda: jax.vmap(
            lambda x: flat(eqx.filter_grad(cross_entropy)(model, x, label))), (x0s,), rounds),
        row(f"inversion n={n} distance+grad x{restarts}", lambda: jax.vmap(
            jax.value_and_grad(lambda x: fl(x, label))), (x0s,), rounds),
    ]
    return rows


def density_gradient(qubits, rounds):
    from benchmarks.density import qjaxrob_circuit

    rows = []
    for n in qubits:
        c = qjaxrob_circuit(n)
        p = jnp.asarray(np.random.default_rng(n).uniform(-2, 2, c.n_params))

        def make(c=c):
            return jax.grad(lambda q: qjr.expval(c, qjr.Z(0), q, mixed=True, dtype=DT))

        extra = {"default.mixed": pennylane_mixed_grad(n, p)}
        if n > dense.MAX_QUBITS_MIXED:
            fns = {"engine": compiled(make, (p,), "0"), **extra}
            t = side_by_side(fns, (p,), rounds)
            r = dict(workload=f"density grad n={n}", dense_ms=None,
                     **{f"{k}_ms": 1e3 * v for k, v in t.items()}, ratio=None)
        else:
            r = row(f"density grad n={n}", make, (p,), rounds, extra=extra, show=False)
        r["vs_default_mixed"] = (min(v for k, v in r.items() if k in ("dense_ms", "engine_ms")
                                     and v is not None) / r["default.mixed_ms"])
        harness.print_row(r)
        rows.append(r)
    return rows


def pennylane_mixed_grad(n, p):
    """Jitted ``jax.grad`` of ``<Z0>`` of the same circuit on ``default.mixed`` (backprop)."""
    import pennylane as qml

    from benchmarks.density import pennylane_ops

    dev = qml.device("default.mixed", wires=n)

    @qml.qnode(dev, interface="jax", diff_method="backprop")
    def circuit(p):
        pennylane_ops(n, p)
        return qml.expval(qml.PauliZ(0))

    g = jax.jit(jax.grad(lambda p: jnp.real(circuit(p))))
    jax.block_until_ready(g(p))
    return g


def batched(n, layers, batch, rounds):
    from benchmarks.peers import angles, inputs, qjr_forward

    p, xs = jnp.asarray(angles(n, layers)), jnp.asarray(inputs(n, batch))

    def make():
        fwd = qjr_forward(n, layers, encode=True)
        return jax.grad(lambda p, xs: jnp.mean(jax.vmap(fwd, in_axes=(None, 0))(p, xs)))

    def make_forward():
        return jax.vmap(qjr_forward(n, layers, encode=True), in_axes=(None, 0))

    args = (p, xs)
    return [row(f"batched grad n={n} L={layers} B={batch}", make, args, rounds,
                extra={"auto": compiled(make, args, "auto")}),
            row(f"batched forward n={n} L={layers} B={batch}", make_forward, args, rounds,
                extra={"auto": compiled(make_forward, args, "auto")})]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="*",
                    default=["costs", "products", "inversion", "density", "batched"])
    ap.add_argument("--rounds", type=int, default=None, help="default 5 (2 with --quick)")
    ap.add_argument("--fits", nargs="*", default=None, choices=sorted(set(REGIMES.values())),
                    help="costs: measure and fit only these constants (default all)")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes (a smoke run of every section, about 2 min)")
    a = ap.parse_args(argv)
    a.rounds = a.rounds or (2 if a.quick else 5)
    print(harness.machine(), "load", harness.load_average())
    quick = a.quick
    if "costs" in a.sections:
        costs((2, 4, 6) if quick else (2, 4, 6, 8, 10, 12),
              (2, 4) if quick else (2, 3, 4, 5, 6, 7), a.rounds, a.fits)
    if "products" in a.sections:
        products((4, 6) if quick else (4, 6, 8, 10, 12), a.rounds)
    if "inversion" in a.sections:
        inversion(4 if quick else 8, 64, a.rounds)
    if "density" in a.sections:
        density_gradient((4,) if quick else (6, 8, 10), a.rounds)
    if "batched" in a.sections:
        batched(6 if quick else 10, 4, 32 if quick else 256, a.rounds)
    print("load", harness.load_average())


if __name__ == "__main__":
    main()
