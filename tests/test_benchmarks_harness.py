"""The benchmark harness (benchmarks/harness.py): when repeated timing stops, what a timed
call returns, and the fresh-process runner's results and failures."""

import json

import jax
import jax.numpy as jnp
import pytest

from benchmarks import harness


class Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return jnp.asarray(x) + 1


@pytest.mark.parametrize("kw,calls", [
    ({"min_reps": 3}, 3),
    ({"min_reps": 2, "min_time": 1e9, "max_reps": 5}, 5),  # min_time unreachable: max_reps
    ({"min_reps": 7, "max_reps": 7, "budget_s": 0.0}, 1),  # budget spent: one call only
    ({"min_reps": 4, "max_reps": 4, "budget_s": 1e9}, 4),
])
def test_call_times_stopping_rules(kw, calls):
    f = Counter()
    times = harness.call_times(f, 1.0, **kw)
    assert f.calls == len(times) == calls and all(t >= 0 for t in times)


def test_median_time_warmup_and_timed_call():
    f = Counter()
    assert harness.median_time(f, 2.0, warmup=True, min_reps=3) >= 0
    assert f.calls == 4
    out, wall, cpu = harness.timed_call(f, 2.0)
    assert float(out) == 3.0 and wall >= 0 and cpu >= 0 and f.calls == 5


def test_enable_x64_gives_double_precision():
    was = jax.config.read("jax_enable_x64")
    try:
        harness.enable_x64()
        assert jnp.asarray(1.0).dtype == jnp.float64
    finally:
        jax.config.update("jax_enable_x64", was)


def test_run_fresh_returns_the_last_json_line_or_a_note(tmp_path):
    ok = harness.run_fresh(["-c", "print('noise'); print('{\"first_s\": 1.5}')"], timeout=60)
    assert ok == {"first_s": 1.5}
    bad = harness.run_fresh(["-c", "raise SystemExit('broken setup')"], timeout=60)
    assert bad["first_s"] is None and "broken setup" in bad["note"]
    slow = harness.run_fresh(["-c", "import time; time.sleep(30)"], timeout=0.5)
    assert slow == {"first_s": None, "note": "> 0.5 s (killed)"}
    env = harness.run_fresh(["-c", "import os, json; print(json.dumps({'v': os.environ['V']}))"],
                            timeout=60, env={"V": "7", "PATH": ""}, cwd=tmp_path)
    assert env == {"v": "7"}


def test_print_row_is_one_json_line(capsys):
    harness.print_row({"a": 1, "b": jnp.float32(0.5)})
    assert json.loads(capsys.readouterr().out) == {"a": 1, "b": 0.5}
    assert len(harness.load_average()) == 3 and "CPUs" in harness.machine()
