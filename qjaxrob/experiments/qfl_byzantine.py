"""Study ``qfl-byzantine``: which aggregation rules keep quantum federated learning accurate
when a fraction of the clients is malicious, with and without differential privacy?

``n_clients`` clients hold IID shares (``qjr.federated.iid_split``) of ``qml.data.teacher``
data and train a shared ``qml.make_vqc`` classifier with FedAvg (``local_steps`` SGD steps
per round, every client in every round). ``round(fraction * n_clients)`` of them
(``qjr.attacks.byzantine.malicious_clients``) run one attack from
``qjr.attacks.byzantine``: ``sign_flip`` (send ``-scale * g``), ``gaussian`` (send
``N(0, scale^2 I)``), ``alie`` ("a little is enough"), ``ipm`` (inner-product
manipulation, ``epsilon = scale``) or ``label_flip`` (data poisoning). The server
aggregates with one rule of ``qjr.federated`` (``fedavg``, ``krum`` and ``multi_krum``
with ``f`` = the number of malicious clients, ``median``, ``trimmed_mean`` with
``beta = fraction``, ``norm_clip`` with ``tau``, ``geometric_median``), or, with ``dp``,
with client-level DP-FedAvg (``qjr.defenses.privacy.dp_fedavg``: clipping at ``tau`` plus
Gaussian noise, epsilon from ``dp-accounting``; it replaces the aggregation rule, so the DP
rows, aggregator ``"dp_fedavg"``, show what DP alone does against the attack). Each unit is
one (aggregator, attack, fraction) cell without DP, or one (attack, fraction) cell with
it: final test accuracy, attack success (test error for untargeted attacks, flipped-label
rate for label flipping) and epsilon. Expected: FedAvg collapses under
sign flipping while Krum and the median hold. The clients of a round are the batch axis
laid over the devices a unit is lent (``qjaxrob run --layout batch``).
"""

from __future__ import annotations

import jax
import numpy as np
import optax

from qjaxrob import federated, qml
from qjaxrob.devices import in_use
from qjaxrob.attacks import byzantine
from qjaxrob.defenses import privacy
from qjaxrob.errors import QjrError
from qjaxrob.experiments import plots
from qjaxrob.experiments.configs import Field
from qjaxrob.experiments.runner import Study

AGGREGATORS = ("fedavg", "krum", "multi_krum", "median", "trimmed_mean", "norm_clip",
               "geometric_median")
ATTACKS = ("sign_flip", "gaussian", "alie", "ipm", "label_flip")

FIELDS = {
    "aggregators": Field(list(AGGREGATORS), "server aggregation rules",
                         quick=["fedavg", "krum", "median"], choices=AGGREGATORS),
    "attacks": Field(list(ATTACKS), "malicious client behaviours", quick=["sign_flip"],
                     choices=ATTACKS),
    "fractions": Field([0.0, 0.1, 0.2, 0.3], "fraction of malicious clients",
                       quick=[0.0, 0.25], low=0.0, high=0.49),
    "dp": Field([False, True], "without / with client-level DP-FedAvg (replaces the rule)"),
    "n_qubits": Field(4, "classifier qubits (= features)", quick=2, low=1, high=12),
    "layers": Field(2, "hardware-efficient ansatz depth", low=1),
    "n_clients": Field(20, "clients (all take part in every round)", quick=8, low=3),
    "examples_per_client": Field(32, "training examples per client", quick=16, low=1),
    "n_test": Field(256, "test examples", quick=64, low=1),
    "rounds": Field(30, "federated rounds", quick=15, low=1),
    "local_steps": Field(5, "local SGD steps per round", low=1),
    "batch_size": Field(8, "examples per local step", low=1),
    "client_lr": Field(0.2, "client SGD learning rate", quick=0.5, low=0.0),
    "attack_scale": Field(4.0, "sign_flip scale / gaussian sigma / ipm epsilon", low=0.0),
    "tau": Field(1.0, "norm_clip threshold and DP clipping norm", low=0.0),
    "noise_multiplier": Field(0.5, "DP-FedAvg noise multiplier", low=0.0),
    "delta": Field(1e-5, "DP delta", low=0.0, high=1.0),
}


def _attack(name, scale, n_classes=2):
    """``(poison_updates, poison_data)`` for an attack name."""
    if name == "sign_flip":
        return byzantine.SignFlip(scale), None
    if name == "gaussian":
        return byzantine.GaussianNoise(scale), None
    if name == "alie":
        return byzantine.ALIE(), None
    if name == "ipm":
        return byzantine.IPM(scale), None
    return None, byzantine.LabelFlip(n_classes)


def _aggregator(name, f, n, beta, tau):
    kwargs = {"krum": {"f": f}, "multi_krum": {"f": f, "m": n - f},
              "trimmed_mean": {"beta": beta}, "norm_clip": {"tau": tau}}.get(name, {})
    return federated.aggregator(name, **kwargs)


def setup(config, key):
    n, c = config["n_qubits"], config["n_clients"]
    k_data, k_split, k_model = jax.random.split(key, 3)
    n_train = c * config["examples_per_client"]
    x, y = qml.data.teacher(k_data, n_train + config["n_test"], n_qubits=n)
    x = x.astype(np.float32)
    data = federated.stack_clients(x[:n_train], y[:n_train],
                                   federated.iid_split(k_split, n_train, c))
    model = qml.make_vqc(k_model, n_features=n, n_classes=2, layers=config["layers"])
    return {"data": data, "test": (x[n_train:], y[n_train:]), "model": model}


DP_AGGREGATOR = "dp_fedavg"


def units(config):
    """One unit per (aggregator, attack, fraction) without DP; with DP the rule is replaced
    by DP-FedAvg, so one unit per (attack, fraction), aggregator ``"dp_fedavg"``."""
    return [{"aggregator": a, "attack": t, "fraction": float(f), "dp": bool(d)}
            for d in config["dp"] for t in config["attacks"] for f in config["fractions"]
            for a in ([DP_AGGREGATOR] if d else config["aggregators"])]


def run_unit(config, ctx, unit, key):
    n = config["n_clients"]
    f = round(unit["fraction"] * n)
    k_mal, k_priv = jax.random.split(key)
    malicious = byzantine.malicious_clients(k_mal, n, f) if f else ()
    poison_updates, poison_data = _attack(unit["attack"], config["attack_scale"])
    extra = {}
    if unit["dp"]:
        extra["server_privacy"] = privacy.dp_fedavg(config["tau"], config["noise_multiplier"], n)
        extra["accountant"] = privacy.Accountant(config["noise_multiplier"], 1.0,
                                                 config["delta"])
    try:
        cfg = federated.FedConfig(
            clients_per_round=n, rounds=config["rounds"], local_steps=config["local_steps"],
            batch_size=config["batch_size"], client_optimizer=optax.sgd(config["client_lr"]),
            aggregator=(federated.aggregator("fedavg") if unit["dp"] else
                        _aggregator(unit["aggregator"], f, n, unit["fraction"], config["tau"])),
            malicious=malicious, poison_updates=poison_updates if f else None,
            poison_data=poison_data if f else None,
            attack_target=poison_data.target if (f and poison_data is not None) else None,
            seed=int(jax.random.randint(k_priv, (), 0, 2**30)),
            shard=len(in_use()) > 1, **extra)
        state = federated.init_state(ctx["model"], cfg)
        for _ in range(config["rounds"]):
            state, _ = federated.federated_round(state, ctx["data"], cfg)
    except QjrError as exc:  # a rule's precondition (e.g. Krum needs n > 2f + 2)
        return {"n_malicious": f, "error": str(exc)}
    m = federated.evaluate_round(state.model, ctx["test"], cfg, config["rounds"])
    return {"n_malicious": f, "accuracy": m["accuracy"], "loss": m["loss"],
            "attack_success": m["attack_success"], "epsilon": m["epsilon"]}


def summarize(config, records):
    return [{**r["unit"], **r["result"]} for r in records]


def plot(config, records, out_dir):
    fig, axes = plots.figure(len(config["attacks"]), width=3.6)
    rules = [a for a in config["aggregators"] if False in config["dp"]]
    rules += [DP_AGGREGATOR] if True in config["dp"] else []
    for ax, attack in zip(axes, config["attacks"]):
        for agg in rules:
            pts = sorted((r["unit"]["fraction"], r["result"]["accuracy"]) for r in records
                         if r["unit"]["attack"] == attack and r["unit"]["aggregator"] == agg
                         and "accuracy" in r["result"])
            if pts:
                ax.plot(*zip(*pts), "s--" if agg == DP_AGGREGATOR else "o-",
                        label="DP-FedAvg" if agg == DP_AGGREGATOR else agg)
        ax.set(xlabel="malicious fraction", ylabel="test accuracy", ylim=(-0.05, 1.05),
               title=attack)
    axes[0].legend(fontsize=7)
    return [plots.save(fig, out_dir, "qfl_byzantine")]


STUDY = Study(
    name="qfl-byzantine",
    question="Which aggregators keep quantum federated learning accurate against malicious "
             "clients, with and without DP?",
    fields=FIELDS, units=units, run_unit=run_unit, summarize=summarize, plot=plot, setup=setup)
