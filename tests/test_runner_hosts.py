"""Studies over several devices and processes: the units laid over 4 host devices (the
test session has 8: conftest sets ``--xla_force_host_platform_device_count=8``) and two
processes joined by ``jax.distributed.initialize`` on 127.0.0.1 give the results folder of
a one-device, one-process run (written once, by process 0); a killed process stops the
run with JAX's error and the same command resumes; inconsistent process settings raise."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qjaxrob import experiments
from qjaxrob.errors import ParameterError
from qjaxrob.experiments import runner

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--quick", "--set", "qubits=[2, 3]", "--set", "layers=[1, 2]", "--set",
        "n_samples=8", "--no-progress"]


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **kw)
    env.pop("XLA_FLAGS", None)
    env.update(kw)
    return env


def _cli(args, **env):
    return subprocess.Popen([sys.executable, "-m", "qjaxrob.cli", "run", "barren-plateaus",
                             *TINY, *args], cwd=ROOT, env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _records(folder):
    lines = (Path(folder) / "results.jsonl").read_text().splitlines()
    recs = [json.loads(ln) for ln in lines]
    for r in recs:
        r.pop("elapsed_s")
    return recs


def _same_folder(a, b):
    ra, rb = _records(a), _records(b)
    assert len({json.dumps(r["unit"], sort_keys=True) for r in ra}) == len(ra)  # once each
    assert sorted(ra, key=lambda r: json.dumps(r["unit"])) == \
        sorted(rb, key=lambda r: json.dumps(r["unit"]))
    for name in ("config.toml", "summary.csv"):
        assert (Path(a) / name).read_text() == (Path(b) / name).read_text()


STUDY = experiments.get_study("barren-plateaus")
CONFIG = experiments.resolve(STUDY, quick=True, overrides=[
    "qubits=[2, 3]", "layers=[1, 2]", "n_samples=8"])


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "study"
    res = experiments.run(STUDY, CONFIG, out, progress=False, plots=False)
    assert res.complete and len(_records(out)) == 4
    return out


def test_units_over_four_host_devices_equal_one_device(one_device, tmp_path):
    import jax

    assert jax.local_device_count() >= 4
    out = tmp_path / "four"
    res = experiments.run(STUDY, CONFIG, out, progress=False, plots=False, devices=4)
    assert res.complete
    _same_folder(out, one_device)
    assert json.loads((out / "metadata.json").read_text())["unit_devices"] == 4
    # resuming with another device count continues the same folder
    (out / "results.jsonl").write_text(
        "".join((out / "results.jsonl").read_text().splitlines(keepends=True)[:1]))
    res = experiments.run(STUDY, CONFIG, out, progress=False, plots=False, devices=2)
    assert res.complete
    _same_folder(out, one_device)


def _two_processes(out, port, extra=()):
    return [_cli(["--out", str(out), "--coordinator", f"127.0.0.1:{port}",
                  "--num-processes", "2", "--process-id", str(i), *extra]) for i in (0, 1)]


def _finish(procs, timeout=300):
    try:
        return [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


@pytest.mark.slow
def test_two_processes_write_the_one_process_folder_once(one_device, tmp_path):
    out = tmp_path / "two"
    procs = _two_processes(out, _port())
    texts = _finish(procs)
    assert [p.returncode for p in procs] == [0, 0], texts
    assert "process 1: 2 units computed; process 0 writes" in texts[1]
    _same_folder(out, one_device)
    assert json.loads((out / "metadata.json").read_text())["processes"] == 2


@pytest.mark.slow
def test_killed_process_is_reported_and_the_rerun_resumes(one_device, tmp_path):
    out = tmp_path / "killed"
    procs = _two_processes(out, _port(), ["--heartbeat-timeout", "5"])
    try:
        deadline = time.monotonic() + 240
        results = out / "results.jsonl"
        while not (results.exists() and results.read_text().count("\n") >= 1):
            assert time.monotonic() < deadline, "no unit finished in time"
            assert procs[0].poll() is None, procs[0].communicate()[0]
            time.sleep(0.2)
        procs[1].kill()
        text0 = procs[0].communicate(timeout=120)[0]
    finally:
        _finish(procs, timeout=30)
    assert procs[0].returncode != 0
    assert "stopped sending heartbeats" in text0 or "another task died" in text0, text0[-2000:]
    done = len(_records(out))
    assert 1 <= done < 4
    procs = _two_processes(out, _port())
    texts = _finish(procs)
    assert [p.returncode for p in procs] == [0, 0], texts
    assert f"4 units, {done} already done, {4 - done} to run now" in texts[0]
    _same_folder(out, one_device)


@pytest.mark.parametrize("kwargs, env, match", [
    ({"num_processes": 2, "process_id": 2, "coordinator": "127.0.0.1:1"}, {},
     r"process_id must be in 0..1 \(num_processes = 2\), got 2"),
    ({"num_processes": 0, "process_id": 0}, {}, "num_processes must be an integer >= 1, got 0"),
    ({"num_processes": 2, "process_id": 0}, {}, "2 processes need a coordinator address"),
    ({"num_processes": 2}, {}, "needs the process count and the process id"),
    ({"num_processes": 2, "process_id": 0, "coordinator": "127.0.0.1:1"},
     {"QJAXROB_NUM_PROCESSES": "3"}, "inconsistent process count: 2 given, but "
                                     "QJAXROB_NUM_PROCESSES='3'"),
    ({}, {"QJAXROB_PROCESS_ID": "x"}, "QJAXROB_PROCESS_ID='x' is not an integer"),
])
def test_inconsistent_process_settings_raise(monkeypatch, kwargs, env, match):
    for k in (runner.ENV_COORDINATOR, runner.ENV_NUM_PROCESSES, runner.ENV_PROCESS_ID):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ParameterError, match=match):
        runner.init_distributed(**kwargs)


def test_single_process_settings_need_no_initialisation(monkeypatch):
    monkeypatch.setenv(runner.ENV_NUM_PROCESSES, "1")
    monkeypatch.setenv(runner.ENV_PROCESS_ID, "0")
    assert runner.init_distributed() == (0, 1)


@pytest.mark.parametrize("devices, match", [(0, "devices must be 'all' or an integer >= 1"),
                                            (10**6, r"devices = 1000000 exceeds the \d+ local devices")])
def test_bad_device_count_raises(tmp_path, devices, match):
    with pytest.raises(ParameterError, match=match):
        experiments.run(STUDY, CONFIG, tmp_path / "x", progress=False, devices=devices)


@pytest.mark.slow
def test_process_zero_failing_stops_the_others_with_its_error(tmp_path):
    out = tmp_path / "a_file"
    out.write_text("not a folder")
    procs = _two_processes(out, _port())
    texts = _finish(procs, timeout=200)
    assert procs[0].returncode == 1 and "qjaxrob: error:" in texts[0]
    assert procs[1].returncode == 1, texts[1][-2000:]
    assert "process 1: process 0 stopped: OutputError" in texts[1]


@pytest.mark.slow
def test_processes_started_with_different_counts_stop_with_a_clear_error(tmp_path):
    port = _port()
    args = ["--out", str(tmp_path / "s"), "--coordinator", f"127.0.0.1:{port}"]
    procs = [_cli([*args, "--num-processes", "2", "--process-id", "0"]),
             _cli([*args, "--num-processes", "3", "--process-id", "1"])]
    texts = _finish(procs, timeout=200)
    assert [p.returncode for p in procs] == [1, 1], texts
    told = "JAX reports process 1 of 2 (the coordinator's count), but this process was " \
           "started as 1 of 3"
    assert told in texts[1]
    assert f"process 0: process 1 stopped: ParameterError: {told}" in texts[0]


def test_each_unit_runs_on_its_device(tmp_path):
    import jax
    import jax.numpy as jnp

    def run_unit(config, context, unit, key):
        x = jax.jit(lambda a: a * unit["i"])(jnp.ones(2))
        return {"device": list(x.devices())[0].id, "key_device": list(key.devices())[0].id,
                "value": float(x[0])}

    toy = runner.Study("toy", "where do units run?", {},
                       lambda c: [{"i": i} for i in range(6)], run_unit,
                       lambda c, r: [], lambda c, r, o: [])
    devs = jax.local_devices()[:3]
    res = experiments.run(toy, {"seed": 0}, tmp_path / "toy", progress=False, plots=False,
                          devices=3)
    got = [r["result"] for r in res.records]
    assert [g["device"] for g in got] == [devs[i % 3].id for i in range(6)]
    assert [g["key_device"] for g in got] == [g["device"] for g in got]
    assert [g["value"] for g in got] == [float(i) for i in range(6)]
