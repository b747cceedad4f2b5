"""A study's units per second with the units laid over 1, 2 and 4 host devices.

Workload: ``qjaxrob run barren-plateaus`` (quick settings, qubits 2..5 x layers 1, 2:
8 units of 8 random parameter draws, complex64), once per device count, each in a fresh
process started with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` and
``--devices k``. Reported: wall time of the whole command, units per second over the
units' own ``elapsed_s`` sum (compile included: every unit has new shapes, and each
device compiles its own executables), and whether the results equal the one-device
run's (up to ``elapsed_s``).

Host devices share this machine's cores, so the numbers show correctness and the
overhead of laying units over devices, not a speed-up; on a machine with several
accelerators run the same script (its ``--devices`` counts are local devices).

    python -m benchmarks.scale               # 1, 2, 4 devices
    python -m benchmarks.scale --devices 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness

ROOT = harness.ROOT
ARGS = ["--quick", "--set", "qubits=[2, 3, 4, 5]", "--set", "layers=[1, 2]", "--set",
        "n_samples=8", "--no-progress"]


def _records(folder: Path) -> list:
    recs = [json.loads(ln) for ln in (folder / "results.jsonl").read_text().splitlines()]
    return sorted(({k: v for k, v in r.items() if k != "elapsed_s"} for r in recs),
                   key=lambda r: json.dumps(r["unit"], sort_keys=True))


def one(k: int, folder: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT),
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "qjaxrob.cli", "run", "barren-plateaus", *ARGS,
                    "--devices", str(k), "--out", str(folder)], env=env, check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - t0
    lines = (folder / "results.jsonl").read_text().splitlines()
    busy = sum(json.loads(ln)["elapsed_s"] for ln in lines)
    return {"devices": k, "units": len(lines), "wall_s": round(wall, 2),
            "units_per_s_wall": round(len(lines) / wall, 3),
            "unit_seconds_sum": round(busy, 2), "load_average": harness.load_average()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows, first = [], None
        for k in a.devices:
            folder = Path(tmp) / f"d{k}"
            row = one(k, folder)
            first = first or folder
            row["equal_to_first"] = _records(folder) == _records(first)
            rows.append(row)
            harness.print_row(row)
    return 0 if all(r["equal_to_first"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
