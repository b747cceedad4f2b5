"""A batch axis laid over devices (qjaxrob.devices): padded batches equal the plain call, one
device is the plain call itself; inversion restarts and a study's inner axes over 4 host
devices equal the one-device run. The test session has 8 host devices (conftest sets
``--xla_force_host_platform_device_count=8``), so no subprocess is needed."""

import threading

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob import attacks, experiments
from qjaxrob import devices as qd
from qjaxrob.errors import ParameterError, QjrTypeError

FOUR = tuple(jax.local_devices()[:4])


@jax.jit
def _rows(a, b):
    """A row-wise batch function with two outputs (one a pytree)."""
    return jnp.sin(a) @ b, {"norm": jnp.linalg.norm(a, axis=-1)}


@pytest.mark.parametrize("n", [1, 4, 6, 9])
def test_a_padded_batch_over_four_devices_equals_the_plain_call(rng, n):
    assert len(FOUR) == 4
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(3, 2))
    plain = _rows(a, b)
    got = qd.over(lambda x: _rows(x, b), jnp.asarray(a), devices=FOUR)
    assert got[0].shape == (n, 2) and got[1]["norm"].shape == (n,)
    np.testing.assert_allclose(got[0], np.sin(a) @ b, rtol=1e-12)
    np.testing.assert_allclose(got[0], plain[0], rtol=1e-12)
    np.testing.assert_allclose(got[1]["norm"], np.linalg.norm(a, axis=-1), rtol=1e-12)


def test_the_batch_is_laid_over_the_devices(rng):
    seen = []

    def fn(x):
        seen.append(x.sharding)
        return x * 2

    x = jnp.asarray(rng.normal(size=(6, 2)))
    out = qd.over(fn, x, devices=FOUR, axis="inputs")
    (sharding,) = seen
    assert sharding.mesh.axis_names == ("inputs",) and set(sharding.device_set) == set(FOUR)
    assert sharding.shard_shape((8, 2)) == (2, 2)  # 6 rows padded to 8, 2 per device
    np.testing.assert_array_equal(out, 2 * x)


def test_one_device_is_the_plain_call_without_a_new_compile(rng):
    f = jax.jit(lambda x: jnp.cos(x) * 3)
    x = jnp.asarray(rng.normal(size=(5,)))
    plain = f(x)
    size = f._cache_size()
    for devs in [None, (), FOUR[:1]]:
        got = qd.over(f, x, devices=devs)
        np.testing.assert_array_equal(got, plain)
        assert got.sharding == plain.sharding
    with qd.use(FOUR[:1]):
        np.testing.assert_array_equal(qd.over(f, x), plain)
    assert f._cache_size() == size


def test_use_lends_devices_to_this_thread_only():
    assert qd.in_use() == ()
    other = []
    with qd.use(FOUR):
        assert qd.in_use() == FOUR
        with qd.use(FOUR[:2]):
            assert qd.in_use() == FOUR[:2]
        assert qd.in_use() == FOUR
        t = threading.Thread(target=lambda: other.append(qd.in_use()))
        t.start()
        t.join()
    assert qd.in_use() == () and other == [()]


def test_in_shares_pins_each_share_to_its_device(rng):
    x = jnp.asarray(rng.normal(size=(7, 3)))
    where = []

    def run(a):
        where.append(next(iter(a.devices())))
        return (a + 1, jnp.sum(a, axis=1))

    got = qd.in_shares(run, (x,), 4, FOUR)
    assert sorted(d.id for d in where) == sorted(d.id for d in FOUR)
    np.testing.assert_array_equal(got[0], x + 1)
    np.testing.assert_allclose(got[1], np.sum(np.asarray(x), axis=1), rtol=1e-12)


@pytest.mark.parametrize("devices, error, match", [
    ("cpu", QjrTypeError, "devices must be a sequence of jax.Device or None, got 'cpu'"),
    ([0, 1], QjrTypeError, "devices must be jax.Device objects, got 0"),
    (FOUR[:1] * 2, ParameterError, "devices repeats a device"),
])
def test_bad_devices_raise(devices, error, match):
    with pytest.raises(error, match=match):
        qd.over(lambda x: x, jnp.ones(2), devices=devices)


def test_an_output_that_is_not_batch_leading_raises():
    with pytest.raises(ParameterError, match=r"batch-leading outputs \(one row per input "
                                             r"row, 8 after padding\), got leading shapes "
                                             r"\[\(\), \(8,\)\]"):
        qd.over(lambda x: (x, jnp.mean(x)), jnp.ones(6), devices=FOUR)


def test_batches_of_different_lengths_raise():
    with pytest.raises(ParameterError, match=r"one non-empty leading axis, got leading "
                                             r"lengths \['2', '3'\]"):
        qd.over(lambda a, b: a, jnp.ones(2), jnp.ones(3), devices=FOUR)


@pytest.fixture(scope="module")
def inversion_case():
    """A one-qubit model (cheap to compile) and its shared gradient; 6 restarts (padded to
    8 on 4 devices) and their one-device, one-worker result."""
    model = qjr.qml.VQC(jax.random.key(11), qjr.qml.angle_encoding(1),
                        qjr.qml.hardware_efficient(1, 1), 2, readout_wires=(0,),
                        dtype=jnp.complex128)
    x, y = jnp.array([2.1]), jnp.array(1)
    grads = eqx.filter_grad(qjr.qml.train.cross_entropy)(model, x[None], y[None])
    kw = {"key": jax.random.key(3), "restarts": 6, "steps": 12}
    return model, grads, kw, attacks.invert(model, grads, **kw, workers=1)


def test_inversion_restarts_over_four_devices_equal_one_device(inversion_case):
    model, grads, kw, one = inversion_case
    four = attacks.invert(model, grads, **kw, devices=FOUR)
    np.testing.assert_array_equal(four.xs, one.xs)
    np.testing.assert_array_equal(four.distances, one.distances)
    assert four.xs.shape == (6, 1, 1) and np.ptp(np.asarray(one.distances)) > 0
    with qd.use(FOUR):  # the devices a study runner lends
        lent = attacks.invert(model, grads, **kw)
    np.testing.assert_array_equal(lent.xs, one.xs)


def test_pooled_restarts_over_two_devices_equal_one_device(inversion_case):
    """Pooled restarts run as one pinned worker per device (2 here: one compilation each);
    every restart follows its one-device trajectory (to rounding: the batch width differs)."""
    model, grads, kw, one = inversion_case
    pool = {"slots": 2, "stall_steps": kw["steps"] + 1, "match_tol": 0.0}
    two = attacks.invert(model, grads, **kw, **pool, devices=FOUR[:2])
    np.testing.assert_allclose(two.xs, one.xs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(two.distances, one.distances, rtol=1e-8, atol=1e-20)
    assert two.steps_run.shape == (6,) and int(np.min(two.steps_run)) >= 1


QDP = experiments.get_study("qdp-tradeoff")
QDP_CONFIG = experiments.resolve(QDP, quick=True, overrides=[
    "n_qubits=2", "layers=1", "channels=['depolarizing']", "n_train=4", "n_test=8",
    "train_steps=1", "levels=[0.01, 0.05, 0.1, 0.2, 0.3, 0.5]"])  # 6 levels: padded on 4


def test_a_study_with_its_levels_over_four_devices_equals_one_device(tmp_path, monkeypatch):
    from qjaxrob.defenses import tradeoff

    sweep, seen = tradeoff._sweep, []

    def spy(noisy, params, states, labels, levels, *rest):
        seen.append(levels.sharding)
        return sweep(noisy, params, states, labels, levels, *rest)

    monkeypatch.setattr(tradeoff, "_sweep", spy)
    one = experiments.run(QDP, QDP_CONFIG, tmp_path / "one", progress=False, plots=False)
    four = experiments.run(QDP, QDP_CONFIG, tmp_path / "four", progress=False, plots=False,
                           devices=4, layout="batch")
    assert len(seen[0].device_set) == 1
    assert set(seen[1].device_set) == set(FOUR) and seen[1].shard_shape((8,)) == (2,)
    assert one.complete and four.complete
    (r1,), (r4,) = one.records, four.records
    assert len(r4["result"]["levels"]) == 6
    for a, b in zip(r1["result"]["levels"], r4["result"]["levels"]):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-9), k
    meta = (tmp_path / "four" / "metadata.json").read_text()
    assert '"batch_devices": 4' in meta and '"unit_devices": 1' in meta


def test_an_unknown_layout_raises(tmp_path):
    with pytest.raises(ParameterError, match=r"layout must be one of \('units', 'batch'\), "
                                             r"got 'rows'"):
        experiments.run(QDP, QDP_CONFIG, tmp_path / "x", progress=False, devices=2,
                        layout="rows")


def test_gradient_variance_draws_over_four_devices_equal_one_device():
    c = qjr.qml.hardware_efficient(2, 1)
    key = jax.random.key(5)
    one = qjr.qml.landscape.gradient_variance(key, c, ("global", "local"), 7,
                                              dtype=jnp.complex128)
    four = qjr.qml.landscape.gradient_variance(key, c, ("global", "local"), 7,
                                               dtype=jnp.complex128, devices=FOUR)
    assert four.shape == one.shape == (2, c.n_params)  # 7 draws: padded to 8, then dropped
    np.testing.assert_allclose(four, one, rtol=1e-10, atol=1e-15)
