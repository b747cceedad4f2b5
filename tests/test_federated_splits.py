"""Client data splits: partitions, label and quantity skew, stacking, bad configurations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qjaxrob import federated as fed
from qjaxrob.errors import ParameterError


def assert_partition(parts, n):
    allidx = np.concatenate(parts)
    assert len(allidx) == n and np.array_equal(np.sort(allidx), np.arange(n))


@pytest.mark.parametrize("n,k", [(10, 3), (101, 8), (64, 64)])
def test_iid_split_is_a_balanced_partition(n, k):
    parts = fed.iid_split(jax.random.key(0), n, k)
    assert len(parts) == k
    assert_partition(parts, n)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    again = fed.iid_split(jax.random.key(0), n, k)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def label_hist(y, parts, c):
    return np.array([np.bincount(y[p], minlength=c) / len(p) for p in parts])


def test_dirichlet_split_skews_labels_with_small_alpha():
    rng = np.random.default_rng(0)
    c = 4
    y = rng.integers(0, c, 2000)
    skewed = fed.dirichlet_split(jax.random.key(1), y, 10, 0.05)
    flat = fed.dirichlet_split(jax.random.key(1), y, 10, 1000.0)
    for parts in (skewed, flat):
        assert_partition(parts, len(y))
        assert min(len(p) for p in parts) >= 1
    glob = np.bincount(y, minlength=c) / len(y)
    tv_skewed = 0.5 * np.abs(label_hist(y, skewed, c) - glob).sum(1).mean()
    tv_flat = 0.5 * np.abs(label_hist(y, flat, c) - glob).sum(1).mean()
    assert tv_flat < 0.05
    assert tv_skewed > 0.4
    # each client of the skewed split is dominated by few classes
    assert np.mean(label_hist(y, skewed, c).max(1)) > 0.7


def test_quantity_skew_split_sizes():
    n, k = 500, 10
    small = fed.quantity_skew_split(jax.random.key(2), n, k, 0.1, min_size=5)
    large = fed.quantity_skew_split(jax.random.key(2), n, k, 1e4)
    for parts in (small, large):
        assert_partition(parts, n)
    sizes_small = np.array([len(p) for p in small])
    sizes_large = np.array([len(p) for p in large])
    assert sizes_small.min() >= 5
    assert sizes_small.std() > 5 * sizes_large.std()
    assert sizes_large.max() - sizes_large.min() <= 5


def test_stack_clients_pads_and_counts():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 3))
    y = rng.integers(0, 2, 20)
    parts = [np.array([0, 5, 7]), np.arange(8, 20), np.array([1, 2, 3, 4, 6])]
    cd = fed.stack_clients(x, y, parts)
    assert cd.x.shape == (3, 12, 3) and cd.y.shape == (3, 12) and cd.n_clients == 3
    np.testing.assert_array_equal(cd.counts, [3, 12, 5])
    for i, p in enumerate(parts):
        np.testing.assert_array_equal(cd.x[i, : len(p)], x[p])
        np.testing.assert_array_equal(cd.y[i, : len(p)], y[p])
        assert np.all(np.asarray(cd.x[i, len(p):]) == 0)


def test_bad_split_configurations_raise():
    y = np.array([0, 1] * 10)
    with pytest.raises(ParameterError, match="n_clients must be a positive int, got 0"):
        fed.iid_split(jax.random.key(0), 10, 0)
    with pytest.raises(ParameterError, match="n_clients = 30 exceeds the 20 examples"):
        fed.dirichlet_split(jax.random.key(0), y, 30, 1.0)
    for alpha in (0.0, -1.0):
        with pytest.raises(ParameterError, match="alpha must be > 0"):
            fed.dirichlet_split(jax.random.key(0), y, 2, alpha)
        with pytest.raises(ParameterError, match="alpha must be > 0"):
            fed.quantity_skew_split(jax.random.key(0), 20, 2, alpha)
    with pytest.raises(ParameterError, match="no partition"):
        fed.dirichlet_split(jax.random.key(0), y, 10, 0.01, min_size=2)
    with pytest.raises(ParameterError, match="min_size"):
        fed.quantity_skew_split(jax.random.key(0), 20, 5, 1.0, min_size=5)
    with pytest.raises(ParameterError, match="client 1 has no examples"):
        fed.stack_clients(np.ones((4, 2)), np.zeros(4), [np.array([0]), np.array([], int)])
    with pytest.raises(ParameterError, match="at least one client"):
        fed.stack_clients(np.ones((4, 2)), np.zeros(4), [])
    with pytest.raises(ParameterError, match="PRNG key"):
        fed.iid_split(0, 10, 2)


def test_stack_clients_refuses_float_indices_naming_the_value():
    x, y = np.ones((6, 2)), np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(ParameterError, match=r"client 1: indices must be integers.*1\.5"):
        fed.stack_clients(x, y, [np.array([0, 1]), np.array([2.0, 1.5])])
    with pytest.raises(ParameterError, match=r"client 0: indices must be integers.*2\.0"):
        fed.stack_clients(x, y, [np.array([2.0, 3.0]), np.array([4])])  # no truncation
    with pytest.raises(ParameterError, match="client 0: indices must be integers.*True"):
        fed.stack_clients(x, y, [np.array([True, False]), np.array([4])])
    with pytest.raises(ParameterError, match=r"client 1 has index 6 outside \[0, 6\)"):
        fed.stack_clients(x, y, [np.array([0]), np.array([6])])


@pytest.mark.parametrize("bad", [-1, 5, 0.5])
def test_stack_clients_checks_labels_naming_the_value(bad):
    x, y = np.ones((6, 2)), np.array([0, 1, 0, 1, 0, 1], float)
    y[4] = bad
    parts = [np.arange(3), np.arange(3, 6)]
    with pytest.raises(ParameterError, match=f"label.*{bad}"):
        fed.stack_clients(x, y, parts, n_classes=2)
    if bad != 5:  # without n_classes only the model knows that 5 is out of range
        with pytest.raises(ParameterError, match=f"label.*{bad}"):
            fed.stack_clients(x, y, parts)


@pytest.mark.parametrize("bad", [-1, 2, 5])
def test_training_refuses_labels_outside_the_models_classes(bad):
    """Labels -1 (would wrap to the last class) and >= n_classes never reach training: the
    round checks the stacked labels against the model, naming the label, even for client
    data built by hand; padding rows are not checked."""
    from qjaxrob import qml

    rng = np.random.default_rng(0)
    x = rng.uniform(0, np.pi, (11, 2)).astype(np.float32)
    y = rng.integers(0, 2, 11)
    parts = fed.iid_split(jax.random.key(3), len(x), 3)  # sizes 4, 4, 3: one padding row
    good = fed.stack_clients(x, y, parts, n_classes=2)
    model = qml.make_vqc(jax.random.key(1), n_features=2, n_classes=2)
    cfg = fed.FedConfig(clients_per_round=3, rounds=1, batch_size=4)
    ys = np.asarray(good.y).copy()
    ys[1, 2] = bad
    with pytest.raises(ParameterError, match=f"label {bad} outside the class range 0..1"):
        fed.federated_round(fed.init_state(model, cfg), good._replace(y=jnp.asarray(ys)), cfg)
    ys = np.asarray(good.y).copy()
    ys[2, 3] = bad  # a padding row (client 2 holds 3 examples)
    state, info = fed.federated_round(fed.init_state(model, cfg),
                                      good._replace(y=jnp.asarray(ys)), cfg)
    assert np.all(np.isfinite(np.asarray(info.aggregate)))
