"""The timing harness every script in ``benchmarks/`` uses: one way to switch on double
precision, time a first call, time warm calls, measure in a fresh process, and print rows.

* :func:`enable_x64` switches ``jax_enable_x64`` on; scripts call it first thing in
  ``main()`` (never at import, so importing a script has no side effect on JAX).
* :func:`timed_call` times one call (for a fresh ``jit`` its first call: trace + compile +
  run): wall and process-CPU seconds, the result ended by ``jax.block_until_ready``.
* :func:`call_times` times repeated warm calls, each ended by ``block_until_ready``: at
  least ``min_reps``, more while their total is under ``min_time`` (at most ``max_reps``),
  stopping early once ``budget_s`` wall seconds have passed (after at least one call).
  :func:`median_time` is their median, after an optional untimed warm-up call.
* :func:`run_fresh` runs ``python ARGS`` in a new interpreter (nothing cached from this
  one) and returns the JSON object on the last line of its output, or a row with
  ``first_s = None`` and a ``note`` when it fails or times out.
* :func:`load_average`, :func:`machine` and :func:`print_row` describe the machine and
  print one JSON row per measurement.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax

__all__ = ["ROOT", "call_times", "enable_x64", "load_average", "machine", "median_time",
           "print_row", "run_fresh", "timed_call"]

ROOT = Path(__file__).resolve().parent.parent
"""The checkout holding ``benchmarks/`` (the working directory of :func:`run_fresh`)."""


def enable_x64() -> None:
    """Double precision for every array created from now on (``jax_enable_x64``)."""
    jax.config.update("jax_enable_x64", True)


def timed_call(fn, *args):
    """``(out, wall_s, cpu_s)`` of one call ``fn(*args)`` ended by ``block_until_ready``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0, time.process_time() - c0


def call_times(fn, *args, min_reps: int = 3, min_time: float = 0.0, max_reps: int | None = None,
               budget_s: float | None = None) -> list[float]:
    """Wall seconds of repeated calls ``fn(*args)``, each ended by ``block_until_ready``
    (module docstring for when it stops)."""
    times: list[float] = []
    start = time.perf_counter()
    while True:
        if max_reps is not None and len(times) >= max_reps:
            break
        if len(times) >= min_reps and sum(times) >= min_time:
            break
        if budget_s is not None and times and time.perf_counter() - start >= budget_s:
            break
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return times


def median_time(fn, *args, warmup: bool = False, **kwargs) -> float:
    """Median of :func:`call_times` (same keywords), after one untimed call if ``warmup``."""
    if warmup:
        jax.block_until_ready(fn(*args))
    return statistics.median(call_times(fn, *args, **kwargs))


def run_fresh(args, *, timeout: float, env: dict | None = None, cwd=None) -> dict:
    """The JSON object printed last by ``python ARGS`` run in a new interpreter (in
    ``cwd``, default :data:`ROOT`; ``env`` replaces the environment), or
    ``{"first_s": None, "note": why}`` when it fails or runs past ``timeout`` seconds."""
    cmd = [sys.executable, *map(str, args)]
    try:
        proc = subprocess.run(cmd, cwd=cwd or ROOT, capture_output=True, text=True,
                              timeout=timeout, check=False, env=env)
    except subprocess.TimeoutExpired:
        return {"first_s": None, "note": f"> {timeout} s (killed)"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"first_s": None, "note": "failed: " + last[:160]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (timings on a loaded machine are noise)."""
    return os.getloadavg()


def machine() -> str:
    """``"<arch>, <n> CPUs"``: where the numbers were measured (starts no JAX backend, so a
    parent that only launches :func:`run_fresh` measurements holds no device memory)."""
    return f"{platform.machine()}, {os.cpu_count()} CPUs"


def print_row(row: dict, *, default=float) -> None:
    """One measurement as a JSON line on stdout (flushed: long runs show progress)."""
    print(json.dumps(row, default=default), flush=True)
