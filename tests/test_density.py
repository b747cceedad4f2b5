"""Density-matrix simulation against the dense NumPy Kraus reference: random noisy
circuits (every channel, 1 to 6 qubits, several wires), Repeat blocks, mixed probs, and
the noiseless case against the statevector."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qjaxrob as qjr
from helpers import TOL, circuits, random_inputs, random_unitary
from reference import density_ref, statevector_ref

CHANNEL_NAMES = ["depolarizing", "bit_flip", "phase_flip", "amplitude_damping",
                 "phase_damping", "random_rotation", "kraus"]


def random_kraus(rng, k, m):
    """m Kraus operators on k wires: the blocks of a random (m*d, d) isometry."""
    d = 2**k
    z = rng.normal(size=(m * d, d)) + 1j * rng.normal(size=(m * d, d))
    q, _ = np.linalg.qr(z)
    return [q[i * d : (i + 1) * d] for i in range(m)]


def add_channel(c, name, rng, level):
    """Appends channel ``name`` on random wires with noise level ``level`` (float or Angle)."""
    n = c.n_qubits
    wires = [int(w) for w in rng.permutation(n)]
    if name == "depolarizing":
        return c.depolarizing(tuple(wires[: rng.integers(1, min(3, n) + 1)]), level)
    if name == "kraus":
        k = int(rng.integers(1, min(2, n) + 1))
        return c.kraus(random_kraus(rng, k, int(rng.integers(1, 4))), tuple(wires[:k]))
    if name == "random_rotation":
        axis = rng.choice(["x", "y", "z", "vec"])
        axis = rng.normal(size=3) if axis == "vec" else str(axis)
        return c.random_rotation(wires[0], axis, level * 2.0)
    return getattr(c, name)(wires[0], level)


@st.composite
def noisy_circuits(draw, max_qubits=6):
    """A random gate circuit with random channels interleaved (constant or param levels)."""
    base = draw(circuits(max_qubits=max_qubits, max_ops=6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    c = qjr.Circuit(base.n_qubits)
    for op in base.ops:
        c = qjr.Circuit(c.n_qubits, c.ops + (op,))
        for _ in range(draw(st.integers(0, 2))):
            name = draw(st.sampled_from(CHANNEL_NAMES))
            level = qjr.param(5) if draw(st.booleans()) else float(rng.uniform(0, 1))
            c = add_channel(c, name, rng, level)
    return c


@pytest.mark.slow
@settings(max_examples=14)
@given(noisy_circuits(), st.sampled_from([jnp.complex128, jnp.complex64]), st.integers(0, 99))
def test_random_noisy_circuit_matches_kraus_reference(c, dtype, seed):
    params, x = random_inputs(c, seed)
    if c.n_params > 5:
        params[5] = np.random.default_rng(seed).uniform(0, 1)  # the shared noise level
    got = np.asarray(qjr.density_matrix(c, params, x, dtype=dtype))
    assert got.dtype == np.dtype(dtype) and got.shape == (2**c.n_qubits,) * 2
    np.testing.assert_allclose(got, density_ref(c, params, x), atol=TOL[dtype])


@pytest.mark.parametrize("name", CHANNEL_NAMES)
def test_every_channel_on_several_wires(name, rng):
    """Each channel on every wire of a 3-qubit entangled state (both dtypes)."""
    c = qjr.Circuit(3).unitary(random_unitary(rng, 8), (0, 1, 2))
    for q in (2, 0, 1):
        if name == "kraus":
            c = c.kraus(random_kraus(rng, 1, 3), q)
        elif name == "depolarizing":
            c = c.depolarizing((q, (q + 1) % 3), 0.37)
        elif name == "random_rotation":
            c = c.random_rotation(q, rng.normal(size=3), 0.9)
        else:
            c = getattr(c, name)(q, 0.37)
    want = density_ref(c)
    for dtype in (jnp.complex128, jnp.complex64):
        np.testing.assert_allclose(qjr.density_matrix(c, dtype=dtype), want, atol=TOL[dtype])


def test_channels_inside_repeat_blocks(rng):
    block = (qjr.Circuit(4).ry(0, qjr.param(0)).cnot(0, 1).depolarizing((1, 2), qjr.inp(0))
             .rzz(2, 3, qjr.param(1)).amplitude_damping(3, 0.2).kraus(random_kraus(rng, 2, 2), (3, 0)))
    c = qjr.Circuit(4).h(2) + qjr.Circuit.repeat(block, 3) + qjr.Circuit(4).phase_damping(0, 0.4)
    params, x = rng.uniform(-3, 3, c.n_params), np.array([0.15])
    got = qjr.density_matrix(c, params, x, dtype=jnp.complex128)
    np.testing.assert_allclose(got, density_ref(c, params, x), atol=1e-10)


@pytest.mark.slow
@settings(max_examples=8)
@given(circuits(max_qubits=6, max_ops=8), st.integers(0, 99))
def test_noiseless_density_is_outer_product_of_statevector(c, seed):
    params, x = random_inputs(c, seed)
    psi = np.asarray(qjr.statevector(c, params, x, dtype=jnp.complex128))
    rho = np.asarray(qjr.density_matrix(c, params, x, dtype=jnp.complex128))
    np.testing.assert_allclose(rho, np.outer(psi, psi.conj()), atol=1e-10)
    np.testing.assert_allclose(psi, statevector_ref(c, params, x), atol=1e-10)


def test_mixed_probs_expval_and_sample_use_the_density_matrix(rng):
    c = (qjr.Circuit(3).h(0).cnot(0, 1).ry(2, qjr.param(0)).amplitude_damping(0, 0.6)
         .bit_flip(2, 0.25).depolarizing((1, 2), 0.5))
    params = np.array([0.8])
    rho = density_ref(c, params)
    p = np.real(np.diag(rho))
    got = qjr.probs(c, params, wires=(2, 0), mixed=True, dtype=jnp.complex128)
    np.testing.assert_allclose(got, p.reshape(2, 2, 2).sum(axis=1).T.reshape(-1), atol=1e-12)
    z0 = float(np.real(np.trace(np.kron(np.diag([1, -1]), np.eye(4)) @ rho)))
    assert float(qjr.expval(c, qjr.Z(0), params, mixed=True, dtype=jnp.complex128)) == pytest.approx(z0, abs=1e-12)
    shots = 4000
    bits = np.asarray(qjr.sample(jax.random.key(0), c, shots, params, mixed=True, dtype=jnp.complex128))
    idx = bits @ (1 << np.arange(2, -1, -1))
    freq = np.bincount(idx, minlength=8) / shots
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / shots) + 1e-9)

