"""Study ``qfl-integrity``: do quantum-native integrity checks protect quantum federated
learning better than classical robust aggregation?

``n_clients`` clients hold IID shares of ``qml.data.teacher`` data and train a shared
``qml.make_vqc`` classifier with FedAvg (``local_steps`` plain-SGD steps per round, every
client in every round); ``n_malicious`` of them attack. Two kinds of units:

* **training** units, one per (attack, defense): attacks ``sign_flip`` (send
  ``-attack_scale * g``), ``alie`` (``mu - alie_z sigma``), ``ipm`` (``-ipm_epsilon *
  mean``), ``model_replacement`` (backdoored local training with a bit-flip circuit
  trigger, then the boost ``gamma = n_clients``, ``qjr.attacks.poisoning``),
  ``circuit_backdoor`` (the same trigger without boost) or ``none``; defenses: the
  classical aggregators ``fedavg``, ``krum`` (``f = n_malicious``), ``median``,
  ``fltrust`` (server root data of ``root_size`` examples), or a quantum-native check
  followed by FedAvg over the accepted updates: ``bound`` (each update must lie in the
  physical parameter-shift region, ``defenses.integrity.bounded_updates``) and ``audit``
  (each client is audited with probability ``audit_fraction`` per round on public data
  the server can recompute, ``defenses.integrity.audit``; a caught client is excluded
  from then on). Per round: test accuracy and backdoor success (triggered test inputs of
  other classes classified as the target). ``detection_rate`` / ``false_positive_rate``:
  the fraction of malicious / honest updates kept out of the aggregate by the check.
  ``attack_success_rate``: final backdoor success for the backdoor attacks, final test
  error for the others.
* **shot** units, check ``shot_consistency`` (``defenses.integrity.shot_consistency`` at
  level ``alpha``): ``n_records`` measurement records of the parameter-shift circuits of
  the initial model on a client's data, ``splits`` splits of ``shots`` shots, honest
  (``none``), ``exact_record`` (the exact means: a fabricated or exactly computed
  update), ``fewer_shots`` (a quarter of the shots, scaled up) and ``resampled_record``
  (fresh binomials around the exact means: shot noise exactly right, so the check cannot
  see it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from qjaxrob import federated, qml
from qjaxrob.attacks import byzantine, poisoning
from qjaxrob.defenses import integrity
from qjaxrob.devices import over
from qjaxrob.experiments import plots
from qjaxrob.experiments.configs import Field
from qjaxrob.experiments.runner import Study

DEFENSES = ("fedavg", "krum", "median", "fltrust", "bound", "audit")
ATTACKS = ("none", "sign_flip", "alie", "ipm", "model_replacement", "circuit_backdoor")
SHOT_ATTACKS = ("none", "exact_record", "fewer_shots", "resampled_record")
CHECKS = ("bound", "audit")
BACKDOORS = ("model_replacement", "circuit_backdoor")

FIELDS = {
    "defenses": Field(list(DEFENSES), "aggregators and quantum-native checks",
                      quick=["fedavg", "median", "bound", "audit"], choices=DEFENSES),
    "attacks": Field(list(ATTACKS), "malicious client behaviours",
                     quick=["none", "ipm", "model_replacement"], choices=ATTACKS),
    "shot_attacks": Field(list(SHOT_ATTACKS), "measurement records for shot_consistency",
                          choices=SHOT_ATTACKS),
    "n_malicious": Field(2, "malicious clients", quick=1, low=1),
    "n_qubits": Field(3, "classifier qubits (= features)", quick=2, low=1, high=10),
    "layers": Field(2, "hardware-efficient ansatz depth", quick=1, low=1),
    "n_clients": Field(10, "clients (all take part in every round)", quick=6, low=4),
    "examples_per_client": Field(32, "training examples per client", quick=16, low=2),
    "n_test": Field(256, "test examples", quick=96, low=2),
    "rounds": Field(20, "federated rounds", quick=10, low=1),
    "local_steps": Field(4, "local plain-SGD steps per round", low=1),
    "batch_size": Field(8, "examples per local step", low=1),
    "client_lr": Field(0.5, "client SGD learning rate", low=0.0),
    "attack_scale": Field(4.0, "sign_flip scale", low=0.0),
    "alie_z": Field(1.0, "ALIE z (mu - z sigma)"),
    "ipm_epsilon": Field(100.0, "IPM epsilon", low=0.0),
    "trigger_gate": Field("x", "circuit trigger Pauli after the encoding",
                          choices=("x", "y", "z")),
    "target": Field(0, "backdoor target class", low=0, high=1),
    "backdoor_fraction": Field(0.5, "fraction of a malicious client's data triggered",
                               low=0.0, high=1.0),
    "root_size": Field(16, "FLTrust server root examples", low=1),
    "audit_fraction": Field(0.3, "probability that a client's round is an audit", low=0.0,
                            high=1.0),
    "alpha": Field(0.05, "false-positive level of the shot-consistency check", low=1e-6,
                   high=0.5),
    "shots": Field(64, "shots per split of a measurement record", low=1),
    "splits": Field(4, "splits of a measurement record", low=2),
    "n_records": Field(200, "measurement records per shot unit", quick=100, low=1),
}


def setup(config, key):
    n, c = config["n_qubits"], config["n_clients"]
    k_data, k_split, k_model = jax.random.split(key, 3)
    n_train = c * config["examples_per_client"]
    n_pub = config["examples_per_client"] + config["root_size"]
    x, y = qml.data.teacher(k_data, n_train + n_pub + config["n_test"], n_qubits=n)
    x = x.astype(np.float32)
    data = federated.stack_clients(x[:n_train], y[:n_train],
                                   federated.iid_split(k_split, n_train, c))
    pub = slice(n_train, n_train + config["examples_per_client"])
    root = slice(pub.stop, n_train + n_pub)
    model = qml.make_vqc(k_model, n_features=n, n_classes=2, layers=config["layers"])
    backdoor = poisoning.CircuitBackdoor(model.encoding, wires=(n - 1,),
                                         target=config["target"], gate=config["trigger_gate"],
                                         fraction=config["backdoor_fraction"])
    return {"data": data, "test": (x[n_train + n_pub:], y[n_train + n_pub:]), "model": model,
            "public": (x[pub], y[pub]), "root": (x[root], y[root]), "backdoor": backdoor}


def units(config):
    train = [{"kind": "training", "attack": a, "check": d}
             for a in config["attacks"] for d in config["defenses"]]
    shot = [{"kind": "shot", "attack": a, "check": "shot_consistency"}
            for a in config["shot_attacks"]]
    return train + shot


def _attack(name, config, backdoor):
    """``(poison_updates, poison_data)``."""
    return {
        "none": (None, None),
        "sign_flip": (byzantine.SignFlip(config["attack_scale"]), None),
        "alie": (byzantine.ALIE(z=config["alie_z"]), None),
        "ipm": (byzantine.IPM(config["ipm_epsilon"]), None),
        "model_replacement": (poisoning.ModelReplacement(config["n_clients"]), backdoor),
        "circuit_backdoor": (None, backdoor),
    }[name]


def _config(config, unit, malicious, backdoor, seed):
    poison_updates, poison_data = _attack(unit["attack"], config, backdoor)
    rule = {"krum": ("krum", {"f": config["n_malicious"]}), "median": ("median", {}),
            "fltrust": ("fltrust", {})}.get(unit["check"], ("fedavg", {}))
    return federated.FedConfig(
        clients_per_round=config["n_clients"], rounds=config["rounds"],
        local_steps=config["local_steps"], batch_size=config["batch_size"],
        client_optimizer=optax.sgd(config["client_lr"]),
        aggregator=federated.aggregator(rule[0], **rule[1]),
        malicious=malicious if unit["attack"] != "none" else (),
        poison_updates=poison_updates, poison_data=poison_data,
        backdoor_trigger=backdoor.trigger, backdoor_target=backdoor.target, seed=seed)


def _client_arrays(data, ids):
    return data.x[ids], data.y[ids], data.counts[ids]


def _updates(model, plan, cfg, ids, x, y, counts, malicious):
    """The clients' jitted local updates, the client axis laid over the devices lent to
    the unit (``qjaxrob.devices.over``)."""
    return over(lambda *a: federated.local_updates(model, plan.client_key, *a,
                                                   cfg.client_spec),
                ids, x, y, counts, malicious, axis="clients")


def _replies(model, plan, cfg, x, y, counts, malicious):
    upd = _updates(model, plan, cfg, jnp.asarray(plan.ids), x, y, counts, malicious)
    return federated.poison(upd, plan, cfg)


def _train(config, ctx, unit, key):
    n = config["n_clients"]
    k_mal, k_seed, k_audit = jax.random.split(key, 3)
    malicious = byzantine.malicious_clients(k_mal, n, config["n_malicious"])
    cfg = _config(config, unit, malicious, ctx["backdoor"],
                  int(jax.random.randint(k_seed, (), 0, 2**30)))
    schedule = np.asarray(integrity.audit_schedule(k_audit, config["rounds"], n,
                                                   config["audit_fraction"]))
    data, model0 = ctx["data"], ctx["model"]
    px, py = (jnp.asarray(a) for a in ctx["public"])
    pub = (jnp.broadcast_to(px, (n,) + px.shape), jnp.broadcast_to(py, (n,) + py.shape),
           jnp.full((n,), px.shape[0], data.counts.dtype))
    state = federated.init_state(model0, cfg)
    banned = np.zeros(n, bool)
    kept = {True: [0, 0], False: [0, 0]}  # malicious? -> [rejected, submitted]
    acc, bd = [], []
    for r in range(config["rounds"]):
        plan = federated.plan_round(state, n, cfg)
        ids = jnp.asarray(plan.ids)
        mal = jnp.asarray(plan.malicious)
        x, y, counts = _client_arrays(data, ids)
        updates = _replies(state.model, plan, cfg, x, y, counts, mal)
        accept = ~banned[plan.ids]
        if unit["check"] == "bound":
            accept &= ~np.asarray(integrity.bounded_updates(
                updates, state.model, lr=config["client_lr"], steps=config["local_steps"]).reject)
        if unit["check"] == "audit" and schedule[r][plan.ids].any():
            replies = _replies(state.model, plan, cfg, *pub, mal)
            honest = _updates(state.model, plan, cfg, ids, *pub, jnp.zeros_like(mal))
            caught = np.asarray(jax.vmap(
                lambda a, b: integrity.audit(a, b[None], config["alpha"]).reject)(replies, honest))
            banned[plan.ids[caught & schedule[r][plan.ids]]] = True
            accept &= ~banned[plan.ids]
        for m in (True, False):
            sel = plan.malicious == m
            kept[m][0] += int(np.sum(~accept & sel))
            kept[m][1] += int(np.sum(sel))
        g0 = None
        if unit["check"] == "fltrust":
            rx, ry = (jnp.asarray(a) for a in ctx["root"])
            g0 = federated.local_updates(state.model, plan.client_key, jnp.asarray([n]),
                                         rx[None], ry[None], jnp.asarray([rx.shape[0]]),
                                         jnp.asarray([False]), cfg.client_spec)[0]
        if accept.any():
            w = np.asarray(counts) * accept
            state, _ = federated.server_update(state, plan, updates, w, cfg, g0)
        else:  # every update rejected: the global model stays
            state = state._replace(key=plan.next_key, round=state.round + 1)
        m = federated.evaluate_round(state.model, ctx["test"], cfg, r + 1)
        acc.append(m["accuracy"])
        bd.append(m["backdoor_success"])
    rate = lambda m: kept[m][0] / kept[m][1] if kept[m][1] else None  # noqa: E731
    backdoor = unit["attack"] in BACKDOORS
    return {"accuracy": acc, "backdoor_success": bd, "clean_accuracy": acc[-1],
            "attack_success_rate": bd[-1] if backdoor else 1.0 - acc[-1],
            "detection_rate": rate(True) if unit["check"] in CHECKS else None,
            "false_positive_rate": rate(False) if unit["check"] in CHECKS else None,
            "banned": [int(i) for i in np.flatnonzero(banned)],
            "malicious": list(malicious)}


def _shot(config, ctx, unit, key):
    shots, splits, n = config["shots"], config["splits"], config["n_records"]
    x = ctx["data"].x[0, :ctx["data"].counts[0]]
    p = integrity.shift_probabilities(ctx["model"], x)
    keys = jax.random.split(key, n)
    honest = jax.vmap(lambda k: integrity.shot_record(k, p, shots, splits))
    if unit["attack"] == "exact_record":
        counts = jnp.broadcast_to(jnp.round(shots * p).astype(jnp.int32), (n, splits) + p.shape)
    elif unit["attack"] == "fewer_shots":
        few = max(1, shots // 4)
        counts = (shots // few) * jax.vmap(
            lambda k: integrity.shot_record(k, p, few, splits))(keys)
    else:  # none, resampled_record: binomial draws around the (true or chosen) means
        counts = honest(keys)
    rej = float(jnp.mean(integrity.shot_consistency(counts, shots, config["alpha"]).reject))
    honest_rate = rej if unit["attack"] == "none" else float(jnp.mean(
        integrity.shot_consistency(honest(jax.random.split(jax.random.fold_in(key, 1), n)),
                                   shots, config["alpha"]).reject))
    return {"detection_rate": None if unit["attack"] == "none" else rej,
            "false_positive_rate": honest_rate, "n_observables": int(p.shape[0]),
            "extra_numbers_per_observable": splits - 1}


def run_unit(config, ctx, unit, key):
    return (_train if unit["kind"] == "training" else _shot)(config, ctx, unit, key)


def summarize(config, records):
    rows = []
    for r in records:
        u, res = r["unit"], r["result"]
        rows.append({"kind": u["kind"], "attack": u["attack"], "check": u["check"],
                     "detection_rate": res.get("detection_rate"),
                     "false_positive_rate": res.get("false_positive_rate"),
                     "clean_accuracy": res.get("clean_accuracy"),
                     "attack_success_rate": res.get("attack_success_rate")})
    return rows


def plot(config, records, out_dir):
    train = [r for r in records if r["unit"]["kind"] == "training"]
    attacks = [a for a in config["attacks"] if any(r["unit"]["attack"] == a for r in train)]
    backdoors = [a for a in attacks if a in BACKDOORS]
    fig, axes = plots.figure(len(attacks) + len(backdoors) + 1, width=3.4)
    panels = [(a, "accuracy") for a in attacks] + [(a, "backdoor_success") for a in backdoors]
    for ax, (attack, key) in zip(axes, panels):
        for r in train:
            if r["unit"]["attack"] == attack:
                ys = r["result"][key]
                ax.plot(range(1, len(ys) + 1), ys, "o-", ms=3, label=r["unit"]["check"])
        ax.set(xlabel="round", ylabel=key.replace("_", " "), ylim=(-0.05, 1.05),
               title=attack)
        plots.integer_ticks(ax)
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    rows = [(f"{r['unit']['check']}\n{r['unit']['attack']}", r["result"])
            for r in records if r["result"].get("detection_rate") is not None
            or r["unit"]["kind"] == "shot"]
    pos = np.arange(len(rows))
    det = [res.get("detection_rate") or 0.0 for _, res in rows]
    fpr = [res.get("false_positive_rate") or 0.0 for _, res in rows]
    ax.bar(pos - 0.2, det, 0.4, label="detection rate")
    ax.bar(pos + 0.2, fpr, 0.4, label="false-positive rate")
    ax.set_xticks(pos, [lbl for lbl, _ in rows], fontsize=5, rotation=90)
    ax.set(ylim=(0, 1.05), title="checks")
    ax.legend(fontsize=7)
    return [plots.save(fig, out_dir, "qfl_integrity")]


STUDY = Study(
    name="qfl-integrity",
    question="Do quantum-native integrity checks protect quantum federated learning better "
             "than classical robust aggregation?",
    fields=FIELDS, units=units, run_unit=run_unit, summarize=summarize, plot=plot, setup=setup)
