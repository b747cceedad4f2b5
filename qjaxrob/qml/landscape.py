"""Barren-plateau diagnostics: gradient variance over random parameters, and its decay.

For a circuit ``U(theta)`` on ``n`` qubits started in ``|0...0>`` the two reference costs
(Cerezo et al., Nat. Commun. 12, 1791, 2021) are

* global: ``C_G = 1 - <0...0| rho |0...0>`` (one minus the all-zeros probability);
* local:  ``C_L = 1 - (1/n) sum_q P(wire q = 0) = (1/2)(1 - (1/n) sum_q <Z_q>)``.

``gradient_variance`` draws ``theta ~ U[0, 2pi)^P`` and returns ``Var[dC/dtheta_k]`` for
every parameter ``k`` from one ``vmap`` of ``jax.grad`` over the draws. ``fit_decay`` fits
``log Var = slope * n + intercept`` (exponential decay, McClean et al., Nat. Commun. 9,
4812, 2018) or ``log Var = slope * log n + intercept`` (power law). Checkable closed forms
for the product-``RX`` circuit: ``Var[dC_G/dtheta_1] = (1/8)(3/8)^(n-1)``,
``Var[dC_L/dtheta_1] = 1/(8 n^2)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.circuit import Circuit
from qjaxrob.errors import ParameterError
from qjaxrob.observables import Z
from qjaxrob.simulate import expval, probs

__all__ = ["global_cost", "local_cost", "gradient_variance", "variance_scaling", "DecayFit",
           "fit_decay"]


def global_cost(circuit: Circuit, params, *, dtype=jnp.complex64):
    """``1 - P(|0...0>)`` (scalar)."""
    return 1.0 - probs(circuit, params, dtype=dtype)[0]


def local_cost(circuit: Circuit, params, *, dtype=jnp.complex64):
    """``(1/2)(1 - (1/n) sum_q <Z_q>)`` (scalar)."""
    n = circuit.n_qubits
    z = expval(circuit, [Z(q) for q in range(n)], params, dtype=dtype)
    return 0.5 * (1.0 - jnp.mean(z))


_COSTS = {"global": global_cost, "local": local_cost}


def _cost_fn(cost):
    if callable(cost):
        return cost
    if cost not in _COSTS:
        raise ParameterError(f"cost must be 'global', 'local' or a callable, got {cost!r}")
    return _COSTS[cost]


def gradient_variance(key, circuit: Circuit, cost="global", n_samples: int = 200, *,
                      dtype=jnp.complex64):
    """``Var[dC/dtheta_k]`` over ``n_samples`` draws ``theta ~ U[0, 2pi)^P``, shape ``(P,)``.

    ``cost`` is ``"global"``, ``"local"`` or a callable ``(circuit, params, dtype=) ->
    scalar``. The sample variance uses ``ddof=1``.
    """
    if circuit.n_params == 0:
        raise ParameterError("gradient_variance needs a circuit with trainable parameters")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ParameterError(f"n_samples must be an int >= 2, got {n_samples!r}")
    fn = _cost_fn(cost)
    real = np.finfo(np.dtype(dtype)).dtype
    thetas = jax.random.uniform(key, (n_samples, circuit.n_params), real, 0.0, 2 * np.pi)
    grads = jax.vmap(jax.grad(lambda t: fn(circuit, t, dtype=dtype)))(thetas)
    return jnp.var(grads, axis=0, ddof=1)


def variance_scaling(key, n_qubits, ansatz, cost="global", n_samples: int = 200, *,
                     param_index: int | None = None, dtype=jnp.complex64) -> np.ndarray:
    """Gradient variance for each qubit count in ``n_qubits``, shape ``(len(n_qubits),)``.

    ``ansatz(n) -> Circuit`` builds the circuit for ``n`` qubits (choose its depth there,
    e.g. ``lambda n: hardware_efficient(n, 2 * n)``). The variance is that of parameter
    ``param_index``, or the mean over all parameters when ``None``. Each size uses
    ``fold_in(key, n)``.
    """
    out = []
    for n in n_qubits:
        v = gradient_variance(jax.random.fold_in(key, n), ansatz(n), cost, n_samples,
                              dtype=dtype)
        out.append(float(v.mean() if param_index is None else v[param_index]))
    return np.asarray(out)


class DecayFit(NamedTuple):
    """Least-squares fit ``log Var = slope * t + intercept`` with ``t = n`` (``"exp"``) or
    ``t = log n`` (``"power"``)."""

    slope: float
    intercept: float
    model: str


def fit_decay(n_qubits, variances, model: str = "exp") -> DecayFit:
    """Fits the decay of ``variances`` with the qubit counts ``n_qubits``: ``"exp"`` gives
    the rate ``slope`` in ``Var ~ exp(slope * n)`` (``slope = log(3/8)`` for the product-RX
    global cost), ``"power"`` the exponent in ``Var ~ n^slope``."""
    n = np.asarray(n_qubits, np.float64)
    v = np.asarray(variances, np.float64)
    if n.shape != v.shape or n.size < 2:
        raise ParameterError(f"need >= 2 matching sizes and variances, got {n.shape}, {v.shape}")
    if np.any(v <= 0) or np.any(n <= 0):
        raise ParameterError(f"variances and qubit counts must be positive, got {v}, {n}")
    if model not in ("exp", "power"):
        raise ParameterError(f"model must be 'exp' or 'power', got {model!r}")
    t = n if model == "exp" else np.log(n)
    slope, intercept = np.polyfit(t, np.log(v), 1)
    return DecayFit(float(slope), float(intercept), model)
