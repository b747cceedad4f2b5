"""Adjoint-method gradients of statevector expectation values (``diff="adjoint"``).

For ``|psi> = U_N ... U_1 |0>`` and a real cost ``L = sum_o g_o <psi|O_o|psi>``, set
``|lam_N> = sum_o g_o O_o |psi_N>`` and walk the circuit backwards:

* ``|psi_{k-1}> = U_k^dagger |psi_k>`` (undo gate k),
* the contribution of gate k is ``dL/dtheta = 2 Re <lam_k| dU_k/dtheta |psi_{k-1}>``, obtained
  as ``jax.grad`` of the local scalar ``2 Re <lam_k| U_k(theta) |psi_{k-1}>`` with ``lam_k``
  and ``psi_{k-1}`` held fixed (this handles affine angles, several angles per gate, and
  gradients w.r.t. both ``params`` and ``x``),
* ``|lam_{k-1}> = U_k^dagger |lam_k>``.

Only two states live at any time, so memory is independent of depth; ``Repeat`` blocks
are walked with a reversed ``lax.scan``. The result is exact (not a finite difference) but
first-order only: use the default ``diff="backprop"`` for Hessians and gradients of
gradients. Density-matrix (mixed) circuits are not supported here.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from qjaxrob.circuit import Repeat
from qjaxrob.errors import ParameterError
from qjaxrob.kernels import apply_diagonal, apply_matrix, apply_pauli
from qjaxrob.simulate import final_tensor, observable_value, op_matrix

__all__ = ["adjoint_expval"]


def _apply(op, state, params, x, dtype, inverse=False):
    kind, m = op_matrix(op, params, x, dtype)
    if kind == "diagonal":
        return apply_diagonal(state, jnp.conj(m) if inverse else m, op.wires)
    return apply_matrix(state, jnp.conj(m).T if inverse else m, op.wires)


def _backward(circuit, carry, params, x, dtype):
    """Walks ``circuit`` backwards; carry = (psi, lam, grad_x). Returns (carry, grad_params)."""
    grad_p = jnp.zeros_like(params)
    for op in reversed(circuit.ops):
        if isinstance(op, Repeat):
            stride = op.block.n_params
            start = op.param_offset
            if stride:
                rows = params[start : start + op.times * stride].reshape(op.times, stride)
            else:
                rows = jnp.zeros((op.times, 0), params.dtype)

            def body(c, p, block=op.block):
                return _backward(block, c, p, x, dtype)

            carry, rows_grad = jax.lax.scan(body, carry, rows, reverse=True)
            if stride:
                grad_p = grad_p.at[start : start + op.times * stride].add(rows_grad.reshape(-1))
            continue
        if op.is_marker:
            continue
        psi, lam, grad_x = carry
        psi_prev = _apply(op, psi, params, x, dtype, inverse=True)
        if any(a.source != "const" for a in op.angles):

            def local(p, xx, op=op, lam=lam, psi_prev=psi_prev):
                out = _apply(op, psi_prev, p, xx, dtype)
                return 2 * jnp.real(jnp.vdot(lam, out))

            dp, dx = jax.grad(local, argnums=(0, 1))(params, x)
            grad_p = grad_p + dp
            grad_x = grad_x + dx
        lam = _apply(op, lam, params, x, dtype, inverse=True)
        carry = (psi_prev, lam, grad_x)
    return carry, grad_p


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 4))
def _adjoint(circuit, observables, params, x, dtype):
    psi = final_tensor(circuit, params, x, dtype, False)
    return jnp.stack([observable_value(psi, o, False) for o in observables])


def _fwd(circuit, observables, params, x, dtype):
    psi = final_tensor(circuit, params, x, dtype, False)
    out = jnp.stack([observable_value(psi, o, False) for o in observables])
    return out, (params, x, psi)


def _bwd(circuit, observables, dtype, residuals, g):
    params, x, psi = residuals
    lam = jnp.zeros_like(psi)
    for gi, obs in zip(g, observables):
        for coeff, word in obs.terms:
            letters = "".join(l for _, l in word)
            wires = tuple(w for w, _ in word)
            lam = lam + (gi * coeff.real).astype(psi.dtype) * apply_pauli(psi, letters, wires)
    carry = (psi, lam, jnp.zeros_like(x))
    (_, _, grad_x), grad_p = _backward(circuit, carry, params, x, dtype)
    return grad_p, grad_x


_adjoint.defvjp(_fwd, _bwd)

_adjoint_jit = jax.jit(_adjoint, static_argnums=(0, 1, 4))


def adjoint_expval(circuit, observables, params, x, dtype, mixed):
    """Expectation values whose gradient uses the adjoint method (first order only)."""
    if mixed:
        raise ParameterError("diff='adjoint' supports statevector simulation only, got mixed=True")
    if circuit.has_channels:
        raise ParameterError("diff='adjoint' does not support circuits with noise channels")
    return _adjoint_jit(circuit, observables, params, x, dtype)
