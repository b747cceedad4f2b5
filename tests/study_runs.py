"""Quick study runs shared by the study tests and the notebook tests (one run per study per
test process): ``quick_run(name)`` runs ``qjaxrob run NAME --quick`` into a temporary folder
once and returns the ``RunResult``."""

import functools
import tempfile
from pathlib import Path

from qjaxrob import experiments


@functools.cache
def quick_run(name: str):
    out = Path(tempfile.mkdtemp(prefix=f"qjaxrob-{name}-")) / "run"
    return experiments.run_study(name, out, quick=True)
