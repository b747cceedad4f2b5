"""Datasets that need no download, splits from a key, and scaling to angle ranges.

Every loader returns ``(x, y)``: ``x`` a float64 NumPy array of shape ``(n_samples,
n_features)``, ``y`` an int32 array of labels in ``0..n_classes-1``. Synthetic sets take an
explicit ``jax.random`` key (no hidden global RNG). The scikit-learn sets (digits, iris,
breast cancer) are bundled with scikit-learn, which is imported lazily (only these
loaders need it). Dimensionality reduction is a plain PCA (SVD of the centred data) so
results do not depend on scikit-learn's solver choices.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.ir.circuit import Circuit
from qjaxrob.errors import ParameterError
from qjaxrob.extras import require

__all__ = [
    "Split", "train_test_split", "scale_to_range", "check_labels", "pca", "digits", "iris",
    "breast_cancer", "two_moons", "circles", "parity", "teacher",
]


class Split(NamedTuple):
    """A train/test split (NumPy arrays)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def check_labels(y, n_classes: int) -> np.ndarray:
    """``y`` as a 1-D int32 array, or ``ParameterError`` naming a label outside
    ``0..n_classes-1`` (or a non-integer label)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"labels must be 1-D, got shape {y.shape}")
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        bad = y[np.mod(y, 1) != 0][0].item()
        raise ParameterError(f"labels must be integers, got {bad!r}")
    bad = y[(y < 0) | (y >= n_classes)]
    if bad.size:
        raise ParameterError(f"label {bad[0].item()!r} outside the class range 0..{n_classes - 1}")
    return y.astype(np.int32)


def train_test_split(key, x, y, test_fraction: float = 0.25) -> Split:
    """Shuffles with ``key`` and holds out ``round(test_fraction * n)`` examples."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ParameterError(f"x has {len(x)} examples but y has {len(y)}")
    if not 0.0 < test_fraction < 1.0:
        raise ParameterError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    perm = np.asarray(jax.random.permutation(key, len(x)))
    n_test = int(round(test_fraction * len(x)))
    test, train = perm[:n_test], perm[n_test:]
    return Split(x[train], y[train], x[test], y[test])


def scale_to_range(x_train, x_test=None, low: float = 0.0, high: float = np.pi):
    """Min-max scales each feature to ``[low, high]`` using the *training* minima and
    maxima (test data may fall slightly outside). Constant features map to ``low``.
    Returns ``x_train_scaled`` or ``(x_train_scaled, x_test_scaled)``."""
    x_train = np.asarray(x_train, np.float64)
    lo, hi = x_train.min(axis=0), x_train.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)

    def f(v):
        return low + (np.asarray(v, np.float64) - lo) / span * (high - low)

    return f(x_train) if x_test is None else (f(x_train), f(x_test))


def pca(x, n_components: int) -> np.ndarray:
    """Projection of ``x`` (centred) onto its top ``n_components`` principal axes; the sign
    of each axis is fixed so its largest-magnitude loading is positive (deterministic)."""
    x = np.asarray(x, np.float64)
    if not 1 <= n_components <= x.shape[1]:
        raise ParameterError(f"n_components must lie in [1, {x.shape[1]}], got {n_components}")
    xc = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    vt = vt[:n_components]
    signs = np.sign(vt[np.arange(n_components), np.argmax(np.abs(vt), axis=1)])
    return xc @ (vt * signs[:, None]).T


def _sklearn(name):
    # scikit-learn is installed by the "test" extra (there is no extra of its own)
    return require("sklearn.datasets", "test", f"qjaxrob.qml.data.{name}")


def digits(classes=(0, 1), n_features: int = 4, method: str = "pca"):
    """scikit-learn's bundled 8x8 digits restricted to ``classes`` (relabelled
    ``0..len(classes)-1`` in the given order), reduced to ``n_features`` by ``"pca"`` or by
    ``"downscale"`` (average pooling of the 8x8 image to ``s x s``, ``n_features = s*s``
    with ``s`` in 1, 2, 4, 8)."""
    d = _sklearn("digits").load_digits()
    classes = tuple(int(c) for c in classes)
    bad = [c for c in classes if not 0 <= c <= 9]
    if bad or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ParameterError(f"classes must be >= 2 distinct digits in 0..9, got {classes}")
    mask = np.isin(d.target, classes)
    x = d.data[mask]
    y = np.array([classes.index(t) for t in d.target[mask]], np.int32)
    if method == "pca":
        return pca(x, n_features), y
    if method == "downscale":
        s = int(round(np.sqrt(n_features)))
        if s * s != n_features or 8 % s:
            raise ParameterError(f"downscale needs n_features in (1, 4, 16, 64), got {n_features}")
        k = 8 // s
        return x.reshape(-1, s, k, s, k).mean(axis=(2, 4)).reshape(-1, n_features), y
    raise ParameterError(f"method must be 'pca' or 'downscale', got {method!r}")


def iris(n_features: int = 4):
    """scikit-learn's iris (3 classes, 150 examples), PCA-reduced if ``n_features < 4``."""
    d = _sklearn("iris").load_iris()
    x = d.data if n_features == 4 else pca(d.data, n_features)
    return np.asarray(x, np.float64), d.target.astype(np.int32)


def breast_cancer(n_features: int = 4):
    """scikit-learn's breast cancer (2 classes, 569 examples, 30 features), standardised
    then PCA-reduced to ``n_features``."""
    d = _sklearn("breast_cancer").load_breast_cancer()
    x = (d.data - d.data.mean(axis=0)) / d.data.std(axis=0)
    return pca(x, n_features), d.target.astype(np.int32)


def two_moons(key, n_samples: int = 200, noise: float = 0.1):
    """Two interleaving half circles (as scikit-learn's ``make_moons``), balanced, with
    Gaussian noise of standard deviation ``noise``; label 1 is the lower moon."""
    n0 = n_samples // 2
    n1 = n_samples - n0
    k1, k2 = jax.random.split(key)
    t0 = np.linspace(0, np.pi, n0)
    t1 = np.linspace(0, np.pi, n1)
    x = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1),
                        np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)])
    x = x + noise * np.asarray(jax.random.normal(k1, x.shape), np.float64)
    y = np.concatenate([np.zeros(n0, np.int32), np.ones(n1, np.int32)])
    perm = np.asarray(jax.random.permutation(k2, n_samples))
    return x[perm], y[perm]


def circles(key, n_samples: int = 200, noise: float = 0.05, factor: float = 0.5):
    """A large circle (label 0) around a smaller one of radius ``factor`` (label 1)."""
    k1, k2, k3 = jax.random.split(key, 3)
    t = np.asarray(jax.random.uniform(k1, (n_samples,), minval=0, maxval=2 * np.pi), np.float64)
    y = (np.arange(n_samples) % 2).astype(np.int32)
    r = np.where(y == 1, factor, 1.0)
    x = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    x = x + noise * np.asarray(jax.random.normal(k2, x.shape), np.float64)
    perm = np.asarray(jax.random.permutation(k3, n_samples))
    return x[perm], y[perm]


def parity(n_bits: int):
    """All ``2**n_bits`` bit strings (features in {0, 1}, bit 0 first) labelled by their
    parity. Scale by ``pi`` for an angle encoding that maps bits to basis states."""
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 1 <= n_bits <= 20:
        raise ParameterError(f"n_bits must be an int in [1, 20], got {n_bits!r}")
    idx = np.arange(2**n_bits)
    bits = (idx[:, None] >> np.arange(n_bits - 1, -1, -1)) & 1
    return bits.astype(np.float64), (bits.sum(axis=1) % 2).astype(np.int32)


def teacher(key, n_samples: int, n_qubits: int = 3, layers: int = 2):
    """A random "teacher circuit" task: ``x ~ U[0, pi)^n``, angle-encoded with RY, then a
    hardware-efficient ansatz with random parameters; label ``1`` iff ``<Z_0> < m`` with
    ``m`` the median over the sample (balanced classes). Returns ``(x, y)``."""
    from qjaxrob.qml.ansatze import hardware_efficient
    from qjaxrob.qml.encodings import angle_encoding
    from qjaxrob.ir.observables import Z
    from qjaxrob.simulate import expval

    circuit: Circuit = angle_encoding(n_qubits).circuit + hardware_efficient(n_qubits, layers)
    kx, kp = jax.random.split(key)
    x = jax.random.uniform(kx, (n_samples, n_qubits), minval=0, maxval=jnp.pi)
    theta = jax.random.uniform(kp, (circuit.n_params,), minval=0, maxval=2 * jnp.pi)
    z = np.asarray(jax.vmap(lambda xi: expval(circuit, Z(0), theta, xi))(x))
    return np.asarray(x, np.float64), (z < np.median(z)).astype(np.int32)
