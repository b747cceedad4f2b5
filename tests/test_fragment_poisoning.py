"""qjr.attacks.fragment_poisoning: every policy's reconstruction against an independent
reference (the uncut circuit with V inserted, qjr.cutting.perturb, a hand contraction),
zero-budget training identical to honest training, the trigger's on/off behaviour, bad
inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qjaxrob as qjr
from qjaxrob.attacks import fragment_poisoning as fp
from qjaxrob.attacks import fragments as fr
from qjaxrob.defenses.integrity import cuts
from qjaxrob.errors import CutError, ParameterError, QjrTypeError

N = 4


def _circuit():
    """RY(x_q) encoding on 4 wires, block A on wires 0-2 (with an RX, so the cut wire's Y
    component is nonzero), wire cut on 2, block B on 2-3: fragment B holds the encoding of
    feature 3."""
    c = qjr.Circuit(N)
    for q in range(N):
        c = c.ry(q, qjr.inp(q))
    c = c.ry(0, qjr.param(0)).ry(1, qjr.param(1)).ry(2, qjr.param(2)).cnot(0, 1).cnot(1, 2)
    return c.rx(2, 0.6).cut(2).ry(2, qjr.param(3)).ry(3, qjr.param(4)).cnot(2, 3)


OBS = qjr.Z(3)


@pytest.fixture(scope="module")
def cc():
    return qjr.cutting.partition(_circuit())


def _uncut():
    return qjr.Circuit(N, tuple(op for op in _circuit().ops if not op.is_marker))


def _value(cc, pol, p, x):
    return float(fp.policy_value(cc, OBS, pol, p, x, dtype=jnp.complex128))


def test_policy_values_against_references(cc, rng):
    p, x = rng.uniform(-3, 3, 5), rng.uniform(0, 3, N)
    assert _value(cc, fp.honest(), p, x) == pytest.approx(
        float(qjr.expval(_uncut(), OBS, p, x, dtype=jnp.complex128)), abs=1e-12)
    pol = fp.uniform(0.7, axis=rng.normal(size=3))
    ref = qjr.expval(fr.uncut_with(cc, 0, np.asarray(pol.vs[0])), OBS, p, x,
                     dtype=jnp.complex128)
    assert _value(cc, pol, p, x) == pytest.approx(float(ref), abs=1e-12)
    assert fr.operator_distance(pol.vs) == pytest.approx(0.7, abs=1e-12)
    pol = fp.term_dependent(0.5, rng.normal(size=(6, 3)) * 3)
    assert fr.operator_distance(pol.vs) <= 0.5 + 1e-12
    ref = qjr.cutting.expval(qjr.cutting.perturb(cc, 0, np.asarray(pol.vs)), OBS, p, x,
                             dtype=jnp.complex128)
    assert _value(cc, pol, p, x) == pytest.approx(float(ref), abs=1e-12)
    # biased terms and dropped terms: a hand contraction of the single cut's data
    data = cuts.wire_cut_data(cc, OBS, p, x)
    assert np.abs(np.asarray(data.upstream)[2]).max() > 0.05  # <Y> on the cut wire enters
    peng = np.asarray(qjr.cutting.qpd.wire_table().coeffs).real
    bias = np.zeros((6, 1))
    bias[[0, 3]] = -0.3
    ref = cuts.contract(peng, data.upstream, np.clip(data.downstream + bias, -1, 1),
                        data.weights)
    assert _value(cc, fp.biased_terms(0.3, [0, 3], sign=-1), p, x) == pytest.approx(
        float(ref), abs=1e-12)
    scale = np.ones((4, 6))
    scale[0, 1] = scale[3, 0] = 0.0
    ref = cuts.contract(peng * scale, data.upstream, data.downstream, data.weights)
    assert _value(cc, fp.dropped(1.0, [(0, 1), (3, 0)]), p, x) == pytest.approx(
        float(ref), abs=1e-12)
    s = rng.uniform(-1, 1, (4, 6))
    ref = cuts.contract(peng * (1 + 0.2 * s), data.upstream, data.downstream, data.weights)
    assert _value(cc, fp.reweighted(0.2, s), p, x) == pytest.approx(float(ref), abs=1e-12)


def test_trigger_acts_only_on_triggered_inputs(cc, rng):
    p = rng.uniform(-3, 3, 5)
    base = fp.uniform(1.5)
    pol = fp.triggered(base, [3], [2.0], tol=0.05)
    x = rng.uniform(0, 1.5, N)
    assert _value(cc, pol, p, x) == pytest.approx(_value(cc, fp.honest(), p, x), abs=1e-12)
    xt = np.asarray(fp.stamp(pol, x[None]))[0]
    assert xt[3] == 2.0 and np.array_equal(xt[:3], x[:3])
    assert _value(cc, pol, p, xt) == pytest.approx(_value(cc, base, p, xt), abs=1e-12)
    assert abs(_value(cc, base, p, xt) - _value(cc, fp.honest(), p, xt)) > 1e-3


def _data(rng, n=24):
    x = rng.uniform(0, np.pi, (n, N)).astype(np.float32)
    return x, (np.sin(x[:, 0] + x[:, 3]) > 0.5).astype(int)


def test_zero_budget_trains_exactly_as_honest(cc, rng):
    """One compilation for every policy of the same structure; the zero-budget ones give
    bit-identical parameters, and honest training's first loss is the cross entropy of the
    uncut circuit's values."""
    x, y = _data(rng)
    key = jax.random.key(3)
    hon = fp.train(cc, OBS, x, y, key=key, steps=15)
    assert hon.history["theta"].shape == (16, 5) and hon.loss.shape == (15,)
    compiled = fp._train._cache_size()
    for pol in (fp.uniform(0.0), fp.term_dependent(0.0, rng.normal(size=(6, 3))),
                fp.biased_terms(0.0, [1, 2]), fp.reweighted(0.0, rng.uniform(-1, 1, (4, 6))),
                fp.dropped(0.0, [(0, 0)])):
        out = fp.train(cc, OBS, x, y, pol, key=key, steps=15)
        for k in ("theta", "w", "b"):
            np.testing.assert_array_equal(out.params[k], hon.params[k])
    assert fp._train._cache_size() == compiled  # every policy reused honest training's program
    theta0 = hon.history["theta"][0]
    vals = jax.vmap(lambda xi: qjr.expval(_uncut(), OBS, theta0, xi))(x)
    ref = optax.sigmoid_binary_cross_entropy(vals, y.astype(np.float32)).mean()
    assert float(hon.loss[0]) == pytest.approx(float(ref), abs=1e-5)
    # a real attack changes training
    att = fp.train(cc, OBS, x, y, fp.uniform(1.0), key=key, steps=15)
    assert not np.allclose(att.params["theta"], hon.params["theta"])


def test_evaluate_clean_accuracy_and_attack_success(cc, rng):
    """Against the uncut circuit (honest inputs) and the uncut circuit with V inserted at the
    cut (triggered inputs: the trigger policy's executor applies a uniform V)."""
    x, y = _data(rng, 32)
    params = {"theta": rng.uniform(-3, 3, 5).astype(np.float32), "w": np.float32(1.5),
              "b": np.float32(-0.1)}
    pol = fp.triggered(fp.uniform(2.0), [3], [3.1], tol=0.01)
    ev = fp.evaluate(cc, OBS, params, x, y, pol)

    def predict(circuit, xs):
        vals = jax.vmap(lambda xi: qjr.expval(circuit, OBS, params["theta"], xi))(xs)
        return (params["w"] * np.asarray(vals) + params["b"] > 0).astype(int)

    assert ev["clean_accuracy"] == pytest.approx(np.mean(predict(_uncut(), x) == y))
    trig = np.asarray(fp.stamp(pol, x[y != 1]))
    v = np.asarray(fp.uniform(2.0).vs[0])
    asr = np.mean(predict(fr.uncut_with(cc, 0, v), trig) == 1)
    assert ev["attack_success_rate"] == pytest.approx(asr)
    assert np.isnan(fp.evaluate(cc, OBS, params, x, y)["attack_success_rate"])


def test_bad_inputs(cc, rng):
    x, y = _data(rng, 8)
    with pytest.raises(ParameterError, match="budget"):
        fp.uniform(-0.1)
    with pytest.raises(ParameterError, match="budget"):
        fp.term_dependent(-1.0, np.zeros((6, 3)))
    with pytest.raises(ParameterError, match="budget"):
        fp.biased_terms(-0.5, [0])
    for frac in (-0.1, 1.1):
        with pytest.raises(ParameterError, match="fraction"):
            fp.dropped(frac, [(0, 0)])
    with pytest.raises(ParameterError, match="terms"):
        fp.biased_terms(0.1, [6])
    with pytest.raises(ParameterError, match="scale"):
        fp.reweighted(0.1, np.full((4, 6), 2.0))
    with pytest.raises(ParameterError, match="one value per feature"):
        fp.triggered(fp.uniform(0.1), [0, 1], [1.0])
    with pytest.raises(ParameterError, match="label"):
        fp.train(cc, OBS, x, np.full(8, 2), key=jax.random.key(0), steps=2)
    with pytest.raises(ParameterError, match="shape"):
        fp.train(cc, OBS, x[:, :3], y, key=jax.random.key(0), steps=2)
    with pytest.raises(QjrTypeError):
        fp.train(cc, OBS, x, y, "uniform", key=jax.random.key(0), steps=2)
    gate = qjr.cutting.partition(qjr.Circuit(2).ry(0, qjr.inp(0)).cnot(0, 1, cut=True)
                                 .ry(1, qjr.param(0)))
    with pytest.raises(CutError, match="wire cut"):
        fp.train(gate, qjr.Z(1), x[:, :1], y, key=jax.random.key(0), steps=2)
