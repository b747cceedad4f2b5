"""Attack benchmarks: gradient-inversion restarts per second (vmapped vs a Python loop of
the same restarts) and seconds per PGD step on a batch of 256.

    python -m benchmarks.attacks                      # 4, 8, 12, 16 qubits
    python -m benchmarks.attacks --qubits 4 8 --restarts 64 --steps 50
    python -m benchmarks.attacks --scaling --qubits 2 3 4 5 6 7 8   # the scaling-study table
    python -m benchmarks.attacks --success --qubits 8 --seeds 8      # time to success
    python -m benchmarks.attacks --success --peer-circuit 8 --qubits 8 --seeds 8  # peer's model
    python -m benchmarks.attacks --second-order --qubits 8 --complex64   # AD formulations

Inversion model: the scaling study's (``qjaxrob.experiments.inversion_scaling.study_model``):
RY angle encoding, hardware-efficient ansatz (RY, RZ, CNOT ring), 2 layers, readout
``<Z_q>`` of every wire through a trainable linear layer, complex128, one example with an
iDLG label. A restart is ``--steps`` L-BFGS steps (``invert``'s default: ``optax.lbfgs``
without line search, steps clipped to norm 0.5) on the L2 gradient distance. "batched": all
restarts in one vmapped jit call; "loop": the same
restarts one after another through a jitted single-restart function (the peer
``ajbarea/csci739-qfl-privacy`` loops restarts in Python, 0.87 s each at 8 qubits). Timings
are medians of ``--repeats`` warm runs (compile excluded, reported separately), with
``block_until_ready``. Results go to ``benchmarks/results/attacks.json``. ``--success``:
seconds per recovered input, fixed step counts vs pooled restarts (``time_to_success``;
``benchmarks/results/attacks_success.json``). ``--peer-circuit REPS``: the same on the peer's
own model and success criterion (``peer_time_to_success``), the like-for-like comparison.
``--second-order``: one vmapped evaluation of the objective and its ``x``-gradient over
``--restarts`` restarts, written three ways (``second_order_forms``), on the dense path and
on the engine (``QJAXROB_DENSE=1`` / ``0`` at trace time), timed alternately
(``benchmarks/results/attacks_second_order.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from benchmarks import harness
from qjaxrob import attacks
from qjaxrob.attacks import inversion as inv
from qjaxrob.experiments.inversion_scaling import inversion_scaling, study_model

RESULTS = os.path.join(os.path.dirname(__file__), "results", "attacks.json")


def inversion_rates(n, restarts, loop_restarts, steps, repeats):
    model = study_model(jax.random.key(n), "angle", n, 2, 0, jnp.complex128)
    x = jax.random.uniform(jax.random.key(1), (n,), jnp.float64, 0, 2 * np.pi)
    grads = inv.shared_gradient(model, x[None], jnp.array([1]))
    target = inv.check_grads(model, grads)
    label = jnp.array([int(inv.infer_label(model, grads))], jnp.int32)
    x0s = jax.random.uniform(jax.random.key(2), (restarts, 1, n), jnp.float64, 0, 2 * np.pi)

    def one(x0):
        return inv.match_gradients(model, target, x0, label, steps=steps)

    batched = jax.jit(jax.vmap(one))
    single = jax.jit(one)
    compile_b = harness.timed_call(batched, x0s)[1]
    compile_s = harness.timed_call(single, x0s[0])[1]
    tb = harness.median_time(lambda: batched(x0s), min_reps=repeats)
    tl = harness.median_time(lambda: [single(x0s[i]) for i in range(loop_restarts)],
                             min_reps=repeats)
    return dict(n_qubits=n, steps=steps, restarts=restarts, loop_restarts=loop_restarts,
                batched_s=tb, loop_s=tl, batched_restarts_per_s=restarts / tb,
                loop_restarts_per_s=loop_restarts / tl, speedup=(restarts / tb) / (loop_restarts / tl),
                compile_batched_s=compile_b, compile_single_s=compile_s)


def _runs(restarts, slots, fixed_steps, max_steps):
    """(mode, steps, pool width, stop_on_match, restarts) of the time-to-success runs."""
    runs = [("fixed", s, None, False, slots) for s in fixed_steps]
    return runs + [("pooled", max_steps, slots, False, restarts),
                   ("first_match", max_steps, slots, True, restarts)]


def _success_rows(cases, runs, tol, workers, meta):
    """Times ``attacks.invert`` on every case (``(model or loss, grads, invert keywords, x,
    key, period)``) for every run; a restart succeeds when every feature is within ``tol``
    of ``x`` modulo the period. Warm times (one compile per run, excluded), wall and CPU."""
    rows = []
    for name, steps, sl, stop, n_restarts in runs:
        def attack(case, steps=steps, sl=None if name == "fixed" else sl, stop=stop,
                   n_restarts=n_restarts):
            model, grads, kwargs, _, key, _ = case
            res = attacks.invert(model, grads, key=key, restarts=n_restarts, steps=steps,
                                 slots=sl, stop_on_match=stop, workers=workers, **kwargs)
            return jax.block_until_ready(res)

        compile_s = harness.timed_call(attack, cases[0])[1]
        wall = cpu = 0.0
        wins = started = evals = 0
        for case in cases:
            res, w, c = harness.timed_call(attack, case)
            wall += w
            cpu += c
            errs = np.asarray(jax.vmap(inv.circular_error, in_axes=(0, None, None))(
                res.xs[:, 0], case[3], case[5])).max(axis=1)
            ran = np.asarray(res.steps_run) > 0
            wins += int(np.sum((errs <= tol) & ran))
            started += int(np.sum(ran))
            evals += int(np.sum(np.asarray(res.steps_run)))
        rows.append({
            **meta, "mode": name, "max_steps": steps, "width": sl,
            "workers": workers or inv.default_workers(n_restarts), "seeds": len(cases),
            "restarts_started": started, "successes": wins,
            "per_restart_success": wins / started, "mean_steps": evals / started,
            "wall_s": wall, "cpu_s": cpu, "restarts_per_s": started / wall,
            "s_per_success": (wall / wins) if wins else math.inf,
            "cpu_s_per_success": (cpu / wins) if wins else math.inf,
            "ms_per_restart_step": 1e3 * wall / evals, "compile_s": compile_s})
    return rows


def time_to_success(n, seeds, restarts, slots, fixed_steps, max_steps, dtype, tol=1e-3,
                    workers=None):
    """Seconds per recovered input at ``n`` qubits (the scaling study's model, ``seeds``
    random models/inputs), with ``invert``: (a) ``slots`` restarts all together for each step
    count in ``fixed_steps`` (the same vmap width as the pool), (b) ``restarts`` restarts
    pooled through ``slots`` slots (each ending when it matches or stalls, at most
    ``max_steps`` steps), (c) the same pool with ``stop_on_match`` (time to the first
    match). A restart succeeds when every feature is within ``tol`` of ``x`` modulo the
    period. ``workers``: ``invert``'s worker threads (``None``: its default)."""
    cases = []
    for s in range(seeds):
        k_model, k_x, k_y, k_inv = jax.random.split(jax.random.fold_in(jax.random.key(0), s), 4)
        model = study_model(k_model, "angle", n, 2, 0, dtype)
        period = inv.encoding_period(model.encoding)
        real = model.params.dtype
        x = jax.random.uniform(k_x, (n,), real) * jnp.asarray(period, real)
        y = jax.random.randint(k_y, (), 0, 2)
        cases.append((model, inv.shared_gradient(model, x[None], y[None]), {}, x, k_inv,
                      period))
    return _success_rows(cases, _runs(restarts, slots, fixed_steps, max_steps), tol, workers,
                         {"model": "study", "n_qubits": n, "dtype": np.dtype(dtype).name})


def peer_circuit(n, reps, layers=1):
    """The peer's re-uploading circuit (``ajbarea/csci739-qfl-privacy``, ``qflp/circuit.py``):
    ``reps`` times {``RY(x_q)`` on every wire; ``layers`` blocks of ``RY(theta)`` on every
    wire, ``RZ(theta)`` on every wire, CNOT chain 0->1->...->n-1}; params in the peer's
    order ``(rep, layer, wire, RY/RZ)``, ``2 reps layers n`` of them."""
    block = qjr.Circuit(n)
    for q in range(n):
        block = block.ry(q, qjr.inp(q))
    for lay in range(layers):
        for q in range(n):
            block = block.ry(q, qjr.param(2 * (lay * n + q)))
        for q in range(n):
            block = block.rz(q, qjr.param(2 * (lay * n + q) + 1))
        for q in range(n - 1):
            block = block.cnot(q, q + 1)
    return qjr.Circuit.repeat(block, reps)


def peer_loss(circuit, dtype):
    """The peer's client loss: ``mean_b (f(x_b) - y_b)^2`` with ``f`` the mean of ``<Z_q>``."""
    obs = [qjr.Z(q) for q in range(circuit.n_qubits)]

    def loss(params, x, y):
        f = jax.vmap(lambda xi: jnp.mean(qjr.expval(circuit, obs, params, xi, dtype=dtype)))(x)
        return jnp.mean((f - y) ** 2)

    return loss


def peer_time_to_success(n, reps, seeds, restarts, slots, fixed_steps, max_steps, dtype,
                         tol=0.05, workers=None):
    """``time_to_success`` on the peer's own model and protocol: ``peer_circuit(n, reps)``
    (``reps = 8``, ``n = 8``: 128 params, 120 effective), MSE loss with the known label
    ``y = 1``, ``theta ~ U[0, 2 pi)``, ``x ~ U[0, pi)^n``, restarts from ``U[0, pi)``,
    success when every feature is within ``tol = 0.05`` rad of ``x`` modulo ``2 pi``."""
    circuit = peer_circuit(n, reps)
    loss = peer_loss(circuit, dtype)
    real = jnp.float64 if dtype == jnp.complex128 else jnp.float32
    y = jnp.ones((1,), real)
    cases = []
    for s in range(seeds):
        k_theta, k_x, k_inv = jax.random.split(jax.random.fold_in(jax.random.key(1), s), 3)
        theta = jax.random.uniform(k_theta, (circuit.n_params,), real, 0.0, 2 * np.pi)
        x = jax.random.uniform(k_x, (n,), real, 0.0, np.pi)
        grads = jax.grad(loss)(theta, x[None], y)
        cases.append((loss, grads, dict(params=theta, label=y, n_features=n,
                                        init_range=(0.0, np.pi)), x, k_inv, 2 * np.pi))
    return _success_rows(cases, _runs(restarts, slots, fixed_steps, max_steps), tol, workers,
                         {"model": f"peer {n}q {reps}x1", "n_qubits": n,
                          "dtype": np.dtype(dtype).name})


def second_order_forms(model, target, label):
    """The gradient-matching objective's value and ``x``-gradient, ``x -> (f, df/dx)`` with
    ``f = ||G(x) - g||^2`` and ``G = grad_theta L``, written three ways (equal to rounding):

    * ``"reverse_reverse"``: ``jax.value_and_grad`` of ``f`` (what the attack runs);
    * ``"reverse_forward"``: ``G`` by reverse mode, then ``df/dx = 2 d/dx <u, G(x)>`` with
      ``u = G - g`` held fixed, the inner product a forward-mode derivative of ``L`` along
      ``u`` (``jax.jvp``) and its ``x``-gradient reverse mode;
    * ``"forward_reverse"``: ``jax.linearize`` of ``(theta, x) -> grad L`` in ``theta``
      (its primal output is ``G``), the linear map applied to ``u`` gives ``H_{x theta} u``.

    Also ``"forward"`` (the loss) and ``"gradient"`` (``G``), the levels below."""
    import equinox as eqx

    from qjaxrob.attacks.inversion.objective import flat, objective
    from qjaxrob.qml.train import cross_entropy

    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, tdef = jax.tree_util.tree_flatten(params)
    cuts = np.cumsum([leaf.size for leaf in leaves])[:-1]

    def unflat(v):
        return jax.tree_util.tree_unflatten(
            tdef, [a.reshape(b.shape) for a, b in zip(jnp.split(v, cuts), leaves)])

    def loss(p, x):
        return cross_entropy(eqx.combine(p, static), x, label)

    def grad(x):
        return flat(jax.grad(loss)(params, x))

    fl = objective(cross_entropy, model, target, "l2")

    def reverse_forward(x):
        u = grad(x) - target
        tangent = unflat(u)
        dx = jax.grad(lambda z: jax.jvp(lambda p: loss(p, z), (params,), (tangent,))[1])(x)
        return u @ u, 2 * dx

    def forward_reverse(x):
        (gp, _), lin = jax.linearize(lambda p: jax.grad(loss, argnums=(0, 1))(p, x), params)
        u = flat(gp) - target
        return u @ u, 2 * lin(unflat(u))[1]

    return {"forward": lambda x: loss(params, x), "gradient": grad,
            "reverse_reverse": jax.value_and_grad(lambda x: fl(x, label)),
            "reverse_forward": reverse_forward, "forward_reverse": forward_reverse}


def second_order_times(n, restarts, rounds, dtype):
    """Medians (ms) of :func:`second_order_forms` vmapped over ``restarts`` restarts of the
    scaling study's ``n``-qubit model, each compiled on the dense path and on the engine and
    timed alternately; checks every formulation against ``reverse_reverse`` (1e-4 relative
    at complex64, 1e-9 at complex128)."""
    from benchmarks.dense import compiled, side_by_side

    model = study_model(jax.random.key(n), "angle", n, 2, 0, dtype)
    real = model.params.dtype
    x = jax.random.uniform(jax.random.key(1), (n,), real, 0, 2 * np.pi)
    grads = inv.shared_gradient(model, x[None], jnp.array([1]))
    target = inv.check_grads(model, grads)
    label = jnp.array([int(inv.infer_label(model, grads))], jnp.int32)
    x0s = jax.random.uniform(jax.random.key(2), (restarts, 1, n), real, 0, 2 * np.pi)
    forms = second_order_forms(model, target, label)
    load0 = harness.load_average()[0]
    fns = {(name, path): compiled(lambda f=f: jax.vmap(f), (x0s,), mode)
           for path, mode in (("dense", "1"), ("engine", "0")) for name, f in forms.items()}
    tol = 1e-4 if real == jnp.float32 else 1e-9
    for path in ("dense", "engine"):
        ref = fns[("reverse_reverse", "dense")](x0s)
        for name in ("reverse_reverse", "reverse_forward", "forward_reverse"):
            v, g = fns[(name, path)](x0s)
            err = float(jnp.max(jnp.abs(g - ref[1])) / jnp.max(jnp.abs(ref[1])))
            assert err < tol and float(jnp.max(jnp.abs(v - ref[0]) / ref[0])) < tol, (name, path)
    t = side_by_side(fns, (x0s,), rounds)
    rows = []
    for path in ("dense", "engine"):
        ms = {name: 1e3 * t[(name, path)] for name in forms}
        rows.append(dict(n_qubits=n, restarts=restarts, dtype=np.dtype(dtype).name, path=path,
                         **{f"{k}_ms": v for k, v in ms.items()},
                         gradient_over_forward=ms["gradient"] / ms["forward"],
                         second_over_gradient=ms["reverse_reverse"] / ms["gradient"],
                         load=f"{load0:.1f}-{harness.load_average()[0]:.1f}"))
    return rows


def pgd_step_time(n, batch, steps, repeats):
    key = jax.random.key(0)
    model = qjr.qml.make_vqc(key, n, 2, layers=2, dtype=jnp.complex128)
    x = jax.random.uniform(jax.random.key(1), (batch, n), jnp.float64, 0, np.pi)
    y = jax.random.randint(jax.random.key(2), (batch,), 0, 2)

    def run(s):
        return attacks.attack_model(model, x, y, 0.1, steps=s).x_adv

    t = harness.median_time(run, steps, warmup=True, min_reps=repeats)
    # steps gradient evaluations + the final loss and both accuracy passes
    return {"n_qubits": n, "batch": batch, "steps": steps, "seconds_total": t,
            "seconds_per_step": t / (steps + 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qubits", type=int, nargs="+", default=[4, 8, 12, 16])
    ap.add_argument("--restarts", type=int, default=64)
    ap.add_argument("--loop-restarts", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pgd-qubits", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--scaling", action="store_true", help="run the inversion scaling table")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--success", action="store_true",
                    help="time to success: fixed step counts vs pooled restarts")
    ap.add_argument("--fixed-steps", type=int, nargs="+", default=[60, 100, 200])
    ap.add_argument("--slots", type=int, default=64)
    ap.add_argument("--max-steps", type=int, default=200, help="pooled restarts' step cap")
    ap.add_argument("--complex64", action="store_true", help="simulate in complex64")
    ap.add_argument("--workers", type=int, nargs="+", default=[0],
                    help="--success: invert's worker threads, one run each (0: its default)")
    ap.add_argument("--second-order", action="store_true",
                    help="time the objective's value and x-gradient written three ways")
    ap.add_argument("--rounds", type=int, default=5, help="--second-order: alternations")
    ap.add_argument("--peer-circuit", type=int, default=0, metavar="REPS",
                    help="--success on the peer's own model (re-uploading circuit with REPS "
                         "repetitions, MSE on the mean <Z>, 0.05 rad success), e.g. 8")
    args = ap.parse_args()
    harness.enable_x64()
    out = {"device": str(jax.devices()[0]), "cpu_count": os.cpu_count()}
    if args.second_order:
        out["second_order"] = []
        dtype = jnp.complex64 if args.complex64 else jnp.complex128
        for n in args.qubits:
            for row in second_order_times(n, args.restarts, args.rounds, dtype):
                harness.print_row(row)
                out["second_order"].append(row)
    elif args.success:
        out["success"] = []
        dtype = jnp.complex64 if args.complex64 else jnp.complex128
        for n in args.qubits:
            for w in args.workers:
                if args.peer_circuit:
                    rows = peer_time_to_success(n, args.peer_circuit, args.seeds,
                                                args.restarts, args.slots, args.fixed_steps,
                                                args.max_steps, dtype, workers=w or None)
                else:
                    rows = time_to_success(n, args.seeds, args.restarts, args.slots,
                                           args.fixed_steps, args.max_steps, dtype,
                                           workers=w or None)
                for row in rows:
                    harness.print_row(row)
                    out["success"].append(row)
    elif args.scaling:
        rows = inversion_scaling(tuple(args.qubits), key=jax.random.key(0),
                                 seeds=args.seeds, restarts=args.restarts,
                                 steps=args.steps, progress=False,
                                 on_row=harness.print_row)
        out["scaling"] = rows
    else:
        out["inversion"] = []
        for n in args.qubits:
            row = inversion_rates(n, args.restarts, args.loop_restarts, args.steps, args.repeats)
            print(row, flush=True)
            out["inversion"].append(row)
        out["pgd"] = []
        for n in args.pgd_qubits:
            row = pgd_step_time(n, 256, 20, args.repeats)
            print(row, flush=True)
            out["pgd"].append(row)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    path = (RESULTS.replace(".json", "_second_order.json") if args.second_order else
            RESULTS.replace(".json", "_scaling.json") if args.scaling else
            RESULTS.replace(".json", "_peer.json") if args.success and args.peer_circuit else
            RESULTS.replace(".json", "_success.json") if args.success else RESULTS)
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=float)


if __name__ == "__main__":
    main()
