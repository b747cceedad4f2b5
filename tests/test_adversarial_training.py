"""Adversarial training: the mixed loss against its definition, and the robust-accuracy gain
over standard training on two moons (fixed seeds)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qjaxrob as qjr
from qjaxrob import attacks
from qjaxrob.defenses import adversarial
from qjaxrob.errors import ParameterError

EPS = 0.4


@pytest.fixture(scope="module")
def data():
    key = jax.random.key(0)
    x, y = qjr.qml.data.two_moons(key, 120, 0.1)
    xt, yt = qjr.qml.data.two_moons(jax.random.key(7), 80, 0.1)
    x, xt = qjr.qml.data.scale_to_range(x, xt)
    model = qjr.qml.make_vqc(jax.random.key(1), 2, 2, layers=2, dtype=jnp.complex128)
    return model, jnp.asarray(x), jnp.asarray(y), jnp.asarray(xt), jnp.asarray(yt)


@pytest.mark.slow
def test_adversarial_loss_matches_definition(data):
    model, x, y, _, _ = data
    xb, yb = x[:8], y[:8]
    loss_fn = adversarial.adversarial_loss(EPS, steps=3, mix=0.3)
    ce = qjr.qml.train.cross_entropy
    x_adv = jax.jit(jax.vmap(lambda xi, yi: attacks.pgd(
        lambda v: optax.softmax_cross_entropy_with_integer_labels(model(v), yi), xi, EPS,
        steps=3, step_size=2.5 * EPS / 3)))(xb, yb)
    value, g = eqx.filter_jit(eqx.filter_value_and_grad(loss_fn))(model, xb, yb)
    # value and gradient w.r.t. the model at the fixed adversarial examples (stop_gradient)
    ref, g_ref = eqx.filter_jit(eqx.filter_value_and_grad(
        lambda m, xa: 0.7 * ce(m, xb, yb) + 0.3 * ce(m, xa, yb)))(model, x_adv)
    assert float(value) == pytest.approx(float(ref), rel=1e-10)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.slow
def test_adversarial_training_gains_robust_accuracy(data):
    model, x, y, xt, yt = data
    key = jax.random.key(0)
    std, _ = qjr.qml.fit(model, optax.adam(0.05), x, y, epochs=20, key=key, batch_size=20,
                         progress=False)
    adv, hist = adversarial.adversarial_fit(model, optax.adam(0.05), x, y, eps=EPS, epochs=20,
                                            key=key, batch_size=20, steps=3, mix=1.0,
                                            progress=False)
    assert len(hist["loss"]) == 20
    r_std = attacks.attack_model(std, xt, yt, EPS, steps=10)
    r_adv = attacks.attack_model(adv, xt, yt, EPS, steps=10)
    assert float(r_adv.clean_accuracy) >= 0.75
    assert float(r_adv.robust_accuracy) >= float(r_std.robust_accuracy) + 0.03


def test_bad_input():
    with pytest.raises(ParameterError, match="eps"):
        adversarial.adversarial_loss(-0.1)
    with pytest.raises(ParameterError, match="mix"):
        adversarial.adversarial_loss(0.1, mix=1.5)
    with pytest.raises(ParameterError, match="norm"):
        adversarial.adversarial_loss(0.1, norm="l0")
    with pytest.raises(ParameterError, match="low"):
        adversarial.adversarial_loss(0.1, bounds=(1.0, 0.0))
