"""First call of circuit cutting: ``partition`` + ``cutting.expval`` in a fresh process.

Issue 19: a user who cuts a circuit once waits for the first call (trace + compile + run),
not the steady state. Cases (``shared/anchors/CUTTING.md`` section 7, as in
``benchmarks/cutting.py``):

* ``gate16``: 16 qubits in halves {0..7}, {8..15}, RY layer, CZ chains inside the halves,
  2 CZ gate cuts (7,8) and (0,15), RY layer;
* ``wire_gate19``: 19 logical qubits, a wire cut on qubit 9 between {0..9} and {9..18} (10 +
  10 qubits) and a CZ(4,14) gate cut;
* growth: ``gates{k}w{w}``: two fragments of ``w`` qubits, ``k`` CZ gate cuts between them
  (first call vs the number of cuts, 1-4, and the fragment width, 4-12).

Observable: ``Z0 Z15 + 0.5 X3 X12 - 0.3 Y7 Z8`` (scaled onto the growth cases' wires),
complex128. Modes: ``exact``, ``sampled`` (``shots=10000``) and ``grad`` (``jax.grad`` of the
exact value; error against the uncut gradient). ``*_trainable`` cases read every RY angle
from ``params`` (a cut QML model) instead of constants. Each measurement is its own
process: imports and JAX backend start-up are done first, then ``partition`` + the first
``expval`` are timed together (``block_until_ready``); the steady time is the median of 7
later calls of ``partition`` + ``expval``. The persistent compilation cache is off unless
``--cache DIR`` is given (then the measurement is run twice: cold and warm cache).

Peer numbers (qiskit-addon-cutting 0.10.0 + Aer 0.18.2 on the same 2-core machine, from
CUTTING.md section 7; the peer has no compile step, so its first call is its steady time)
are quoted unless ``qiskit_addon_cutting`` and ``qiskit_aer`` are installed; then the peer
is run in the same session, each cell in its own fresh process like qjaxrob's (imports
first, then its first call and the median of 3 later calls of cut + generate + run +
reconstruct, ``benchmarks.cutting.qiskit_pipeline``; exact: ``ExactSampler``, sampled:
Aer ``SamplerV2`` with 10000 shots per subexperiment).

Usage::

    python -m benchmarks.cutting_first_call                 # both cases, exact + sampled
    python -m benchmarks.cutting_first_call --growth        # also cuts 1-4, widths 4-12
    python -m benchmarks.cutting_first_call --one gate16 exact
    python -m benchmarks.cutting_first_call --baseline /tmp/base  # paired before/now rows
    python -m benchmarks.cutting_first_call --trainable --modes exact grad  # trainable RYs
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path

if __package__:
    from benchmarks import harness
else:  # run by path (run_measurement, e.g. against a --baseline tree): the harness beside it
    import harness

PEER_EXACT = {"gate16": 0.565, "wire_gate19": 1.182}
PEER_SAMPLED = {"gate16": 27.021, "wire_gate19": 70.202}  # 10k shots per subexperiment
SHOTS = 10000


def build(case: str):
    """``(circuit with cut marks, observable)`` of a named case."""
    import numpy as np

    import qjaxrob as qjr

    thetas = np.random.default_rng(0).uniform(-np.pi, np.pi, 64)
    trainable = case.endswith("_trainable")
    case = case.removesuffix("_trainable")
    if trainable:  # every RY angle a parameter (params = thetas), as in a cut QML model
        thetas = [qjr.param(i) for i in range(64)]
    if case in ("gate16", "wire_gate19"):
        n = 16 if case == "gate16" else 19
        blocks = ([range(8), range(8, 16)] if case == "gate16"
                  else [range(10), range(10, 19)])
        words = [(0, "Z", 15, "Z"), (3, "X", 12, "X"), (7, "Y", 8, "Z")]
    else:
        k, w = (int(v) for v in case[len("gates"):].split("w"))
        n = 2 * w
        blocks = [range(w), range(w, n)]
        words = [(0, "Z", n - 1, "Z"), (1, "X", n - 2, "X"), (w - 1, "Y", w, "Z")]
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.ry(q, thetas[q % 64] if trainable else float(thetas[q % 64]))
    for blk in blocks:
        for q in list(blk)[:-1]:
            c = c.cz(q, q + 1)
    if case == "gate16":
        c = c.cz(7, 8, cut=True).cz(0, 15, cut=True)
    elif case == "wire_gate19":
        c = c.cut(9).cz(9, 10).cz(4, 14, cut=True)
    else:
        for j in range(k):
            c = c.cz(w - 1 - j, w + j, cut=True)
    for q in range(n):
        c = c.ry(q, thetas[(n + q) % 64] if trainable else float(thetas[(n + q) % 64]))
    obs = 0 * qjr.I(0)
    for coeff, (a, la, b, lb) in zip((1.0, 0.5, -0.3), words):
        obs = obs + coeff * qjr.pauli(la + lb, wires=(a, b))
    return c, obs


def measure_one(case: str, mode: str):
    import jax

    harness.enable_x64()
    import jax.numpy as jnp
    import numpy as np

    import qjaxrob as qjr
    from qjaxrob import cutting

    c, obs = build(case)
    params = jnp.asarray(np.random.default_rng(0).uniform(-np.pi, np.pi, c.n_params))
    jax.block_until_ready(jnp.ones(3) + 1)  # backend start-up, not timed
    keys = iter(jax.random.split(jax.random.key(0), 16))

    def call():
        cc = cutting.partition(c)
        if mode == "exact":
            return jax.block_until_ready(cutting.expval(cc, obs, params, dtype=jnp.complex128))
        if mode == "grad":
            return jax.block_until_ready(jax.grad(
                lambda p: cutting.expval(cc, obs, p, dtype=jnp.complex128))(params))
        return jax.block_until_ready(cutting.expval(cc, obs, params, dtype=jnp.complex128,
                                                    shots=SHOTS, key=next(keys)))

    value, first, first_cpu = harness.timed_call(call)
    steady = harness.median_time(call, min_reps=7)
    if mode == "grad":
        truth = jax.grad(lambda p: qjr.expval(c, obs, p, dtype=jnp.complex128))(params)
    else:
        truth = qjr.expval(c, obs, params, dtype=jnp.complex128)
    cc = cutting.partition(c)
    return {"first_s": first, "first_cpu_s": first_cpu, "steady_s": steady,
            "error": float(np.max(np.abs(np.asarray(value) - np.asarray(truth)), initial=0.0)),
            "fragments": [f.n_qubits for f in cc.fragments], "cuts": len(cc.cuts)}


def measure_peer(case: str, mode: str):
    """qiskit-addon-cutting + Aer on ``case`` (``gate16``/``wire_gate19``): first call and
    median of 3 later calls of the whole pipeline, wall seconds."""
    import numpy as np
    from qiskit_aer.primitives import SamplerV2
    from qiskit_addon_cutting.utils.simulation import ExactSampler

    from benchmarks import cutting as peer

    _, qc = peer.build(case, np.random.default_rng(0).uniform(-np.pi, np.pi, 64))
    _, paulis = peer.observables(qc.num_qubits)

    def call():
        if mode == "exact":
            return peer.qiskit_pipeline(qc, paulis, ExactSampler(), None)
        return peer.qiskit_pipeline(qc, paulis, SamplerV2(), SHOTS)

    first = harness.timed_call(call)[1]
    return {"first_s": first, "steady_s": harness.median_time(call, min_reps=3)}


def peer_installed() -> bool:
    return all(importlib.util.find_spec(m) for m in ("qiskit_addon_cutting", "qiskit_aer"))


def run_peer(case, mode, timeout):
    """``measure_peer`` in a fresh process; ``None`` if it fails or times out."""
    r = harness.run_fresh(["-m", "benchmarks.cutting_first_call", "--peer-one", case, mode],
                          timeout=timeout)
    return None if r.get("first_s") is None else r


def run_measurement(case, mode, timeout, cache=None, tree=None):
    """One fresh process; ``tree``: run the code of another checkout (its ``qjaxrob`` and
    first on ``PYTHONPATH``; the measuring code is this file in both cases)."""
    env = dict(os.environ)
    if cache:
        env["JAX_COMPILATION_CACHE_DIR"] = cache
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    else:
        env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
        env["QJAXROB_CACHE_DIR"] = "off"
    root = Path(tree).resolve() if tree else harness.ROOT
    if tree:
        env["PYTHONPATH"] = str(root)
    return harness.run_fresh([Path(__file__).resolve(), "--one", case, mode], timeout=timeout,
                             env=env, cwd=root)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", nargs=2, metavar=("CASE", "MODE"))
    ap.add_argument("--peer-one", nargs=2, metavar=("CASE", "MODE"),
                    help="the peer (qiskit-addon-cutting + Aer) on one case, JSON")
    ap.add_argument("--growth", action="store_true", help="also cuts 1-4 and widths 4-12")
    ap.add_argument("--modes", nargs="+", default=["exact", "sampled"],
                    help="exact, sampled (shots=10000) and/or grad (jax.grad of exact)")
    ap.add_argument("--trainable", action="store_true",
                    help="also the cases with every RY angle a parameter (*_trainable)")
    ap.add_argument("--cache", help="persistent compilation cache folder (cold + warm runs)")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--baseline", metavar="TREE",
                    help="checkout of an earlier commit (e.g. `git archive C | tar -x -C TREE`, "
                         "with TREE/qjaxrob/kernels linked to TREE/kernels): each cell is also "
                         "measured there, alternating before/now")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(*args.one)))
        return
    if args.peer_one:
        print(json.dumps(measure_peer(*args.peer_one)))
        return
    live_peer = peer_installed()
    print(f"load average {harness.load_average()}\n")
    print("| case | mode | code | fragments | first call s (CPU s) | steady s | error | load | "
          + ("peer first / steady s (this run) |" if live_peer else "peer s (quoted) |"))
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    cases = ["gate16", "wire_gate19"]
    if args.trainable:
        cases += ["gate16_trainable", "wire_gate19_trainable"]
    if args.growth:
        cases += [f"gates{k}w6" for k in (1, 2, 3, 4)] + [f"gates2w{w}" for w in (4, 8, 10, 12)]
    trees = [("before", args.baseline), ("now", None)] if args.baseline else [("now", None)]
    for case in cases:
        modes = ["exact"] if case.startswith("gates") else [
            m for m in args.modes if m != "grad" or case.endswith("_trainable")]
        for mode in modes:
            peer = {"exact": PEER_EXACT, "sampled": PEER_SAMPLED}.get(mode, {}).get(case)
            if peer is not None and live_peer:
                r = run_peer(case, mode, args.timeout)
                peer = f"{r['first_s']:.3f} / {r['steady_s']:.3f}" if r else "failed"
            for code, tree in trees:
                runs = [run_measurement(case, mode, args.timeout, args.cache, tree)]
                load = harness.load_average()[0]
                if args.cache:
                    runs.append(run_measurement(case, mode, args.timeout, args.cache, tree))
                for tag, r in zip(("", " (warm cache)") if args.cache else ("",), runs):
                    if r.get("first_s") is None:
                        print(f"| {case} | {mode}{tag} | {code} | - | {r['note']} | - | - | "
                              f"{load:.1f} | {peer or '-'} |")
                        continue
                    print(f"| {case} | {mode}{tag} | {code} | {r['fragments']} | "
                          f"{r['first_s']:.2f} ({r['first_cpu_s']:.2f}) | "
                          f"{r['steady_s'] * 1e3:.1f} ms | {r['error']:.1e} | {load:.1f} | "
                          f"{peer or '-'} |", flush=True)


if __name__ == "__main__":
    main()
