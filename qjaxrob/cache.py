"""JAX's persistent (on-disk) compilation cache, as the CLI and the studies use it.

A compiled XLA program is stored on disk under a key made of the program, the JAX/XLA
versions and the backend; a later process that compiles the same program (same circuit
structure, shapes and dtypes) loads it instead of compiling again. So re-running a study or
a CLI command with the same configuration skips its compile time.

``qjaxrob`` (the CLI) and ``qjaxrob.experiments.run_study`` call :func:`enable`. The cache
folder is ``$QJAXROB_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/qjaxrob/jax`` (default
``~/.cache/qjaxrob/jax``), one per user. ``QJAXROB_CACHE_DIR=off`` (or ``0``, ``false``,
``none``, empty) turns it off; the test suite does so (``tests/conftest.py``), so tests
always compile. Library calls (``qjr.expval``...) never touch the setting: a program that
imports qjaxrob as a backend decides for itself (``jax.config.update(
"jax_compilation_cache_dir", ...)``, JAX's documented switch).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["ENV_VAR", "MIN_COMPILE_SECONDS", "cache_dir", "enable"]

ENV_VAR = "QJAXROB_CACHE_DIR"
"""Environment variable overriding the cache folder (``off`` disables the cache)."""

MIN_COMPILE_SECONDS = 0.2
"""Programs that compiled faster than this are not written to disk (JAX's default, 1 s,
would skip most single-circuit programs, whose compiles take 0.3-1 s)."""

_OFF = {"", "0", "off", "false", "no", "none"}


def cache_dir() -> Path | None:
    """The folder the cache uses, or ``None`` when ``$QJAXROB_CACHE_DIR`` turns it off."""
    value = os.environ.get(ENV_VAR)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qjaxrob" / "jax"


def enable() -> Path | None:
    """Turns JAX's persistent compilation cache on in :func:`cache_dir` (created if
    missing) and returns that folder; returns ``None`` and changes nothing when the
    environment turns it off or the folder cannot be created."""
    path = cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
