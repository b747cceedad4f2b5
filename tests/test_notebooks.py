"""The notebooks in notebooks/: one per study, committed executed (outputs, a plot, no
errors), each with a thumbnail PNG that README.md's studies table shows. Executing them
(nbclient, the ``notebooks`` extra) is part of each study's test in
tests/test_experiments_studies.py, against the same quick run."""

from pathlib import Path

import pytest

from qjaxrob import experiments

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STUDIES = list(experiments.studies())


@pytest.mark.parametrize("name", STUDIES)
def test_each_study_has_an_executed_notebook_and_a_thumbnail(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code)
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert f'run_study("{name}"' in "".join(c.source for c in code)
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    thumb = NOTEBOOKS / "thumbnails" / f"{name}.png"
    assert thumb.exists() and thumb.stat().st_size > 5000
    readme = (ROOT / "README.md").read_text()
    assert f"notebooks/thumbnails/{name}.png" in readme and f"notebooks/{name}.ipynb" in readme
