"""The ``cut-integrity`` study's quick configuration end to end: its summary's columns, every
check's false-positive rate within a binomial bound of its level, the detections the
checks' design predicts, "cannot see" where a check has no information, training curves;
then its notebook executed against the same run."""

import importlib.util
import re

import numpy as np
import pytest
from scipy.stats import binom
from study_runs import execute_notebook, quick_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run():
    return quick_run("cut-integrity")


def test_summary(run):
    cfg = run.summary
    assert run.complete and run.plots and all(p.stat().st_size > 5000 for p in run.plots)
    det = [r for r in cfg if r["kind"] == "detection"]
    train = [r for r in cfg if r["kind"] == "training"]
    for key in ("attack", "check", "detection_rate", "false_positive_rate", "cost"):
        assert all(key in r for r in det)
    for key in ("attack", "check", "clean_accuracy", "attack_success_rate"):
        assert all(key in r for r in train)
    assert {r["attack"] for r in det} == {"uniform", "term", "trigger", "bias", "reweight"}
    assert {r["check"] for r in det} == {"pair", "redundancy", "relabelling", "physicality"}
    # soundness: 2 inputs x 100 trials per row, all rows of one check and level pooled
    for check in ("pair", "redundancy", "relabelling", "physicality"):
        for alpha in {r["alpha"] for r in det}:
            rows = [r for r in det if r["check"] == check and r["alpha"] == alpha]
            n = 200 * len(rows)
            k = round(sum(r["false_positive_rate"] for r in rows) * 200)
            assert k <= binom.ppf(0.999, n, alpha), (check, alpha, k, n)

    def rate(attack, check, shots=2000, alpha=0.1):
        (row,) = [r for r in det if r["attack"] == attack and r["check"] == check
                  and r["shots"] == shots and r["alpha"] == alpha]
        return row

    # a uniform V: only redundancy sees it; the server's reweighting: no check sees it
    assert rate("uniform", "redundancy")["detection_rate"] >= 0.5
    for check in ("pair", "relabelling", "physicality"):
        assert rate("uniform", check)["visibility"] == "cannot see"
        assert rate("reweight", check)["visibility"] == "cannot see"
    # a term-dependent V_b at s = 1 is not CP: the physicality audit always catches it
    assert rate("term", "physicality")["detection_rate"] == 1.0
    assert rate("trigger", "physicality")["detection_rate"] == 0.5  # half the inputs stamped
    # a bias on |0>'s results breaks its pair sum; redundancy reruns 2 of the 6 entries
    assert rate("bias", "pair")["detection_rate"] >= 0.9
    # (flagged when the biased entry is rerun, probability 1/3, or by a false alarm, <= alpha)
    lo = binom.ppf(0.0005, 200, 0.3) / 200
    hi = binom.ppf(0.9995, 200, 1 / 3 + 0.01) / 200
    assert lo <= rate("bias", "redundancy", alpha=0.01)["detection_rate"] <= hi
    assert rate("bias", "physicality")["visibility"] == "cannot see"
    assert rate("term", "physicality")["cost"] == 3.0
    assert rate("term", "redundancy")["cost"] == pytest.approx(2 / 6)  # ceil(25% of 6 entries)
    # relabelling shrinks nothing for a uniform V (the same value under every secret)
    uni = rate("uniform", "relabelling")
    assert uni["shift_relabelled"] == pytest.approx(uni["shift_standard"], abs=1e-5)
    # training: the honest classifier learns; curves start at step 0
    none = [r for r in train if r["attack"] == "none"]
    assert none[0]["step"] == 0 and none[-1]["clean_accuracy"] > 0.55
    assert all(0 <= r["clean_accuracy"] <= 1 for r in train)
    assert all(np.isnan(r["attack_success_rate"]) or 0 <= r["attack_success_rate"] <= 1
               for r in train)


def test_notebook(run, tmp_path):
    if importlib.util.find_spec("nbclient") is None:
        pytest.skip("the notebooks extra is not installed")
    outputs = execute_notebook("cut-integrity", run.out_dir, tmp_path)
    text = "".join(o.get("text", "") for o in outputs)
    assert re.search(r"\d+ units, complete: True", text)
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not any(o.get("output_type") == "error" for o in outputs)
