"""Packaging guard: every library subpackage is listed for setuptools, so wheels are
complete (the list is explicit because kernels/ is mapped to qjaxrob.kernels)."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {"qjaxrob.kernels"}
    for init in (ROOT / "qjaxrob").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    assert found == listed
    assert config["package-dir"]["qjaxrob.kernels"] == "kernels"
