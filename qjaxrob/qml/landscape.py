"""Barren-plateau diagnostics: gradient variance over random parameters, and its decay.

For a circuit ``U(theta)`` on ``n`` qubits started in ``|0...0>`` the two reference costs
(Cerezo et al., Nat. Commun. 12, 1791, 2021) are

* global: ``C_G = 1 - <0...0| rho |0...0>`` (one minus the all-zeros probability);
* local:  ``C_L = 1 - (1/n) sum_q P(wire q = 0) = (1/2)(1 - (1/n) sum_q <Z_q>)``.

``cost_values`` evaluates any of them from one simulated probability vector.
``gradient_variance`` draws ``theta ~ U[0, 2pi)^P`` and returns ``Var[dC/dtheta_k]`` for
every parameter ``k`` (and every cost, for a tuple of costs) from one ``vmap`` of
``jax.jacrev`` over the draws. ``fit_decay`` fits ``log Var = slope * n + intercept``
(exponential decay, McClean et al., Nat. Commun. 9, 4812, 2018) or
``log Var = slope * log n + intercept`` (power law), with the coefficient of determination
of ``log Var`` so that the two models can be compared. Checkable closed forms
for the product-``RX`` circuit: ``Var[dC_G/dtheta_1] = (1/8)(3/8)^(n-1)``,
``Var[dC_L/dtheta_1] = 1/(8 n^2)``.
"""

from __future__ import annotations

from functools import cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.ir.circuit import Circuit
from qjaxrob.devices import check_devices, in_use, over
from qjaxrob.errors import ParameterError
from qjaxrob.simulate import probs

__all__ = ["COSTS", "cost_values", "global_cost", "local_cost", "gradient_variance",
           "variance_scaling", "DecayFit", "fit_decay"]


def _global_from_probs(p, n: int):
    return 1.0 - p[0]


def _local_from_probs(p, n: int):
    t = p.reshape((2,) * n)
    p0 = jnp.stack([jnp.sum(jnp.take(t, 0, axis=q)) for q in range(n)])  # P(wire q = 0)
    return 1.0 - jnp.mean(p0)


_FROM_PROBS = {"global": _global_from_probs, "local": _local_from_probs}
COSTS = tuple(_FROM_PROBS)


def _check_names(costs) -> tuple:
    names = tuple(costs)
    bad = [c for c in names if c not in _FROM_PROBS]
    if bad or not names:
        raise ParameterError(f"costs must be a non-empty tuple of 'global'/'local', got "
                             f"{costs!r}")
    return names


def cost_values(circuit: Circuit, params, costs=COSTS, *, dtype=jnp.complex64):
    """The named costs (``"global"``, ``"local"``) at ``params`` from ONE probability
    vector, shape ``(len(costs),)``."""
    names = _check_names(costs)
    p = probs(circuit, params, dtype=dtype)
    return jnp.stack([_FROM_PROBS[c](p, circuit.n_qubits) for c in names])


def global_cost(circuit: Circuit, params, *, dtype=jnp.complex64):
    """``1 - P(|0...0>)`` (scalar)."""
    return cost_values(circuit, params, ("global",), dtype=dtype)[0]


def local_cost(circuit: Circuit, params, *, dtype=jnp.complex64):
    """``1 - (1/n) sum_q P(wire q = 0) = (1/2)(1 - (1/n) sum_q <Z_q>)`` (scalar)."""
    return cost_values(circuit, params, ("local",), dtype=dtype)[0]


@cache
def _named_costs(names: tuple):
    return partial(cost_values, costs=names)  # one object per tuple: one jit cache entry


def _cost_fn(cost):
    """A function ``(circuit, params, dtype=) -> scalar or (k,)`` for ``cost``."""
    if callable(cost):
        return cost
    if isinstance(cost, tuple):
        return _named_costs(_check_names(cost))
    if cost not in _FROM_PROBS:
        raise ParameterError(f"cost must be 'global', 'local', a tuple of them or a callable, "
                             f"got {cost!r}")
    return {"global": global_cost, "local": local_cost}[cost]


def _draws(key, circuit, n_samples, dtype):
    real = np.finfo(np.dtype(dtype)).dtype
    return jax.random.uniform(key, (n_samples, circuit.n_params), real, 0.0, 2 * np.pi)


def _gradients(circuit, fn, thetas, dtype):
    return jax.vmap(jax.jacrev(lambda t: fn(circuit, t, dtype=dtype)))(thetas)


@partial(jax.jit, static_argnames=("circuit", "fn", "n_samples", "dtype"))
def _variance(key, circuit, fn, n_samples, dtype):
    grads = _gradients(circuit, fn, _draws(key, circuit, n_samples, dtype), dtype)
    return jnp.var(grads, axis=0, ddof=1)


_jit_draws = jax.jit(_draws, static_argnames=("circuit", "n_samples", "dtype"))
_jit_gradients = jax.jit(_gradients, static_argnames=("circuit", "fn", "dtype"))


def _variance_over(key, circuit, fn, n_samples, dtype, devices):
    """``_variance`` with the draws laid over ``devices`` (two or more)."""
    thetas = _jit_draws(key, circuit, n_samples, dtype)
    grads = over(lambda t: _jit_gradients(circuit, fn, t, dtype), thetas, devices=devices,
                 axis="samples")
    return jnp.var(grads, axis=0, ddof=1)


def gradient_variance(key, circuit: Circuit, cost="global", n_samples: int = 200, *,
                      dtype=jnp.complex64, devices=None):
    """``Var[dC/dtheta_k]`` over ``n_samples`` draws ``theta ~ U[0, 2pi)^P``, shape ``(P,)``.

    ``cost`` is ``"global"``, ``"local"``, a callable ``(circuit, params, dtype=) ->
    scalar``, or a tuple of names such as ``("global", "local")``: then every cost comes
    from the same draws and one simulation per draw, shape ``(len(cost), P)``. The sample
    variance uses ``ddof=1``. ``devices`` (default: those lent by ``qjaxrob.devices.use``):
    with two or more, the draws are laid over them (``qjaxrob.devices.over``; equal to the
    one-device value to rounding); at most one: one jitted program.
    """
    if circuit.n_params == 0:
        raise ParameterError("gradient_variance needs a circuit with trainable parameters")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ParameterError(f"n_samples must be an int >= 2, got {n_samples!r}")
    devices = in_use() if devices is None else check_devices(devices)
    if len(devices) > 1:
        return _variance_over(key, circuit, _cost_fn(cost), n_samples, np.dtype(dtype),
                              devices)
    return _variance(key, circuit, _cost_fn(cost), n_samples, np.dtype(dtype))


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
    ``t = log n`` (``"power"``); ``r_squared`` is the coefficient of determination of
    ``log Var`` (1 for an exact fit; comparable between the two models, which have the
    same data and number of coefficients)."""

    slope: float
    intercept: float
    model: str
    r_squared: float


def fit_decay(n_qubits, variances, model: str = "exp") -> DecayFit:
    """Fits the decay of ``variances`` with the qubit counts ``n_qubits``: ``"exp"`` gives
    the rate ``slope`` in ``Var ~ exp(slope * n)`` (``slope = log(3/8)`` for the product-RX
    global cost), ``"power"`` the exponent in ``Var ~ n^slope`` (``-2`` for the product-RX
    local cost). Fit both and compare ``r_squared`` to say which law describes the data."""
    n = np.asarray(n_qubits, np.float64)
    v = np.asarray(variances, np.float64)
    if n.shape != v.shape or n.size < 2:
        raise ParameterError(f"need >= 2 matching sizes and variances, got {n.shape}, {v.shape}")
    if np.any(v <= 0) or np.any(n <= 0):
        raise ParameterError(f"variances and qubit counts must be positive, got {v}, {n}")
    if model not in ("exp", "power"):
        raise ParameterError(f"model must be 'exp' or 'power', got {model!r}")
    t = n if model == "exp" else np.log(n)
    y = np.log(v)
    slope, intercept = np.polyfit(t, y, 1)
    ss_res = float(np.sum((y - (slope * t + intercept)) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return DecayFit(float(slope), float(intercept), model, r2)
