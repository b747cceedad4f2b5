"""float64 inputs to a complex64 simulation: computed in float32 with a PrecisionWarning
(README, Precision); no warning where nothing is rounded."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.errors import PrecisionWarning, QjrWarning

C = qjr.Circuit(2).ry(0, qjr.param(0)).cnot(0, 1).rx(1, qjr.inp(0) * 1.3)
OBS = qjr.Z(1) + qjr.Y(1)


def _run(params, x, dtype):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = qjr.expval(C, OBS, params, x, dtype=dtype)
    return value, [w for w in caught if issubclass(w.category, QjrWarning)]


def test_float64_to_complex64_warns_and_computes_in_float32():
    p, x = np.array([0.123456789012345]), np.array([-0.98765432109876])
    value, caught = _run(p, x, jnp.complex64)
    assert [w.category for w in caught] == [PrecisionWarning, PrecisionWarning]
    assert "params has dtype float64" in str(caught[0].message)
    assert "x has dtype float64" in str(caught[1].message)
    assert value.dtype == jnp.float32
    ref, quiet = _run(p.astype(np.float32), x.astype(np.float32), jnp.complex64)
    assert quiet == [] and value == ref


@pytest.mark.parametrize("params,x,dtype", [
    (np.array([0.3], np.float32), np.array([0.1], np.float32), jnp.complex64),
    ([0.3], [0.1], jnp.complex64),  # Python floats request no precision
    (np.array([0.3]), np.array([0.1]), jnp.complex128),
])
def test_no_warning_without_rounding(params, x, dtype):
    value, caught = _run(params, x, dtype)
    assert caught == []
    exact = np.cos(0.3) * np.cos(0.13) - np.cos(0.3) * np.sin(0.13)  # <Z>+<Y> on wire 1
    assert value == pytest.approx(exact, abs=1e-6)
