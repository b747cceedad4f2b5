"""Pauli strings applied to, and measured on, ``(2,)*n`` states without dense matrices.

X flips the state along its axis, Z multiplies by (1, -1) along it, and
Y = i X Z multiplies by (-i, i) after the flip.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["apply_pauli", "pauli_expval", "z_signs"]


def _axis_vector(values, axis: int, n: int, dtype):
    shape = [1] * n
    shape[axis] = 2
    return jnp.asarray(values, dtype).reshape(shape)


def apply_pauli(state, letters: str, wires):
    """Applies the Pauli string ``letters`` (from "IXYZ") on ``wires`` to ``state``."""
    n = state.ndim
    for letter, w in zip(letters, wires):
        if letter == "X":
            state = jnp.flip(state, axis=w)
        elif letter == "Z":
            state = state * _axis_vector([1, -1], w, n, state.dtype)
        elif letter == "Y":
            state = jnp.flip(state, axis=w) * _axis_vector([-1j, 1j], w, n, state.dtype)
    return state


def z_signs(wires, n: int, dtype):
    """The broadcastable ``(+-1)`` eigenvalue tensor of the Z string on ``wires``."""
    out = jnp.ones((1,) * n, dtype)
    for w in wires:
        out = out * _axis_vector([1, -1], w, n, dtype)
    return out


def pauli_expval(state, letters: str, wires):
    """``<psi| P |psi>`` (real) for the Pauli string ``letters`` on ``wires``.

    Z-only strings are computed from ``|psi|^2`` with a sign tensor (no copy of the state).
    """
    active = [(l, w) for l, w in zip(letters, wires) if l != "I"]
    if not active:
        return jnp.sum(jnp.abs(state) ** 2)
    if all(l == "Z" for l, _ in active):
        p = jnp.abs(state) ** 2
        return jnp.sum(p * z_signs([w for _, w in active], state.ndim, p.dtype))
    ls, ws = zip(*active)
    return jnp.real(jnp.vdot(state, apply_pauli(state, "".join(ls), ws)))
