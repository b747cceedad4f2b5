"""Study ``inversion-scaling``: how does gradient inversion against a federated VQC client
scale with qubit count and expressivity?

An honest-but-curious server sees the gradient one client shares for one example and
reconstructs the example by gradient matching (``qjr.attacks.invert``: vmapped random
restarts, L-BFGS or Adam, iDLG label inference). Each unit is one (encoding, qubits, depth,
re-uploading) configuration, run for ``seeds`` random models and inputs by
``qjr.attacks.inversion_scaling``; encodings are ``angle`` (one RY feature per qubit) and
``fourier_tower`` (one feature on all qubits as RX(5^(k-1) gamma x), the "inherent
privacy" construction of Kumar et al., arXiv 2309.13002). Recorded per unit: the success
rate over seeds (every feature within ``tol`` modulo the encoding's period), the fraction
of restarts that succeed, restarts needed per success (``1 / rate``), the attack's speed
(restarts per second, compile excluded) and time to success. The claim under test: the
Fourier tower makes inversion no better than guessing from m = 3 qubits (Kumar et al.)
versus recovery whenever parameters >= unknowns (Papadopoulos et al., arXiv 2504.12806).
"""

from __future__ import annotations

import math

import numpy as np

from qjaxrob import attacks
from qjaxrob.experiments import plots
from qjaxrob.experiments.configs import Field
from qjaxrob.experiments.runner import Study

ENCODINGS = ("angle", "fourier_tower")

FIELDS = {
    "encodings": Field(list(ENCODINGS), "input encodings", choices=ENCODINGS),
    "qubits": Field([2, 3, 4, 5, 6, 8, 10, 12], "qubit counts", quick=[2, 3], low=1, high=24),
    "layers": Field([1, 2, 4], "hardware-efficient ansatz depths", quick=[1], low=1),
    "reupload": Field([0], "re-uploading layers (0: encode once)", low=0),
    "seeds": Field(10, "random models/inputs per configuration", quick=2, low=1),
    "restarts": Field(256, "vmapped random restarts per attack", quick=16, low=1),
    "steps": Field(300, "optimizer steps per restart", quick=60, low=1),
    "slots": Field(0, "pooled restarts: this many run at a time, each ending when it "
                      "matches or stalls (0: every restart runs all steps)", low=0),
    "tol": Field(1e-3, "success: every feature within tol (modulo period)", low=0.0),
    "distance": Field("l2", "gradient distance", choices=("l2", "cosine")),
    "optimizer": Field("lbfgs", "restart optimizer", choices=("lbfgs", "adam")),
    "dtype": Field("complex64", "simulation dtype (complex128 enables jax_enable_x64)",
                   choices=("complex64", "complex128")),
}


def units(config):
    return [{"encoding": e, "n_qubits": n, "layers": l, "reupload": r}
            for e in config["encodings"] for n in config["qubits"] for l in config["layers"]
            for r in config["reupload"]]


def _finite(v):
    return None if v is None or not math.isfinite(v) else v


def run_unit(config, context, unit, key):
    rows = attacks.inversion_scaling(
        qubits=(unit["n_qubits"],), key=key, encodings=(unit["encoding"],),
        layers=(unit["layers"],), reupload=(unit["reupload"],), seeds=config["seeds"],
        restarts=config["restarts"], steps=config["steps"], tol=config["tol"],
        distance=config["distance"], optimizer=config["optimizer"],
        dtype=np.dtype(config["dtype"]), progress=False, slots=config["slots"] or None)
    rate = float(np.mean([r["restart_success_rate"] for r in rows]))
    speed = float(np.median([r["restarts_per_s"] for r in rows]))
    return {
        "n_params": rows[0]["n_params"],
        "n_equations": rows[0]["n_equations"],
        "n_unknowns": rows[0]["n_unknowns"],
        "success_rate": float(np.mean([r["success"] for r in rows])),
        "label_accuracy": float(np.mean([r["label_ok"] for r in rows])),
        "restart_success_rate": rate,
        "restarts_to_success": (1.0 / rate) if rate > 0 else None,
        "median_best_error": float(np.median([r["best_error"] for r in rows])),
        "median_fidelity": float(np.median([r["fidelity"] for r in rows])),
        "restarts_per_s": speed,
        "mean_steps": float(np.mean([r["mean_steps"] for r in rows])),
        "time_to_success_s": (1.0 / (speed * rate)) if rate > 0 else None,
        "compile_s": rows[0]["compile_s"],
        "per_seed": [{k: (_finite(v) if isinstance(v, float) else v) for k, v in r.items()
                      if k in ("seed", "success", "best_error", "restart_success_rate",
                               "label_ok", "time_s")} for r in rows],
    }


def summarize(config, records):
    return [{**r["unit"], **{k: v for k, v in r["result"].items() if k != "per_seed"}}
            for r in records]


def plot(config, records, out_dir):
    fig, (ax1, ax2) = plots.figure(2)
    for enc, style in zip(ENCODINGS, ("o-", "s--")):
        for layers in config["layers"]:
            for ru in config["reupload"]:
                rs = sorted((r for r in records if r["unit"]["encoding"] == enc
                             and r["unit"]["layers"] == layers and r["unit"]["reupload"] == ru),
                            key=lambda r: r["unit"]["n_qubits"])
                if not rs:
                    continue
                n = [r["unit"]["n_qubits"] for r in rs]
                label = f"{enc}, L={layers}" + (f", reupload {ru}" if ru else "")
                ax1.plot(n, [r["result"]["restart_success_rate"] for r in rs], style,
                         label=label)
                ax2.plot(n, [r["result"]["time_to_success_s"] or np.nan for r in rs], style,
                         label=label)
    ax1.set(xlabel="qubits", ylabel="restarts that recover x", ylim=(-0.05, 1.05),
            title="gradient inversion success")
    ax2.set(xlabel="qubits", ylabel="seconds per successful recovery", yscale="log",
            title="attack cost")
    ax1.legend(fontsize=7)
    plots.integer_ticks(ax1)
    plots.integer_ticks(ax2)
    return [plots.save(fig, out_dir, "inversion_scaling")]


STUDY = Study(
    name="inversion-scaling",
    question="How do gradient-inversion success and cost scale with qubit count and "
             "expressivity (incl. the Fourier-tower encoding)?",
    fields=FIELDS, units=units, run_unit=run_unit, summarize=summarize, plot=plot)
