"""PennyLane's own device test suite (``pennylane/devices/tests``, shipped inside the
pennylane wheel) against ``qjaxrob.qubit``, each run in a subprocess:
``python -m pytest <suite> --device=qjaxrob.qubit [--shots=10000]``, with
``JAX_ENABLE_X64`` set for the precision. A run must finish with zero failures and errors
and at least ``minimum`` passed tests (so a suite that silently skips everything fails
here); its counts are printed and recorded as the test's ``pennylane_suite`` property.

Two runs keep the CI cost near 70 s of CPU time (the whole analytic suite takes about
60 s on its own): the whole suite analytic, and with ``--shots=10000`` the templates whose
deep circuits exposed sampling from a float32 state (complex64, x64 off: the precision
where that shows) and the measurements file. Both precisions of the whole suite, analytic
and with shots, are run by ``benchmarks/pennylane_suite.py``.
The suite needs ``flaky`` and ``pytest-mock`` (both in the ``test`` extra).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

qml = pytest.importorskip("pennylane")
pytest.importorskip("flaky")
pytest.importorskip("pytest_mock")

ROOT = Path(__file__).resolve().parent.parent
SUITE = Path(qml.__file__).resolve().parent / "devices" / "tests"
SHOT_TEMPLATES = ("UCCSD or kUpCCGSD or GateFabric or FermionicDoubleExcitation "
                  "or QuantumMonteCarlo or Select")

# (id, x64, shots, [(file, -k expression or None)] or None for the whole suite, minimum passed)
RUNS = [
    ("analytic-complex64", False, None, None, 395),
    ("shots-complex64", False, 10000,
     [("test_templates.py", SHOT_TEMPLATES), ("test_measurements.py", None)], 70),
]


def _counts(junit: Path) -> dict:
    """``{"tests", "failures", "errors", "skipped", "passed"}`` summed over the report."""
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites)
              for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def _failed_ids(junit: Path) -> list[str]:
    root = ET.parse(junit).getroot()
    return [f"{case.get('classname')}::{case.get('name')}" for case in root.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None]


def test_device_is_registered():
    """The suite finds the device through PennyLane's plugin entry point (an installed
    checkout: ``pip install -e '.[test]'``)."""
    assert SUITE.is_dir(), f"{SUITE} missing: the pennylane wheel no longer ships its device tests"
    dev = qml.device("qjaxrob.qubit", wires=1)
    assert dev.name == "qjaxrob.qubit"


@pytest.mark.slow
@pytest.mark.parametrize("run", RUNS, ids=[r[0] for r in RUNS])
def test_pennylane_device_suite(run, tmp_path, record_property):
    name, x64, shots, files, minimum = run
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "XLA_FLAGS", "JAX_"))}
    env["JAX_ENABLE_X64"] = "1" if x64 else "0"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    junit = tmp_path / "suite.xml"
    targets = [str(SUITE)]
    if files:   # node ids (file paths) and one -k expression over them
        targets = [str(SUITE / f) for f, _ in files]
        keys = [f"({k})" if k else Path(f).stem for f, k in files]
        targets += ["-k", " or ".join(keys)]
    cmd = [sys.executable, "-m", "pytest", *targets, "--device=qjaxrob.qubit", "-q",
           "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist",
           f"--junitxml={junit}", f"--rootdir={SUITE}"]
    if shots:
        cmd.append(f"--shots={shots}")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert junit.exists(), f"{name}: the suite produced no report (rc {proc.returncode}):\n{tail}"
    counts = _counts(junit)
    record_property("pennylane_suite", counts)
    print(f"PennyLane device suite {name}: {counts}")
    assert counts["failures"] == 0 and counts["errors"] == 0, (
        f"{name}: {counts}; failed: {_failed_ids(junit)}\n{tail}")
    assert counts["passed"] >= minimum, f"{name}: only {counts['passed']} passed: {counts}"
    assert proc.returncode == 0, f"{name}: rc {proc.returncode}\n{tail}"
