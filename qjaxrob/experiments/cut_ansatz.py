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

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import qjaxrob as qjr
from qjaxrob import qml
from qjaxrob.experiments import plots
from qjaxrob.experiments.barren_plateaus import gradient_variances
from qjaxrob.experiments.configs import Field
from qjaxrob.experiments.runner import Study
from qjaxrob.qml.train import cross_entropy

ANSATZE = ("mps", "tree_tensor_network", "hardware_efficient", "strongly_entangling")

FIELDS = {
    "ansatze": Field(list(ANSATZE), "ansatz families compared", choices=ANSATZE),
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


@eqx.filter_jit
def _train_and_measure(model, circuit, x_tr, y_tr, x_te, y_te, key, steps, lr, n_samples):
    """Full-batch Adam training of ``model`` for ``steps`` steps (one ``lax.scan``), its train
    and test accuracy, and the gradient variances of ``circuit``: one compilation."""
    opt = optax.adam(lr)
    arrays, static = eqx.partition(model, eqx.is_inexact_array)

    def step(carry, _):
        arrays, state = carry
        g = jax.grad(lambda a: cross_entropy(eqx.combine(a, static), x_tr, y_tr))(arrays)
        u, state = opt.update(g, state, arrays)
        return (optax.apply_updates(arrays, u), state), None

    (arrays, _), _ = jax.lax.scan(step, (arrays, opt.init(arrays)), None, length=steps)
    trained = eqx.combine(arrays, static)

    def acc(x, y):
        return jnp.mean(jnp.argmax(jax.vmap(trained)(x), axis=-1) == y)

    var = gradient_variances(key, circuit, n_samples, jnp.complex64)
    return acc(x_tr, y_tr), acc(x_te, y_te), var


def run_unit(config, context, unit, key):
    name, n, layers = unit["ansatz"], unit["n_qubits"], unit["layers"]
    c = getattr(qml, name)(n, layers)
    cc = qjr.cutting.partition(qjr.cutting.find_cuts(c, max_fragment_qubits=math.ceil(n / 2)))
    k_var, k_data, k_model = jax.random.split(key, 3)
    x, y = qml.data.teacher(k_data, config["n_train"] + config["n_test"], n_qubits=n)
    x = x.astype(np.float32)
    tr, te = slice(0, config["n_train"]), slice(config["n_train"], None)
    model = qml.make_vqc(k_model, n_features=n, n_classes=2, ansatz=name, layers=layers)
    train_acc, test_acc, var = _train_and_measure(
        model, c, x[tr], y[tr], x[te], y[te], k_var, config["train_steps"],
        config["learning_rate"], config["n_samples"])
    var = np.asarray(var, np.float64)
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
        "train_accuracy": float(train_acc),
        "test_accuracy": float(test_acc),
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
