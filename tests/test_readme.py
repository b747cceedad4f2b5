"""README.md runs as written: every ```python block, in order, as one script in a fresh
process outside the repository (so only the installed package and the README's own
definitions are available), as a new user would paste them."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
BAD_REFERENCES = ("DESIGN.md", "shared/anchors", "CUTTING.md")


def python_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def test_block_extraction():
    text = "x\n```python\na = 1\n```\n```bash\nls\n```\n```python\nprint(a)\n```\n"
    assert python_blocks(text) == ["a = 1\n", "print(a)\n"]


def test_readme_names_no_missing_files():
    text = README.read_text()
    assert not [r for r in BAD_REFERENCES if r in text]
    for path in re.findall(r"`((?:qjaxrob|tests|notebooks|benchmarks|kernels)/[\w./]+)`", text):
        assert (README.parent / path).exists(), path


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 2
    script = tmp_path / "readme_blocks.py"
    script.write_text("\n".join(f"# ---- README block {i}\n{b}" for i, b in enumerate(blocks)))
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PYTHONPATH")}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert "4 2 2 9" in lines, proc.stdout[:2000]
    at = lines.index("4 2 2 9")  # the API tour's first print; the lines below are its prints
    vals = [[float(v) for v in NUMBER.findall(line)] for line in lines[at:]]
    assert "nan" not in proc.stdout.lower()
    grad, adjoint = np.array(vals[3]), np.array(vals[4])
    assert np.all(np.abs(grad) > 0.05) and np.allclose(grad, adjoint, atol=1e-5)
    shot_grad = np.array(vals[8])
    assert np.all(shot_grad != 0) and np.allclose(shot_grad, grad, atol=0.2)
    exact, cut = vals[11]
    assert abs(exact) > 0.1 and abs(exact - cut) < 1e-4  # cut reconstruction, not 0
    cut_grad = np.array(vals[13])
    assert np.all(np.abs(cut_grad) > 0.05)
    attacked = vals[14][0]
    assert abs(attacked - exact) > 0.01  # the attack moves the cut circuit's value
    fit = vals[16]
    assert fit[1] < fit[0]  # the classifier's loss falls


NUMBER = re.compile(r"-?\d+\.\d*(?:e-?\d+)?")
