"""Fast paths for structured gates, each one pass over the state.

* diagonal gates multiply the state elementwise by a broadcast diagonal;
* permutation gates (X, Y, CNOT, CY, SWAP, iSWAP, Toffoli and their products: monomial
  matrices, one nonzero per row) gather whole slices: output slice ``i`` is
  ``phases[i] * input slice perm[i]``, with ``perm`` static and no arithmetic when all
  phases are 1;
* a static permutation of the amplitudes along one axis of a flat state or density matrix
  (:func:`permute_axis`) is one gather whose reverse-mode rule is the inverse permutation's
  gather (JAX transposes a plain gather into a scatter-add, several times slower on CPU).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from qjaxrob.kernels.dense import grouped_shape, stack_slices

__all__ = ["apply_diagonal", "broadcast_diagonal", "apply_permutation", "monomial",
           "permute_axis"]


def broadcast_diagonal(diag, wires, n: int):
    """Reshapes the ``(2**k,)`` diagonal on ``wires`` so it broadcasts against ``(2,)*n``."""
    wires = tuple(wires)
    k = len(wires)
    d = diag.reshape((2,) * k)
    order = tuple(int(i) for i in np.argsort(wires))
    if order != tuple(range(k)):
        d = d.transpose(order)
    shape = [1] * n
    for w in wires:
        shape[w] = 2
    return d.reshape(shape)


def apply_diagonal(state, diag, wires):
    """Multiplies ``state`` (shape ``(2,)*n``) by the diagonal gate ``diag`` (shape
    ``(2**k,)``, ``wires[0]`` the most significant bit) acting on ``wires``."""
    wires = tuple(wires)
    sw = tuple(sorted(wires))
    d = broadcast_diagonal(diag, wires, state.ndim)
    g = grouped_shape(state.ndim, sw)
    dshape = tuple(2 if i % 2 else 1 for i in range(len(g)))
    return (state.reshape(g) * d.reshape(dshape)).reshape(state.shape)


def monomial(matrix, atol: float = 1e-12):
    """``(perm, phases)`` if the constant ``(d, d)`` matrix has exactly one nonzero per row
    and column (``matrix[i, perm[i]] = phases[i]``), else ``None``. NumPy, static."""
    m = np.asarray(matrix)
    nz = np.abs(m) > atol
    if not (np.all(nz.sum(axis=1) == 1) and np.all(nz.sum(axis=0) == 1)):
        return None
    perm = np.argmax(nz, axis=1)
    return tuple(int(p) for p in perm), m[np.arange(m.shape[0]), perm]


def apply_permutation(state, perm, phases, wires):
    """Applies the monomial gate ``U[i, perm[i]] = phases[i]`` on ``wires``.

    Args:
        state: complex array of shape ``(2,)*n``.
        perm: static tuple of ``2**k`` ints (a permutation).
        phases: ``(2**k,)`` complex array (static NumPy or traced), or ``None`` for all ones.
        wires: k distinct axes; ``wires[0]`` is the most significant bit of ``i``.
    """
    wires = tuple(wires)
    k = len(wires)
    order = [int(i) for i in np.argsort(wires)]
    sw = tuple(wires[i] for i in order)

    def to_sorted(i):  # index bits in wires order -> bits in sorted order
        bits = [(i >> (k - 1 - j)) & 1 for j in range(k)]
        return tuple(bits[o] for o in order)

    x = state.reshape(grouped_shape(state.ndim, sw))
    dim = 2**k
    outs = [None] * dim
    for i in range(dim):
        idx = []
        for b in to_sorted(perm[i]):
            idx += [slice(None), b]
        s = x[tuple(idx)]
        if phases is not None:
            p = phases[i]
            if not (isinstance(phases, np.ndarray) and p == 1):
                s = s * jnp.asarray(p, state.dtype)
        ob = to_sorted(i)
        outs[int("".join(map(str, ob)), 2)] = s
    return stack_slices(outs, k).reshape(state.shape)


permute_p = Primitive("qjaxrob_permute")
"""``y = take(x, perm, axis)`` for a static permutation ``perm`` (a tuple). Linear: its
transpose is the same primitive with the inverse permutation; batching moves the vmapped
axis to the front."""


def _take(x, *, perm, axis):
    index = (slice(None),) * axis + (np.asarray(perm, np.int32),)
    return x.at[index].get(mode="promise_in_bounds", unique_indices=True)


permute_p.def_impl(lambda x, *, perm, axis: jax.jit(partial(permute_p.bind, perm=perm,
                                                            axis=axis))(x))
permute_p.def_abstract_eval(lambda x, *, perm, axis: x)  # same shape and dtype
mlir.register_lowering(permute_p, mlir.lower_fun(_take, multiple_results=False))


def _inverse(perm: tuple) -> tuple:
    return tuple(int(i) for i in np.argsort(perm))


ad.deflinear2(permute_p, lambda ct, x, *, perm, axis: [
    permute_p.bind(ct, perm=_inverse(perm), axis=axis)])


def _batch_permute(args, dims, *, perm, axis):
    (x,), (d,) = args, dims
    return permute_p.bind(jnp.moveaxis(x, d, 0), perm=perm, axis=axis + 1), 0


batching.primitive_batchers[permute_p] = _batch_permute


def permute_axis(x, perm, axis: int = 0):
    """``x`` with its entries along ``axis`` reordered: ``out[..., i, ...] = x[..., perm[i],
    ...]`` (``perm``: a static permutation of ``range(x.shape[axis])``, NumPy or a sequence
    of ints; ``axis`` non-negative). Differentiable to any order in both modes, each
    derivative a gather (never a scatter)."""
    return permute_p.bind(x, perm=tuple(int(i) for i in np.asarray(perm).reshape(-1)),
                          axis=int(axis))
