"""Pallas kernels (kernels/pallas.py) in interpret mode against the XLA kernels and the
dense reference, on tiny states (skipped if Pallas cannot be imported)."""

import jax.numpy as jnp
import numpy as np
import pytest

pallas = pytest.importorskip("qjaxrob.kernels.pallas")

from helpers import random_unitary  # noqa: E402
from qjaxrob.kernels import apply_diagonal, apply_matrix  # noqa: E402
from reference import embed  # noqa: E402

N = 5
WIRES = [(0,), (2,), (4,), (1, 3), (4, 0), (2, 1, 3)]


def _state(rng, dtype):
    psi = rng.normal(size=2**N) + 1j * rng.normal(size=2**N)
    return jnp.asarray(psi / np.linalg.norm(psi), dtype).reshape((2,) * N)


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
@pytest.mark.parametrize("wires", WIRES)
def test_pallas_matrix_matches_xla_and_reference(rng, wires, dtype):
    psi = _state(rng, dtype)
    u = jnp.asarray(random_unitary(rng, 2 ** len(wires)), dtype)
    got = pallas.apply_matrix(psi, u, wires, interpret=True)
    tol = 1e-12 if dtype == jnp.complex128 else 1e-5
    assert got.dtype == psi.dtype and got.shape == psi.shape
    np.testing.assert_allclose(got, apply_matrix(psi, u, wires), atol=tol)
    want = embed(np.asarray(u, complex), wires, N) @ np.asarray(psi, complex).reshape(-1)
    np.testing.assert_allclose(np.asarray(got).reshape(-1), want, atol=tol)


@pytest.mark.parametrize("wires", WIRES)
def test_pallas_diagonal_matches_xla(rng, wires):
    psi = _state(rng, jnp.complex128)
    d = jnp.asarray(np.exp(1j * rng.uniform(0, 6, 2 ** len(wires))))
    got = pallas.apply_diagonal(psi, d, wires, interpret=True)
    np.testing.assert_allclose(got, apply_diagonal(psi, d, wires), atol=1e-12)


def test_pallas_tiles_the_last_group(rng, monkeypatch):
    monkeypatch.setattr(pallas, "TILE", 2)
    psi = _state(rng, jnp.complex128)
    u = jnp.asarray(random_unitary(rng, 2))
    np.testing.assert_allclose(pallas.apply_matrix(psi, u, (1,), interpret=True),
                               apply_matrix(psi, u, (1,)), atol=1e-12)
