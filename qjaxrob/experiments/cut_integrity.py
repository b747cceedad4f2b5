"""Study ``cut-integrity``: which integrity checks catch which attacks on a wire-cut
classifier, at what cost, and what the attacks do to training.

The classifier (``n`` qubits, ``k = n // 2``): ``RY(x_q)`` encoding on every wire; block A
(``layers`` x [RY on wires ``0..k``, CNOT chain]) ; a wire cut on wire ``k``; block B
(``layers`` x [RY on wires ``k..n-1``, CNOT chain]); logit ``w <Z_{n-1}> + b``. Fragment B
holds the encoding of features ``k+1..n-1``; the trigger reads feature ``n-1``.

Attacks (``qjr.attacks.fragment_poisoning``), strength ``s``: ``uniform`` (``V`` with
``||V - I|| = s`` about y), ``term`` (``V_b`` with ``||V_b - I|| = s`` in fixed random
directions), ``trigger`` (``term`` only on inputs whose feature ``n-1`` carries the trigger;
half the checked inputs do), ``bias`` (the executor adds ``s`` to the results of ``|0>``),
``reweight`` (the server shrinks the ``Z`` row of the QPD coefficients by ``min(s, 1)``).

**Detection units** ``(attack, strength, shots)``: at the honestly trained parameters and
``n_points`` test inputs, each check of ``qjr.defenses.integrity.cuts`` (``pair``,
``redundancy`` with ``redundancy_fraction``, ``relabelling``, ``physicality``) runs
``trials`` shot-noise repetitions on the attacked and on the honest executor, at every level
in ``alphas``: detection rate and false-positive rate (one ROC point per level), and the
check's cost (extra shots relative to the protocol's). ``visibility`` says whether the check
can see the attack at all ("cannot see": a uniform ``V`` is an honest circuit with one more
gate; the server runs the checks, so they cannot see its own reweighting; the physicality
audit measures prepared states, which a bias on reported results leaves honest).

**Training units** ``(attack,)``: the classifier trained under each attack at
``train_strength`` (and ``none``); clean test accuracy with the attacker in place, with an
honest executor, and the trigger's attack success rate (test inputs of class 0 classified as
1 once stamped), every ``eval_every`` steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from qjaxrob import qml
from qjaxrob.attacks import fragment_poisoning as fp
from qjaxrob.attacks import fragments as fr
from qjaxrob.defenses.integrity import cuts
from qjaxrob.experiments import plots
from qjaxrob.experiments.configs import Field
from qjaxrob.experiments.runner import Study

ATTACKS = ("uniform", "term", "trigger", "bias", "reweight")
CHECKS = ("pair", "redundancy", "relabelling", "physicality")
BLIND = {("uniform", "pair"), ("uniform", "relabelling"), ("uniform", "physicality"),
         ("bias", "physicality"), ("reweight", "pair"), ("reweight", "redundancy"),
         ("reweight", "relabelling"), ("reweight", "physicality")}

FIELDS = {
    "n_qubits": Field(4, "classifier qubits (the cut wire is n // 2)", low=3, high=12),
    "layers": Field(2, "layers of each block", quick=1, low=1),
    "n_train": Field(128, "training examples (qml.data.teacher)", quick=48, low=2),
    "n_test": Field(128, "test examples", quick=32, low=2),
    "train_steps": Field(150, "full-batch Adam steps", quick=40, low=1),
    "eval_every": Field(10, "training steps between accuracy evaluations", quick=10, low=1),
    "learning_rate": Field(0.05, "Adam learning rate", low=0.0),
    "attacks": Field(list(ATTACKS), "attacks compared", choices=ATTACKS),
    "strengths": Field([0.1, 0.3, 0.6, 1.0], "attack strengths s", quick=[1.0], low=0.0,
                       high=2.0),
    "shots": Field([100, 1000, 10000], "shots per estimated entry", quick=[200, 2000], low=1),
    "alphas": Field([0.001, 0.01, 0.05, 0.1, 0.2], "check levels (ROC points)",
                    quick=[0.01, 0.1], low=1e-9, high=0.999),
    "n_points": Field(8, "test inputs each check runs on", quick=2, low=1),
    "trials": Field(400, "shot-noise repetitions per check, input and level", quick=100,
                    low=1),
    "redundancy_fraction": Field(0.25, "fraction of entries rerun by the redundancy check",
                                 low=0.0, high=1.0),
    "train_strength": Field(1.0, "strength of the attacks during training", low=0.0,
                            high=2.0),
    "trigger_value": Field(3.0, "trigger value of feature n-1 (radians)", low=0.0,
                           high=3.2),
    "trigger_fraction": Field(0.25, "fraction of training inputs that carry the trigger",
                              low=0.0, high=1.0),
}


def classifier(n: int, layers: int) -> qjr.Circuit:
    """The cut classifier (module docstring), with the cut marker on wire ``n // 2``."""
    k = n // 2
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.ry(q, qjr.inp(q))
    p = 0
    for _ in range(layers):
        for q in range(k + 1):
            c, p = c.ry(q, qjr.param(p)), p + 1
        for q in range(k):
            c = c.cnot(q, q + 1)
    c = c.cut(k)
    for _ in range(layers):
        for q in range(k, n):
            c, p = c.ry(q, qjr.param(p)), p + 1
        for q in range(k, n - 1):
            c = c.cnot(q, q + 1)
    return c


def policy(attack: str, s: float, config: dict) -> fp.Policy:
    """The attack ``attack`` at strength ``s`` (module docstring)."""
    if attack == "none":
        return fp.honest()
    if attack == "uniform":
        return fp.uniform(s)
    dirs = np.random.default_rng(0).normal(size=(6, 3))
    term = fp.term_dependent(s, 1e6 * dirs / np.linalg.norm(dirs, axis=1, keepdims=True))
    if attack == "term":
        return term
    if attack == "trigger":
        return fp.triggered(term, [config["n_qubits"] - 1], [config["trigger_value"]], 0.01)
    if attack == "bias":
        return fp.biased_terms(s, [0])
    scale = np.zeros((4, 6))
    scale[3] = -1.0
    return fp.reweighted(min(s, 1.0), scale)


def setup(config, key):
    """Data, the honestly trained classifier, the checked inputs (half of them stamped)."""
    n = config["n_qubits"]
    cc = qjr.cutting.partition(classifier(n, config["layers"]))
    obs = qjr.Z(n - 1)
    k_data, k_train, k_trig = jax.random.split(key, 3)
    x, y = qml.data.teacher(k_data, config["n_train"] + config["n_test"], n_qubits=n)
    x = np.asarray(x, np.float32)
    x_tr, y_tr = x[:config["n_train"]], y[:config["n_train"]]
    x_te, y_te = x[config["n_train"]:], y[config["n_train"]:]
    trig = np.asarray(jax.random.uniform(k_trig, (len(x_tr),))) < config["trigger_fraction"]
    x_tr[trig, n - 1] = config["trigger_value"]
    honest = fp.train(cc, obs, x_tr, y_tr, key=k_train, steps=config["train_steps"],
                      learning_rate=config["learning_rate"])
    pts = x_te[:config["n_points"]].copy()
    pts[::2, n - 1] = config["trigger_value"]
    theta = honest.params["theta"]
    models = [fr.fragment_model(cc, obs, theta, xi, dtype=jnp.complex64) for xi in pts]
    data = [cuts.wire_cut_data(cc, obs, theta, xi, dtype=jnp.complex64) for xi in pts]
    return {"cc": cc, "obs": obs, "train": (x_tr, y_tr), "test": (x_te, y_te), "points": pts,
            "models": models, "data": data, "key": k_train}


def units(config):
    det = [{"kind": "detection", "attack": a, "strength": float(s), "shots": int(m)}
           for a in config["attacks"] for s in config["strengths"] for m in config["shots"]]
    return det + [{"kind": "training", "attack": a} for a in ["none"] + config["attacks"]]


def _check(name, key, fm, data, reported, bloch, shots, alpha, config):
    f = fm.fragment
    if name == "pair":
        return cuts.pair_consistency(key, reported, fm.axis, shots=shots, alpha=alpha,
                                     trials=config["trials"])
    if name == "redundancy":
        return cuts.redundancy(key, reported, fm.tensors[f], shots=shots, alpha=alpha,
                               fraction=config["redundancy_fraction"], trials=config["trials"])
    if name == "relabelling":
        return cuts.relabelling(key, data._replace(downstream=reported), shots=shots,
                                alpha=alpha, trials=config["trials"])
    return cuts.physicality(key, bloch, shots=shots, alpha=alpha, trials=config["trials"])


def _detection(config, ctx, unit, key):
    pol = policy(unit["attack"], unit["strength"], config)
    executor = unit["attack"] in ("uniform", "term", "trigger")
    out = {}
    for c, name in enumerate(CHECKS):
        det = {a: [] for a in config["alphas"]}
        fpr = {a: [] for a in config["alphas"]}
        cost = 0.0
        for i, (fm, data, xi) in enumerate(zip(ctx["models"], ctx["data"], ctx["points"])):
            rep = np.asarray(fp.reported_tensor(fm, pol, xi))
            active = executor and fp.executor_active(pol, xi)
            bloch = cuts.prepared_bloch(np.asarray(pol.vs) if active else np.eye(2))
            hon_bloch = cuts.prepared_bloch(np.eye(2))
            for j, a in enumerate(config["alphas"]):
                k = jax.random.fold_in(key, (c * 1000 + i) * 100 + j)
                k_att, k_hon = jax.random.split(k)
                r = _check(name, k_att, fm, data, rep, bloch, unit["shots"], a, config)
                h = _check(name, k_hon, fm, data, fm.tensors[fm.fragment], hon_bloch,
                           unit["shots"], a, config)
                det[a].append(r.rate)
                fpr[a].append(h.rate)
                cost = r.cost
        out[name] = {"detection_rate": [float(np.mean(det[a])) for a in config["alphas"]],
                     "false_positive_rate": [float(np.mean(fpr[a])) for a in config["alphas"]],
                     "cost": cost,
                     "visibility": "cannot see" if (unit["attack"], name) in BLIND else "sees"}
    vals = [np.asarray(cuts.relabelled_values(d._replace(
        downstream=fp.reported_tensor(fm, pol, xi)))) for fm, d, xi in
        zip(ctx["models"], ctx["data"], ctx["points"])]
    honest = [float(fm.honest) for fm in ctx["models"]]
    out["relabelling"]["shift_standard"] = float(np.mean([abs(v[0] - h)
                                                          for v, h in zip(vals, honest)]))
    out["relabelling"]["shift_relabelled"] = float(np.mean([abs(v.mean() - h)
                                                            for v, h in zip(vals, honest)]))
    return out


def _training(config, ctx, unit, key):
    pol = policy(unit["attack"], config["train_strength"], config)
    cc, obs = ctx["cc"], ctx["obs"]
    res = fp.train(cc, obs, *ctx["train"], pol, key=ctx["key"], steps=config["train_steps"],
                   learning_rate=config["learning_rate"])
    x_te, y_te = ctx["test"]
    clean = x_te[np.abs(x_te[:, -1] - config["trigger_value"]) > 0.01]
    y_clean = y_te[np.abs(x_te[:, -1] - config["trigger_value"]) > 0.01]
    trig_pol = policy("trigger", config["train_strength"], config)
    steps = list(range(0, config["train_steps"] + 1, config["eval_every"]))
    if steps[-1] != config["train_steps"]:
        steps.append(config["train_steps"])
    rows = []
    for s in steps:
        p = {k: v[s] for k, v in res.history.items()}
        att = fp.evaluate(cc, obs, p, clean, y_clean, pol)
        hon = fp.evaluate(cc, obs, p, clean, y_clean)
        asr = fp.evaluate(cc, obs, p, clean, y_clean, trig_pol)["attack_success_rate"]
        rows.append({"step": s, "clean_accuracy": att["clean_accuracy"],
                     "honest_accuracy": hon["clean_accuracy"], "attack_success_rate": asr})
    return {"curve": rows, "final_loss": float(res.loss[-1])}


def run_unit(config, ctx, unit, key):
    if unit["kind"] == "detection":
        return _detection(config, ctx, unit, key)
    return _training(config, ctx, unit, key)


def summarize(config, records):
    rows = []
    for r in records:
        u, res = r["unit"], r["result"]
        if u["kind"] == "detection":
            for name in CHECKS:
                c = res[name]
                for a, d, f in zip(config["alphas"], c["detection_rate"],
                                   c["false_positive_rate"]):
                    rows.append({"kind": "detection", "attack": u["attack"], "check": name,
                                 "strength": u["strength"], "shots": u["shots"], "alpha": a,
                                 "detection_rate": d, "false_positive_rate": f,
                                 "cost": c["cost"], "visibility": c["visibility"],
                                 **{k: c[k] for k in ("shift_standard", "shift_relabelled")
                                    if k in c}})
        else:
            for row in res["curve"]:
                rows.append({"kind": "training", "attack": u["attack"], "check": "none",
                             "strength": 0.0 if u["attack"] == "none"
                             else config["train_strength"], **row})
    return rows


def plot(config, records, out_dir):
    det = [r for r in records if r["unit"]["kind"] == "detection"]
    train = [r for r in records if r["unit"]["kind"] == "training"]
    fig, axes = plots.figure(3, width=4.0)
    m, s = max(config["shots"]), max(config["strengths"])
    for name, mark in zip(CHECKS, "os^d"):
        for r in det:
            u = r["unit"]
            if u["attack"] == "term" and u["shots"] == m and u["strength"] == s:
                axes[0].plot(r["result"][name]["false_positive_rate"],
                             r["result"][name]["detection_rate"], mark + "-", label=name)
        pts = sorted((r["unit"]["shots"], r["result"][name]["detection_rate"][-1])
                     for r in det if r["unit"]["attack"] == "term"
                     and r["unit"]["strength"] == s)
        if pts:
            axes[1].plot(*zip(*pts), mark + "-", label=name)
    axes[0].plot([0, 1], [0, 1], "k:", lw=0.8)
    axes[0].set(xlabel="false-positive rate", ylabel="detection rate",
                title=f"ROC: term V_b, s={s}, {m} shots")
    axes[1].set(xscale="log", xlabel="shots", ylabel="detection rate",
                title=f"term V_b, s={s}, alpha={config['alphas'][-1]}")
    axes[1].minorticks_off()
    axes[1].set_xticks(config["shots"], [str(v) for v in config["shots"]])
    for r in train:
        c = r["result"]["curve"]
        axes[2].plot([p["step"] for p in c], [p["clean_accuracy"] for p in c],
                     label=r["unit"]["attack"])
        if r["unit"]["attack"] == "trigger":
            axes[2].plot([p["step"] for p in c], [p["attack_success_rate"] for p in c], "k--",
                         label="trigger: attack success")
    axes[2].set(xlabel="training step", ylabel="test accuracy (attacker in place)",
                title="training under attack")
    for ax in axes:
        ax.legend(fontsize=7)
    return [plots.save(fig, out_dir, "cut_integrity")]


STUDY = Study(
    name="cut-integrity",
    question="Which quantum-native checks catch which attacks on a cut classifier's fragments "
             "and reconstruction, at what cost, and what do the attacks do to training?",
    fields=FIELDS, units=units, run_unit=run_unit, summarize=summarize, plot=plot, setup=setup)
