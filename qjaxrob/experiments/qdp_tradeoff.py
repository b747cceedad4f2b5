"""Study ``qdp-tradeoff``: what does noise buy in privacy and certified robustness, and what
does it cost in accuracy?

A classifier whose class probabilities are measurement probabilities (``qml.make_vqc``
with ``readout="probs"``, ``post=False``: the setting of Du et al., PRR 3, 023153, 2021) is
trained noise-free with full-batch Adam on ``qml.data.teacher`` data. Each unit is one
noise model (``depolarizing`` on every wire, ``global_depolarizing``, ``random_rotation``)
swept over its levels by ``qjr.defenses.qdp_utility`` (one ``vmap`` over the levels: the
probabilities ``levels`` for the depolarizing channels, the angles ``sigmas`` in radians
for random rotations; the two are reported and plotted apart). ``placement`` says where
the one-wire channels act: ``"end"`` (after the classifier, Du et al.'s setting; for a
binary read-out this shrinks the margin between the class probabilities but never swaps
them, so accuracy cannot drop) or ``"each_layer"`` / ``"each_gate"`` (inside the ansatz,
where noise scrambles the computation and costs accuracy); the global channel always acts
at the end. Per level:
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
PLACEMENTS = ("end", "each_layer", "each_gate")

FIELDS = {
    "n_qubits": Field(4, "classifier qubits (= features)", quick=3, low=2, high=10),
    "layers": Field(3, "hardware-efficient ansatz depth", quick=2, low=1),
    "channels": Field(list(CHANNELS), "noise models", quick=["depolarizing", "random_rotation"],
                      choices=CHANNELS),
    "levels": Field([0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9],
                    "noise probabilities p of the depolarizing channels",
                    quick=[0.01, 0.05, 0.2, 0.5], low=0.0, high=1.0),
    "sigmas": Field([0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0],
                    "random_rotation angle spreads sigma (radians)",
                    quick=[0.1, 0.4, 1.0, 2.0], low=0.0),
    "placement": Field("each_layer", "where one-wire noise acts: after the classifier ('end', "
                       "never flips a binary prediction) or inside it", choices=PLACEMENTS),
    "rotation_axis": Field("x", "axis of the random_rotation noise", choices=("x", "y", "z")),
    "eta": Field(0.01, "trace-distance neighbourhood of the DP guarantee", low=0.0, high=1.0),
    "n_train": Field(512, "training examples", quick=64, low=2),
    "n_test": Field(256, "test examples", quick=192, low=1),
    "train_steps": Field(300, "full-batch Adam steps", quick=150, low=0),
    "learning_rate": Field(0.05, "Adam learning rate", quick=0.1, low=0.0),
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


def parameter(channel: str) -> str:
    """The name of a channel's noise level: ``"sigma"`` (radians) or ``"p"``."""
    return "sigma" if channel == "random_rotation" else "p"


def run_unit(config, ctx, unit, key):
    channel = unit["channel"]
    rotation = channel == "random_rotation"
    after = "end" if channel == "global_depolarizing" else config["placement"]
    rows = defenses.qdp_utility(ctx["model"], ctx["x"], ctx["y"], channel,
                                sorted(config["sigmas" if rotation else "levels"]),
                                eta=config["eta"], after=after,
                                axis=config["rotation_axis"] if rotation else None)
    return {"placement": after,
            "levels": [{k: v for k, v in r.items() if k not in ("channel", "eta")}
                       for r in rows]}


def summarize(config, records):
    return [{"channel": r["unit"]["channel"], "placement": r["result"]["placement"],
             "parameter": parameter(r["unit"]["channel"]), **lv} for r in records
            for lv in r["result"]["levels"]]


def plot(config, records, out_dir):
    """Accuracy against epsilon (the trade-off, one axis for every channel), then epsilon
    and certified accuracy against the noise level, in one panel per level kind (``p`` and
    ``sigma`` are never put on one axis)."""
    kinds = [k for k in ("p", "sigma") if any(parameter(r["unit"]["channel"]) == k
                                              for r in records)]
    fig, axes = plots.figure(1 + 2 * len(kinds), width=3.6)
    label = {"p": "noise probability p", "sigma": "rotation spread sigma (rad)"}
    for r in records:
        lv = r["result"]["levels"]
        name = f"{r['unit']['channel']} ({r['result']['placement']})"
        i = 1 + 2 * kinds.index(parameter(r["unit"]["channel"]))
        level = np.array([v["level"] for v in lv])
        eps = np.array([v["epsilon"] for v in lv])
        ok = np.isfinite(eps)
        axes[0].semilogx(eps[ok], np.array([v["accuracy"] for v in lv])[ok], "o-", label=name)
        axes[i].semilogy(level[ok], eps[ok], "o-", label=name)
        axes[i + 1].plot(level, [v["accuracy"] for v in lv], "o-", label=f"accuracy, {name}")
        axes[i + 1].plot(level, [v["certified_accuracy_dp"] for v in lv], "s--",
                         label=f"DP-certified, {name}")
    axes[0].set(xlabel=f"epsilon (eta={config['eta']})", ylabel="test accuracy",
                ylim=(-0.05, 1.05), title="utility vs privacy")
    axes[0].legend(fontsize=7)
    for j, kind in enumerate(kinds):
        axes[1 + 2 * j].set(xlabel=label[kind], ylabel=f"epsilon (eta={config['eta']})",
                            title="privacy")
        axes[2 + 2 * j].set(xlabel=label[kind], ylabel="accuracy", ylim=(-0.05, 1.05),
                            title=f"accuracy, certified (eta={config['eta']})")
        axes[2 + 2 * j].legend(fontsize=6)
    return [plots.save(fig, out_dir, "qdp_tradeoff")]


STUDY = Study(
    name="qdp-tradeoff",
    question="What does noise buy in privacy (epsilon) and certified radius, and what does it "
             "cost in accuracy?",
    fields=FIELDS, units=units, run_unit=run_unit, summarize=summarize, plot=plot, setup=setup)
