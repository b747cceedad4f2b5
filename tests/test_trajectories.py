"""Quantum trajectories: unit-norm branches, branch statistics, convergence of trajectory
averages to the exact density matrix (5 sigma), Repeat/jit/vmap composition, gradients of
trajectory averages for mixed-unitary noise, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.errors import DensityMatrixOnlyError, ParameterError
from reference import density_ref, observable_matrix, statevector_ref

F64 = jnp.complex128
T = 2000


def noisy_circuit():
    """Three qubits, every channel kind, with a Repeat block (lax.scan) holding channels."""
    k = np.sqrt(0.5) * np.array([[1, 0], [0, 1]]), np.sqrt(0.5) * np.array([[0, 1], [1, 0]]) @ np.diag([1, 1j])
    block = (qjr.Circuit(3).ry(0, qjr.param(0)).cnot(0, 1).depolarizing((1, 2), 0.3)
             .rx(2, qjr.param(1)).amplitude_damping(0, 0.4))
    return (qjr.Circuit(3).h(1) + qjr.Circuit.repeat(block, 2)
            + qjr.Circuit(3).phase_damping(2, 0.5).bit_flip(1, 0.2).phase_flip(0, 0.3)
            .random_rotation(1, "x", 0.7).kraus(list(k), 2).cz(0, 2))


@pytest.fixture(scope="module")
def setup():
    c = noisy_circuit()
    params = jnp.array([0.9, -0.4, 1.3, 0.2])
    keys = jax.random.split(jax.random.key(7), T)
    states = jax.jit(jax.vmap(lambda k: qjr.statevector(c, params, key=k, dtype=F64)))(keys)
    return c, params, np.asarray(states)


def test_each_trajectory_is_a_unit_vector(setup):
    _, _, states = setup
    np.testing.assert_allclose(np.linalg.norm(states, axis=1), 1.0, atol=1e-12)


def test_average_projector_converges_to_the_density_matrix(setup):
    c, params, states = setup
    proj = np.einsum("ti,tj->tij", states, states.conj())
    mean, std = proj.mean(axis=0), proj.std(axis=0)
    err = np.abs(mean - density_ref(c, np.asarray(params)))
    assert np.all(err <= 5 * std / np.sqrt(T) + 1e-9), err.max()


def test_expval_trajectory_average_within_5_sigma(setup):
    c, params, states = setup
    obs = [qjr.Z(0) @ qjr.Z(1), qjr.X(2) + 0.5 * qjr.Y(1), qjr.Z(2)]
    key = jax.random.key(11)
    got = np.asarray(qjr.expval(c, obs, params, trajectories=T, key=key, dtype=F64))
    exact = np.asarray(qjr.expval(c, obs, params, mixed=True, dtype=F64))
    rho = density_ref(c, np.asarray(params))
    for o, g, e in zip(obs, got, exact):
        m = observable_matrix(o, 3)
        assert e == pytest.approx(np.real(np.trace(m @ rho)), abs=1e-10)
        per_traj = np.real(np.einsum("ti,ij,tj->t", states.conj(), m, states))
        # 1e-12: float64 rounding, for an observable whose exact value is 0
        assert abs(g - e) <= 5 * per_traj.std() / np.sqrt(T) + 1e-12, (g, e)


def test_branch_probabilities_of_amplitude_damping():
    """|1> decays to |0> with probability gamma; the branch states are exactly |0> or |1>."""
    gamma = 0.3
    c = qjr.Circuit(1).x(0).amplitude_damping(0, gamma)
    keys = jax.random.split(jax.random.key(3), T)
    states = np.asarray(jax.vmap(lambda k: qjr.statevector(c, key=k, dtype=F64))(keys))
    decayed = np.abs(states[:, 0]) > 0.5
    np.testing.assert_allclose(np.abs(states), np.where(decayed[:, None], [1, 0], [0, 1]), atol=1e-12)
    assert abs(decayed.mean() - gamma) <= 5 * np.sqrt(gamma * (1 - gamma) / T)


def test_noiseless_circuit_with_key_is_the_plain_statevector():
    c = qjr.Circuit(2).h(0).cnot(0, 1).ry(1, 0.3)
    np.testing.assert_allclose(qjr.statevector(c, key=jax.random.key(0), dtype=F64),
                               statevector_ref(c), atol=1e-12)


def test_trajectory_gradient_is_unbiased_for_mixed_unitary_noise():
    """Depolarizing/bit-flip branch probabilities do not depend on the state, so the mean
    of per-trajectory gradients estimates the exact density-matrix gradient."""
    c = (qjr.Circuit(2).ry(0, qjr.param(0)).depolarizing(0, 0.3).cnot(0, 1)
         .rx(1, qjr.param(1)).bit_flip(1, 0.2))
    params = jnp.array([0.7, -1.1])
    obs = qjr.Z(0) @ qjr.Z(1) + qjr.Y(1)
    exact = jax.grad(lambda p: qjr.expval(c, obs, p, mixed=True, dtype=F64))(params)
    one = jax.grad(lambda p, k: qjr.expval(c, obs, p, trajectories=1, key=k, dtype=F64))
    per = np.asarray(jax.jit(jax.vmap(one, in_axes=(None, 0)))(params, jax.random.split(jax.random.key(5), T)))
    assert np.all(np.abs(per.mean(0) - exact) <= 5 * per.std(0) / np.sqrt(T) + 1e-12)


def test_channel_in_statevector_mode_without_key_raises():
    c = qjr.Circuit(2).h(0).bit_flip(1, 0.25)
    with pytest.raises(DensityMatrixOnlyError, match=r"'bit_flip' on wires \(1,\)"):
        qjr.statevector(c)
    with pytest.raises(DensityMatrixOnlyError, match="bit_flip"):
        qjr.expval(c, qjr.Z(0))


def test_bad_trajectory_arguments_raise():
    c = qjr.Circuit(1).bit_flip(0, 0.25)
    with pytest.raises(ParameterError, match=r"trajectories=100 needs an explicit PRNG key"):
        qjr.expval(c, qjr.Z(0), trajectories=100)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ParameterError, match=rf"positive int, got {bad!r}"):
            qjr.expval(c, qjr.Z(0), trajectories=bad, key=jax.random.key(0))
    with pytest.raises(ParameterError, match=r"trajectories=10 cannot be combined with mixed=True"):
        qjr.expval(c, qjr.Z(0), trajectories=10, key=jax.random.key(0), mixed=True)
