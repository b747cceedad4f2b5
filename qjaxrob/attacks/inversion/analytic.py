"""The analytic route: solve the gradient equations of a periodic-encoding VQC exactly.

With a bias the shared ``dL/db = delta`` is known exactly, and the other gradient entries
are ``J(x)^T W^T delta`` (parameters) and ``delta r(x)^T`` (weights), with ``r`` the readout
vector: trigonometric polynomials in ``t_j = omega_j x_j`` (``omega_j = 2 pi / period_j``)
with integer frequencies ``|k_j| <= K_j`` (``qjr.qml.encodings.encoding_spectrum``; Schuld,
Sweke, Meyer, PRA 103, 032430, 2021). Their coefficients come exactly from a DFT on the
``prod_j (2 K_j + 1)`` grid, and the system is *linear* in the monomials ``cos(k . t),
sin(k . t)``: it is solved by least squares when the gradient has at least as many
independent entries as monomials (``rank == n_unknowns``; otherwise ``ParameterError``), and
``t_j = atan2`` of the entries with ``k = e_j``. This is the "recovery once parameters >=
unknowns" regime of Papadopoulos et al. (arXiv 2504.12806); the Chebyshev-system hardness of
Kumar et al. (arXiv 2309.13002) is that the unknowns grow as ``prod (2 K_j + 1)`` with
``K = (5^m - 1)/4`` for the Fourier tower.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.attacks.inversion.objective import check_grads
from qjaxrob.errors import ParameterError
from qjaxrob.qml.encodings import encoding_period, encoding_spectrum

__all__ = ["AnalyticResult", "analytic_invert"]


class AnalyticResult(NamedTuple):
    """Outcome of ``analytic_invert``: the input ``x`` ``(n_features,)``, ``label``, the
    least-squares ``residual`` norm, the system ``rank`` and its ``n_unknowns`` monomials."""

    x: np.ndarray
    label: int
    residual: float
    rank: int
    n_unknowns: int


def _half_lattice(k_max):
    """Integer frequency vectors ``k`` with ``|k_j| <= K_j``, one of each pair ``+-k``
    (first nonzero entry positive), excluding 0."""
    grid = np.array(list(np.ndindex(*(2 * k_max + 1)))) - k_max
    keep = []
    for k in grid:
        nz = k[k != 0]
        if nz.size and nz[0] > 0:
            keep.append(k)
    return np.array(keep, int).reshape(-1, len(k_max))


def analytic_invert(model, grads, *, max_unknowns: int = 4096) -> AnalyticResult:
    """The trigonometric-polynomial solve (module docstring) for one example's gradient of a
    model with a bias layer and a periodic Pauli-rotation encoding. Raises ``ParameterError``
    when the system is underdetermined (``rank < n_unknowns``) or larger than
    ``max_unknowns``."""
    flat = check_grads(model, grads)
    if model.bias is None:
        raise ParameterError("analytic_invert needs a model with a bias (post=True): the bias "
                             "gradient fixes softmax(z) - onehot(y)")
    period = encoding_period(model.encoding)
    k_max = encoding_spectrum(model.encoding)
    lattice = _half_lattice(k_max)
    n_unknowns = 2 * len(lattice)
    if n_unknowns > max_unknowns:
        raise ParameterError(f"the trigonometric system has {n_unknowns} unknowns > "
                             f"max_unknowns={max_unknowns}")
    delta = jnp.asarray(grads.bias)
    label = int(jnp.argmin(delta))
    real = model.params.dtype
    omega = jnp.asarray(2 * np.pi / period, real)

    def features(t):  # t = omega * x; the non-bias gradient entries given delta
        x = t / omega

        def r_of(params):
            return eqx.tree_at(lambda m: m.params, model, params).readout_vector(x)

        r = r_of(model.params)
        jac = jax.jacfwd(r_of)(model.params)  # (k, P)
        return jnp.concatenate([jac.T @ (model.weights.T @ delta), jnp.outer(delta, r).ravel()])

    n_grid = 2 * k_max + 1
    axes = [2 * np.pi * np.arange(n) / n for n in n_grid]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(n_grid))
    vals = np.asarray(jax.jit(jax.vmap(features))(jnp.asarray(pts, real)), np.float64)
    phase = np.exp(-1j * pts @ lattice.T)  # (grid, lattice)
    coef = phase.T @ vals / len(pts)  # F_hat(k), (lattice, E)
    const = vals.mean(0)
    a = np.concatenate([2 * coef.real, -2 * coef.imag], 0).T  # (E, 2 L): cos then sin
    g = np.asarray(flat, np.float64)
    n_bias = int(np.size(model.bias))
    n_params = int(np.size(model.params))
    # flattened grads order: params, weights, bias (eqx field order)
    rhs = np.concatenate([g[:n_params], g[n_params:-n_bias]]) - const
    sol, _, rank, _ = np.linalg.lstsq(a, rhs, rcond=None)
    if rank < n_unknowns:
        raise ParameterError(
            f"the gradient determines only {rank} of the {n_unknowns} trigonometric monomials: "
            "the linear route is underdetermined here (use invert)")
    residual = float(np.linalg.norm(a @ sol - rhs))
    t = np.zeros(len(k_max))
    for j in range(len(k_max)):
        e = np.zeros(len(k_max), int)
        e[j] = 1
        idx = int(np.flatnonzero((lattice == e).all(1))[0])
        t[j] = np.arctan2(sol[len(lattice) + idx], sol[idx])
    x = np.mod(t / np.asarray(omega), period)
    return AnalyticResult(x, label, residual, int(rank), n_unknowns)
