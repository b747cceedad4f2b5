"""The qjaxrob command line: simulate (value, timings, memory guard), list/run/report over
the study runner, one-line errors with non-zero exit codes, help and version."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from reference import expval_ref

import qjaxrob as qjr
from qjaxrob.cli import main
from qjaxrob.experiments import barren_plateaus

TINY = ["--quick", "--set", "qubits=[2]", "--set", "layers=[1, 2]", "--set", "n_samples=8",
        "--no-progress"]


def test_simulate_reports_value_gradient_and_times(capsys):
    assert main(["simulate", "--qubits", "3", "--layers", "1", "--grad", "--repeats", "1",
                 "--dtype", "complex128"]) == 0
    out = capsys.readouterr().out
    assert "3 qubits, 1 layers, 6 params" in out
    # the configuration and a compiling line come before the results
    assert out.index("compiling...") < out.index("<Z0> =")
    assert re.search(r"first call \(trace \+ compile \+ run\): [\d.]+ ms", out)
    assert "gradient (backprop): 6 entries" in out
    # the printed value is the real <Z0> of the ansatz at the CLI's seeded parameters
    import jax
    import jax.numpy as jnp

    value = float(re.search(r"<Z0> = (-?[\d.]+)", out).group(1))
    params = jax.random.uniform(jax.random.split(jax.random.key(0))[0], (6,), jnp.float64,
                                -np.pi, np.pi)
    c = qjr.qml.hardware_efficient(3, 1)
    assert value == pytest.approx(expval_ref(c, qjr.Z(0), np.asarray(params)), abs=1e-9)


def test_simulate_batched(capsys):
    assert main(["simulate", "--qubits", "2", "--layers", "1", "--batch", "4", "--repeats", "1"]) == 0
    assert "mean <Z0> over 4 inputs" in capsys.readouterr().out


def test_simulate_memory_check_fails_before_allocating(capsys):
    assert main(["simulate", "--qubits", "40"]) == 1
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert "\n" not in err and "Traceback" not in err and "compiling" not in cap.out
    assert err.startswith("qjaxrob: error: ")
    assert "40 qubits" in err and "complex64" in err
    needed = 2 * 2**40 * 8
    assert f"{needed:,} bytes" in err and "available" in err


@pytest.mark.parametrize("argv, match", [
    (["simulate", "--qubits", "0"], "n_qubits=0"),
    (["run", "no-such-study"], "unknown study 'no-such-study'"),
    (["run", "barren-plateaus", "--set", "qubits=[0]"], "'qubits' (override) must be >= 1"),
    (["run", "barren-plateaus", "--set", "cost=local"], "unknown config key 'cost'"),
    (["run", "barren-plateaus", "--set", "n_samples=many"], "'n_samples' (override) must be an int"),
    (["report", "/nonexistent/folder"], "not a study output folder"),
    (["list", "nope"], "unknown study 'nope'"),
])
def test_errors_print_one_line_and_exit_1(capsys, argv, match):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("qjaxrob: error: ") and "\n" not in err and match in err


def test_usage_errors_exit_2(capsys):
    for argv in (["bogus"], ["simulate", "--repeats", "-1"], ["run"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    capsys.readouterr()


def test_help_is_plain_text_with_defaults_and_version(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "``" not in top and "qjaxrob run STUDY" in top
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    sim = capsys.readouterr().out
    sim = sim[sim.index("options:"):]
    for option in ("--qubits", "--layers", "--batch", "--grad", "--diff", "--dtype",
                   "--repeats", "--seed"):
        entry = sim[sim.index("  " + option):].split("\n  -")[0]
        assert "(default:" in entry, option
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "(default:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"qjaxrob {qjr.__version__}")


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(l.startswith("barren-plateaus ") and l.endswith("?") for l in out)
    assert main(["list", "barren-plateaus"]) == 0
    out = capsys.readouterr().out
    assert "n_samples = 1000; quick 200" in out and "seed = 0" in out


def test_run_report_and_resume(tmp_path, capsys):
    out = tmp_path / "bp"
    assert main(["run", "barren-plateaus", *TINY, "--out", str(out), "--max-units", "1"]) == 0
    text = capsys.readouterr().out
    # the resolved configuration and the compiling line are printed before any work
    assert "n_samples = 8" in text and "compiling" in text and "partial: 1 units" in text
    assert len((out / "results.jsonl").read_text().splitlines()) == 1
    assert main(["run", "barren-plateaus", *TINY, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 units, 1 already done, 1 to run now" in text
    assert "summary.csv" in text and "barren_plateaus.png" in text
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    (out / "summary.csv").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "summary.csv").exists() and "slope_per_qubit" in capsys.readouterr().out
    # the saved config.toml reproduces the run (nothing left to do)
    assert main(["run", "barren-plateaus", "--config", str(out / "config.toml"), "--out",
                 str(out), "--no-progress"]) == 0
    assert "2 units, 2 already done, 0 to run now" in capsys.readouterr().out
    # a different configuration into the same folder is refused in one line
    assert main(["run", "barren-plateaus", *TINY, "--seed", "5", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "seed: saved 0, now 5" in err and "\n" not in err.strip()


def test_ctrl_c_exits_130_and_the_folder_resumes(tmp_path, capsys, monkeypatch):
    study = barren_plateaus.STUDY
    calls = []

    def interrupted(config, context, unit, key):
        calls.append(unit)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return study.run_unit(config, context, unit, key)

    monkeypatch.setattr(barren_plateaus, "STUDY", study._replace(run_unit=interrupted))
    out = tmp_path / "bp"
    assert main(["run", "barren-plateaus", *TINY, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted: 1 finished units are saved" in err
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["sessions"][-1]["status"] == "interrupted"
    monkeypatch.setattr(barren_plateaus, "STUDY", study)
    assert main(["run", "barren-plateaus", *TINY, "--out", str(out)]) == 0
    lines = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    assert [r["unit"]["layers"] for r in lines] == [1, 2]


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("qjaxrob: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_unusable_paths_are_one_line_errors(tmp_path, capsys):
    blob = tmp_path / "blob.toml"
    blob.write_bytes(bytes(range(256)))
    run = ["run", "barren-plateaus", *TINY]
    cases = [
        (run + ["--out", str(blob)], f"output folder {str(blob)!r} is a file, not a folder"),
        (run + ["--out", str(blob / "sub")], f"{str(blob / 'sub')!r} cannot be created"),
        (run + ["--config", str(blob), "--out", str(tmp_path / "o")],
         f"--config {str(blob)!r} cannot be read: it is not UTF-8 text"),
        (run + ["--config", str(tmp_path), "--out", str(tmp_path / "o")],
         f"--config {str(tmp_path)!r} cannot be read: it is a folder"),
        (["simulate", "--layers", "0"], "--layers must be >= 1, got 0"),
        (["report", str(blob)], "holds no config.toml"),
    ]
    for argv, match in cases:
        assert match in one_line_error(capsys, argv)
    assert not (tmp_path / "o").exists()


def test_a_read_only_out_is_a_one_line_error(tmp_path, capsys):
    # root writes into a 0o500 folder, so as root the unwritable place is sysfs (EPERM even
    # for root); otherwise a folder without write permission
    if os.geteuid() == 0:
        out, reason = Path("/sys/qjaxrob-test-out"), "Operation not permitted"
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        out, reason = ro / "x", "Permission denied"
    err = one_line_error(capsys, ["run", "barren-plateaus", *TINY, "--out", str(out)])
    assert f"cannot be created: {reason}" in err


def test_damaged_folders_are_one_line_errors_that_say_what_to_do(tmp_path, capsys):
    out = tmp_path / "bp"
    argv = ["run", "barren-plateaus", *TINY, "--out", str(out)]
    assert main(argv + ["--max-units", "1"]) == 0
    capsys.readouterr()
    meta = out / "metadata.json"
    good_meta = meta.read_text()
    meta.write_text(good_meta[:40])  # cut short
    err = one_line_error(capsys, argv)
    assert f"{str(meta)!r} is damaged" in err and "delete metadata.json to resume" in err
    meta.unlink()  # what the message says: the folder resumes
    assert main(argv) == 0
    assert "2 units, 1 already done, 1 to run now" in capsys.readouterr().out
    results = out / "results.jsonl"
    lines = results.read_text().splitlines()
    rec = json.loads(lines[1])
    del rec["unit"]
    results.write_text(lines[0] + "\n" + json.dumps(rec) + "\n")
    for cmd in (["report", str(out)], argv):
        err = one_line_error(capsys, cmd)
        assert f"{str(results)!r} line 2 is not a study result" in err


@pytest.mark.slow
def test_run_over_two_devices_equals_one_device(tmp_path, capsys):
    runs = {}
    for name, extra in (("one", []), ("two", ["--devices", "2"]),
                        ("batch", ["--devices", "2", "--layout", "batch"])):
        out = tmp_path / name
        assert main(["run", "barren-plateaus", *TINY, "--out", str(out), *extra]) == 0
        lines = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
        runs[name] = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in lines]
    capsys.readouterr()
    assert runs["two"] == runs["one"] and len(runs["one"]) == 2
    # the gradient-variance draws over 2 devices: equal to rounding
    for a, b in zip(runs["one"], runs["batch"]):
        assert a["unit"] == b["unit"] and a["result"].keys() == b["result"].keys()
        for k, v in a["result"].items():
            assert b["result"][k] == pytest.approx(v, rel=1e-5, abs=1e-12), k


PROCESS_ENV = ("QJAXROB_COORDINATOR", "JAX_COORDINATOR_ADDRESS", "QJAXROB_NUM_PROCESSES",
               "QJAXROB_PROCESS_ID")


@pytest.mark.parametrize("argv, env, match", [
    (["--num-processes", "2", "--process-id", "5"], {},
     r"process_id must be in 0\.\.1 \(num_processes = 2\), got 5"),
    (["--num-processes", "2", "--process-id", "0", "--coordinator", "h:1"],
     {"QJAXROB_NUM_PROCESSES": "4"},
     "inconsistent process count: 2 given, but QJAXROB_NUM_PROCESSES='4'"),
    (["--num-processes", "3", "--process-id", "1"], {},
     "3 processes need a coordinator address"),
    (["--num-processes", "2", "--process-id", "1", "--coordinator", "localhost"], {},
     "the coordinator address must be HOST:PORT .*, got 'localhost'"),
    (["--num-processes", "2", "--process-id", "1"], {"JAX_COORDINATOR_ADDRESS": "h:99999"},
     "the coordinator address must be HOST:PORT .*, got 'h:99999'"),
    (["--coordinator", "h:1"], {"JAX_COORDINATOR_ADDRESS": "g:1"},
     "inconsistent coordinator: 'h:1' given, but JAX_COORDINATOR_ADDRESS='g:1'"),
    (["--num-processes", "2"], {}, ("needs the process count and the process id, got "
                                    "num_processes=2, process_id=None")),
    ([], {"QJAXROB_PROCESS_ID": "one"}, "QJAXROB_PROCESS_ID='one' is not an integer"),
])
def test_run_process_settings_are_usage_errors(tmp_path, capsys, monkeypatch, argv, env,
                                               match):
    for k in PROCESS_ENV:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "x"
    with pytest.raises(SystemExit) as exc:
        main(["run", "barren-plateaus", *TINY, "--out", str(out), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: qjaxrob run") and re.search(match, err), err
    assert not out.exists()  # refused before anything ran


def test_run_too_many_devices_exits_1(tmp_path, capsys, monkeypatch):
    for k in PROCESS_ENV:
        monkeypatch.delenv(k, raising=False)
    argv = ["run", "barren-plateaus", *TINY, "--out", str(tmp_path / "x"), "--devices",
            "1000000"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("qjaxrob: error: ") and "\n" not in err
    assert "devices = 1000000 exceeds the" in err


@pytest.mark.parametrize("argv", [["--devices", "0"], ["--layout", "rows"]])
def test_run_devices_usage_error_exits_2(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(["run", "barren-plateaus", *argv])
    assert exc.value.code == 2
    capsys.readouterr()
