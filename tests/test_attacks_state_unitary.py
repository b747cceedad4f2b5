"""The fully expressive state attack (``perturbation="unitary"``) against the analytic
minimal flipping perturbation (Liu & Wittek): a classifier that thresholds
``p = <psi|P|psi>`` of a projector ``P`` at 1/2 is flipped by infidelity ``r* = 1/2 -
sqrt(p (1 - p))`` and by nothing smaller; within budget ``b`` the reachable extreme is
``<Z> = cos(2 (alpha + delta))`` with ``cos alpha = sqrt(p)``, ``cos delta = sqrt(1 - b)``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import qjaxrob as qjr
from qjaxrob import attacks
from qjaxrob.attacks import state
from qjaxrob.errors import ParameterError
from qjaxrob.qml.encodings import state_encoding

SCALE = 4.0


def _classifier(n, dtype):
    """``<Z_0>`` of the input state itself (state encoding, empty ansatz): class 0 iff the
    probability ``p`` of wire 0 in ``|0>`` exceeds 1/2."""
    return qjr.qml.VQC(jax.random.key(0), state_encoding(n), qjr.Circuit(n), 2,
                       readout_wires=(0,), post=False, scale=SCALE, dtype=dtype)


def _random_states(rng, batch, n):
    psi = rng.normal(size=(batch, 2**n)) + 1j * rng.normal(size=(batch, 2**n))
    return psi / np.linalg.norm(psi, axis=1, keepdims=True)


@pytest.mark.parametrize("n, dtype, atol", [
    (1, jnp.complex128, 1e-7), (2, jnp.complex64, 3e-4),
    pytest.param(3, jnp.complex128, 1e-6, marks=pytest.mark.slow)])
def test_unitary_attack_reaches_the_minimal_flipping_perturbation(rng, n, dtype, atol):
    batch = 12
    psi = _random_states(rng, batch, n)
    p = np.sum(np.abs(psi[:, : 2**n // 2]) ** 2, 1)  # wire 0 (most significant) in |0>
    y = (p < 0.5).astype(np.int32)
    r_star = 0.5 - np.sqrt(p * (1 - p))
    budget = float(np.median(r_star))
    x = np.concatenate([psi.real, psi.imag], 1)
    model = _classifier(n, dtype)
    res = attacks.state_attack_model(model, x, y, budget, steps=150, step_size=0.05,
                                     key=jax.random.key(n), perturbation="unitary")
    # the extreme <Z_0> reachable within the budget, from the true label's side
    q = np.where(y == 0, p, 1 - p)
    z_opt = np.cos(2 * (np.arccos(np.sqrt(q)) + np.arccos(np.sqrt(1 - budget))))
    z_opt = np.where(y == 0, z_opt, -z_opt)
    z = np.asarray(res.logits[:, 0], np.float64) * 2 / SCALE
    np.testing.assert_allclose(z, z_opt, atol=atol)
    flipped = np.asarray(jnp.argmax(res.logits, -1)) != y
    clear = np.abs(r_star - budget) > 1e-3 * budget
    np.testing.assert_array_equal(flipped[clear], (r_star < budget)[clear])
    assert np.all(np.asarray(res.infidelity) <= budget)
    # phi is the generator: exp(-i H(phi)) psi is the attacked state (scipy's expm)
    for i in range(batch):
        m = np.asarray(res.phi[i], np.float64).reshape(2**n, 2**n)
        w = scipy.linalg.expm(-1j * ((m + m.T) / 2 + 1j * (m - m.T) / 2))
        chi = w @ psi[i]
        assert 1 - abs(np.vdot(psi[i], chi)) ** 2 == pytest.approx(
            float(res.infidelity[i]), abs=10 * atol)
        assert np.real(np.vdot(chi, np.diag([1.0] * (2**n // 2) + [-1.0] * (2**n // 2)) @ chi)
                       ) == pytest.approx(z[i], abs=10 * atol)


def test_near_identity_unitary_matches_scipy(rng):
    for n in (1, 2):
        phi = rng.normal(size=4**n) * 0.3
        m = phi.reshape(2**n, 2**n)
        h = (m + m.T) / 2 + 1j * (m - m.T) / 2
        np.testing.assert_allclose(np.conj(h.T), h)
        np.testing.assert_allclose(state.near_identity_unitary(jnp.asarray(phi)),
                                   scipy.linalg.expm(-1j * h), atol=1e-12)
        np.testing.assert_allclose(state.near_identity_unitary(jnp.zeros(4**n)),
                                   np.eye(2**n), atol=1e-15)


def test_unitary_infidelity_and_bad_input(rng):
    n = 2
    model = _classifier(n, jnp.complex128)
    psi = _random_states(rng, 1, n)[0]
    x = np.concatenate([psi.real, psi.imag])
    phi = rng.normal(size=16) * 0.2
    m = phi.reshape(4, 4)
    chi = scipy.linalg.expm(-1j * ((m + m.T) / 2 + 1j * (m - m.T) / 2)) @ psi
    assert float(state.infidelity(model, x, phi, perturbation="unitary")) == pytest.approx(
        1 - abs(np.vdot(psi, chi)) ** 2, abs=1e-12)
    with pytest.raises(ParameterError, match="perturbation must be one of"):
        attacks.state_attack(model, x, 0, 0.1, perturbation="su2")
    with pytest.raises(ParameterError, match=r"phi must have shape \(16,\)"):
        state.infidelity(model, x, phi[:3], perturbation="unitary")
    with pytest.raises(ParameterError, match="n = 9"):
        attacks.state_attack(qjr.qml.make_vqc(jax.random.key(0), 9, 2), np.zeros(9), 0, 0.1,
                             perturbation="unitary")
    with pytest.raises(ParameterError, match="length d"):
        state.near_identity_unitary(jnp.zeros(5))
