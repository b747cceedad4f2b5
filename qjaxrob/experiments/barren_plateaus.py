"""Study ``barren-plateaus``: how fast does the gradient variance vanish with qubits and depth,
for a global versus a local cost?

For each qubit count ``n`` and depth ``L`` (ansatz layers) the study draws ``n_samples``
parameter vectors ``theta ~ U[0, 2pi)^P`` and computes, from ONE simulation per draw
(``qjr.probs``), the gradients of both reference costs of Cerezo et al. (Nat. Commun. 12,
1791, 2021), as defined in ``qjr.qml.landscape``:

* global ``C_G = 1 - P(0...0)``; local ``C_L = (1/2)(1 - (1/n) sum_q <Z_q>)``.

It records ``Var[dC/dtheta_k]`` (``qml.landscape.gradient_variance``, sample variance,
ddof=1) averaged over all parameters and for the first parameter, and fits per cost and
depth both decay laws (``qml.fit_decay``): exponential, ``log Var = slope * n +
intercept`` (McClean et al., Nat. Commun. 9, 4812, 2018), and power law, ``log Var =
exponent * log n + intercept``, each with its ``R^2``; ``better_fit`` names the law that
fits better. ``exp(slope)`` is the variance ratio per added qubit; a barren plateau is
exponential decay that stays as depth grows, while a shallow local cost decays only
polynomially (Cerezo et al.). The ansatz ``product_rx`` (one RX per qubit) has closed forms,
``Var[dC_G/dtheta_0] = (1/8)(3/8)^(n-1)`` and ``Var[dC_L/dtheta_0] = 1/(8 n^2)``.
"""

from __future__ import annotations

import numpy as np

import qjaxrob as qjr
from qjaxrob import qml
from qjaxrob.experiments import plots
from qjaxrob.experiments.configs import Field
from qjaxrob.experiments.runner import Study

COSTS = qml.landscape.COSTS  # ("global", "local")
ANSATZE = ("hardware_efficient", "strongly_entangling", "product_rx")

FIELDS = {
    "ansatz": Field("hardware_efficient", "trainable circuit family", choices=ANSATZE),
    "qubits": Field([2, 4, 6, 8, 10, 12, 14, 16], "qubit counts", quick=[2, 3, 4], low=1,
                    high=30),
    "layers": Field([1, 2, 4, 8, 16, 32], "ansatz depths (layers)", quick=[1, 4], low=1),
    "n_samples": Field(1000, "random parameter draws per (qubits, layers)", quick=200, low=2),
    "dtype": Field("complex64", "simulation dtype", choices=("complex64", "complex128")),
}


def build_ansatz(name: str, n: int, layers: int) -> qjr.Circuit:
    """The study's circuit family by name (``product_rx`` repeats one RX per qubit)."""
    if name == "product_rx":
        block = qjr.Circuit(n)
        for q in range(n):
            block = block.rx(q, qjr.param(q))
        return qjr.Circuit.repeat(block, layers)
    return getattr(qml, name)(n, layers)


def units(config):
    return [{"n_qubits": n, "layers": l} for l in config["layers"] for n in config["qubits"]]


def run_unit(config, context, unit, key):
    c = build_ansatz(config["ansatz"], unit["n_qubits"], unit["layers"])
    var = np.asarray(qml.landscape.gradient_variance(key, c, COSTS, config["n_samples"],
                                                     dtype=np.dtype(config["dtype"])),
                     np.float64)
    out = {"n_params": c.n_params}
    for i, cost in enumerate(COSTS):
        out[f"var_mean_{cost}"] = float(var[i].mean())
        out[f"var_first_{cost}"] = float(var[i, 0])
    return out


def decay_fits(pts) -> dict:
    """Both decay laws fitted to ``[(n, Var)]``: the exponential rate (``slope_per_qubit``,
    ``ratio_per_qubit = exp(slope)``), the power-law exponent, the ``R^2`` of ``log Var``
    of each, and ``better_fit`` (``"exp"`` or ``"power"``, the larger ``R^2``; ``None``
    with fewer than three sizes, where both fit exactly)."""
    row = dict.fromkeys(("slope_per_qubit", "ratio_per_qubit", "r2_exp", "power_exponent",
                         "r2_power", "better_fit"))
    if len(pts) < 2 or not all(v > 0 for _, v in pts):
        return row
    exp = qml.fit_decay(*zip(*pts), model="exp")
    power = qml.fit_decay(*zip(*pts), model="power")
    row.update(slope_per_qubit=exp.slope, ratio_per_qubit=float(np.exp(exp.slope)),
               r2_exp=exp.r_squared, power_exponent=power.slope, r2_power=power.r_squared)
    if len(pts) >= 3:
        row["better_fit"] = "exp" if exp.r_squared >= power.r_squared else "power"
    return row


def summarize(config, records):
    rows = []
    for cost in COSTS:
        for layers in config["layers"]:
            pts = sorted((r["unit"]["n_qubits"], r["result"][f"var_mean_{cost}"])
                         for r in records if r["unit"]["layers"] == layers)
            rows.append({"cost": cost, "layers": layers,
                         "qubits": " ".join(str(n) for n, _ in pts),
                         "var_min_qubits": pts[0][1] if pts else None,
                         "var_max_qubits": pts[-1][1] if pts else None, **decay_fits(pts)})
    return rows


def plot(config, records, out_dir):
    fig, (ax1, ax2) = plots.figure(2)
    colors = {}
    for cost, style in zip(COSTS, ("o-", "s--")):
        for layers in config["layers"]:
            pts = sorted((r["unit"]["n_qubits"], r["result"][f"var_mean_{cost}"])
                         for r in records if r["unit"]["layers"] == layers)
            if not pts:
                continue
            n, v = map(np.asarray, zip(*pts))
            line = ax1.semilogy(n, v, style, color=colors.get(layers),
                                label=f"{cost}, L={layers}")[0]
            colors[layers] = line.get_color()
    ax1.set(xlabel="qubits n", ylabel="Var[dC/dθ] (mean over θ_k)",
            title=f"{config['ansatz']}: variance vs qubits")
    ax1.legend(fontsize=7)
    for cost, style in zip(COSTS, ("o-", "s--")):
        for i, n in enumerate(config["qubits"]):
            pts = sorted((r["unit"]["layers"], r["result"][f"var_mean_{cost}"])
                         for r in records if r["unit"]["n_qubits"] == n)
            if len(pts) >= 1:
                layers, v = map(np.asarray, zip(*pts))
                ax2.semilogy(layers, v, style, color=f"C{i % 10}", label=f"{cost}, n={n}")
    ax2.set(xlabel="layers L", ylabel="Var[dC/dθ]", title="variance vs depth")
    ax2.legend(fontsize=7)
    plots.integer_ticks(ax1)
    plots.integer_ticks(ax2)
    return [plots.save(fig, out_dir, "barren_plateaus")]


STUDY = Study(
    name="barren-plateaus",
    question="How fast does the gradient variance vanish with qubits and depth, for global vs "
             "local costs?",
    fields=FIELDS, units=units, run_unit=run_unit, summarize=summarize, plot=plot)
