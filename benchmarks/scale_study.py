"""A study's units per second with its work laid over 1, 2, 4 and 8 devices.

Workload: ``qjaxrob run STUDY`` (default: barren-plateaus, quick settings, qubits 2..5 x
layers 1, 2: 8 units of 8 random parameter draws, complex64) once per device count ``k``,
each in a fresh process with ``--devices k --layout LAYOUT``. With ``--platform host``
(default) the process gets ``k`` CPU host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=k``, ``JAX_PLATFORMS=cpu``); with
``--platform local`` it uses the machine's own devices as they are (GPUs, TPU cores).
JAX's persistent compilation cache is off (``QJAXROB_CACHE_DIR=off``), so every run
compiles as a first run does.

One JSON row per device count: ``wall_s`` (the whole command: interpreter start, import,
compile, run), ``units_per_s_wall``, ``unit_seconds_sum`` (the units' own ``elapsed_s``,
compile included; with ``--layout units`` up to ``k`` units run at once), the load
average, and ``equal_to_first``: the results equal the first row's (``units``: exactly,
up to ``elapsed_s``; ``batch``: to ``rtol`` 1e-5, the float rounding of a partitioned
reduction).

Host devices share one machine's cores, so these rows show that the layouts run and agree,
and what laying work over devices costs, not a speed-up.

    python -m benchmarks.scale_study                       # 1, 2, 4, 8 host devices
    python -m benchmarks.scale_study --devices 1 2 --layout batch
    python -m benchmarks.scale_study --platform local --devices 1 2 4 8   # accelerators
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness

ROOT = harness.ROOT
STUDY = "barren-plateaus"
SETS = ("qubits=[2, 3, 4, 5]", "layers=[1, 2]", "n_samples=8")
BATCH_RTOL = 1e-5


def environment(k: int, platform: str) -> dict:
    """The environment of the run over ``k`` devices (see the module docstring)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), QJAXROB_CACHE_DIR="off")
    if platform == "host":
        env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={k}",
                   JAX_PLATFORMS="cpu")
    return env


def command(study: str, sets, k: int, layout: str, folder: Path) -> list:
    """The ``qjaxrob run`` command line of the run over ``k`` devices."""
    over = [a for s in sets for a in ("--set", s)]
    return [sys.executable, "-m", "qjaxrob.cli", "run", study, "--quick", *over,
            "--no-progress", "--devices", str(k), "--layout", layout, "--out", str(folder)]


def records(folder: Path) -> list:
    """The folder's results without ``elapsed_s``, in unit order."""
    lines = (folder / "results.jsonl").read_text().splitlines()
    recs = [{k: v for k, v in json.loads(ln).items() if k != "elapsed_s"} for ln in lines]
    return sorted(recs, key=lambda r: json.dumps(r["unit"], sort_keys=True))


def close(a, b, rtol: float) -> bool:
    """JSON values ``a`` and ``b`` equal, numbers to relative tolerance ``rtol``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rtol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, float | int) and isinstance(b, float | int) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12) or a == b
    return a == b


def one(k: int, folder: Path, *, study: str = STUDY, sets=SETS, layout: str = "units",
        platform: str = "host", timeout: float = 1800) -> dict:
    """The row of one run over ``k`` devices into ``folder`` (a failure: ``note``)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(command(study, sets, k, layout, folder), cwd=ROOT,
                              env=environment(k, platform), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"devices": k, "layout": layout, "note": f"> {timeout} s (killed)"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"devices": k, "layout": layout, "note": "failed: " + last[:160]}
    lines = (folder / "results.jsonl").read_text().splitlines()
    busy = sum(json.loads(ln)["elapsed_s"] for ln in lines)
    return {"devices": k, "layout": layout, "platform": platform, "units": len(lines),
            "wall_s": round(wall, 2), "units_per_s_wall": round(len(lines) / wall, 3),
            "unit_seconds_sum": round(busy, 2),
            "load_average": harness.load_average()}


def units_per_second(devices=(1, 2, 4, 8), *, study: str = STUDY, sets=SETS,
                     layout: str = "units", platform: str = "host", emit=harness.print_row):
    """One row per device count (:func:`one`), each checked against the first row's
    results (``equal_to_first``); ``emit`` receives each row as it is measured."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        first = None
        for k in devices:
            folder = Path(tmp) / f"d{k}"
            row = one(k, folder, study=study, sets=sets, layout=layout, platform=platform)
            if "note" not in row:
                first = first or records(folder)
                row["equal_to_first"] = close(records(folder), first,
                                              0.0 if layout == "units" else BATCH_RTOL)
            emit(row)
            rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale_study",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--layout", choices=["units", "batch"], default="units")
    p.add_argument("--platform", choices=["host", "local"], default="host")
    p.add_argument("--study", default=STUDY)
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help=f"config override (repeatable; default: {' '.join(SETS)})")
    a = p.parse_args(argv)
    harness.print_row({"machine": harness.machine(), "study": a.study,
                       "sets": a.set or list(SETS)})
    rows = units_per_second(a.devices, study=a.study, sets=a.set or SETS, layout=a.layout,
                            platform=a.platform)
    return 0 if all(r.get("equal_to_first") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
