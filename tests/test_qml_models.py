"""The VQC: readouts vs the dense reference, noise, keys, batching, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.errors import ParameterError, QjrValueError
from qjaxrob.qml import ansatze, encodings, models
from reference import density_ref, expval_ref, statevector_ref

C128 = jnp.complex128
X = np.array([[0.3, 1.2, 2.0], [2.5, 0.1, 1.1]])


@pytest.fixture(scope="module")
def enc3():
    return encodings.angle_encoding(3)


def test_binary_expval_readout_without_post(enc3):
    m = models.VQC(jax.random.key(0), enc3, ansatze.mps(3, 2), 2, post=False, scale=3.0,
                   dtype=C128)
    z = expval_ref(m.circuit, qjr.Z(2), np.asarray(m.params), X[0])
    np.testing.assert_allclose(m(jnp.asarray(X[0])), [1.5 * z, -1.5 * z], atol=1e-10)
    p = m.predict_proba(jnp.asarray(X[0]))
    np.testing.assert_allclose(p[0], 1 / (1 + np.exp(-3 * z)), atol=1e-10)


def test_multiclass_probs_readout_groups_outcomes(enc3):
    m = models.VQC(jax.random.key(1), enc3, ansatze.hardware_efficient(3, 2), 3,
                   readout="probs", readout_wires=(0, 2), post=False, dtype=C128)
    psi = statevector_ref(m.circuit, np.asarray(m.params), X[1])
    p = (np.abs(psi) ** 2).reshape(2, 2, 2).sum(axis=1).reshape(-1)  # wires (0, 2)
    expected = np.array([p[0] + p[3], p[1], p[2]])
    np.testing.assert_allclose(m.predict_proba(jnp.asarray(X[1])), expected, atol=1e-10)


def test_post_processing_layer_and_vmap(enc3):
    m = models.VQC(jax.random.key(2), enc3, ansatze.strongly_entangling(3, 1), 4,
                   dtype=C128)
    assert m.weights.shape == (4, 3) and m.bias.shape == (4,)
    params = np.asarray(m.params)
    r = np.array([[expval_ref(m.circuit, qjr.Z(q), params, x) for q in range(3)] for x in X])
    logits = jax.vmap(m)(jnp.asarray(X))
    np.testing.assert_allclose(logits, r @ np.asarray(m.weights).T + np.asarray(m.bias),
                               atol=1e-10)


def test_noisy_model_uses_density_matrices(enc3):
    m = models.VQC(jax.random.key(3), enc3, ansatze.hardware_efficient(3, 1), 2,
                   post=False, noise=("depolarizing", 0.1), dtype=C128)
    assert m.mixed and m.circuit.has_channels
    rho = density_ref(m.circuit, np.asarray(m.params), X[0])
    z = expval_ref(m.circuit, qjr.Z(2), np.asarray(m.params), X[0], mixed=True)
    assert abs(np.trace(rho @ rho)) < 0.99  # really mixed
    np.testing.assert_allclose(m(jnp.asarray(X[0]))[0], z / 2, atol=1e-10)


def test_reuploading_model_and_keys():
    a = models.make_vqc(jax.random.key(5), 2, 2, encoding="dense_angle", layers=3,
                        reupload=True)
    b = models.make_vqc(jax.random.key(5), 2, 2, encoding="dense_angle", layers=3,
                        reupload=True)
    c = models.make_vqc(jax.random.key(6), 2, 2, encoding="dense_angle", layers=3,
                        reupload=True)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.allclose(a.params, c.params)
    assert a.params.dtype == jnp.float32 and a.circuit.n_params == 3 * 2  # 1 qubit, ry+rz
    assert a(jnp.array([0.1, 0.2])).shape == (2,)


def test_amplitude_model_gradient_wrt_input_is_finite():
    m = models.make_vqc(jax.random.key(7), 4, 2, encoding="amplitude",
                        ansatz="tree_tensor_network", dtype=C128)
    g = jax.grad(lambda x: m(x)[0])(jnp.array([0.5, -0.2, 0.3, 0.8]))
    assert g.shape == (4,) and bool(jnp.all(jnp.isfinite(g)))


def test_bad_input_names_the_value(enc3):
    m = models.VQC(jax.random.key(0), enc3, ansatze.mps(3), 2)
    with pytest.raises(ParameterError, match=r"shape \(3,\), got shape \(4,\)"):
        m(jnp.ones(4))
    with pytest.raises(ParameterError, match=r"shape \(3,\), got shape \(2,\)"):
        jax.vmap(m)(jnp.ones((5, 2)))
    amp = models.make_vqc(jax.random.key(0), 4, 2, encoding="amplitude")
    with pytest.raises(ParameterError, match="norm 0.0"):
        amp(jnp.zeros(4))
    with pytest.raises(ParameterError, match="n_classes.*1"):
        models.VQC(jax.random.key(0), enc3, ansatze.mps(3), 1)
    with pytest.raises(ParameterError, match="'softmax'"):
        models.VQC(jax.random.key(0), enc3, ansatze.mps(3), 2, readout="softmax")
    with pytest.raises(ParameterError, match="5 classes need 5 readout wires"):
        models.VQC(jax.random.key(0), enc3, ansatze.mps(3), 5, post=False)
    with pytest.raises(ParameterError, match="'dropout'"):
        models.VQC(jax.random.key(0), enc3, ansatze.mps(3), 2, noise=("dropout", 0.1))
    with pytest.raises(QjrValueError, match="n_features=4, got 3"):
        models.make_vqc(jax.random.key(0), 3, 2, encoding="amplitude")
