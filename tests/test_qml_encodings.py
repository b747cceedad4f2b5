"""Encodings vs states built independently with NumPy (tests/reference.py)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.errors import ParameterError, QjrValueError
from qjaxrob.qml import encodings as enc
from qjaxrob.qml.ansatze import hardware_efficient
from reference import PAULI, kron, rot, statevector_ref

C128 = jnp.complex128
ZERO = np.array([1, 0], dtype=complex)
H = (PAULI["X"] + PAULI["Z"]) / np.sqrt(2)


def vkron(*vs):
    """Tensor product of state vectors (first factor = wire 0)."""
    return kron(*[np.reshape(v, (-1, 1)) for v in vs]).ravel()


def encode(e, x, dtype=C128):
    return np.asarray(qjr.statevector(e.circuit, x=e.features(jnp.asarray(x)), dtype=dtype))


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_angle_encoding_is_the_product_state(rng, axis):
    x = rng.uniform(-np.pi, np.pi, 3)
    e = enc.angle_encoding(3, axis=axis, scaling=0.7)
    expected = vkron(*[rot(axis.upper(), 0.7 * v) @ ZERO for v in x])
    np.testing.assert_allclose(encode(e, x), expected, atol=1e-12)
    assert e.n_features == 3 and e.circuit.n_params == 0


def test_dense_angle_encoding(rng):
    x = rng.uniform(-np.pi, np.pi, 4)
    e = enc.dense_angle_encoding(2, scaling=1.5)
    expected = vkron(*[rot("Z", 1.5 * x[2 * q + 1]) @ rot("Y", 1.5 * x[2 * q]) @ ZERO
                      for q in range(2)])
    np.testing.assert_allclose(encode(e, x), expected, atol=1e-12)


@pytest.mark.parametrize("entangle", ["all", "linear"])
def test_iqp_encoding_matches_diagonal_phase_formula(rng, entangle):
    n, reps = 3, 2
    x = rng.uniform(0, np.pi, n)
    e = enc.iqp_encoding(n, reps=reps, entangle=entangle)
    pairs = list(itertools.combinations(range(n), 2)) if entangle == "all" else [(0, 1), (1, 2)]
    z = 1 - 2 * np.array(list(itertools.product([0, 1], repeat=n)))  # +-1 eigenvalues, wire 0 = MSB
    phase = z @ x + sum((np.pi - x[i]) * (np.pi - x[j]) * z[:, i] * z[:, j] for i, j in pairs)
    step = np.diag(np.exp(-1j * phase)) @ kron(*[H] * n)
    expected = np.linalg.matrix_power(step, reps) @ vkron(*[ZERO] * n)
    np.testing.assert_allclose(encode(e, x), expected, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_amplitude_encoding_of_random_vectors(n):
    rng = np.random.default_rng(n)
    e = enc.amplitude_encoding(n)
    for _ in range(3):
        x = rng.normal(size=2**n)
        x[rng.integers(2**n)] = 0.0  # a zero amplitude must not break the tree
        np.testing.assert_allclose(encode(e, x), x / np.linalg.norm(x), atol=1e-6)
    x = rng.normal(size=2**n)
    np.testing.assert_allclose(encode(e, x, jnp.complex64), x / np.linalg.norm(x), atol=1e-6)


def test_amplitude_encoding_sparse_and_batched():
    e = enc.amplitude_encoding(3)
    xs = np.eye(8)[[0, 5, 7]] * np.array([[2.0], [-1.0], [0.5]])
    states = jax.vmap(lambda x: qjr.statevector(e.circuit, x=e.features(x), dtype=C128))(xs)
    np.testing.assert_allclose(states, xs / np.abs(xs).sum(1, keepdims=True), atol=1e-12)


def test_amplitude_encoding_gradient_wrt_input(rng):
    """d psi / d x = (I - u u^T) / |x| with u = x/|x| (the Jacobian of normalisation)."""
    e = enc.amplitude_encoding(2)
    x = jnp.asarray(rng.normal(size=4))

    def psi(x):
        return jnp.real(qjr.statevector(e.circuit, x=e.features(x), dtype=C128))

    u = np.asarray(x) / np.linalg.norm(x)
    expected = (np.eye(4) - np.outer(u, u)) / np.linalg.norm(x)
    np.testing.assert_allclose(jax.jacrev(psi)(x), expected, atol=1e-9)


def test_reuploading_equals_unrolled_layers(rng):
    e = enc.angle_encoding(2, axis="x")
    block = hardware_efficient(2, 1)
    c = enc.reuploading(e, block, 3)
    params, x = rng.normal(size=c.n_params), rng.normal(size=2)
    manual = qjr.Circuit(2)
    for layer in range(3):
        manual = manual + e.circuit + block.shift_params(layer * block.n_params)
    assert c.n_params == 3 * block.n_params and len(c.ops) == 1  # one scan
    np.testing.assert_allclose(
        np.asarray(qjr.statevector(c, params, e.features(x), dtype=C128)),
        statevector_ref(manual, params, x), atol=1e-12)


def test_bad_inputs_name_the_value():
    e = enc.amplitude_encoding(2)
    with pytest.raises(ParameterError, match=r"norm 0\.0"):
        e.features(np.zeros(4))
    with pytest.raises(ParameterError, match="nan"):
        e.features(np.array([1.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ParameterError, match=r"shape \(4,\), got shape \(3,\)"):
        e.features(np.ones(3))
    with pytest.raises(ParameterError, match=r"shape \(2,\), got shape \(2, 2\)"):
        enc.angle_encoding(2).features(np.ones((2, 2)))
    with pytest.raises(ParameterError, match="'w'"):
        enc.angle_encoding(2, axis="w")
    with pytest.raises(QjrValueError, match="'ring'"):
        enc.iqp_encoding(3, entangle="ring")
    with pytest.raises(ParameterError, match="3 qubits"):
        enc.reuploading(enc.angle_encoding(2), hardware_efficient(3, 1), 2)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype, atol", [(jnp.complex128, 1e-12), (jnp.complex64, 2e-6)])
def test_state_encoding_prepares_any_state(rng, n, dtype, atol):
    """``(Re psi, Im psi)`` (any scale) prepares ``psi / ||psi||`` up to a global phase."""
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    e = enc.state_encoding(n)
    assert e.n_features == 2 * 2**n and e.circuit.n_inputs == 2 * (2**n - 1)
    real_dtype = np.float64 if dtype == jnp.complex128 else np.float32
    out = encode(e, (3.7 * np.concatenate([psi.real, psi.imag])).astype(real_dtype), dtype)
    psi = psi / np.linalg.norm(psi)
    phase = np.vdot(psi, out) / abs(np.vdot(psi, out))
    np.testing.assert_allclose(out, phase * psi, atol=atol)
    # a real state with zeros and signs (zero amplitudes get phase 0)
    real = np.zeros(2**n)
    real[0], real[-1] = -0.6, 0.8
    x = np.concatenate([real, 0 * real]).astype(real_dtype)
    np.testing.assert_allclose(np.abs(np.vdot(encode(e, x, dtype), real)), 1.0, atol=atol)


def test_state_encoding_gradient_and_bad_input(rng):
    e = enc.state_encoding(2)
    x = jnp.asarray(rng.normal(size=8))

    def fid(v):
        out = qjr.statevector(e.circuit, x=e.features(v), dtype=C128)
        target = (x[:4] + 1j * x[4:]) / jnp.linalg.norm(x)
        return jnp.abs(jnp.vdot(target, out)) ** 2

    g = np.asarray(jax.grad(fid)(x + 0.01))
    h = 1e-6
    fd = [(fid(x + 0.01 + h * np.eye(8)[i]) - fid(x + 0.01 - h * np.eye(8)[i])) / (2 * h)
          for i in range(8)]
    np.testing.assert_allclose(g, fd, atol=1e-7)
    with pytest.raises(ParameterError, match="state encoding needs a finite, non-zero"):
        e.features(jnp.zeros(8))
    with pytest.raises(ParameterError, match=r"shape \(8,\)"):
        e.features(jnp.zeros(4))
