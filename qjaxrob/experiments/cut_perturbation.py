"""Study ``cut-perturbation``: how far can an adversary controlling one fragment's prepared
inputs move a wire-cut classifier, and does it look any different from an honest circuit?

The classifier (``n`` qubits, ``k = n // 2``): ``RY(x_q)`` angle encoding on every wire;
block A (``layers`` x [RY on wires ``0..k``, CNOT chain ``0 -> ... -> k``]); a wire cut on
wire ``k``; block B (``layers`` x [RY on wires ``k..n-1``, CNOT chain ``k -> ... -> n-1``]);
logit ``w <Z_{n-1}> + b``. It is trained (optax Adam, full batch) on
``qml.data.teacher`` data, uncut, then partitioned with ``qjr.cutting.partition`` into
fragment A (wires ``0..k``) and fragment B (the fresh wire ``k`` plus ``k+1..n-1``).

The perturbation ``V = R_axis(s)`` is injected into fragment B's prepared inputs with
``qjr.cutting.perturb(cc, 0, V)`` (``V`` as a one-qubit circuit with a parameter, so all
strengths share one compilation). For every strength ``s`` the study records, over the test
set, the mean deviation ``|<Z>_V - <Z>|`` of the exact reconstruction and the prediction
flip rate, next to the same ``V`` inserted at the cut in the uncut circuit (the two agree:
a uniform fragment perturbation IS an honest circuit with one extra gate, see
``qjr.cutting.perturb``), and the *variance signature* of the QPD-sampling estimator
(``shots`` shots, ``repeats`` keys, on ``n_sampled`` test points): the empirical standard
deviation across keys, the mean reported standard error, and the estimates' mean offset
from the exact value in units of its standard error. The test points are the batch axis
laid over the devices a unit is lent (``qjaxrob run --layout batch``; ``qjaxrob.devices``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

import qjaxrob as qjr
from qjaxrob import qml
from qjaxrob.devices import over
from qjaxrob.experiments import plots
from qjaxrob.experiments.configs import Field
from qjaxrob.experiments.runner import Study

FIELDS = {
    "n_qubits": Field(8, "classifier qubits (the cut wire is n // 2)", quick=4, low=3, high=24),
    "layers": Field(3, "layers of each block (A before the cut, B after it)", quick=1, low=1),
    "n_train": Field(512, "training examples (qml.data.teacher)", quick=64, low=2),
    "n_test": Field(512, "test examples", quick=64, low=1),
    "train_steps": Field(300, "full-batch Adam steps", quick=60, low=0),
    "learning_rate": Field(0.05, "Adam learning rate", low=0.0),
    "axis": Field("y", "rotation axis of V = R_axis(s)", choices=("x", "y", "z")),
    "strengths": Field([0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.14159],
                       "rotation angles s of V (radians)",
                       quick=[0.0, 0.25, 0.5, 1.0, 2.0], low=0.0, high=2 * np.pi),
    "shots": Field(10000, "shots per QPD-sampling estimate", quick=2000, low=2),
    "repeats": Field(32, "sampling estimates (keys) per test point", quick=8, low=2),
    "n_sampled": Field(32, "test points used for the sampling signature", quick=8, low=1),
    "dtype": Field("complex64", "simulation dtype", choices=("complex64", "complex128")),
}


def classifier(n: int, layers: int) -> tuple[qjr.Circuit, qjr.Circuit, qjr.Circuit]:
    """``(encoding + block A, block B, readout wire)``: the uncut classifier is
    ``head + tail``; the wire cut goes between them on wire ``n // 2``."""
    k = n // 2
    head = qjr.Circuit(n)
    for q in range(n):
        head = head.ry(q, qjr.inp(q))
    a = qjr.Circuit(n)
    for q in range(k + 1):
        a = a.ry(q, qjr.param(q))
    for q in range(k):
        a = a.cnot(q, q + 1)
    head = head + qjr.Circuit.repeat(a, layers)
    pa = layers * (k + 1)
    b = qjr.Circuit(n)
    for i, q in enumerate(range(k, n)):
        b = b.ry(q, qjr.param(i))
    for q in range(k, n - 1):
        b = b.cnot(q, q + 1)
    tail = qjr.Circuit.repeat(b, layers, param_offset=pa)
    return head, tail, n - 1


def _teacher_data(key, config):
    n_all = config["n_train"] + config["n_test"]
    x, y = qml.data.teacher(key, n_all, n_qubits=config["n_qubits"], layers=2)
    return x[: config["n_train"]], y[: config["n_train"]], x[config["n_train"]:], \
        y[config["n_train"]:]


def setup(config, key):
    """Trains the uncut classifier and builds the cut and uncut perturbed circuits."""
    n, dtype = config["n_qubits"], np.dtype(config["dtype"])
    real = np.finfo(dtype).dtype
    head, tail, out = classifier(n, config["layers"])
    circuit = head + tail
    obs = qjr.Z(out)
    k_data, k_init = jax.random.split(key)
    x_tr, y_tr, x_te, y_te = (jnp.asarray(a) for a in _teacher_data(k_data, config))
    x_tr, x_te = x_tr.astype(real), x_te.astype(real)

    def values(theta, xs):
        return jax.vmap(lambda xi: qjr.expval(circuit, obs, theta, xi, dtype=dtype))(xs)

    def loss(p, xs, ys):
        logits = p["w"] * values(p["theta"], xs) + p["b"]
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, ys.astype(real)))

    opt = optax.adam(config["learning_rate"])

    @jax.jit
    def train(p):
        def step(carry, _):
            p, s = carry
            g = jax.grad(loss)(p, x_tr, y_tr)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None
        return jax.lax.scan(step, (p, opt.init(p)), None, length=config["train_steps"])[0][0]

    p0 = {"theta": jax.random.uniform(k_init, (circuit.n_params,), real, -np.pi, np.pi),
          "w": jnp.asarray(-2.0, real), "b": jnp.asarray(0.0, real)}
    p = train(p0)
    m = circuit.n_params  # params[m] is the strength of V
    gate = "r" + config["axis"]
    v = qjr.Circuit(1).gate(gate, 0, qjr.param(m))
    cc = qjr.cutting.partition(head + qjr.Circuit(n).cut(n // 2) + tail)
    cc_v = qjr.cutting.perturb(cc, 0, v)
    uncut_v = head + qjr.Circuit(n).gate(gate, n // 2, qjr.param(m)) + tail
    f0 = values(p["theta"], x_te)
    return {"params": p, "cc_v": cc_v, "uncut_v": uncut_v, "obs": obs, "x": x_te,
            "y": np.asarray(y_te), "f0": np.asarray(f0), "dtype": dtype, "real": real,
            "train_acc": float(jnp.mean((p["w"] * values(p["theta"], x_tr) + p["b"] > 0)
                                        == (y_tr == 1)))}


@partial(jax.jit, static_argnames=("cc", "circuit", "obs", "dtype"))
def _exact(cc, circuit, obs, theta, xs, dtype):
    cut = jax.vmap(lambda xi: qjr.cutting.expval(cc, obs, theta, xi, dtype=dtype))(xs)
    uncut = jax.vmap(lambda xi: qjr.expval(circuit, obs, theta, xi, dtype=dtype))(xs)
    return cut, uncut


@partial(jax.jit, static_argnames=("cc", "obs", "dtype", "shots"))
def _sampled(cc, obs, theta, xs, keys, dtype, shots):
    """Estimates and standard errors, shape ``(n_points, repeats)`` each."""
    def one(xi, k):
        return qjr.cutting.expval(cc, obs, theta, xi, dtype=dtype, shots=shots, key=k,
                                  return_stderr=True)
    return jax.vmap(lambda xi: jax.vmap(lambda k: one(xi, k))(keys))(xs)


def units(config):
    return [{"strength": float(s)} for s in config["strengths"]]


def run_unit(config, ctx, unit, key):
    p = ctx["params"]
    theta = jnp.concatenate([p["theta"], jnp.asarray([unit["strength"]], ctx["real"])])
    cut, uncut = (np.asarray(a, np.float64) for a in over(
        lambda xs: _exact(ctx["cc_v"], ctx["uncut_v"], ctx["obs"], theta, xs, ctx["dtype"]),
        ctx["x"], axis="inputs"))
    w, b = float(p["w"]), float(p["b"])
    pred0 = w * ctx["f0"] + b > 0
    pred_cut, pred_uncut = w * cut + b > 0, w * uncut + b > 0
    n_s = min(config["n_sampled"], len(cut))
    keys = jax.random.split(key, config["repeats"])
    est, err = (np.asarray(a, np.float64) for a in over(
        lambda xs: _sampled(ctx["cc_v"], ctx["obs"], theta, xs, keys, ctx["dtype"],
                            config["shots"]), ctx["x"][:n_s], axis="inputs"))
    std = est.std(axis=1, ddof=1)
    offset = (est.mean(axis=1) - cut[:n_s]) / (std / np.sqrt(config["repeats"]))
    return {
        "deviation_cut": float(np.mean(np.abs(cut - ctx["f0"]))),
        "deviation_uncut": float(np.mean(np.abs(uncut - ctx["f0"]))),
        "max_cut_vs_uncut": float(np.max(np.abs(cut - uncut))),
        "flip_rate_cut": float(np.mean(pred_cut != pred0)),
        "flip_rate_uncut": float(np.mean(pred_uncut != pred0)),
        "accuracy_cut": float(np.mean(pred_cut == (ctx["y"] == 1))),
        "clean_accuracy": float(np.mean(pred0 == (ctx["y"] == 1))),
        "train_accuracy": ctx["train_acc"],
        "sampled_std": float(np.mean(std)),
        "stderr_mean": float(np.mean(err)),
        "sampled_offset_z_rms": float(np.sqrt(np.mean(offset**2))),
        "overhead": ctx["cc_v"].overhead,
    }


def summarize(config, records):
    keys = ("deviation_cut", "deviation_uncut", "max_cut_vs_uncut", "flip_rate_cut",
            "flip_rate_uncut", "accuracy_cut", "sampled_std", "stderr_mean",
            "sampled_offset_z_rms")
    return [{"strength": r["unit"]["strength"], **{k: r["result"][k] for k in keys}}
            for r in records]


def plot(config, records, out_dir):
    s = np.array([r["unit"]["strength"] for r in records])
    res = {k: np.array([r["result"][k] for r in records]) for k in records[0]["result"]}
    fig, (ax1, ax2, ax3) = plots.figure(3, width=3.8)
    ax1.plot(s, res["deviation_cut"], "o-", label="fragment perturbed (cut)")
    ax1.plot(s, res["deviation_uncut"], "x--", label="V inserted (uncut)")
    ax1.set(xlabel="strength s (rad)", ylabel="mean |<Z>_V - <Z>|", title="output deviation")
    ax1.legend(fontsize=7)
    ax2.plot(s, res["flip_rate_cut"], "o-", label="cut")
    ax2.plot(s, res["flip_rate_uncut"], "x--", label="uncut")
    ax2.set(xlabel="strength s (rad)", ylabel="prediction flip rate", title="flips")
    ax2.legend(fontsize=7)
    ax3.plot(s, res["sampled_std"], "o-", label="empirical std over keys")
    ax3.plot(s, res["stderr_mean"], "s--", label="reported std. error")
    ax3.set(xlabel="strength s (rad)", ylabel="std of estimate",
            title=f"QPD sampling, {config['shots']} shots")
    ax3.legend(fontsize=7)
    return [plots.save(fig, out_dir, "cut_perturbation")]


STUDY = Study(
    name="cut-perturbation",
    question="How far does a perturbation of one fragment's prepared inputs move a wire-cut "
             "classifier, and can its sampling statistics reveal it?",
    fields=FIELDS, units=units, run_unit=run_unit, summarize=summarize, plot=plot, setup=setup)
