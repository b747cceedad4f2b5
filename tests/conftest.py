"""Shared test configuration: 64-bit JAX (so complex128 is available), 8 forced host
devices for sharding tests, seeded generators and the hypothesis profile."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

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

TOL = {np.complex128: 1e-10, np.complex64: 1e-5}


@pytest.fixture
def rng():
    """A seeded NumPy generator (fresh per test)."""
    return np.random.default_rng(1234)
