"""Study ``cut-ansatz``: are there ansatze that are both trainable and cheap to cut?

For each ansatz family (the cut-friendly ``mps`` and ``tree_tensor_network``, whose
half-way boundary is crossed by one gate per layer, against ``hardware_efficient`` and
``strongly_entangling``), qubit count ``n`` and depth ``L`` it measures three things:

* **cut cost**: ``qjr.cutting.find_cuts(c, max_fragment_qubits=ceil(n/2))`` then
  ``partition``: the number of cuts, the QPD overhead ``gamma`` (product of per-cut gammas;
  3 per CNOT cut) and the sampling cost factor ``gamma**2`` (shots needed relative to the
  uncut circuit for the same standard error), and the distinct subexperiments;
* **trainability**: the gradient variance of the local cost at random parameters (the
  ``barren-plateaus`` estimator, ``n_samples`` draws), averaged over parameters;
* **accuracy**: a ``qml.make_vqc`` classifier (angle encoding, this ansatz, linear
  read-out) trained with ``qml.fit`` (Adam) on ``qml.data.teacher`` data; test accuracy.

An ansatz is attractive for distributed QML when its sampling cost stays low (few boundary
crossings) without losing gradient variance or accuracy.
"""

from __future__ import annotations

import math

import jax
import numpy as np

import qjaxrob as qjr
from qjaxrob import qml
from qjaxrob.experiments import plots
from qjaxrob.experiments.configs import Field
from qjaxrob.experiments.runner import Study
from qjaxrob.experiments.training import accuracy, fit_full_batch

ANSATZE = ("mps", "tree_tensor_network", "hardware_efficient", "strongly_entangling")

FIELDS = {
    "ansatze": Field(list(ANSATZE), "ansatz families compared",
                     quick=["mps", "tree_tensor_network", "strongly_entangling"], choices=ANSATZE),
    "qubits": Field([4, 6, 8], "qubit counts (= features)", quick=[4], low=2, high=20),
    "layers": Field([1, 2, 4], "ansatz depths", quick=[2], low=1),
    "n_samples": Field(500, "random draws for the gradient variance", quick=100, low=2),
    "n_train": Field(400, "training examples (qml.data.teacher)", quick=64, low=2),
    "n_test": Field(400, "test examples", quick=64, low=1),
    "train_steps": Field(300, "full-batch Adam steps", quick=60, low=0),
    "learning_rate": Field(0.05, "Adam learning rate", low=0.0),
}


def units(config):
    return [{"ansatz": a, "n_qubits": n, "layers": l} for a in config["ansatze"]
            for n in config["qubits"] for l in config["layers"]]


def run_unit(config, context, unit, key):
    name, n, layers = unit["ansatz"], unit["n_qubits"], unit["layers"]
    c = getattr(qml, name)(n, layers)
    cc = qjr.cutting.partition(qjr.cutting.find_cuts(c, max_fragment_qubits=math.ceil(n / 2)))
    k_var, k_data, k_model = jax.random.split(key, 3)
    x, y = qml.data.teacher(k_data, config["n_train"] + config["n_test"], n_qubits=n)
    x = x.astype(np.float32)
    tr, te = slice(0, config["n_train"]), slice(config["n_train"], None)
    model = qml.make_vqc(k_model, n_features=n, n_classes=2, ansatz=name, layers=layers)
    model = fit_full_batch(model, x[tr], y[tr], steps=config["train_steps"],
                           learning_rate=config["learning_rate"])
    var = np.asarray(qml.landscape.gradient_variance(k_var, c, ("global", "local"),
                                                     config["n_samples"]), np.float64)
    return {
        "n_params": c.n_params,
        "boundary_crossings": qml.boundary_crossings(c, n // 2),
        "n_cuts": len(cc.cuts),
        "gamma": cc.overhead,
        "sampling_cost": cc.overhead**2,
        "n_subexperiments": cc.n_subexperiments,
        "fragment_qubits": max(f.n_qubits for f in cc.fragments),
        "grad_var_local": float(var[1].mean()),
        "grad_var_global": float(var[0].mean()),
        "train_accuracy": float(accuracy(model, x[tr], y[tr])),
        "test_accuracy": float(accuracy(model, x[te], y[te])),
    }


def summarize(config, records):
    return [{**r["unit"], **r["result"]} for r in records]


def plot(config, records, out_dir):
    fig, (ax1, ax2) = plots.figure(2)
    markers = dict(zip(ANSATZE, "osD^"))
    for a in config["ansatze"]:
        rs = [r for r in records if r["unit"]["ansatz"] == a]
        if not rs:
            continue
        cost = [r["result"]["sampling_cost"] for r in rs]
        ax1.scatter(cost, [r["result"]["grad_var_local"] for r in rs], marker=markers[a],
                    label=a)
        ax2.scatter(cost, [r["result"]["test_accuracy"] for r in rs], marker=markers[a],
                    label=a)
    ax1.set(xscale="log", yscale="log", xlabel="sampling cost gamma^2",
            ylabel="Var[dC_L/dθ]", title="trainability vs cut cost")
    ax2.set(xscale="log", xlabel="sampling cost gamma^2", ylabel="test accuracy",
            title="accuracy vs cut cost")
    ax1.legend(fontsize=7)
    return [plots.save(fig, out_dir, "cut_ansatz")]


STUDY = Study(
    name="cut-ansatz",
    question="Which ansatze are both trainable and cheap to cut (sampling overhead vs "
             "gradient variance vs accuracy)?",
    fields=FIELDS, units=units, run_unit=run_unit, summarize=summarize, plot=plot)
