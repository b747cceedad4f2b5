"""Quick study runs shared by the study tests (one run per study per test process), and
notebook execution against such a run.

``quick_run(name)`` runs ``qjaxrob run NAME --quick`` into a temporary folder once and
returns the ``RunResult``. ``execute_notebook(name, run_dir, tmp)`` executes
``notebooks/NAME.ipynb`` with nbclient, pointed (``QJAXROB_STUDY_OUT``) at a copy of
``run_dir``: the notebook's run resumes a finished folder, so a test measures the notebook
without running the study twice.
"""

import functools
import os
import shutil
import tempfile
from pathlib import Path

from qjaxrob import experiments

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@functools.cache
def quick_run(name: str):
    out = Path(tempfile.mkdtemp(prefix=f"qjaxrob-{name}-")) / "run"
    return experiments.run_study(name, out, quick=True)


def execute_notebook(name: str, run_dir, tmp) -> list:
    """Executes the study's notebook; returns the outputs of its code cells."""
    import nbclient
    import nbformat

    out = Path(tmp) / "notebook-run"
    shutil.copytree(run_dir, out)
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    old = os.environ.get("QJAXROB_STUDY_OUT")
    os.environ["QJAXROB_STUDY_OUT"] = str(out)
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    finally:
        if old is None:
            del os.environ["QJAXROB_STUDY_OUT"]
        else:
            os.environ["QJAXROB_STUDY_OUT"] = old
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
