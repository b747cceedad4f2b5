"""The privacy/robustness/utility trade-off of noise ("QDP utility test", Du et al., PRR 3,
023153, 2021): accuracy vs epsilon vs certified radius over a sweep of noise levels.

The classifier is a ``qjr.qml.VQC`` with ``readout="probs"`` and no post-processing layer,
so its class probabilities are the measurement probabilities ``y_k = Tr(A_k rho(x))`` of
the encoded state ``rho(x) = |psi(x)><psi(x)|`` (:func:`encoded_states`) under the channel
``E`` = everything after the encoding (:func:`classifier_channel`), made noisy by
:func:`qjaxrob.defenses.add_noise` with the level as a traced input. One ``vmap`` over the
levels computes, per level, the Heisenberg effects ``A_k`` (one Choi-state simulation),
Guan et al.'s ``kappa`` and ``epsilon(eta)``, every example's class probabilities, and the
certified radii of :mod:`qjaxrob.defenses.certify`. A misclassified example certifies
nothing: its radii count as 0 in the means and certified accuracies.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.checks import check_real
from qjaxrob.ir.circuit import Circuit, inp
from qjaxrob.defenses.certify import (
    channel_trace_radius,
    dp_radius,
    hypothesis_testing_radius,
    top_two,
)
from qjaxrob.defenses.qdp import (
    NOISE_CONFIGS,
    add_noise,
    channel_effects,
    check_eta,
    epsilon_from_kappa,
    kappa,
)
from qjaxrob.devices import over
from qjaxrob.errors import ParameterError, QjrTypeError
from qjaxrob.qml import VQC
from qjaxrob.qml.data import check_labels
from qjaxrob.simulate import statevector

__all__ = ["classifier_channel", "encoded_states", "class_probabilities", "qdp_utility"]


def _check_model(model):
    if not isinstance(model, VQC):
        raise QjrTypeError(f"expected a qjr.qml.VQC, got {type(model).__name__}")
    if model.readout != "probs" or model.weights is not None:
        raise ParameterError(
            "DP certificates need class probabilities that are measurement probabilities: a "
            f"VQC with readout='probs' and post=False, got readout={model.readout!r}, "
            f"post={model.weights is not None}"
        )
    return model


def classifier_channel(model: VQC) -> Circuit:
    """The part of ``model.circuit`` after its encoding (ansatz and any noise layers): the
    channel applied to the encoded state. Models with data re-uploading have none
    (``ParameterError``)."""
    model = _check_model(model)
    enc = model.encoding.circuit.ops
    if model.circuit.ops[: len(enc)] != enc:
        raise ParameterError(
            "the model's circuit does not start with its encoding (data re-uploading?): no "
            "input-independent channel to certify"
        )
    return Circuit(model.circuit.n_qubits, model.circuit.ops[len(enc):])


def encoded_states(model: VQC, x):
    """The encoded pure states ``|psi(x_b)>``, shape ``(B, 2**n)``, for examples ``(B, d)``."""
    model = _check_model(model)
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ParameterError(f"x must have shape (B, n_features), got {x.shape}")
    model.encoding.check(x[0])
    enc = model.encoding

    def one(xi):
        return statevector(enc.circuit, None, enc.features(xi), dtype=model.dtype)

    return jax.vmap(one)(x)


def class_probabilities(effects, states):
    """``y[b, k] = <psi_b| A_k |psi_b>`` for effects ``(K, d, d)`` and pure states ``(B, d)``."""
    y = jnp.einsum("bi,kij,bj->bk", jnp.conj(states), effects, states).real
    return jnp.clip(y, 0.0, 1.0)


def _check_levels(channel, levels):
    if channel not in NOISE_CONFIGS:
        raise ParameterError(f"unknown noise {channel!r}; choose from {NOISE_CONFIGS}")
    lv = np.asarray(levels, np.float64).ravel()
    if lv.size == 0:
        raise ParameterError("levels must hold at least one noise level")
    high = np.inf if channel == "random_rotation" else 1.0
    for v in lv:
        check_real(v, "noise level", low=0.0, high=high)
    return lv


@partial(jax.jit, static_argnames=("noisy", "eta", "wires", "n_classes", "dtype"))
def _sweep(noisy, params, states, labels, levels, eta, wires, n_classes, dtype):
    """The per-level quantities of :func:`qdp_utility`, one ``vmap`` over ``levels``."""

    def at_level(level):
        eff = channel_effects(noisy, params, level[None], wires=wires, n_classes=n_classes,
                              dtype=dtype)
        k = kappa(eff)
        probs = class_probabilities(eff, states)
        pred, pa, pb = top_two(probs)
        correct = pred == labels
        dp_r = jnp.where(correct, dp_radius(probs, k), 0.0)
        tr_r = jnp.where(correct, channel_trace_radius(eff, probs), 0.0)
        fid_r = jnp.where(correct, hypothesis_testing_radius(pa, pb), 0.0)
        return dict(
            kappa=k, epsilon=epsilon_from_kappa(k, eta), accuracy=jnp.mean(correct),
            certified_accuracy_dp=jnp.mean(dp_r > eta),
            certified_accuracy_trace=jnp.mean(tr_r > eta),
            mean_dp_radius=jnp.mean(dp_r), mean_trace_radius=jnp.mean(tr_r),
            mean_fidelity_radius=jnp.mean(fid_r),
        )

    return jax.vmap(at_level)(levels)


def qdp_utility(model: VQC, x, y, channel: str, levels, *, eta: float = 0.01,
                after: str = "end", axis=None, devices=None) -> list[dict]:
    """Accuracy, epsilon and certified radii of ``model`` with ``channel`` noise at every
    level of ``levels``, vmapped over the levels (module docstring).

    Args:
        model: a ``VQC`` with ``readout="probs"``, ``post=False``, no re-uploading (it may
            already carry noise).
        x, y: examples ``(B, n_features)`` and integer labels ``(B,)``.
        channel: a noise of :data:`qjaxrob.defenses.qdp.NOISE_CONFIGS`, e.g.
            ``"depolarizing"``, ``"global_depolarizing"``, ``"random_rotation"``.
        levels: noise levels (probabilities; ``sigma`` in radians for random rotations).
        eta: the trace-distance neighbourhood for epsilon and the certified accuracies.
        after, axis: noise placement and rotation axis (:func:`qjaxrob.defenses.add_noise`).
        devices: the devices to lay the levels over (``qjaxrob.devices.over``; default
            those lent by ``qjaxrob.devices.use``); at most one: the plain sweep.

    Returns:
        One plain dict per level with keys ``channel, level, eta, kappa, epsilon, accuracy,
        certified_accuracy_dp, certified_accuracy_trace, mean_dp_radius,
        mean_trace_radius, mean_fidelity_radius`` (Python floats; radii are trace
        distances, the fidelity radius an infidelity).
    """
    model = _check_model(model)
    lv = _check_levels(channel, levels)
    check_eta(eta)
    eta = float(eta)
    labels = jnp.asarray(check_labels(y, model.n_classes))
    states = encoded_states(model, x)
    if labels.shape != (states.shape[0],):
        raise ParameterError(f"y must have shape ({states.shape[0]},), got {labels.shape}")
    noisy = add_noise(classifier_channel(model), channel, inp(0), after=after, axis=axis)
    real = np.finfo(model.dtype).dtype
    out = over(lambda levels: _sweep(noisy, model.params, states, labels, levels, eta,
                                     model.readout_wires, model.n_classes, model.dtype),
               jnp.asarray(lv, real), devices=devices, axis="levels")
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}
    return [dict(channel=channel, level=float(lv[i]), eta=eta,
                 **{k: float(v[i]) for k, v in out.items()}) for i in range(lv.size)]
