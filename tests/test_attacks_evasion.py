"""Evasion attacks: FGSM/PGD geometry against closed forms, a trained two-moons VQC under
attack, the state-level attack against direct statevector computations, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qjaxrob as qjr
from qjaxrob import attacks
from qjaxrob.attacks import evasion, state
from qjaxrob.errors import ParameterError, QjrTypeError

EPS = 0.4


@pytest.fixture(scope="module")
def moons():
    """A small two-moons VQC trained once (fixed seeds), features in [0, pi]."""
    key = jax.random.key(0)
    x, y = qjr.qml.data.two_moons(key, 120, 0.1)
    x = qjr.qml.data.scale_to_range(x)
    model = qjr.qml.make_vqc(jax.random.key(1), 2, 2, layers=2, dtype=jnp.complex128)
    model, _ = qjr.qml.fit(model, optax.adam(0.05), x, y, epochs=15, key=key, batch_size=20,
                           progress=False)
    return model, jnp.asarray(x), jnp.asarray(y)


@pytest.fixture(scope="module")
def attacked(moons):
    model, x, y = moons
    pgd_res = attacks.attack_model(model, x, y, EPS, steps=10)
    fgsm_res = attacks.attack_model(model, x, y, EPS, method="fgsm")
    return pgd_res, fgsm_res


def _ce(model, x, y):
    logits = np.asarray(jax.vmap(model)(x), np.float64)
    logits = logits - logits.max(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return -logp[np.arange(len(y)), np.asarray(y)]


# ---- geometry against closed forms -----------------------------------------------------------
@pytest.mark.parametrize("d", [1, 3, 5])
def test_fgsm_matches_closed_form(rng, d):
    w, x = rng.normal(size=d), rng.normal(size=d)
    loss = lambda v: jnp.sum(jnp.asarray(w) * jnp.sin(v))
    g = w * np.cos(x)
    np.testing.assert_allclose(attacks.fgsm(loss, x, 0.3), x + 0.3 * np.sign(g), atol=1e-12)
    np.testing.assert_allclose(attacks.fgsm(loss, x, 0.3, norm="l2"),
                               x + 0.3 * g / np.linalg.norm(g), atol=1e-12)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_reaches_the_maximiser_of_a_linear_loss(rng, norm):
    w, x = rng.normal(size=4), rng.normal(size=4)
    loss = lambda v: jnp.dot(jnp.asarray(w), v)
    best = x + 0.5 * (np.sign(w) if norm == "linf" else w / np.linalg.norm(w))
    out = attacks.pgd(loss, x, 0.5, steps=40, step_size=0.3, norm=norm, key=jax.random.key(3))
    np.testing.assert_allclose(out, best, atol=1e-9)
    # targeted: descend instead
    out = attacks.pgd(loss, x, 0.5, steps=40, step_size=0.05, norm=norm, targeted=True)
    np.testing.assert_allclose(out, 2 * x - best, atol=1e-9)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_and_fgsm_stay_in_ball_and_bounds(rng, norm):
    w = jnp.asarray(rng.normal(size=(3, 3)))
    loss = lambda v: jnp.sum(jnp.tanh(w @ v) ** 2) + jnp.sum(jnp.cos(3 * v))
    low, high = np.array([0.0, -1.0, 0.2]), np.array([1.0, 1.0, 0.6])
    xs = np.repeat(rng.uniform(low, high, size=(5, 3)), 3, axis=0)
    eps = np.tile([0.05, 0.3, 2.0], 5)

    def both(x, e):
        return (attacks.fgsm(loss, x, e, norm=norm, bounds=(low, high)),
                attacks.pgd(loss, x, e, steps=7, step_size=e / 3, norm=norm,
                            key=jax.random.key(4), bounds=(low, high)))

    for out in jax.jit(jax.vmap(both))(xs, eps):
        out = np.asarray(out)
        size = (np.abs(out - xs).max(1) if norm == "linf" else
                np.linalg.norm(out - xs, axis=1))
        assert np.all(size <= eps + 1e-12)
        assert np.all(out >= low - 1e-15) and np.all(out <= high + 1e-15)
        assert np.any(size > 0.5 * eps)  # the attacks do move


def test_pgd_composes_with_vmap_and_jit(rng):
    xs = jnp.asarray(rng.normal(size=(6, 2)))
    loss = lambda v: jnp.sum(jnp.sin(v) * jnp.array([1.0, -2.0]))
    f = jax.jit(jax.vmap(lambda v: attacks.pgd(loss, v, 0.2, steps=5, step_size=0.1)))
    batched = f(xs)
    single = np.stack([attacks.pgd(loss, v, 0.2, steps=5, step_size=0.1) for v in xs])
    np.testing.assert_allclose(batched, single, atol=1e-12)


# ---- a trained model ---------------------------------------------------------------------------
def test_trained_model_loses_accuracy_under_attack(moons, attacked):
    model, x, y = moons
    pgd_res, fgsm_res = attacked
    clean = float(np.mean(np.argmax(np.asarray(jax.vmap(model)(x)), 1) == np.asarray(y)))
    assert clean >= 0.8
    assert float(pgd_res.clean_accuracy) == pytest.approx(clean)
    # robust accuracy recomputed independently from the returned examples
    adv = np.argmax(np.asarray(jax.vmap(model)(pgd_res.x_adv)), 1)
    assert float(pgd_res.robust_accuracy) == pytest.approx(np.mean(adv == np.asarray(y)))
    assert float(pgd_res.robust_accuracy) <= clean - 0.12
    assert np.all(np.abs(np.asarray(pgd_res.x_adv) - np.asarray(x)) <= EPS + 1e-6)


def test_pgd_loss_at_least_fgsm_loss(moons, attacked):
    model, x, y = moons
    pgd_res, fgsm_res = attacked
    clean = _ce(model, x, y).mean()
    assert _ce(model, fgsm_res.x_adv, y).mean() > clean
    assert _ce(model, pgd_res.x_adv, y).mean() >= _ce(model, fgsm_res.x_adv, y).mean()


def test_targeted_attack_reaches_targets(moons):
    model, x, y = moons
    targets = 1 - y[:20]
    res = attacks.attack_model(model, x[:20], y[:20], 2.0, steps=15, targets=targets)
    adv = np.argmax(np.asarray(jax.vmap(model)(res.x_adv)), 1)
    np.testing.assert_array_equal(np.asarray(res.success), adv == np.asarray(targets))
    assert res.success.mean() >= 0.9


def test_robust_accuracy_curve(moons):
    model, x, y = moons
    eps, acc = attacks.robust_accuracy_curve(model, x[:40], y[:40], [0.0, 0.2, 0.8], steps=5)
    clean = np.mean(np.argmax(np.asarray(jax.vmap(model)(x[:40])), 1) == np.asarray(y[:40]))
    np.testing.assert_allclose(eps, [0.0, 0.2, 0.8])
    assert acc[0] == pytest.approx(clean)
    assert acc[2] < acc[0]


# ---- state-level attack --------------------------------------------------------------------------
def test_perturbation_circuit_is_identity_at_zero(rng):
    w = state.perturbation_circuit(3)
    assert w.n_params == 3 * 3 + 3 * 2
    psi = rng.normal(size=8) + 1j * rng.normal(size=8)
    prep = qjr.Circuit(3).unitary(np.linalg.qr(psi[:, None], mode="complete")[0], (0, 1, 2))
    np.testing.assert_allclose(qjr.statevector(prep + w, np.zeros(w.n_params),
                                               dtype=jnp.complex128),
                               qjr.statevector(prep, dtype=jnp.complex128), atol=1e-12)


def test_attacked_model_and_infidelity_match_direct_computation(moons, rng):
    model, x, _ = moons
    phi = rng.normal(size=state.perturbation_circuit(2).n_params) * 0.3
    xi = np.asarray(x[3])
    np.testing.assert_allclose(attacks.attacked_model(model, np.zeros_like(phi))(xi),
                               model(xi), atol=1e-6)
    psi = np.asarray(qjr.statevector(model.encoding.circuit, x=xi, dtype=jnp.complex128))
    w = state.perturbation_circuit(2)
    chi = np.asarray(qjr.statevector(model.encoding.circuit + w, phi, xi, dtype=jnp.complex128))
    ref = 1 - abs(np.vdot(psi, chi)) ** 2
    assert float(state.infidelity(model, xi, phi)) == pytest.approx(ref, abs=1e-5)
    # the attacked model's readout is <Z> of the state W psi evolved by the ansatz
    ansatz = qjr.Circuit(2, model.circuit.ops[len(model.encoding.circuit.ops):])
    full = model.encoding.circuit + w.shift_params(model.circuit.n_params) + ansatz
    r = qjr.expval(full, qjr.Z(1), np.concatenate([np.asarray(model.params), phi]), xi,
                   dtype=jnp.complex128)
    logits = np.asarray(model.weights) @ np.array([r]) + np.asarray(model.bias)
    np.testing.assert_allclose(attacks.attacked_model(model, phi)(xi), logits, atol=1e-5)


@pytest.mark.slow
def test_state_attack_respects_budget_and_lowers_accuracy(moons):
    model, x, y = moons
    xs, ys = x[:16], y[:16]
    res = attacks.state_attack_model(model, xs, ys, 0.3, steps=25, step_size=0.1)
    assert np.all(np.asarray(res.infidelity) <= 0.3 + 1e-6)
    clean = np.mean(np.argmax(np.asarray(jax.vmap(model)(xs)), 1) == np.asarray(ys))
    robust = np.mean(np.argmax(np.asarray(res.logits), 1) == np.asarray(ys))
    assert robust < clean
    # budget 0 leaves every prediction unchanged
    zero = attacks.state_attack_model(model, xs, ys, 0.0, steps=25, step_size=0.1)
    np.testing.assert_allclose(zero.logits, jax.vmap(model)(xs), atol=1e-6)


# ---- bad input -------------------------------------------------------------------------------------
def test_bad_input_raises_clear_errors(moons):
    model, x, y = moons
    loss = lambda v: jnp.sum(v**2)
    v = jnp.ones(2)
    with pytest.raises(ParameterError, match="norm"):
        attacks.fgsm(loss, v, 0.1, norm="l1")
    with pytest.raises(ParameterError, match="eps"):
        attacks.pgd(loss, v, -0.1, steps=3, step_size=0.1)
    with pytest.raises(ParameterError, match="low"):
        attacks.fgsm(loss, v, 0.1, bounds=(1.0, 0.0))
    with pytest.raises(ParameterError, match="steps"):
        attacks.pgd(loss, v, 0.1, steps=0, step_size=0.1)
    with pytest.raises(ParameterError, match="shape"):
        attacks.fgsm(loss, jnp.ones((2, 2)), 0.1)
    with pytest.raises(ParameterError, match="PRNG key"):
        attacks.pgd(loss, v, 0.1, steps=2, step_size=0.1, key=3)
    with pytest.raises(ParameterError, match="method"):
        attacks.attack_model(model, x, y, 0.1, method="cw")
    with pytest.raises(ParameterError, match="budget"):
        attacks.state_attack_model(model, x[:2], y[:2], 1.5)
    with pytest.raises(ParameterError, match="budget"):
        attacks.state_attack_model(model, x[:2], y[:2], -0.1)
    with pytest.raises(QjrTypeError):
        attacks.state_attack_model(lambda v: v, x[:2], y[:2], 0.1)
    noisy = qjr.qml.make_vqc(jax.random.key(0), 2, 2, noise=("depolarizing", 0.1))
    with pytest.raises(ParameterError, match="pure-state"):
        attacks.attacked_model(noisy, np.zeros(15))
    assert evasion.NORMS == ("linf", "l2")


def test_labels_are_checked_at_every_entry_point(moons):
    """Out-of-range, negative and fractional labels (and targets) raise ``ParameterError``
    naming the label instead of leaving rows unattacked or returning a nan loss."""
    model, x, y = moons
    xs = x[:4]
    for bad, msg in ((jnp.array([0, 1, 5, 0]), "label 5"), (jnp.array([0, -1, 1, 0]), "label -1"),
                     (jnp.array([0.0, 1.5, 1.0, 0.0]), "integers, got 1.5")):
        with pytest.raises(ParameterError, match=msg):
            attacks.attack_model(model, xs, bad, 0.1, steps=2)
        with pytest.raises(ParameterError, match=msg):
            attacks.state_attack_model(model, xs, bad, 0.1, steps=2)
    with pytest.raises(ParameterError, match="label 5"):
        attacks.state_attack(model, xs[0], 5, 0.1, steps=2)
    with pytest.raises(ParameterError, match="targets: label 2"):
        attacks.attack_model(model, xs, y[:4], 0.1, steps=2, targets=jnp.full(4, 2))
    with pytest.raises(ParameterError, match="targets: label 3"):
        attacks.state_attack_model(model, xs, y[:4], 0.1, steps=2, targets=jnp.full(4, 3))
    # integer-valued float labels are labels
    res = attacks.attack_model(model, xs, y[:4].astype(jnp.float32), 0.1, method="fgsm")
    ref = attacks.attack_model(model, xs, y[:4], 0.1, method="fgsm")
    np.testing.assert_array_equal(res.x_adv, ref.x_adv)


def test_bounds_of_the_wrong_shape_are_refused(moons):
    model, x, y = moons
    loss = lambda v: jnp.sum(v**2)
    v = jnp.ones(2)
    for bounds, msg in (((jnp.zeros(3), jnp.ones(3)), r"low of shape \(3,\)"),
                        ((0.0, jnp.ones((2, 2))), r"high of shape \(2, 2\)")):
        with pytest.raises(ParameterError, match=msg):
            attacks.fgsm(loss, v, 0.1, bounds=bounds)
        with pytest.raises(ParameterError, match="one example's shape"):
            attacks.pgd(loss, v, 0.1, steps=2, step_size=0.1, bounds=bounds)
        with pytest.raises(ParameterError, match="one example's shape"):
            attacks.attack_model(model, x[:2], y[:2], 0.1, bounds=bounds)
    # per-feature and scalar bounds broadcast to the example and are accepted
    out = attacks.fgsm(loss, v, 0.5, bounds=(jnp.zeros(2), jnp.array([1.2, 1.0])))
    np.testing.assert_allclose(out, [1.2, 1.0])
