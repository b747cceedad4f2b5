"""Faults in output folders, with real concurrent processes: a second writer is refused
while the first keeps going, a writer killed with SIGKILL leaves a stale lock that the next
run takes over, and damaged or foreign lines are refused. In every case nothing is accepted
silently and nothing is lost: after the remedy named in the error, the folder's results equal
an uninterrupted run's.

(Module-level faults live beside their modules: tests/test_storage.py (JSONL, checkpoints,
locks), test_federated_rounds.py, test_qml_train.py, test_experiments.py, test_cli.py.)
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qjaxrob import storage
from qjaxrob.errors import LockError, OutputError

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
WAIT_S = 180  # bound on every wait for another process

TOY = textwrap.dedent('''
    """A study whose unit ``TOY_BLOCK_AT`` waits for ``$TOY_GATE/release`` (after writing
    ``$TOY_GATE/ready``): a writer that holds its folder as long as a test needs."""
    import os, sys, time
    from pathlib import Path

    import jax
    import numpy as np

    from qjaxrob.experiments import Field, Study, runner

    def units(cfg):
        return [{"size": s} for s in cfg["sizes"]]

    def run_unit(cfg, ctx, unit, key):
        gate = os.environ.get("TOY_GATE")
        if gate and unit["size"] == int(os.environ["TOY_BLOCK_AT"]):
            Path(gate, "ready").write_text(str(os.getpid()))
            deadline = time.monotonic() + 120
            while not Path(gate, "release").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("never released")
                time.sleep(0.02)
        return {"value": float(np.asarray(jax.random.normal(key)))}

    def summarize(cfg, records):
        return [{"size": r["unit"]["size"], "value": r["result"]["value"]} for r in records]

    STUDY = Study("toy", "a toy?", {"sizes": Field([1, 2, 3, 4], "sizes", low=1)}, units,
                  run_unit, summarize, lambda cfg, records, out: [])
    CONFIG = {"sizes": [1, 2, 3, 4], "seed": 0}

    if __name__ == "__main__":
        runner.run(STUDY, CONFIG, sys.argv[1], progress=False, plots=False)
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy study module (importable here and by child processes)."""
    (tmp_path / "toystudy.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import toystudy
    return importlib.reload(toystudy)


def env_with(tmp_path, **extra):
    path = os.pathsep.join([str(tmp_path), str(ROOT), str(TESTS),
                            os.environ.get("PYTHONPATH", "")])
    # x64 as in this process (conftest), so both compute the same numbers
    return dict(os.environ, PYTHONPATH=path, JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1",
                XLA_FLAGS="--xla_force_host_platform_device_count=1", **extra)


def start_blocked(args, tmp_path, gate, **env):
    """Starts ``python args...`` whose writer blocks at the gate; returns it once it is there."""
    gate.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=env_with(tmp_path, TOY_GATE=str(gate), **env))
    deadline = time.monotonic() + WAIT_S
    while not (gate / "ready").exists():
        if proc.poll() is not None:
            pytest.fail(f"the first writer exited early:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the first writer never reached its gate")
        time.sleep(0.05)
    return proc


def finish(proc, gate):
    (gate / "release").write_text("")
    try:
        out, _ = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, out


def results(folder):
    return [json.loads(ln) for ln in (folder / "results.jsonl").read_text().splitlines()]


def strip(recs):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in recs]


def reference(toy, tmp_path):
    from qjaxrob.experiments import runner
    return strip(runner.run(toy.STUDY, toy.CONFIG, tmp_path / "ref", progress=False,
                            plots=False).records)


def test_a_second_qjaxrob_run_into_a_busy_folder_is_refused(toy, tmp_path):
    out, gate = tmp_path / "out", tmp_path / "gate"
    first = start_blocked(["-m", "toystudy", str(out)], tmp_path, gate, TOY_BLOCK_AT="3")
    try:
        lock = json.loads((out / storage.LOCK_FILE).read_text())
        assert lock["pid"] == first.pid
        second = subprocess.run(
            [sys.executable, "-m", "qjaxrob.cli", "run", "barren-plateaus", "--quick",
             "--out", str(out), "--no-progress"], cwd=ROOT, capture_output=True, text=True,
            timeout=WAIT_S, env=env_with(tmp_path))
        assert second.returncode == 1, second.stderr
        err = second.stderr.strip()
        assert "Traceback" not in err and "\n" not in err
        assert err.startswith(f"qjaxrob: error: study folder {str(out)!r} is in use by "
                              f"another writer (pid {first.pid} on host {lock['host']}")
        with pytest.raises(LockError, match=f"pid {first.pid}"):  # and in-process
            toy.runner.run(toy.STUDY, toy.CONFIG, out, progress=False)
    finally:
        finish(first, gate)
    # the first writer was not disturbed: every unit once, as in an uninterrupted run
    assert strip(results(out)) == reference(toy, tmp_path)
    assert not (out / storage.LOCK_FILE).exists()


def test_a_killed_writer_leaves_a_stale_lock_that_is_taken_over(toy, tmp_path):
    out, gate = tmp_path / "out", tmp_path / "gate"
    first = start_blocked(["-m", "toystudy", str(out)], tmp_path, gate, TOY_BLOCK_AT="3")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=WAIT_S)
    stale = json.loads((out / storage.LOCK_FILE).read_text())
    assert stale["pid"] == first.pid  # left behind by the dead process
    assert [r["unit"]["size"] for r in results(out)] == [1, 2]
    res = toy.runner.run(toy.STUDY, toy.CONFIG, out, progress=False, plots=False)
    assert res.complete and strip(res.records) == reference(toy, tmp_path)
    assert strip(results(out)) == strip(res.records)  # units 1, 2 kept, 3, 4 computed once
    assert not (out / storage.LOCK_FILE).exists()


FED = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path

    from test_federated_rounds import base_config, make_setup
    from qjaxrob import federated as fed

    def gate(state, info):
        if state.round == 1:
            Path(os.environ["TOY_GATE"], "ready").write_text(str(os.getpid()))
            deadline = time.monotonic() + 120
            while not Path(os.environ["TOY_GATE"], "release").exists():
                assert time.monotonic() < deadline, "never released"
                time.sleep(0.02)

    model, data, test = make_setup()
    fed.run(base_config(rounds=3), sys.argv[1], model=model, data=data, test=test,
            progress=False, on_round=gate)
''')


@pytest.mark.slow
def test_a_second_federated_run_into_a_busy_out_dir_is_refused(tmp_path):
    from test_federated_rounds import base_config, make_setup

    from qjaxrob import federated as fed

    (tmp_path / "fedwriter.py").write_text(FED)
    out, gate = tmp_path / "out", tmp_path / "gate"
    first = start_blocked([str(tmp_path / "fedwriter.py"), str(out)], tmp_path, gate)
    model, data, test = make_setup()
    cfg = base_config(rounds=3)
    try:
        with pytest.raises(LockError, match=rf"federated out_dir '.*out' is in use by another "
                                            rf"writer \(pid {first.pid} on host"):
            fed.run(cfg, out, model=model, data=data, test=test, progress=False)
    finally:
        finish(first, gate)
    # the first writer finished alone: rounds 1..3 once each; a rerun resumes to nothing new
    _, recs = fed.run(cfg, out, model=model, data=data, test=test, progress=False)
    assert [r["round"] for r in recs] == [1, 2, 3]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "metrics.jsonl"]


@pytest.mark.parametrize("fault", ["damaged", "foreign", "torn"])
def test_damaged_and_foreign_lines_are_refused_and_nothing_is_lost(toy, tmp_path, fault):
    """A damaged or foreign line stops the resume (naming file and line); removing it, as
    the message says, resumes to exactly the uninterrupted results. A torn last line (an
    interrupted write) is the one damage that is repaired silently: its unit is recomputed."""
    run = toy.runner.run
    out = tmp_path / "out"
    run(toy.STUDY, toy.CONFIG, out, progress=False, plots=False, max_units=2)
    path = out / "results.jsonl"
    good = path.read_text()
    if fault == "torn":
        path.write_text(good + '{"unit": {"size": 3}, "res')
    else:
        other = run(toy.STUDY, {**toy.CONFIG, "seed": 7}, tmp_path / "seed7", progress=False,
                    plots=False).records[2]
        line = '{"unit": {"size": 3}, "resu\x00' if fault == "damaged" else json.dumps(other)
        path.write_text(good + line + "\n")
        with pytest.raises(OutputError, match=r"results.jsonl' line 3 "
                                              + ("is damaged" if fault == "damaged"
                                                 else "belongs to another run")):
            run(toy.STUDY, toy.CONFIG, out, progress=False, plots=False)
        assert path.read_text().startswith(good)  # nothing rewritten
        path.write_text(good)  # the remedy: remove the line
    res = run(toy.STUDY, toy.CONFIG, out, progress=False, plots=False)
    assert strip(res.records) == reference(toy, tmp_path) == strip(results(out))
