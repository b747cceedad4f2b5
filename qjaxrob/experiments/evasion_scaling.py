"""Study ``evasion-scaling``: how does a VQC's robust accuracy fall with the attack budget
epsilon, and does the budget needed shrink with the qubit count?

For each qubit count ``n`` a classifier (``qml.make_vqc``: angle encoding of ``n``
features, hardware-efficient ansatz, linear read-out) is trained with full-batch Adam on
``qml.data.teacher`` data and attacked on its test set with PGD (L-inf ball, random start,
features clipped to ``[0, pi]``) at every ``eps`` in the config
(``qjr.attacks.robust_accuracy_curve``; epsilon is traced, one compilation per model).
Recorded: clean and robust accuracy per epsilon and ``eps50``, the budget at which the
robust accuracy falls to half the clean accuracy (linear interpolation; ``None`` if it
never does). Liu & Wittek (PRA 101, 062331, 2020) show that for quantum classifiers the
perturbation needed shrinks with the Hilbert-space dimension (``~ 1/sqrt(2**n)`` for
states drawn from a concentrated measure); the fit of ``log eps50`` against ``n`` shows
whether an angle-encoded classifier of classical data follows that trend.
"""

from __future__ import annotations

import jax
import numpy as np

from qjaxrob import attacks, qml
from qjaxrob.experiments import plots
from qjaxrob.experiments.configs import Field
from qjaxrob.experiments.runner import Study
from qjaxrob.experiments.training import accuracy, fit_full_batch

FIELDS = {
    "qubits": Field([2, 3, 4, 5, 6, 8, 10], "qubit counts (= features)", quick=[2, 4], low=1,
                    high=24),
    "layers": Field(3, "hardware-efficient ansatz depth", quick=2, low=1),
    "eps": Field([0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5], "L-inf budgets (radians)",
                 quick=[0.0, 0.1, 0.2, 0.4, 0.8, 1.2], low=0.0),
    "pgd_steps": Field(20, "PGD steps", quick=10, low=1),
    "n_train": Field(512, "training examples", quick=64, low=2),
    "n_test": Field(256, "attacked test examples", quick=64, low=1),
    "train_steps": Field(300, "full-batch Adam steps", quick=60, low=0),
    "learning_rate": Field(0.05, "Adam learning rate", low=0.0),
}


def units(config):
    return [{"n_qubits": n} for n in config["qubits"]]


def eps50(eps, robust, clean):
    """The smallest budget where ``robust`` falls to ``clean / 2`` (linear interpolation
    between the grid points), or ``None``."""
    half = clean / 2
    for i in range(1, len(eps)):
        if robust[i] <= half:
            e0, e1, r0, r1 = eps[i - 1], eps[i], robust[i - 1], robust[i]
            return float(e0 + (r0 - half) / (r0 - r1) * (e1 - e0)) if r0 != r1 else float(e1)
    return None


def run_unit(config, context, unit, key):
    n = unit["n_qubits"]
    k_data, k_model, k_pgd = jax.random.split(key, 3)
    x, y = qml.data.teacher(k_data, config["n_train"] + config["n_test"], n_qubits=n)
    x = x.astype(np.float32)
    tr, te = slice(0, config["n_train"]), slice(config["n_train"], None)
    model = qml.make_vqc(k_model, n_features=n, n_classes=2, layers=config["layers"])
    model = fit_full_batch(model, x[tr], y[tr], steps=config["train_steps"],
                           learning_rate=config["learning_rate"])
    eps, robust = attacks.robust_accuracy_curve(
        model, x[te], y[te], sorted(config["eps"]), steps=config["pgd_steps"], key=k_pgd,
        bounds=(0.0, float(np.pi)))
    clean = float(accuracy(model, x[te], y[te]))
    return {"n_params": int(model.params.size), "clean_accuracy": clean,
            "train_accuracy": float(accuracy(model, x[tr], y[tr])),
            "eps": [float(e) for e in eps], "robust_accuracy": [float(a) for a in robust],
            "eps50": eps50(eps, robust, clean)}


def summarize(config, records):
    rows = []
    for r in records:
        row = {"n_qubits": r["unit"]["n_qubits"], "clean_accuracy": r["result"]["clean_accuracy"],
               "eps50": r["result"]["eps50"]}
        row.update({f"robust@{e:g}": a for e, a in zip(r["result"]["eps"],
                                                       r["result"]["robust_accuracy"])})
        rows.append(row)
    pts = [(r["n_qubits"], r["eps50"]) for r in rows if r["eps50"]]
    if len(pts) >= 2:
        fit = qml.fit_decay(*zip(*pts), model="exp")
        for r in rows:
            r["eps50_slope_per_qubit"] = fit.slope
    return rows


def plot(config, records, out_dir):
    fig, (ax1, ax2) = plots.figure(2)
    for r in records:
        ax1.plot(r["result"]["eps"], r["result"]["robust_accuracy"], "o-",
                 label=f"n={r['unit']['n_qubits']}")
    ax1.set(xlabel="eps (L-inf, radians)", ylabel="robust accuracy (PGD)",
            title="robust accuracy vs budget", ylim=(-0.05, 1.05))
    ax1.legend(fontsize=7)
    pts = [(r["unit"]["n_qubits"], r["result"]["eps50"]) for r in records if r["result"]["eps50"]]
    if pts:
        ax2.semilogy(*zip(*pts), "o-")
    ax2.set(xlabel="qubits n", ylabel="eps50 (budget halving accuracy)",
            title="vulnerability vs qubits")
    plots.integer_ticks(ax2)
    return [plots.save(fig, out_dir, "evasion_scaling")]


STUDY = Study(
    name="evasion-scaling",
    question="How does robust accuracy fall with the attack budget, and does the budget "
             "needed shrink with qubit count?",
    fields=FIELDS, units=units, run_unit=run_unit, summarize=summarize, plot=plot)
