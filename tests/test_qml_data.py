"""Datasets: shapes, labels, determinism, PCA vs scikit-learn, splits and scaling."""

import jax
import numpy as np
import pytest

from qjaxrob.errors import ParameterError, QjrValueError
from qjaxrob.qml import data

sklearn = pytest.importorskip("sklearn")


def test_digits_pca_matches_sklearn_up_to_sign():
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    x, y = data.digits((3, 8), n_features=4)
    d = load_digits()
    mask = np.isin(d.target, (3, 8))
    ref = PCA(4, svd_solver="full").fit_transform(d.data[mask])
    np.testing.assert_allclose(np.abs(x), np.abs(ref), atol=1e-8)
    np.testing.assert_array_equal(y, (d.target[mask] == 8).astype(int))


def test_digits_downscale_and_multiclass():
    from sklearn.datasets import load_digits

    x, y = data.digits((0, 1, 2), n_features=4, method="downscale")
    img = load_digits().images[load_digits().target == 2][0]
    first = x[y == 2][0]
    np.testing.assert_allclose(first, [img[:4, :4].mean(), img[:4, 4:].mean(),
                                       img[4:, :4].mean(), img[4:, 4:].mean()])
    assert set(np.unique(y)) == {0, 1, 2}


def test_iris_and_breast_cancer():
    x, y = data.iris()
    assert x.shape == (150, 4) and np.bincount(y).tolist() == [50, 50, 50]
    x, y = data.breast_cancer(3)
    assert x.shape == (569, 3) and set(np.unique(y)) == {0, 1}
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-9)


def test_two_moons_lie_on_their_arcs_and_are_reproducible():
    x, y = data.two_moons(jax.random.key(0), 101, noise=0.0)
    r0 = np.hypot(*x[y == 0].T)
    r1 = np.hypot(x[y == 1, 0] - 1, x[y == 1, 1] - 0.5)
    np.testing.assert_allclose(r0, 1) and np.testing.assert_allclose(r1, 1)
    assert (x[y == 0, 1] >= -1e-12).all() and (x[y == 1, 1] <= 0.5 + 1e-12).all()
    a, _ = data.two_moons(jax.random.key(1), 50)
    b, _ = data.two_moons(jax.random.key(1), 50)
    c, _ = data.two_moons(jax.random.key(2), 50)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_circles_radii():
    x, y = data.circles(jax.random.key(0), 60, noise=0.0, factor=0.3)
    np.testing.assert_allclose(np.hypot(*x.T), np.where(y == 1, 0.3, 1.0))
    assert np.bincount(y).tolist() == [30, 30]


def test_parity_and_teacher():
    x, y = data.parity(4)
    assert len({tuple(r) for r in x}) == 16
    np.testing.assert_array_equal(y, x.sum(axis=1) % 2)
    x, y = data.teacher(jax.random.key(0), 40, n_qubits=3)
    x2, y2 = data.teacher(jax.random.key(0), 40, n_qubits=3)
    assert x.shape == (40, 3) and np.bincount(y).tolist() == [20, 20]
    np.testing.assert_array_equal(y, y2)


def test_split_and_scaling():
    x, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
    s = data.train_test_split(jax.random.key(0), x, y, test_fraction=0.25)
    assert len(s.x_test) == 5 and len(s.x_train) == 15
    rows = sorted(map(tuple, np.concatenate([s.x_train, s.x_test])))
    assert rows == sorted(map(tuple, x))
    tr, te = data.scale_to_range(s.x_train, s.x_test, 0.0, np.pi)
    np.testing.assert_allclose(tr.min(axis=0), 0) and np.testing.assert_allclose(tr.max(axis=0), np.pi)
    lo, hi = s.x_train.min(0), s.x_train.max(0)
    np.testing.assert_allclose(te, (s.x_test - lo) / (hi - lo) * np.pi)


def test_bad_inputs_name_the_value():
    with pytest.raises(ParameterError, match="label 3 outside the class range 0..1"):
        data.check_labels([0, 1, 3], 2)
    with pytest.raises(ParameterError, match="label -1"):
        data.check_labels([0, -1], 2)
    with pytest.raises(ParameterError, match="0.5"):
        data.check_labels([0.5], 2)
    with pytest.raises(QjrValueError, match="12"):
        data.digits((0, 12))
    with pytest.raises(ParameterError, match="n_features in"):
        data.digits(n_features=5, method="downscale")
    with pytest.raises(ParameterError, match="1.5"):
        data.train_test_split(jax.random.key(0), np.ones((4, 1)), np.ones(4), 1.5)
