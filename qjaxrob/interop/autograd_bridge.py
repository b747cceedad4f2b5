"""Autograd (PennyLane's NumPy interface) differentiating through a JAX function.

:func:`autograd_call` evaluates ``fn(*args)`` (``fn`` a JAX function of real arrays
returning a pytree of real or complex arrays) on autograd-boxed arguments: the values run
through JAX, and the result is an autograd primitive whose vector-Jacobian product is
``jax.vjp`` of ``fn``, itself an autograd primitive, so derivatives of any order (PennyLane's
``qml.grad``, ``qml.jacobian``, Hessians) go through JAX. Complex outputs travel as their
real and imaginary parts (real cotangents only, no convention to match).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.extras import require

__all__ = ["autograd_call", "autograd_value", "is_boxed"]


def is_boxed(value) -> bool:
    """Whether ``value`` is an autograd tracer box (a differentiated NumPy-interface value)."""
    tracer = require("autograd.tracer", "pennylane", "autograd backprop on qjaxrob.qubit")
    return isinstance(value, tracer.Box)


def _flat_real(out):
    """A pytree of arrays as one real vector, and what :func:`_unflatten` needs to undo it."""
    leaves, tree = jax.tree.flatten(out)
    parts, spec = [], []
    for leaf in leaves:
        leaf = jnp.asarray(leaf)
        is_complex = jnp.iscomplexobj(leaf)
        spec.append((leaf.shape, is_complex))
        parts.append(jnp.ravel(jnp.real(leaf)))
        if is_complex:
            parts.append(jnp.ravel(jnp.imag(leaf)))
    real = jnp.result_type(*[p.dtype for p in parts]) if parts else jnp.float32
    return jnp.concatenate([p.astype(real) for p in parts]), (tree, spec)


def _unflatten(vector, layout):
    anp = require("autograd.numpy", "pennylane", "autograd backprop on qjaxrob.qubit")
    tree, spec = layout
    leaves, start = [], 0
    for shape, is_complex in spec:
        size = int(np.prod(shape))
        leaf = anp.reshape(vector[start:start + size], shape)
        start += size
        if is_complex:
            leaf = leaf + 1j * anp.reshape(vector[start:start + size], shape)
            start += size
        leaves.append(leaf)
    return jax.tree.unflatten(tree, leaves)


def _primitive(vector_fn):
    """An autograd primitive of ``vector_fn`` (real arrays -> one real vector), with
    ``jax.vjp`` as its (again primitive, so differentiable) vector-Jacobian product."""
    extend = require("autograd.extend", "pennylane", "autograd backprop on qjaxrob.qubit")

    @extend.primitive
    def call(*args):
        return np.asarray(vector_fn(*args))

    def vjp_fn(g, *args):
        _, pullback = jax.vjp(vector_fn, *args)
        return jnp.concatenate([jnp.ravel(c) for c in pullback(g)])

    def maker(argnums, ans, args, kwargs):
        del ans, kwargs
        sizes = [int(np.size(a)) for a in args]
        shapes = [np.shape(a) for a in args]
        pull = _primitive(vjp_fn)
        anp = require("autograd.numpy", "pennylane", "autograd backprop on qjaxrob.qubit")

        def vjp(g):
            flat = pull(g, *args)
            out, start = [], 0
            for size, shape in zip(sizes, shapes):
                out.append(anp.reshape(flat[start:start + size], shape))
                start += size
            return tuple(out[i] for i in argnums)

        return vjp

    extend.defvjp_argnums(call, maker)
    return call


def autograd_call(fn, *args):
    """``fn(*args)`` with ``args`` (real arrays, possibly autograd boxes) differentiable by
    autograd through JAX; ``fn`` maps JAX arrays to a pytree of arrays."""
    tracer = require("autograd.tracer", "pennylane", "autograd backprop on qjaxrob.qubit")
    concrete = [np.asarray(tracer.getval(a)) for a in args]
    layouts = []

    def traced(*xs):
        vector, layout = _flat_real(fn(*xs))
        layouts.append(layout)
        return vector

    jax.eval_shape(traced, *concrete)   # the output's structure, without computing it
    layout = layouts[0]

    def vector_fn(*xs):
        return _flat_real(fn(*xs))[0]

    return _unflatten(_primitive(vector_fn)(*args), layout)


def autograd_value(value):
    """The plain value inside an autograd box (``value`` itself if not boxed)."""
    tracer = require("autograd.tracer", "pennylane", "autograd backprop on qjaxrob.qubit")
    return tracer.getval(value)
