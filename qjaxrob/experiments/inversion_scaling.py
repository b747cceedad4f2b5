"""Study ``inversion-scaling``: how does gradient inversion against a federated VQC client
scale with qubit count and expressivity?

An honest-but-curious server sees the gradient one client shares for one example and
reconstructs the example by gradient matching (``qjr.attacks.invert``: vmapped random
restarts, L-BFGS or Adam, iDLG label inference). Each unit is one (encoding, qubits, depth,
re-uploading) configuration, run for ``seeds`` random models and inputs (``seed_row``: one
model from ``study_model``, one secret example, one attack); encodings are ``angle`` (one
RY feature per qubit) and ``fourier_tower`` (one feature on all qubits as RX(5^(k-1) gamma
x), the "inherent privacy" construction of Kumar et al., arXiv 2309.13002). Recorded per
unit: the success rate over seeds (every feature within ``tol`` modulo the encoding's
period), the fraction of restarts that succeed, restarts needed per success (``1 / rate``),
the attack's speed (restarts per second, compile excluded) and time to success. The claim
under test: the Fourier tower makes inversion no better than guessing from m = 3 qubits
(Kumar et al.) versus recovery whenever parameters >= unknowns (Papadopoulos et al., arXiv
2504.12806).
"""

from __future__ import annotations

import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from qjaxrob import attacks, qml
from qjaxrob.checks import check_key, check_positive_int, check_real
from qjaxrob.errors import ParameterError
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


def study_model(key, encoding: str, n_qubits: int, layers: int, reupload: int, dtype):
    """The study's client model: ``"angle"`` (one RY feature per qubit) or
    ``"fourier_tower"`` (one feature on every qubit) encoding, hardware-efficient ansatz of
    ``layers`` layers (one layer per re-uploading layer when ``reupload``), readout ``<Z_q>``
    of every wire through a trainable linear layer, two classes."""
    if encoding == "angle":
        enc = qml.angle_encoding(n_qubits)
    elif encoding == "fourier_tower":
        enc = qml.encodings.fourier_tower_encoding(1, n_qubits)
    else:
        raise ParameterError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    ansatz = qml.hardware_efficient(n_qubits, 1 if reupload else layers)
    return qml.VQC(key, enc, ansatz, 2, readout_wires=tuple(range(n_qubits)),
                   reupload=reupload, dtype=dtype)


def seed_row(key, encoding: str, n_qubits: int, layers: int, reupload: int, *, restarts: int,
             steps: int, tol: float, distance: str = "l2", optimizer: str = "lbfgs",
             dtype=jnp.complex128, slots: int | None = None, compile_first: bool = True,
             seed: int = 0) -> dict:
    """One random model and example (``key``), attacked by ``qjr.attacks.invert`` with
    ``restarts`` restarts. ``compile_first``: run once untimed first and report the compile
    time (``compile_s``), else ``compile_s = 0``.

    Returns the configuration, ``n_params``, ``n_equations`` (shared gradient entries),
    ``n_unknowns`` (features), ``label_ok``, ``success`` (best restart within ``tol`` of ``x``
    modulo the period, every feature), ``best_error``, ``fidelity`` of the encoded states,
    ``restart_success_rate`` (fraction of restarts within ``tol``), ``restarts_to_success``
    (``1 / rate``; ``inf`` if none), ``time_s`` (warm run), ``restarts_per_s``,
    ``time_to_success_s`` (warm time per restart that recovered ``x``), ``mean_steps``
    (objective evaluations per restart)."""
    k_model, k_x, k_y, k_inv = jax.random.split(key, 4)
    model = study_model(k_model, encoding, n_qubits, layers, reupload, dtype)
    period = qml.encodings.encoding_period(model.encoding)
    real = model.params.dtype
    x = jax.random.uniform(k_x, (model.encoding.n_features,), real) * jnp.asarray(period, real)
    y = jax.random.randint(k_y, (), 0, 2)
    grads = attacks.inversion.shared_gradient(model, x[None], y[None])

    def run():
        res = attacks.invert(model, grads, key=k_inv, restarts=restarts, steps=steps,
                             distance=distance, optimizer=optimizer, slots=slots)
        jax.block_until_ready(res.distances)
        return res

    if compile_first:
        t0 = time.perf_counter()
        run()
        first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = run()
    elapsed = time.perf_counter() - t0
    errs = np.asarray(jax.vmap(qml.encodings.circular_error, in_axes=(0, None, None))(
        res.xs[:, 0], x, period))
    ok = errs.max(axis=1) <= tol
    best_err = float(np.max(errs[int(jnp.argmin(res.distances))]))
    rate = float(ok.mean())
    return dict(
        encoding=encoding, n_qubits=n_qubits, layers=layers, reupload=reupload, seed=seed,
        n_features=model.encoding.n_features, n_params=int(model.params.size),
        n_equations=int(sum(np.size(a) for a in jax.tree_util.tree_leaves(
            eqx.filter(grads, eqx.is_array)))),
        n_unknowns=int(model.encoding.n_features), restarts=restarts, steps=steps,
        slots=slots, mean_steps=float(np.mean(np.asarray(res.steps_run))),
        distance=distance, optimizer=optimizer, tol=tol,
        label_ok=bool(int(res.label) == int(y)), success=bool(best_err <= tol),
        best_error=best_err, best_distance=float(res.distance),
        fidelity=float(qml.encodings.encoded_fidelity(model.encoding, res.x, x, dtype=dtype)),
        restart_success_rate=rate,
        restarts_to_success=(1.0 / rate) if rate > 0 else math.inf,
        time_s=elapsed, compile_s=max(first - elapsed, 0.0) if compile_first else 0.0,
        restarts_per_s=restarts / elapsed,
        time_to_success_s=(elapsed / restarts / rate) if rate > 0 else math.inf,
    )


def _seed_key(key, config_index: int, seed: int):
    return jax.random.fold_in(key, config_index * 10_007 + seed)


def inversion_scaling(qubits=(2, 3, 4, 5, 6, 7, 8), *, key, encodings=ENCODINGS,
                      layers=(2,), reupload=(0,), seeds: int = 3, restarts: int = 64,
                      steps: int = 200, tol: float = 1e-3, distance: str = "l2",
                      optimizer: str = "lbfgs", dtype=jnp.complex128, progress: bool = True,
                      on_row=None, slots: int | None = None) -> list:
    """The scaling table outside the study runner: ``seed_row`` for every encoding, qubit
    count, depth and re-uploading, ``seeds`` random models/inputs each, with a progress
    bar. Returns the rows; ``on_row(row)`` is called as each is ready. The compile time is
    measured on each configuration's first seed."""
    key = check_key(key, "inversion_scaling")
    seeds = check_positive_int(seeds, "seeds")
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    configs = [(e, n, lay, ru) for e in encodings for n in qubits for lay in layers
               for ru in reupload]
    rows = []
    with tqdm(total=len(configs) * seeds, disable=not progress, desc="inversion",
              unit="run") as bar:
        for ci, (enc_name, n, lay, ru) in enumerate(configs):
            for s in range(seeds):
                row = seed_row(_seed_key(key, ci, s), enc_name, n, lay, ru, restarts=restarts,
                               steps=steps, tol=tol, distance=distance, optimizer=optimizer,
                               dtype=dtype, slots=slots, compile_first=s == 0, seed=s)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
                bar.update(1)
    return rows


def run_unit(config, context, unit, key):
    rows = [seed_row(_seed_key(key, 0, s), unit["encoding"], unit["n_qubits"], unit["layers"],
                     unit["reupload"], restarts=config["restarts"], steps=config["steps"],
                     tol=config["tol"], distance=config["distance"],
                     optimizer=config["optimizer"], dtype=np.dtype(config["dtype"]),
                     slots=config["slots"] or None, compile_first=s == 0, seed=s)
            for s in range(config["seeds"])]
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
