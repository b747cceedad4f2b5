"""qjr.defenses.tradeoff: the QDP utility sweep (epsilon against the exact kappa of the noise
on the measured wire, accuracy and radii against an independent density-matrix evaluation,
monotonicity in the noise level) and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob import defenses
from qjaxrob.errors import ParameterError, QjrTypeError

F64 = jnp.complex128
LEVELS = [0.05, 0.2, 0.5, 1.0]


@pytest.fixture(scope="module")
def setup():
    model = qjr.qml.make_vqc(jax.random.key(0), 2, 2, readout="probs", post=False, layers=1,
                             dtype=F64)
    x = jax.random.uniform(jax.random.key(1), (10, 2), jnp.float64, 0, np.pi)
    y = (x[:, 0] > x[:, 1]).astype(int)
    rows = defenses.qdp_utility(model, x, y, "depolarizing", LEVELS, eta=0.05)
    return model, x, y, rows


def test_rows_and_epsilon_of_local_depolarizing(setup):
    """One readout wire, depolarizing on every wire at the end: only the measured qubit's
    noise matters, kappa = (2 - p)/p, epsilon = ln(1 + eta (kappa - 1))."""
    _, _, _, rows = setup
    assert [r["level"] for r in rows] == LEVELS
    keys = {"channel", "level", "eta", "kappa", "epsilon", "accuracy",
            "certified_accuracy_dp", "certified_accuracy_trace", "mean_dp_radius",
            "mean_trace_radius", "mean_fidelity_radius"}
    assert all(set(r) == keys and r["channel"] == "depolarizing" for r in rows)
    for r in rows:
        p = r["level"]
        assert np.isclose(r["kappa"], (2 - p) / p, rtol=1e-8)
        assert np.isclose(r["epsilon"], np.log1p(0.05 * (2 - p) / p - 0.05), rtol=1e-8)
    eps = [r["epsilon"] for r in rows]
    assert np.all(np.diff(eps) < 0) and eps[-1] < 1e-12
    # more noise: larger DP radius until the signal is gone; nothing certified at p = 1
    assert rows[2]["mean_dp_radius"] > rows[0]["mean_dp_radius"]
    assert rows[-1]["certified_accuracy_trace"] == 0 and rows[-1]["mean_trace_radius"] == 0


def test_accuracy_and_radii_match_a_direct_simulation(setup):
    model, x, y, rows = setup
    p = LEVELS[1]
    enc = model.encoding
    full = enc.circuit + defenses.add_noise(defenses.tradeoff.classifier_channel(model),
                                            "depolarizing", p)
    probs = jax.vmap(lambda xi: qjr.probs(full, model.params, enc.features(xi),
                                          wires=model.readout_wires, mixed=True,
                                          dtype=F64))(x)
    probs = np.asarray(probs)  # one readout wire: outcome = class
    pred = probs.argmax(1)
    correct = pred == np.asarray(y)
    row = rows[1]
    assert np.isclose(row["accuracy"], correct.mean())
    top = np.sort(probs, 1)
    fid = np.where(correct, 0.5 - np.sqrt(top[:, 1] * top[:, 0]), 0.0)
    assert np.isclose(row["mean_fidelity_radius"], fid.mean(), atol=1e-10)
    kap = (2 - p) / p
    dp = np.where(correct, (np.sqrt(top[:, 1] / top[:, 0]) - 1) / (kap - 1), 0.0)
    assert np.isclose(row["mean_dp_radius"], dp.mean(), atol=1e-10)
    assert np.isclose(row["certified_accuracy_dp"], np.mean(dp > 0.05))
    # binary, noise (1-p/2, p/2) on the readout qubit: spread of A_A - A_B is 2 (1 - p)
    tr = np.where(correct, (top[:, 1] - top[:, 0]) / (2 * (1 - p)), 0.0)
    assert np.isclose(row["mean_trace_radius"], tr.mean(), atol=1e-10)


def test_random_rotation_sweep():
    model = qjr.qml.make_vqc(jax.random.key(2), 2, 2, readout="probs", post=False, layers=1,
                             dtype=F64)
    x = jax.random.uniform(jax.random.key(3), (4, 2), jnp.float64, 0, np.pi)
    sigmas = [0.2, 1.0, 3.0]
    rows = defenses.qdp_utility(model, x, np.array([0, 1, 0, 1]), "random_rotation", sigmas,
                                eta=1.0, axis="x")
    for r, s in zip(rows, sigmas):
        q = (1 - np.exp(-s**2 / 2)) / 2
        assert np.isclose(r["kappa"], (1 - q) / q, rtol=1e-8)
        assert np.isclose(r["epsilon"], np.log((1 - q) / q), rtol=1e-8)


def test_bad_input(setup):
    model, x, y, _ = setup
    expval = qjr.qml.make_vqc(jax.random.key(0), 2, 2, dtype=F64)
    with pytest.raises(ParameterError, match="readout='probs'"):
        defenses.qdp_utility(expval, x, y, "depolarizing", [0.1])
    reup = qjr.qml.make_vqc(jax.random.key(0), 2, 2, readout="probs", post=False,
                            reupload=True, dtype=F64)
    with pytest.raises(ParameterError, match="re-uploading"):
        defenses.qdp_utility(reup, x, y, "depolarizing", [0.1])
    with pytest.raises(ParameterError, match="noise level"):
        defenses.qdp_utility(model, x, y, "depolarizing", [0.1, 1.5])
    with pytest.raises(ParameterError, match="noise level"):
        defenses.qdp_utility(model, x, y, "random_rotation", [-1.0], axis="x")
    with pytest.raises(ParameterError, match="unknown noise"):
        defenses.qdp_utility(model, x, y, "erasure", [0.1])
    with pytest.raises(ParameterError, match="label"):
        defenses.qdp_utility(model, x, np.full(10, 2), "depolarizing", [0.1])
    with pytest.raises(ParameterError, match="eta"):
        defenses.qdp_utility(model, x, y, "depolarizing", [0.1], eta=2.0)
    with pytest.raises(QjrTypeError):
        defenses.qdp_utility("model", x, y, "depolarizing", [0.1])
