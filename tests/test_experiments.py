"""The study runner and configurations: TOML in and out, validation errors that name the key
and value, the output folder, resume after an interruption (no lost or repeated units)."""

import json

import numpy as np
import pytest

from qjaxrob import experiments
from qjaxrob.errors import OutputError, ParameterError, QjrTypeError
from qjaxrob.experiments import Field, Study, configs, runner
from qjaxrob.experiments.configs import tomllib  # tomli on Python 3.10

# ---- a tiny NumPy study: unit results are functions of the unit's key, so resume is checkable
FIELDS = {
    "sizes": Field([1, 2, 3, 4, 5], "sizes", quick=[1, 2], low=1, high=100),
    "scale": Field(1.5, "a scale", low=0.0),
    "mode": Field("a", "a mode", choices=("a", "b")),
    "flag": Field(False, "a flag"),
}


class Boom(RuntimeError):
    pass


def make_study(fail_at=None, calls=None):
    def units(cfg):
        return [{"size": s} for s in cfg["sizes"]]

    def setup(cfg, key):
        return {"offset": float(np.asarray(experiments.runner.jax.random.uniform(key)))}

    def run_unit(cfg, ctx, unit, key):
        if calls is not None:
            calls.append(unit["size"])
        if unit["size"] == fail_at:
            raise Boom(f"failing at {fail_at}")
        draw = np.asarray(experiments.runner.jax.random.normal(key, (unit["size"],)))
        return {"value": float(cfg["scale"] * draw.sum() + ctx["offset"]),
                "mode": cfg["mode"]}

    def summarize(cfg, records):
        return [{"size": r["unit"]["size"], "value": r["result"]["value"]} for r in records]

    def plot(cfg, records, out_dir):
        from qjaxrob.experiments import plots
        fig, (ax,) = plots.figure(1)
        ax.plot([r["unit"]["size"] for r in records], [r["result"]["value"] for r in records])
        return [plots.save(fig, out_dir, "toy")]

    return Study("toy", "a toy question?", FIELDS, units, run_unit, summarize, plot, setup)


def lines(path):
    text = (path / "results.jsonl").read_text()
    return [json.loads(l) for l in text.splitlines()]


def strip(recs):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in recs]


# ---- TOML ---------------------------------------------------------------------------------
def test_toml_writer_round_trips():
    cfg = {"a": 1, "b": -2.5e-7, "c": "x \"quoted\" \\ é\n", "d": True, "e": [1, 2, 3],
           "f": [0.1, 1e300], "g": ["p", "q"], "h": float("inf"), "i_j": 0.0}
    back = tomllib.loads(configs.dumps_toml(cfg, header="line one\nline two"))
    assert back == cfg


def test_toml_writer_rejects_nested_values():
    with pytest.raises(QjrTypeError, match="cannot write"):
        configs.dumps_toml({"a": {"b": 1}})


# ---- resolution and validation --------------------------------------------------------------
def test_resolve_layers_defaults_quick_file_overrides_seed(tmp_path):
    study = make_study()
    assert configs.resolve(study) == {"sizes": [1, 2, 3, 4, 5], "scale": 1.5, "mode": "a",
                                      "flag": False, "seed": 0}
    assert configs.resolve(study, quick=True)["sizes"] == [1, 2]
    f = tmp_path / "c.toml"
    f.write_text('study = "toy"\nscale = 2\nmode = "b"\n')
    cfg = configs.resolve(study, quick=True, file=f,
                          overrides=["sizes=[3, 4]", "mode=a", "flag=true"], seed=7)
    assert cfg == {"sizes": [3, 4], "scale": 2.0, "mode": "a", "flag": True, "seed": 7}
    assert isinstance(cfg["scale"], float)


@pytest.mark.parametrize("override, error, match", [
    ("sizess=[1]", ParameterError, r"unknown config key 'sizess'.*valid keys: flag, mode"),
    ("sizes=3", QjrTypeError, r"'sizes' \(override\) must be a non-empty list of ints, got 3"),
    ("sizes=[]", QjrTypeError, r"'sizes' \(override\) must be a non-empty list of ints"),
    ("sizes=[1, 2.5]", QjrTypeError, r"'sizes' \(override\) must be .*got 2.5"),
    ("sizes=[0, 2]", ParameterError, r"'sizes' \(override\) must be >= 1, got 0"),
    ("sizes=[2, 200]", ParameterError, r"'sizes' \(override\) must be <= 100, got 200"),
    ("scale=-1", ParameterError, r"'scale' \(override\) must be >= 0.0, got -1"),
    ("scale=big", QjrTypeError, r"'scale' \(override\) must be a number, got 'big'"),
    ("scale=nan", ParameterError, r"'scale' \(override\) must be finite"),
    ("mode=c", ParameterError, r"'mode' \(override\) must be one of 'a', 'b'; got 'c'"),
    ("flag=1", QjrTypeError, r"'flag' \(override\) must be a bool, got 1"),
    ("no_equals_sign", ParameterError, r"key=value, got 'no_equals_sign'"),
])
def test_bad_overrides_name_the_key_and_value(override, error, match):
    with pytest.raises(error, match=match):
        configs.resolve(make_study(), overrides=[override])


def test_bad_config_files(tmp_path):
    study = make_study()
    f = tmp_path / "c.toml"
    f.write_text("scale = 1\nunknown = 2\n")
    with pytest.raises(ParameterError, match=r"unknown config key 'unknown' in '.*c.toml'"):
        configs.resolve(study, file=f)
    f.write_text('study = "other"\n')
    with pytest.raises(ParameterError, match="is for study 'other', not 'toy'"):
        configs.resolve(study, file=f)
    f.write_text("[table]\na = 1\n")
    with pytest.raises(ParameterError, match="key 'table' is a table"):
        configs.resolve(study, file=f)
    f.write_text("scale = = 1\n")
    with pytest.raises(ParameterError, match="is not valid TOML"):
        configs.resolve(study, file=f)
    with pytest.raises(ParameterError, match="does not exist"):
        configs.resolve(study, file=tmp_path / "missing.toml")
    with pytest.raises(ParameterError, match="'seed' must be >= 0, got -1"):
        configs.resolve(study, seed=-1)


# ---- the output folder and resume ------------------------------------------------------------
def test_run_writes_the_output_folder(tmp_path):
    study = make_study()
    cfg = configs.resolve(study, seed=3)
    res = runner.run(study, cfg, tmp_path / "out", progress=False)
    out = tmp_path / "out"
    assert res.complete and len(res.records) == 5
    saved = tomllib.loads((out / "config.toml").read_text())
    assert saved == {"study": "toy", **cfg}
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["study"] == "toy" and meta["seed"] == 3 and meta["status"] == "complete"
    assert meta["units_total"] == meta["units_done"] == 5
    assert {"jax_version", "qjaxrob_version", "backend", "devices"} <= set(meta)
    assert meta["sessions"][0]["ended"] is not None
    assert [r["unit"]["size"] for r in lines(out)] == [1, 2, 3, 4, 5]
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert csv_lines[0] == "size,value" and len(csv_lines) == 6
    assert [p.name for p in res.plots] == ["toy.png"] and res.plots[0].stat().st_size > 1000
    # a different seed gives different values; the same seed the same (unit keys)
    other = runner.run(study, configs.resolve(study, seed=4), tmp_path / "o2", progress=False)
    assert [r["result"]["value"] for r in other.records] != \
        [r["result"]["value"] for r in res.records]
    # report rebuilds the summary and plots from results.jsonl alone
    (out / "summary.csv").unlink()
    (out / "toy.png").unlink()
    rep = runner.report(study, out)
    assert strip(rep.records) == strip(res.records) and (out / "summary.csv").exists()
    assert (out / "toy.png").exists()


def test_resume_after_a_failure_equals_an_uninterrupted_run(tmp_path):
    cfg = configs.resolve(make_study())
    full = runner.run(make_study(), cfg, tmp_path / "full", progress=False)
    with pytest.raises(Boom):
        runner.run(make_study(fail_at=4), cfg, tmp_path / "cut", progress=False)
    assert [r["unit"]["size"] for r in lines(tmp_path / "cut")] == [1, 2, 3]
    meta = json.loads((tmp_path / "cut" / "metadata.json").read_text())
    assert meta["sessions"][0]["status"] == "failed" and meta["units_done"] == 3
    calls = []
    again = runner.run(make_study(calls=calls), cfg, tmp_path / "cut", progress=False)
    assert calls == [4, 5]  # finished units are not redone
    assert strip(lines(tmp_path / "cut")) == strip(lines(tmp_path / "full"))
    assert strip(again.records) == strip(full.records)
    calls.clear()
    runner.run(make_study(calls=calls), cfg, tmp_path / "cut", progress=False)
    assert calls == [] and len(lines(tmp_path / "cut")) == 5  # nothing repeated


def test_max_units_and_a_partial_last_line(tmp_path):
    study, out = make_study(), tmp_path / "out"
    cfg = configs.resolve(study)
    res = runner.run(study, cfg, out, progress=False, max_units=2)
    assert not res.complete and len(res.records) == 2
    assert json.loads((out / "metadata.json").read_text())["status"] == "partial"
    with open(out / "results.jsonl", "a") as fh:  # a Ctrl-C in the middle of a write
        fh.write('{"unit": {"size": 3}, "resu')
    assert len(runner.load_results(out)) == 2
    res = runner.run(study, cfg, out, progress=False)
    full = runner.run(study, cfg, tmp_path / "full", progress=False)
    assert res.complete and strip(lines(out)) == strip(lines(tmp_path / "full"))
    assert strip(res.records) == strip(full.records)


def test_a_folder_with_another_config_is_refused(tmp_path):
    study = make_study()
    runner.run(study, configs.resolve(study, quick=True), tmp_path, progress=False)
    with pytest.raises(ParameterError, match=r"different configuration \(scale: saved 1.5, "
                                             r"now 2.0\); choose another --out"):
        runner.run(study, configs.resolve(study, quick=True, overrides=["scale=2"]), tmp_path,
                   progress=False)
    with pytest.raises(ParameterError, match="not a study output folder"):
        runner.load_config(tmp_path / "nothing")
    with pytest.raises(ParameterError, match="unknown study 'nope'; known studies: .*"
                                             "barren-plateaus"):
        experiments.get_study("nope")


def test_repeated_units_are_refused(tmp_path):
    study = make_study()
    with pytest.raises(ParameterError, match="repeated units"):
        runner.run(study, configs.resolve(study, overrides=["sizes=[2, 2]"]), tmp_path,
                   progress=False)


def test_every_study_config_resolves_and_round_trips(tmp_path):
    for name, study in experiments.studies().items():
        assert study.question.endswith("?") and name == study.name
        for quick in (False, True):
            cfg = configs.resolve(study, quick=quick)
            text = configs.dumps_toml({"study": name, **cfg})
            f = tmp_path / f"{name}.toml"
            f.write_text(text)
            assert configs.resolve(study, file=f) == cfg
            assert len(study.units(cfg)) >= 1


# ---- integrity of results.jsonl ---------------------------------------------------------------
def test_lines_carry_the_fingerprint_of_study_config_and_seed(tmp_path):
    study = make_study()
    cfg = configs.resolve(study, quick=True)
    res = runner.run(study, cfg, tmp_path / "a", progress=False)
    fp = runner.fingerprint("toy", cfg)
    assert [r["fingerprint"] for r in lines(tmp_path / "a")] == [fp, fp]
    assert [r["fingerprint"] for r in res.records] == [fp, fp]
    # the canonical JSON's SHA-256, and a function of every key, the seed and the study
    text = json.dumps({"study": "toy", **cfg}, sort_keys=True, separators=(",", ":"))
    assert fp == __import__("hashlib").sha256(text.encode()).hexdigest()[:16]
    others = {runner.fingerprint("toy", {**cfg, "seed": 7}),
              runner.fingerprint("toy", {**cfg, "scale": 1.25}),
              runner.fingerprint("toy", {**cfg, "sizes": [2, 1]}),
              runner.fingerprint("other", cfg)}
    assert fp not in others and len(others) == 4
    # a config read back from the folder (TOML) gives the same fingerprint
    assert runner.fingerprint(*runner.load_config(tmp_path / "a")) == fp


def test_a_foreign_line_is_refused_naming_file_and_line(tmp_path):
    study = make_study()
    cfg = configs.resolve(study)
    runner.run(study, cfg, tmp_path / "mine", progress=False, max_units=3)
    runner.run(study, configs.resolve(study, seed=7), tmp_path / "seed7", progress=False)
    mine = tmp_path / "mine" / "results.jsonl"
    before = mine.read_text()
    pasted = (tmp_path / "seed7" / "results.jsonl").read_text().splitlines()[3]  # unit 4
    mine.write_text(before + pasted + "\n")
    summary = (tmp_path / "mine" / "summary.csv").read_text()
    for call in (lambda: runner.run(study, cfg, tmp_path / "mine", progress=False),
                 lambda: runner.report(study, tmp_path / "mine")):
        with pytest.raises(OutputError, match=r"results.jsonl' line 4 belongs to another run "
                                              r"\(config fingerprint '[0-9a-f]{16}', this "
                                              r"run's is '[0-9a-f]{16}'"):
            call()
    assert (tmp_path / "mine" / "summary.csv").read_text() == summary  # nothing accepted
    mine.write_text(before)  # the line removed: the unit is computed for this run
    full = runner.run(study, cfg, tmp_path / "mine", progress=False)
    assert strip(full.records) == strip(runner.run(study, cfg, tmp_path / "ref",
                                                   progress=False).records)


@pytest.mark.parametrize("edit, match", [
    (lambda ls: ls + [ls[0]], r"line 3 repeats the unit \{\"size\":1\} of line 1"),
    (lambda ls: [ls[0], "{not json", ls[1]], r"line 2 is damaged"),
    (lambda ls: ls + [ls[0].replace('"size": 1', '"size": 9')],
     r"line 3 holds the unit \{\"size\":9\}, which this configuration does not have"),
    (lambda ls: ls + ['{"result": 1, "fingerprint": "x"}'], r"line 3 is not a study result"),
])
def test_damaged_repeated_or_unknown_lines_are_refused(tmp_path, edit, match):
    study = make_study()
    cfg = configs.resolve(study, quick=True)
    runner.run(study, cfg, tmp_path, progress=False)
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    for call in (lambda: runner.run(study, cfg, tmp_path, progress=False),
                 lambda: runner.report(study, tmp_path)):
        with pytest.raises(OutputError, match=match):
            call()


def test_an_old_folder_without_fingerprints_is_reported_not_resumed(tmp_path):
    study = make_study()
    cfg = configs.resolve(study, quick=True)
    res = runner.run(study, cfg, tmp_path, progress=False)
    path = tmp_path / "results.jsonl"
    old = [{k: v for k, v in r.items() if k != "fingerprint"} for r in lines(tmp_path)]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    assert strip(runner.report(study, tmp_path).records) == \
        [{k: v for k, v in r.items() if k != "fingerprint"} for r in strip(res.records)]
    with pytest.raises(OutputError, match=r"line 1 carries no config fingerprint \(written by "
                                          r"an older qjaxrob\).*qjaxrob report still reads"):
        runner.run(study, cfg, tmp_path, progress=False)


def test_plots_are_skipped_with_a_message_without_matplotlib(tmp_path, monkeypatch):
    study = make_study()
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    logged = []
    res = runner.run(study, configs.resolve(study, quick=True), tmp_path, progress=False,
                     log=logged.append)
    assert res.plots == [] and res.complete and (tmp_path / "summary.csv").exists()
    assert any("plots skipped: plotting needs matplotlib: pip install 'qjaxrob[plots]'" in m
               for m in logged)
