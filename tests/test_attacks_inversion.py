"""Gradient inversion: recovery of input and label, analytic solve, batched vs one-by-one
restarts, periodicity and spectrum of encodings, the scaling study, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob import attacks
from qjaxrob.attacks import inversion as inv
from qjaxrob.attacks.inversion import restarts as rs
from qjaxrob.errors import ParameterError, QjrTypeError
from qjaxrob.experiments.inversion_scaling import inversion_scaling

RESTARTS, STEPS = 8, 60


def _model(key, n, layers=2, post=True):
    enc = qjr.qml.angle_encoding(n)
    return qjr.qml.VQC(key, enc, qjr.qml.hardware_efficient(n, layers), 2,
                       readout_wires=tuple(range(n)), post=post, dtype=jnp.complex128)


@pytest.fixture(scope="module")
def case():
    """A 2-qubit angle-encoded model (the scaling study's structure), one secret example."""
    model = _model(jax.random.key(11), 2)
    x = jnp.array([2.1, 0.7])
    y = jnp.array(1)
    grads = eqx.filter_grad(qjr.qml.train.cross_entropy)(model, x[None], y[None])
    res = attacks.invert(model, grads, key=jax.random.key(3), restarts=RESTARTS, steps=STEPS)
    return model, x, y, grads, res


def test_invert_recovers_input_and_label(case):
    model, x, y, grads, res = case
    period = inv.encoding_period(model.encoding)
    np.testing.assert_allclose(period, [2 * np.pi, 2 * np.pi])
    err = np.asarray(inv.circular_error(res.x, x, period))
    assert err.max() <= 1e-4
    assert int(res.label) == int(y)
    assert int(inv.infer_label(model, grads)) == int(y)
    assert float(res.distance) <= 1e-12
    assert float(inv.encoded_fidelity(model.encoding, res.x, x)) == pytest.approx(1.0, abs=1e-8)
    assert res.xs.shape == (RESTARTS, 1, 2) and res.distances.shape == (RESTARTS,)
    assert float(res.distance) == float(np.min(np.asarray(res.distances)))


@pytest.mark.slow
def test_batched_restarts_equal_one_by_one(case):
    model, _, y, grads, _ = case
    target = inv.check_grads(model, grads)
    x0s = jax.random.uniform(jax.random.key(5), (3, 1, 2), jnp.float64, 0.0, 2 * np.pi)
    label = jnp.full((1,), y, jnp.int32)

    def one(x0):
        return inv.match_gradients(model, target, x0, label, steps=15, optimizer="adam",
                                   learning_rate=0.1)

    xb, vb = jax.jit(jax.vmap(one))(x0s)
    single = jax.jit(one)
    for i in range(3):
        xi, vi = single(x0s[i])
        np.testing.assert_allclose(xb[i], xi, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(vb[i], vi, rtol=1e-8, atol=1e-15)


def test_pooled_restarts_equal_the_fixed_path(case):
    """Three slots for eight restarts, no early end: every restart's result equals the
    all-together run of the same starts."""
    model, _, _, grads, res = case
    pooled = attacks.invert(model, grads, key=jax.random.key(3), restarts=RESTARTS,
                            steps=STEPS, slots=3, stall_steps=STEPS + 1, match_tol=0.0)
    np.testing.assert_allclose(pooled.xs, res.xs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pooled.distances, res.distances, rtol=1e-8, atol=1e-20)
    assert np.all(np.asarray(pooled.steps_run) == STEPS + 1)
    assert np.all(np.asarray(res.steps_run) == STEPS + 1)


def test_pooled_restarts_end_early(case):
    model, x, y, grads, _ = case
    period = inv.encoding_period(model.encoding)
    scale = float(np.sum(np.asarray(inv.check_grads(model, grads)) ** 2))
    full = attacks.invert(model, grads, key=jax.random.key(3), restarts=RESTARTS, steps=STEPS,
                          slots=3)
    n = np.asarray(full.steps_run)
    d = np.asarray(full.distances)
    matched = d <= 1e-12 * scale
    assert matched.any() and np.all(n[matched] <= STEPS)  # matches end before the cap
    assert np.all(n[~matched] > 20)  # the others ran at least one stall window
    assert np.max(np.asarray(inv.circular_error(full.x, x, period))) <= 1e-4
    assert int(full.label) == int(y)
    first = attacks.invert(model, grads, key=jax.random.key(3), restarts=RESTARTS,
                           steps=STEPS, slots=3, stop_on_match=True)
    done = np.asarray(first.steps_run) > 0
    assert float(first.distance) <= 1e-12 * scale and not done.all()
    assert np.all(np.isinf(np.asarray(first.distances)[~done]))
    # a finished restart followed the same trajectory as in the run without stop
    np.testing.assert_allclose(np.asarray(first.distances)[done], d[done], rtol=1e-8)
    np.testing.assert_array_equal(np.asarray(first.steps_run)[done], n[done])
    # two workers: the first match stops both shares; finished restarts are unchanged
    both = attacks.invert(model, grads, key=jax.random.key(3), restarts=RESTARTS,
                          steps=STEPS, slots=3, stop_on_match=True, workers=2)
    done = np.asarray(both.steps_run) > 0
    assert float(both.distance) <= 1e-12 * scale
    np.testing.assert_allclose(np.asarray(both.distances)[done], d[done], rtol=1e-8)
    np.testing.assert_array_equal(np.asarray(both.steps_run)[done], n[done])


def test_workers_split_the_restarts_without_changing_them(case):
    """Shares on worker threads (8 restarts over 3 workers: padded shares of 3; pooled: 2
    shares with 2 slots each) give every restart the result of the one-program run."""
    model, _, _, grads, res = case
    split = attacks.invert(model, grads, key=jax.random.key(3), restarts=RESTARTS,
                           steps=STEPS, workers=3)
    np.testing.assert_allclose(split.xs, res.xs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(split.distances, res.distances, rtol=1e-8, atol=1e-20)
    pooled = attacks.invert(model, grads, key=jax.random.key(3), restarts=RESTARTS,
                            steps=STEPS, slots=3, stall_steps=STEPS + 1, match_tol=0.0,
                            workers=2)
    np.testing.assert_allclose(pooled.xs, res.xs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pooled.distances, res.distances, rtol=1e-8, atol=1e-20)
    assert np.all(np.asarray(pooled.steps_run) == STEPS + 1)
    assert inv.default_workers(RESTARTS) == 1  # fewer than MIN_SHARE restarts per core
    assert 1 <= inv.default_workers(10**6)


def test_a_match_in_another_worker_stops_a_pool(case):
    """The cross-worker stop of ``stop_on_match``: with its event already set, a pool ends
    before its first step; with no event it runs to its own match."""
    model, x, y, grads, _ = case
    target = inv.check_grads(model, grads)
    x0s = jax.random.uniform(jax.random.key(3), (4, 1, 2), jnp.float64, 0.0, 2 * np.pi)
    labels = jnp.full((4, 1), y, jnp.int32)
    with rs.StopSignal() as signal:
        def run():
            return rs.pooled_restarts(
                qjr.qml.train.cross_entropy, model, target, x0s, labels, STEPS, "l2", "lbfgs",
                None, 2, 20, jnp.asarray(1e-2), jnp.asarray(1e-12 * float(jnp.sum(target**2))),
                jnp.asarray(True), jnp.asarray(signal.id, jnp.int32))
        signal.set()
        assert np.all(np.asarray(run()[2]) == 0)
        signal.clear()
        assert np.any(np.asarray(run()[2]) > 0)
        signal.set()
    assert not bool(rs.StopSignal.requested(np.int32(signal.id)))  # closed with the call


def test_gradient_distance_formulas(rng):
    g, t = rng.normal(size=7), rng.normal(size=7)
    assert float(inv.gradient_distance(g, t, "l2")) == pytest.approx(np.sum((g - t) ** 2))
    cos = g @ t / np.linalg.norm(g) / np.linalg.norm(t)
    assert float(inv.gradient_distance(g, t, "cosine")) == pytest.approx(1 - cos)


@pytest.mark.slow
def test_analytic_solve_agrees_with_gradient_matching(case):
    _, x, y, _, res = case
    model = _model(jax.random.key(11), 2, layers=4)  # enough equations: rank 8 = unknowns
    grads = inv.shared_gradient(model, x[None], y[None])
    sol = attacks.analytic_invert(model, grads)
    assert sol.rank == sol.n_unknowns == 8
    period = inv.encoding_period(model.encoding)
    assert np.max(np.asarray(inv.circular_error(sol.x, x, period))) <= 1e-8
    assert sol.label == int(y) and sol.residual <= 1e-8
    np.testing.assert_allclose(np.mod(sol.x, period), np.mod(np.asarray(res.x), period),
                               atol=1e-4)
    shallow = _model(jax.random.key(11), 2, layers=1)
    with pytest.raises(ParameterError, match="underdetermined"):
        attacks.analytic_invert(shallow, inv.shared_gradient(shallow, x[None], y[None]))


def test_scaling_study_rows(case):
    rows, seen = [], []
    rows = inversion_scaling((2,), key=jax.random.key(1), encodings=("angle",),
                                     seeds=1, restarts=RESTARTS, steps=STEPS, progress=False,
                                     on_row=seen.append)
    assert len(rows) == 1 and seen == rows
    row = rows[0]
    assert row["encoding"] == "angle" and row["n_qubits"] == 2 and row["n_unknowns"] == 2
    assert row["n_equations"] == 8 + 4 + 2
    assert row["success"] and row["label_ok"] and row["best_error"] <= 1e-3
    assert row["success"] == (row["best_error"] <= row["tol"])
    assert 0 < row["restart_success_rate"] <= 1
    assert row["restarts_to_success"] == pytest.approx(1 / row["restart_success_rate"])
    assert row["restarts_per_s"] == pytest.approx(RESTARTS / row["time_s"])
    assert row["slots"] is None and row["mean_steps"] == STEPS + 1
    pooled = inversion_scaling((2,), key=jax.random.key(1), encodings=("angle",),
                                       seeds=1, restarts=RESTARTS, steps=STEPS, progress=False,
                                       slots=3)[0]
    assert pooled["slots"] == 3 and pooled["success"] and pooled["label_ok"]
    assert pooled["mean_steps"] < STEPS + 1  # matched and stalled restarts ended early


# ---- encodings: periodicity and spectrum ------------------------------------------------------
def test_periods():
    assert inv.encoding_period(qjr.qml.angle_encoding(2, scaling=0.5))[0] == pytest.approx(4 * np.pi)
    np.testing.assert_allclose(inv.encoding_period(inv.fourier_tower_encoding(2, 3)), [1.0, 1.0])
    tower = inv.fourier_tower_encoding(1, 2, gamma=0.5)
    assert inv.encoding_period(tower)[0] == pytest.approx(4 * np.pi)
    assert np.all(np.isnan(inv.encoding_period(qjr.qml.iqp_encoding(2))))
    # a controlled rotation repeats only after 4 pi; RY(x) and RY(1.5 x) after lcm(2pi, 4pi/3)
    c = qjr.Circuit(2).h(0).crx(0, 1, qjr.inp(0)).ry(0, qjr.inp(1)).ry(1, qjr.inp(1) * 1.5)
    enc = qjr.qml.Encoding("angle", 2, c)
    np.testing.assert_allclose(inv.encoding_period(enc), [4 * np.pi, 4 * np.pi])
    d = np.array([0.1, 2 * np.pi - 0.1, 7.0])
    np.testing.assert_allclose(inv.circular_error(d, np.zeros(3), 2 * np.pi),
                               [0.1, 0.1, 7.0 - 2 * np.pi], atol=1e-12)
    np.testing.assert_allclose(inv.circular_error(d, np.zeros(3), np.nan), np.abs(d))


def test_fourier_tower_spectrum_matches_fft():
    """Schuld et al.: a model output has integer frequencies |k| <= K = (5^m - 1)/4."""
    m = 2
    enc = inv.fourier_tower_encoding(1, m)
    k_max = int(inv.encoding_spectrum(enc)[0])
    assert k_max == (5**m - 1) // 4
    model = qjr.qml.VQC(jax.random.key(2), enc, qjr.qml.hardware_efficient(m, 2), 2,
                        readout_wires=(0, 1), dtype=jnp.complex128)
    grid = jnp.arange(32) / 32.0
    f = np.asarray(jax.vmap(lambda t: model.readout_vector(t[None]))(grid))[:, 0]
    power = np.abs(np.fft.rfft(f)) / 32
    assert power[k_max + 1:].max() <= 1e-12
    assert power[k_max] >= 1e-6
    # the tower is RX(5^(k-1) gamma x) on wire k-1
    x = 0.37
    ref = np.kron(*[np.array([np.cos(5**k * np.pi * x), -1j * np.sin(5**k * np.pi * x)])
                    for k in range(m)])
    np.testing.assert_allclose(qjr.statevector(enc.circuit, x=[x], dtype=jnp.complex128), ref,
                               atol=1e-12)


def test_encoded_fidelity_of_product_states():
    enc = qjr.qml.angle_encoding(3)
    a, b = np.array([0.3, 1.0, 2.0]), np.array([0.5, -0.2, 2.4])
    ref = np.prod(np.cos((a - b) / 2)) ** 2
    assert float(inv.encoded_fidelity(enc, a, b)) == pytest.approx(ref, abs=1e-12)


# ---- bad input -----------------------------------------------------------------------------------
def test_bad_input(case):
    model, _, _, grads, _ = case
    key = jax.random.key(0)
    wrong = eqx.tree_at(lambda g: g.params, grads, grads.params[:-1])  # one entry short
    for bad in (wrong, inv.check_grads(model, grads), {"params": grads.params}, None):
        with pytest.raises(ParameterError, match="structure"):
            attacks.invert(model, bad, key=key)
    nan = eqx.tree_at(lambda g: g.params, grads, grads.params * jnp.nan)
    with pytest.raises(ParameterError, match="non-finite"):
        attacks.invert(model, nan, key=key)
    with pytest.raises(ParameterError, match="distance"):
        attacks.invert(model, grads, key=key, distance="l1")
    with pytest.raises(ParameterError, match="optimizer"):
        attacks.invert(model, grads, key=key, optimizer="sgd")
    with pytest.raises(ParameterError, match="restarts"):
        attacks.invert(model, grads, key=key, restarts=0)
    with pytest.raises(ParameterError, match="label"):
        attacks.invert(model, grads, key=key, label=5)
    with pytest.raises(ParameterError, match="batch"):
        attacks.invert(model, grads, key=key, batch=2)
    for kw, name in (({"slots": 0}, "slots"), ({"slots": 2, "stall_steps": 0}, "stall_steps"),
                     ({"slots": 2, "stall_rtol": -1.0}, "stall_rtol"),
                     ({"slots": 2, "match_tol": -1.0}, "match_tol"),
                     ({"stop_on_match": True}, "stop_on_match"), ({"workers": 0}, "workers")):
        with pytest.raises(ParameterError, match=name):
            attacks.invert(model, grads, key=key, **kw)
    with pytest.raises(ParameterError, match="PRNG key"):
        attacks.invert(model, grads, key=None)
    with pytest.raises(QjrTypeError):
        attacks.invert(lambda v: v, grads, key=key)
    nobias = _model(jax.random.key(1), 2, post=False)
    g2 = eqx.filter(nobias, eqx.is_inexact_array)  # right structure, no compile needed
    assert inv.infer_label(nobias, g2) is None
    with pytest.raises(ParameterError, match="bias"):
        attacks.analytic_invert(nobias, g2)
    with pytest.raises(ParameterError, match="restarts"):
        attacks.invert(nobias, g2, key=key, restarts=1)
    with pytest.raises(ParameterError, match="m must"):
        attacks.fourier_tower_encoding(1, 0)
    with pytest.raises(ParameterError, match="gamma"):
        attacks.fourier_tower_encoding(1, 2, gamma=-1.0)
    with pytest.raises(ParameterError, match="periodic"):
        inv.encoding_spectrum(qjr.qml.iqp_encoding(2))


@pytest.mark.slow
def test_invert_three_qubits_with_unknown_label():
    """Without a bias the label is enumerated by the restarts; 3 qubits, one example. Here
    the gradient does not identify the label: ``(x + pi, 1 - y)`` (RY(pi) on every wire
    flips the sign of the readout, hence of both logits) shares exactly the same gradient,
    so restarts of either label match it to rounding and either pair is a correct answer."""
    n = 3
    model = _model(jax.random.key(7), n, post=False)
    x = jax.random.uniform(jax.random.key(8), (n,), jnp.float64, 0.0, 2 * np.pi)
    y = jnp.array(0)
    grads = inv.shared_gradient(model, x[None], y[None])
    twin = inv.shared_gradient(model, (x + np.pi)[None], (1 - y)[None])
    np.testing.assert_allclose(inv.check_grads(model, twin), inv.check_grads(model, grads),
                               atol=1e-14)
    res = attacks.invert(model, grads, key=jax.random.key(9), restarts=12, steps=100)
    period = inv.encoding_period(model.encoding)
    found = [bool(np.max(np.asarray(inv.circular_error(res.x, xt, period))) <= 1e-4
                  and int(res.label) == yt) for xt, yt in ((x, int(y)), (x + np.pi, 1 - int(y)))]
    assert any(found)
    assert float(res.distance) <= 1e-20


# ---- any differentiable loss: a published plain-circuit model ---------------------------------
def _plain_circuit_case(n=3):
    """A model that is not a VQC: RY angle encoding + hardware-efficient ansatz, trained with
    the MSE of the mean of ``<Z_q>`` against known real targets."""
    circ = qjr.qml.angle_encoding(n).circuit + qjr.qml.hardware_efficient(n, 2)
    obs = [qjr.Z(q) for q in range(n)]

    def loss(params, x, y):
        f = jax.vmap(lambda xi: jnp.mean(qjr.expval(circ, obs, params, xi,
                                                    dtype=jnp.complex128)))(x)
        return jnp.mean((f - y) ** 2)

    params = jax.random.uniform(jax.random.key(0), (circ.n_params,), jnp.float64, -np.pi, np.pi)
    x = jax.random.uniform(jax.random.key(1), (n,), jnp.float64, 0.0, 2 * np.pi)
    y = jnp.array([1.0])
    return loss, params, x, y, jax.grad(loss)(params, x[None], y)


def test_invert_a_plain_circuit_loss():
    """``invert(loss, grads, params=...)`` recovers the secret input of a non-VQC model
    (compared with the true ``x`` modulo 2 pi), and its gradient reproduces the shared one."""
    loss, params, x, y, grads = _plain_circuit_case()
    res = attacks.invert(loss, grads, key=jax.random.key(2), params=params, label=y,
                         n_features=3, restarts=8, steps=80)
    assert np.max(np.asarray(inv.circular_error(res.x, x, 2 * np.pi))) <= 1e-4
    np.testing.assert_allclose(jax.grad(loss)(params, res.x[None], y), grads, atol=1e-8)
    assert res.xs.shape == (8, 1, 3) and float(res.label) == 1.0
    assert float(res.distance) == float(np.min(np.asarray(res.distances)))


def test_invert_loss_bad_input():
    loss, params, _, y, grads = _plain_circuit_case()
    key = jax.random.key(0)
    with pytest.raises(QjrTypeError, match="params="):
        attacks.invert(loss, grads, key=key, label=y, n_features=3)
    with pytest.raises(ParameterError, match="label="):
        attacks.invert(loss, grads, key=key, params=params, n_features=3)
    with pytest.raises(ParameterError, match="n_features"):
        attacks.invert(loss, grads, key=key, params=params, label=y)
    with pytest.raises(ParameterError, match=r"batch size 1.*\(2,\)"):
        attacks.invert(loss, grads, key=key, params=params, label=jnp.ones(2), n_features=3)
    with pytest.raises(ParameterError, match="structure"):
        attacks.invert(loss, grads[:-1], key=key, params=params, label=y, n_features=3)
    with pytest.raises(QjrTypeError, match="int"):
        attacks.invert(3, grads, key=key)


def test_invert_checks_vqc_labels(case):
    model, _, _, grads, _ = case
    key = jax.random.key(0)
    with pytest.raises(ParameterError, match="integers, got 0.5"):
        attacks.invert(model, grads, key=key, label=0.5)
    with pytest.raises(ParameterError, match="label -1"):
        attacks.invert(model, grads, key=key, label=-1)
    with pytest.raises(ParameterError, match="params= and n_features="):
        attacks.invert(model, grads, key=key, params=model.params)
