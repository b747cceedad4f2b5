"""Runnable, resumable studies behind ``qjaxrob run STUDY``.

``studies()`` maps each study name to its :class:`~qjaxrob.experiments.runner.Study`;
``run_study(name, out_dir, quick=True)`` resolves a configuration and runs it (the same
code path as the command line). Modules: ``configs`` (typed fields, TOML in and out),
``runner`` (output folder, JSONL results, resume, progress), ``plots`` (matplotlib helpers)
and one module per study.
"""

from __future__ import annotations

from qjaxrob import cache
from qjaxrob.errors import ParameterError
from qjaxrob.experiments import (
    barren_plateaus,
    configs,
    cut_ansatz,
    cut_integrity,
    cut_perturbation,
    evasion_scaling,
    inversion_scaling,
    plots,
    qdp_tradeoff,
    qfl_byzantine,
    qfl_integrity,
    runner,
    training,
)
from qjaxrob.experiments.configs import Field, resolve
from qjaxrob.experiments.runner import RunResult, Study, load_results, report, run

_MODULES = (inversion_scaling, evasion_scaling, qdp_tradeoff, qfl_byzantine,
            barren_plateaus, cut_perturbation, cut_ansatz, cut_integrity, qfl_integrity)

__all__ = ["Field", "RunResult", "Study", "configs", "get_study", "load_results", "plots",
           "report", "resolve", "run", "run_study", "runner", "studies", "training"]


def studies() -> dict:
    """``{name: Study}`` for every study, in listing order."""
    return {m.STUDY.name: m.STUDY for m in _MODULES}


def get_study(name: str) -> Study:
    """The study called ``name``, or ``ParameterError`` listing the known ones."""
    known = studies()
    if name not in known:
        raise ParameterError(f"unknown study {name!r}; known studies: {', '.join(known)}")
    return known[name]


def run_study(name: str, out_dir, *, quick: bool = False, config_file=None, overrides=(),
              seed=None, progress: bool = False, **kwargs) -> RunResult:
    """Resolves the configuration of study ``name`` (``configs.resolve``) and runs it into
    ``out_dir`` (``runner.run``; resumes a folder holding the same configuration)."""
    cache.enable()  # persistent compilation cache (qjaxrob.cache; QJAXROB_CACHE_DIR=off)
    study = get_study(name)
    config = resolve(study, quick=quick, file=config_file, overrides=overrides, seed=seed)
    return run(study, config, out_dir, progress=progress, **kwargs)
