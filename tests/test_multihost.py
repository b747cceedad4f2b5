"""A multi-host run whose writer dies: two processes joined by ``jax.distributed.initialize``
on 127.0.0.1 (through the CLI), process 0 killed after its first written unit. The
survivor stops at once with JAX's coordination-service error instead of waiting for
results that will not come; the folder keeps the units written so far, and a one-process
rerun of the same command resumes it into the folder of an uninterrupted run. (Process 1
killed, a failing process 0, and processes started with different counts:
tests/test_runner_hosts.py.)"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qjaxrob import experiments

ROOT = Path(__file__).resolve().parents[1]
SETS = ["qubits=[2, 3]", "layers=[1, 2]", "n_samples=8"]
ARGS = ["--quick", *(a for s in SETS for a in ("--set", s)), "--no-progress"]


def _cli(out, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for k in ("XLA_FLAGS", "QJAXROB_COORDINATOR", "JAX_COORDINATOR_ADDRESS",
              "QJAXROB_NUM_PROCESSES", "QJAXROB_PROCESS_ID"):
        env.pop(k, None)
    return subprocess.Popen([sys.executable, "-m", "qjaxrob.cli", "run", "barren-plateaus",
                             *ARGS, "--out", str(out), *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _records(folder):
    recs = [json.loads(ln) for ln in (Path(folder) / "results.jsonl").read_text().splitlines()]
    return sorted(({k: v for k, v in r.items() if k != "elapsed_s"} for r in recs),
                  key=lambda r: json.dumps(r["unit"], sort_keys=True))


@pytest.mark.slow
def test_the_writer_killed_stops_the_survivor_and_one_process_resumes(tmp_path):
    study = experiments.get_study("barren-plateaus")
    config = experiments.resolve(study, quick=True, overrides=SETS)
    experiments.run(study, config, tmp_path / "one", progress=False, plots=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "killed"
    procs = [_cli(out, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                  "--process-id", str(i), "--heartbeat-timeout", "5") for i in (0, 1)]
    try:
        results, deadline = out / "results.jsonl", time.monotonic() + 240
        while not (results.exists() and results.read_text().count("\n") >= 1):
            assert time.monotonic() < deadline, "no unit was written in time"
            assert procs[0].poll() is None, procs[0].communicate()[0][-2000:]
            time.sleep(0.1)
        procs[0].kill()
        text = procs[1].communicate(timeout=60)[0]  # a hang fails here, not forever
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert procs[1].returncode != 0
    assert "another task died" in text or "leader task was preempted/died" in text, \
        text[-2000:]
    done = len(_records(out))
    assert 1 <= done < 4
    rerun = _cli(out)
    text = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, text[-2000:]
    assert f"4 units, {done} already done, {4 - done} to run now" in text
    assert _records(out) == _records(tmp_path / "one")
    assert (out / "summary.csv").read_text() == (tmp_path / "one" / "summary.csv").read_text()
    sessions = json.loads((out / "metadata.json").read_text())["sessions"]
    assert [s["status"] for s in sessions] == ["running", "complete"]  # the killed one
