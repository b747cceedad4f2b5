"""Shared test configuration: 64-bit JAX (so complex128 is available), 8 forced host
devices for sharding tests, seeded generators and the hypothesis profile.

Contract checks:

* qjaxrob's own warnings (subclasses of ``qjaxrob.errors.QjrWarning``) are errors in every
  run: a test that expects one says so with ``pytest.warns``. Exception: ``PrecisionWarning``
  (advice on float64 inputs to complex64 runs). Third-party warnings keep their default
  handling.
* ``--strict-dtypes`` runs the complex64 path with ``jax_numpy_dtype_promotion="strict"``,
  so any silent up-cast (float32 + float64 -> float64, complex64 * Python complex128
  array...) raises instead; tests parametrized with complex128 are deselected in that run
  (``python -m pytest --strict-dtypes tests/test_simulate.py``).
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ["QJAXROB_CACHE_DIR"] = "off"  # tests always compile (qjaxrob.cache)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "qjaxrob",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("qjaxrob")


def pytest_addoption(parser):
    parser.addoption(
        "--strict-dtypes", action="store_true", default=False,
        help="run the complex64 tests with jax_numpy_dtype_promotion='strict'",
    )


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "error::qjaxrob.errors.QjrWarning")
    # PrecisionWarning is advice that ordinary float64 NumPy inputs to a complex64 run
    # trigger; it keeps its default handling (its own tests use pytest.warns).
    config.addinivalue_line("filterwarnings", "default::qjaxrob.errors.PrecisionWarning")
    if config.getoption("--strict-dtypes"):
        jax.config.update("jax_numpy_dtype_promotion", "strict")


def _uses_complex128(item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for value in params.values():
        try:
            if np.dtype(value) == np.complex128:
                return True
        except TypeError:
            continue
    return False


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--strict-dtypes"):
        return
    keep = [it for it in items if not _uses_complex128(it)]
    deselected = [it for it in items if _uses_complex128(it)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


@pytest.fixture
def rng():
    """A seeded NumPy generator (fresh per test)."""
    return np.random.default_rng(1234)
