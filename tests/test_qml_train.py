"""Training: accuracy on two-moons, loss decrease, bit-exact resume, early stopping."""

import os
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qjaxrob.errors import ParameterError
from qjaxrob.qml import data, models, train

OPT = optax.adam(0.1)  # one object: the jitted epoch/step functions compile once for it


@pytest.fixture(scope="module")
def moons():
    x, y = data.two_moons(jax.random.key(1), 200, noise=0.1)
    s = data.train_test_split(jax.random.key(2), x, y)
    xtr, xte = data.scale_to_range(s.x_train, s.x_test, 0.0, np.pi)
    return jnp.asarray(xtr), jnp.asarray(s.y_train), jnp.asarray(xte), jnp.asarray(s.y_test)


@pytest.fixture(scope="module")
def model():
    return models.make_vqc(jax.random.key(3), 2, 2, layers=3, reupload=True)


def leaves(tree):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(tree)]


@pytest.mark.slow
def test_vqc_reaches_95_percent_on_two_moons(moons, model):
    xtr, ytr, xte, yte = moons
    trained, hist = train.fit(model, OPT, xtr, ytr, epochs=25, batch_size=16,
                              key=jax.random.key(4), x_val=xte, y_val=yte, progress=False)
    _, acc = train.evaluate(trained, xte, yte)
    assert float(acc) >= 0.95
    assert hist["val_acc"][-1] == pytest.approx(float(acc))
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]


def test_train_step_decreases_the_loss(moons, model):
    xtr, ytr, _, _ = moons
    xb, yb = xtr[:16], ytr[:16]
    opt_state = OPT.init(eqx.filter(model, eqx.is_inexact_array))
    m, losses = model, []
    for _ in range(5):
        m, opt_state, loss = train.train_step(m, opt_state, xb, yb, OPT)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    ref_loss = float(train.cross_entropy(model, xb, yb))
    assert losses[0] == pytest.approx(ref_loss, rel=1e-6)


def test_resume_from_checkpoint_is_identical(moons, model, tmp_path):
    xtr, ytr, xte, yte = moons
    kw = dict(batch_size=32, key=jax.random.key(5), x_val=xte, y_val=yte, progress=False)
    full, hist_full = train.fit(model, OPT, xtr, ytr, epochs=4, **kw)
    ckpt = tmp_path / "run.npz"
    train.fit(model, OPT, xtr, ytr, epochs=2, checkpoint=str(ckpt), **kw)
    with np.load(ckpt, allow_pickle=False) as f:  # plain arrays, no pickle
        assert int(f["scalar/epoch"]) == 2
    # a differently initialised model: only a real resume can reproduce the full run
    fresh = models.make_vqc(jax.random.key(99), 2, 2, layers=3, reupload=True)
    resumed, hist_res = train.fit(fresh, OPT, xtr, ytr, epochs=4, checkpoint=str(ckpt), **kw)
    for a, b in zip(leaves(full), leaves(resumed)):
        np.testing.assert_array_equal(a, b)
    assert hist_full == hist_res
    other = models.make_vqc(jax.random.key(3), 2, 2, layers=2, reupload=True)
    with pytest.raises(ParameterError, match="different model"):
        train.fit(other, OPT, xtr, ytr, epochs=5, checkpoint=str(ckpt), **kw)


def test_early_stopping_returns_the_best_model(moons, model):
    xtr, ytr, xte, yte = moons
    kw = dict(batch_size=32, key=jax.random.key(6), x_val=xte, y_val=yte, progress=False)
    best, hist = train.fit(model, OPT, xtr, ytr, epochs=10, patience=2, min_delta=1e9, **kw)
    assert len(hist["loss"]) == 3  # epoch 1 sets the best, two more without improvement
    one, _ = train.fit(model, OPT, xtr, ytr, epochs=1, **kw)
    for a, b in zip(leaves(best), leaves(one)):
        np.testing.assert_array_equal(a, b)


def test_fit_rejects_bad_data(moons, model):
    xtr, ytr, _, _ = moons
    with pytest.raises(ParameterError, match=r"label 2 outside the class range 0..1"):
        train.fit(model, OPT, xtr, ytr.at[3].set(2), epochs=1, key=jax.random.key(0),
                  progress=False)
    with pytest.raises(ParameterError, match=r"shape \(n, 2\), got shape \(150, 3\)"):
        train.fit(model, OPT, jnp.ones((150, 3)), ytr, epochs=1, key=jax.random.key(0),
                  progress=False)
    with pytest.raises(ParameterError, match="150 examples but 149 labels"):
        train.fit(model, OPT, xtr, ytr[:-1], epochs=1, key=jax.random.key(0), progress=False)


def test_fit_rejects_bad_arguments_with_named_values(moons, model):
    xtr, ytr, _, _ = moons
    kw = dict(progress=False)
    with pytest.raises(ParameterError, match=r"non-finite.*row 5, column 1: nan"):
        train.fit(model, OPT, xtr.at[5, 1].set(jnp.nan), ytr, epochs=1,
                  key=jax.random.key(0), **kw)
    with pytest.raises(ParameterError, match=r"training data is empty: .*\(0, 2\)"):
        train.fit(model, OPT, jnp.zeros((0, 2)), jnp.zeros((0,), int), epochs=1,
                  key=jax.random.key(0), **kw)
    for bad in (-1, 0):
        with pytest.raises(ParameterError, match=f"epochs must be >= 1, got {bad}"):
            train.fit(model, OPT, xtr, ytr, epochs=bad, key=jax.random.key(0), **kw)
    with pytest.raises(ParameterError, match="explicit PRNG key"):
        train.fit(model, OPT, xtr, ytr, epochs=1, key=None, **kw)
    with pytest.raises(ParameterError, match="PRNG key.*got 3"):
        train.fit(model, OPT, xtr, ytr, epochs=1, key=3, **kw)
    with pytest.raises(ParameterError, match="batch_size must be a positive int, got 0"):
        train.fit(model, OPT, xtr, ytr, epochs=1, batch_size=0, key=jax.random.key(0), **kw)
    with pytest.raises(ParameterError, match=r"validation features contain 1 non-finite"):
        train.fit(model, OPT, xtr, ytr, epochs=1, key=jax.random.key(0),
                  x_val=xtr[:4].at[0, 0].set(jnp.inf), y_val=ytr[:4], **kw)


def test_progress_reports_compile_time_separately(moons, capsys):
    xtr, ytr, _, _ = moons
    m = models.make_vqc(jax.random.key(8), 2, 2, layers=1)  # a structure compiled only here
    opt = optax.sgd(0.05)
    train.fit(m, opt, xtr[:40], ytr[:40], epochs=2, batch_size=20, key=jax.random.key(0))
    first = capsys.readouterr().err
    train.fit(m, opt, xtr[:40], ytr[:40], epochs=2, batch_size=20, key=jax.random.key(0))
    again = capsys.readouterr().err
    t_first = float(re.findall(r"compile=([0-9.]+)s", first)[-1])
    t_again = float(re.findall(r"compile=([0-9.]+)s", again)[-1])
    assert "2/2" in first and t_first > 0.1  # a real compilation, reported on its own
    assert t_again < t_first  # cached: the second run compiles nothing


def test_evaluate_checks_labels_and_matches_a_direct_computation(moons, model):
    _, _, xte, yte = moons
    loss, acc = train.evaluate(model, xte, yte)
    logits = np.asarray(jax.vmap(model)(xte), np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert float(loss) == pytest.approx(-logp[np.arange(len(yte)), yte].mean(), rel=1e-6)
    assert float(acc) == pytest.approx(np.mean(logits.argmax(-1) == np.asarray(yte)))
    for bad, match in [(jnp.full(len(yte), 5), "label 5 outside the class range 0..1"),
                       (yte.at[0].set(-1), "label -1 outside"),
                       (yte.astype(float).at[1].set(0.5), "labels must be integers, got 0.5"),
                       (yte[:-1], f"{len(yte)} examples but {len(yte) - 1} labels")]:
        with pytest.raises(ParameterError, match=re.escape(match)):
            train.evaluate(model, xte, bad)
    # a model without an n_classes attribute: the class count comes from its logits
    three = lambda x: jnp.stack([x[0], x[1], x[0] * x[1]])  # noqa: E731
    with pytest.raises(ParameterError, match=re.escape("label 3 outside the class range 0..2")):
        train.evaluate(three, xte, jnp.full(len(yte), 3),
                       loss_fn=lambda m, x, y: jnp.zeros(()))
    # under jit the labels are traced and not checked (the caller's responsibility)
    jitted = jax.jit(lambda y: train.evaluate(model, xte, y)[1])
    assert float(jitted(yte)) == pytest.approx(float(acc))


def test_a_damaged_or_busy_checkpoint_is_refused(moons, model, tmp_path):
    from qjaxrob import storage
    from qjaxrob.errors import CheckpointError, LockError

    xtr, ytr, _, _ = moons
    kw = dict(batch_size=50, key=jax.random.key(5), progress=False)
    ckpt = tmp_path / "run.npz"
    _, first = train.fit(model, OPT, xtr, ytr, epochs=1, checkpoint=ckpt, **kw)
    good = ckpt.read_bytes()
    for damaged in (good[: len(good) // 2], bytes(np.random.default_rng(0).integers(
            0, 256, 500, dtype=np.uint8))):
        ckpt.write_bytes(damaged)
        with pytest.raises(CheckpointError, match=re.escape(str(ckpt))) as exc:
            train.fit(model, OPT, xtr, ytr, epochs=2, checkpoint=ckpt, **kw)
        assert "pickle" not in str(exc.value)
    ckpt.write_bytes(good)
    with storage.locked(tmp_path, name="run.npz.lock"):  # another writer holds it
        with pytest.raises(LockError, match=r"checkpoint '.*run.npz' is in use by another "
                                            rf"writer \(pid {os.getpid()}"):
            train.fit(model, OPT, xtr, ytr, epochs=2, checkpoint=ckpt, **kw)
    _, hist = train.fit(model, OPT, xtr, ytr, epochs=2, checkpoint=ckpt, **kw)
    assert len(hist["loss"]) == 2 and hist["loss"][0] == first["loss"][0]  # resumed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]
