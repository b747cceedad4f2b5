"""Adversarial training (Madry et al., ICLR 2018; for VQCs Lu, Duan, Deng, PRR 2, 033212,
2020): every minibatch of ``qjr.qml.fit`` is mixed with its PGD adversarial examples.

``adversarial_loss(eps, ...)`` builds a ``loss_fn(model, x, y)`` for ``fit``:

    (1 - mix) * CE(model, x, y) + mix * CE(model, stop_gradient(x_adv), y)

with ``x_adv`` the PGD examples of the *current* model (``qjaxrob.attacks.pgd`` on each
example's cross-entropy, vmapped), so the whole step stays one jitted ``lax.scan`` of
``fit``. PGD starts at ``x`` (no random start: ``fit`` gives the loss no key), uses
``steps`` steps of ``step_size`` (default ``2.5 eps / steps``) and returns its best iterate.
``mix = 1`` is Madry's pure min-max objective; ``mix = 0.5`` the Goodfellow et al. mixture.
``adversarial_fit`` is ``fit`` with that loss. This is the only module outside
``qjaxrob.attacks`` that imports the attacks (the package layering).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qjaxrob.attacks.evasion import check_bounds, check_eps, check_norm, example_loss, pgd
from qjaxrob.checks import check_positive_int, check_probability
from qjaxrob.qml.train import cross_entropy, fit

__all__ = ["adversarial_fit", "adversarial_loss"]


def adversarial_loss(eps, *, norm: str = "linf", steps: int = 5, step_size=None,
                     mix: float = 0.5, bounds=None, base_loss=cross_entropy):
    """A ``loss_fn(model, x, y)`` mixing clean and PGD examples (module docstring)."""
    eps = check_eps(eps)
    norm = check_norm(norm)
    bounds = check_bounds(bounds)
    steps = check_positive_int(steps, "steps")
    step_size = 2.5 * eps / steps if step_size is None else check_eps(step_size, "step_size")
    mix = check_probability(mix, "mix")

    def loss_fn(model, x, y):
        def one(xi, yi):
            return pgd(example_loss(model, yi), xi, eps, steps=steps, step_size=step_size,
                       norm=norm, bounds=bounds)

        x_adv = jax.lax.stop_gradient(jax.vmap(one)(x, y))
        clean = base_loss(model, x, y) if mix < 1.0 else jnp.zeros(())
        return (1.0 - mix) * clean + mix * base_loss(model, x_adv, y)

    return loss_fn


def adversarial_fit(model, optimizer, x_train, y_train, *, eps, epochs: int, key,
                    norm: str = "linf", steps: int = 5, step_size=None, mix: float = 0.5,
                    bounds=None, **fit_kwargs):
    """``qjr.qml.fit`` with ``adversarial_loss`` (other keyword arguments go to ``fit``;
    its history's losses are the mixed adversarial loss). Returns ``(model, history)``."""
    loss_fn = adversarial_loss(eps, norm=norm, steps=steps, step_size=step_size, mix=mix,
                               bounds=bounds)
    return fit(model, optimizer, x_train, y_train, epochs=epochs, key=key, loss_fn=loss_fn,
               **fit_kwargs)
