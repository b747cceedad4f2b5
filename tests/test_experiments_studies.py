"""Every study's quick configuration end to end, with checks that its key numbers are
sane, then the study's notebook executed against that run (``study_runs``: one study run
serves both); plus closed-form and resume checks on a small barren-plateaus run."""

import importlib.util
import json
import re
from itertools import pairwise

import numpy as np
import pytest
from study_runs import execute_notebook, quick_run

from qjaxrob import experiments
from qjaxrob.experiments import configs, runner

pytestmark = pytest.mark.slow


def results(name, tmp_path):
    res = quick_run(name)
    if importlib.util.find_spec("nbclient") is not None:  # the notebooks extra
        outputs = execute_notebook(name, res.out_dir, tmp_path)
        text = "".join(o.get("text", "") for o in outputs)
        assert re.search(r"\d+ units, complete: True", text)
        assert any("image/png" in o.get("data", {}) for o in outputs)
        assert not any(o.get("output_type") == "error" for o in outputs)
    assert res.complete and res.records and res.summary
    assert all(p.exists() and p.stat().st_size > 5000 for p in res.plots) and res.plots
    lines = (res.out_dir / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(res.records)  # one line per unit, none repeated
    return {json.dumps(r["unit"], sort_keys=True): r["result"] for r in res.records}, res


def by(records, **match):
    return [v for k, v in records.items()
            if all(json.loads(k)[a] == b for a, b in match.items())]


def by_unit(records, **match):
    return [json.loads(k) for k in records if all(json.loads(k)[a] == b
                                                  for a, b in match.items())]


def test_barren_plateaus_quick(tmp_path):
    rec, res = results("barren-plateaus", tmp_path)
    cfg = configs.resolve(experiments.get_study("barren-plateaus"), quick=True)
    for layers in cfg["layers"]:
        glob = [by(rec, n_qubits=n, layers=layers)[0]["var_mean_global"] for n in cfg["qubits"]]
        assert all(a > b for a, b in pairwise(glob)), glob  # vanishes with qubits
    for row in res.summary:
        assert row["slope_per_qubit"] < 0 and row["power_exponent"] < 0
        assert 0 <= row["r2_exp"] <= 1 and 0 <= row["r2_power"] <= 1
        assert row["better_fit"] == ("exp" if row["r2_exp"] >= row["r2_power"] else "power")
    slope = {(r["cost"], r["layers"]): r["slope_per_qubit"] for r in res.summary}
    deep = max(cfg["layers"])
    assert slope[("local", deep)] > slope[("global", deep)]  # local costs decay slower


def test_barren_plateaus_summary_names_the_better_decay_law():
    """Summary of the product-RX closed forms (Cerezo et al. 2021): the global cost
    (1/8)(3/8)^(n-1) is exponential, the local cost 1/(8 n^2) a power law with exponent -2;
    the summary fits both laws to each and names the right one."""
    study = experiments.get_study("barren-plateaus")
    ns = [2, 4, 6, 8, 10]
    recs = [{"unit": {"n_qubits": n, "layers": 1},
             "result": {"var_mean_global": 0.125 * 0.375 ** (n - 1),
                        "var_mean_local": 1 / (8 * n**2)}} for n in ns]
    rows = {r["cost"]: r for r in study.summarize({"layers": [1]}, recs)}
    assert rows["global"]["better_fit"] == "exp" and rows["local"]["better_fit"] == "power"
    assert rows["global"]["slope_per_qubit"] == pytest.approx(np.log(0.375))
    assert rows["global"]["r2_exp"] == pytest.approx(1.0)
    assert rows["global"]["r2_power"] < 0.99
    assert rows["local"]["power_exponent"] == pytest.approx(-2.0)
    assert rows["local"]["r2_power"] == pytest.approx(1.0)
    assert rows["local"]["r2_exp"] < 0.99
    two = study.summarize({"layers": [1]}, recs[:2])  # two sizes: both laws fit exactly
    assert all(r["better_fit"] is None for r in two)


def test_barren_plateaus_closed_forms_and_resume(tmp_path):
    """Product-RX circuit: Var[dC_G/dθ_0] = (1/8)(3/8)^(n-1), Var[dC_L/dθ_0] = 1/(8 n^2)
    (Cerezo et al. 2021); a run stopped after one unit and resumed equals an uninterrupted
    one line for line."""
    study = experiments.get_study("barren-plateaus")
    cfg = configs.resolve(study, overrides={"ansatz": "product_rx", "qubits": [2, 3, 4],
                                            "layers": [1], "n_samples": 4000}, seed=11)
    full = runner.run(study, cfg, tmp_path / "full", progress=False, plots=False)
    for r in full.records:
        n = r["unit"]["n_qubits"]
        assert r["result"]["var_first_global"] == pytest.approx(0.125 * 0.375 ** (n - 1),
                                                                rel=0.15)
        assert r["result"]["var_first_local"] == pytest.approx(1 / (8 * n**2), rel=0.15)
    slope = next(s for s in full.summary if s["cost"] == "global")["slope_per_qubit"]
    assert slope == pytest.approx(np.log(0.375), abs=0.15)
    part = runner.run(study, cfg, tmp_path / "part", progress=False, plots=False, max_units=1)
    assert not part.complete
    again = runner.run(study, cfg, tmp_path / "part", progress=False, plots=False)
    strip = [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
             for line in (tmp_path / "part" / "results.jsonl").read_text().splitlines()]
    ref = [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
           for line in (tmp_path / "full" / "results.jsonl").read_text().splitlines()]
    assert again.complete and strip == ref


def test_cut_perturbation_quick(tmp_path):
    _, res = results("cut-perturbation", tmp_path)
    rows = sorted(res.summary, key=lambda r: r["strength"])
    dev = [r["deviation_cut"] for r in rows]
    assert rows[0]["strength"] == 0 and dev[0] < 1e-5 and rows[0]["flip_rate_cut"] == 0
    assert all(a < b for a, b in pairwise(dev)), dev  # grows with the strength
    assert rows[-1]["flip_rate_cut"] > 0.2
    for r in rows:
        # a uniform fragment perturbation equals the gate inserted in the uncut circuit
        assert r["max_cut_vs_uncut"] < 1e-4
        assert r["flip_rate_cut"] == r["flip_rate_uncut"]
        # the sampling estimator stays calibrated: its reported error matches the spread
        assert 0.5 < r["sampled_std"] / r["stderr_mean"] < 2.0
        assert r["sampled_offset_z_rms"] < 3.0


def test_cut_ansatz_quick(tmp_path):
    _, res = results("cut-ansatz", tmp_path)
    get = {r["ansatz"]: r for r in res.summary}
    for r in res.summary:
        assert r["gamma"] == pytest.approx(3.0 ** r["n_cuts"])
        assert r["sampling_cost"] == pytest.approx(r["gamma"] ** 2)
        assert r["grad_var_local"] > 0 and 0.6 < r["test_accuracy"] <= 1
    dense = [a for a in ("hardware_efficient", "strongly_entangling") if a in get]
    assert dense
    for cheap in ("mps", "tree_tensor_network"):
        for d in dense:
            assert get[cheap]["sampling_cost"] < get[d]["sampling_cost"]
    assert get["mps"]["grad_var_local"] > get["strongly_entangling"]["grad_var_local"]


def test_inversion_scaling_quick(tmp_path):
    rec, _ = results("inversion-scaling", tmp_path)
    for r in rec.values():
        assert 0 <= r["restart_success_rate"] <= 1 and r["restarts_per_s"] > 0
        assert r["label_accuracy"] == 1.0
    angle2 = by(rec, encoding="angle", n_qubits=2)[0]
    assert angle2["success_rate"] >= 0.5 and angle2["median_best_error"] < 1e-2


def test_inversion_scaling_pooled_slots(tmp_path):
    """``slots`` reaches the attack: pooled restarts end when they match or stall, so the
    mean restart is shorter than ``steps``; fixed restarts run all of them."""
    study = experiments.get_study("inversion-scaling")
    base = {"encodings": ["angle"], "qubits": [2], "layers": [1], "seeds": 1,
            "restarts": 8, "steps": 60}
    mean = {}
    for slots in (0, 4):
        cfg = configs.resolve(study, overrides={**base, "slots": slots}, seed=3)
        res = runner.run(study, cfg, tmp_path / f"s{slots}", progress=False, plots=False)
        mean[slots] = res.records[0]["result"]["mean_steps"]
    assert mean[0] >= 60 and 0 < mean[4] < 60, mean  # objective evaluations per restart


def test_evasion_scaling_quick(tmp_path):
    rec, _ = results("evasion-scaling", tmp_path)
    for r in rec.values():
        eps, acc = np.array(r["eps"]), np.array(r["robust_accuracy"])
        assert eps[0] == 0 and acc[0] == pytest.approx(r["clean_accuracy"])
        assert r["clean_accuracy"] > 0.6
        assert np.all(np.diff(acc) <= 2 / 64 + 1e-9)  # stronger budget, no better accuracy
        assert acc[-1] < acc[0]


def test_qdp_tradeoff_quick(tmp_path):
    """More noise buys privacy and certified radius and, with the noise inside the
    classifier, costs accuracy; probabilities and rotation spreads are kept apart."""
    rec, res = results("qdp-tradeoff", tmp_path)
    cfg = configs.resolve(experiments.get_study("qdp-tradeoff"), quick=True)
    for row in res.summary:
        want = (sorted(cfg["sigmas"]) if row["channel"] == "random_rotation"
                else sorted(cfg["levels"]))
        assert row["parameter"] == ("sigma" if row["channel"] == "random_rotation" else "p")
        assert row["level"] in want
    for r in rec.values():
        lv = r["levels"]
        assert lv[-1]["accuracy"] < lv[0]["accuracy"] - 0.05  # the accuracy cost shows
        eps = [v["epsilon"] for v in lv]
        assert all(a > b for a, b in pairwise(eps))  # more noise, more privacy
        # the DP radius first grows with the noise (kappa falls), until the noise inside
        # the circuit erases the margins it certifies
        assert lv[1]["mean_dp_radius"] > lv[0]["mean_dp_radius"]
        for v in lv:
            assert 0 <= v["certified_accuracy_dp"] <= v["accuracy"] <= 1


def test_qfl_byzantine_quick(tmp_path):
    rec, _ = results("qfl-byzantine", tmp_path)
    clean = by(rec, fraction=0.0)
    assert all(r["accuracy"] > 0.7 for r in clean)
    acc = {a: by(rec, fraction=0.25, aggregator=a, attack="sign_flip")[0]["accuracy"]
           for a in ("fedavg", "krum", "median")}
    assert acc["krum"] > acc["fedavg"] + 0.2 and acc["median"] > acc["fedavg"] + 0.2
    # the DP half: DP-FedAvg replaces the rule, one unit per (attack, fraction)
    dp = by(rec, dp=True)
    cfg = configs.resolve(experiments.get_study("qfl-byzantine"), quick=True)
    assert len(dp) == len(cfg["attacks"]) * len(cfg["fractions"])
    assert all(r["aggregator"] == "dp_fedavg" for r in by_unit(rec, dp=True))
    assert all(0 < r["epsilon"] < float("inf") for r in dp)
    assert all(r["epsilon"] is None for r in by(rec, dp=False))
