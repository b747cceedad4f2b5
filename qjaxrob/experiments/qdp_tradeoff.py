"""Study ``qdp-tradeoff``: what does noise buy in privacy and certified robustness, and what
does it cost in accuracy?

A classifier whose class probabilities are measurement probabilities (``qml.make_vqc``
with ``readout="probs"``, ``post=False``: the setting of Du et al., PRR 3, 023153, 2021) is
trained noise-free with full-batch Adam on ``qml.data.teacher`` data. Each unit is one
noise model (``depolarizing`` on every wire, ``global_depolarizing``, ``random_rotation``)
swept over its levels by ``qjr.defenses.qdp_utility`` (one ``vmap`` over the levels):
test accuracy, the tight quantum-DP ``epsilon`` at trace-distance neighbourhood ``eta``
(Guan et al. 2023), the DP, trace-distance and hypothesis-testing certified radii and the
certified accuracies. The curve is the "QDP utility test": accuracy against epsilon and
certified radius as the noise grows.
"""

from __future__ import annotations

import jax
import numpy as np

from qjaxrob import defenses, qml
from qjaxrob.experiments import plots
from qjaxrob.experiments.configs import Field
from qjaxrob.experiments.runner import Study
from qjaxrob.experiments.training import fit_full_batch

CHANNELS = ("depolarizing", "global_depolarizing", "random_rotation")

FIELDS = {
    "n_qubits": Field(4, "classifier qubits (= features)", quick=3, low=2, high=10),
    "layers": Field(3, "hardware-efficient ansatz depth", quick=2, low=1),
    "channels": Field(list(CHANNELS), "noise models", quick=["depolarizing", "random_rotation"],
                      choices=CHANNELS),
    "levels": Field([0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9],
                    "noise levels (probability; sigma in radians for random_rotation)",
                    quick=[0.02, 0.1, 0.3, 0.6], low=0.0),
    "rotation_axis": Field("x", "axis of the random_rotation noise", choices=("x", "y", "z")),
    "eta": Field(0.01, "trace-distance neighbourhood of the DP guarantee", low=0.0, high=1.0),
    "n_train": Field(512, "training examples", quick=64, low=2),
    "n_test": Field(256, "test examples", quick=64, low=1),
    "train_steps": Field(300, "full-batch Adam steps", quick=60, low=0),
    "learning_rate": Field(0.05, "Adam learning rate", low=0.0),
}


def setup(config, key):
    n = config["n_qubits"]
    k_data, k_model = jax.random.split(key)
    x, y = qml.data.teacher(k_data, config["n_train"] + config["n_test"], n_qubits=n)
    x = x.astype(np.float32)
    model = qml.make_vqc(k_model, n_features=n, n_classes=2, layers=config["layers"],
                         readout="probs", post=False)
    tr, te = slice(0, config["n_train"]), slice(config["n_train"], None)
    model = fit_full_batch(model, x[tr], y[tr], steps=config["train_steps"],
                           learning_rate=config["learning_rate"])
    return {"model": model, "x": x[te], "y": y[te]}


def units(config):
    return [{"channel": c} for c in config["channels"]]


def run_unit(config, ctx, unit, key):
    rows = defenses.qdp_utility(ctx["model"], ctx["x"], ctx["y"], unit["channel"],
                                sorted(config["levels"]), eta=config["eta"],
                                axis=config["rotation_axis"] if unit["channel"] == "random_rotation"
                                else None)
    return {"levels": [{k: v for k, v in r.items() if k not in ("channel", "eta")}
                       for r in rows]}


def summarize(config, records):
    return [{"channel": r["unit"]["channel"], **lv} for r in records
            for lv in r["result"]["levels"]]


def plot(config, records, out_dir):
    fig, (ax1, ax2, ax3) = plots.figure(3, width=3.8)
    for r in records:
        lv = r["result"]["levels"]
        level = [v["level"] for v in lv]
        name = r["unit"]["channel"]
        ax1.plot(level, [v["accuracy"] for v in lv], "o-", label=name)
        eps = np.array([v["epsilon"] for v in lv])
        ok = np.isfinite(eps)
        ax2.semilogy(np.array(level)[ok], eps[ok], "o-", label=name)
        ax3.plot(level, [v["certified_accuracy_dp"] for v in lv], "o-", label=name)
    ax1.set(xlabel="noise level", ylabel="test accuracy", ylim=(-0.05, 1.05), title="utility")
    ax2.set(xlabel="noise level", ylabel=f"epsilon (eta={config['eta']})", title="privacy")
    ax3.set(xlabel="noise level", ylabel="DP-certified accuracy", ylim=(-0.05, 1.05),
            title=f"certified robustness (eta={config['eta']})")
    ax1.legend(fontsize=7)
    return [plots.save(fig, out_dir, "qdp_tradeoff")]


STUDY = Study(
    name="qdp-tradeoff",
    question="What does noise buy in privacy (epsilon) and certified radius, and what does it "
             "cost in accuracy?",
    fields=FIELDS, units=units, run_unit=run_unit, summarize=summarize, plot=plot, setup=setup)
