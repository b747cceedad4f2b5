"""Shared test helpers: the tolerance table, finite differences, and random-circuit builders
(seeded, hypothesis-friendly)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import qjaxrob as qjr
from qjaxrob.ir.gates import GATES

GATE_NAMES = sorted(GATES)


class _Tolerances(dict):
    """Looks dtypes up by ``np.dtype`` (so ``jnp.complex64`` and ``np.complex64`` agree)."""

    def __getitem__(self, dtype):
        return dict.__getitem__(self, np.dtype(dtype))


TOL = _Tolerances({np.dtype(np.complex128): 1e-10, np.dtype(np.complex64): 1e-5})
"""Absolute tolerance of a simulated amplitude/expectation against an independent reference."""


def seeded_angle(rng, n_params: int, n_inputs: int, const_only: bool = False):
    """One gate angle drawn from ``rng``: a constant in [-3, 3), ``qjr.param(i)``, an affine
    ``qjr.param(i) * 0.7 - 0.4`` or ``qjr.inp(j) * 1.3 + 0.1`` (equally likely); only the
    constant (and no kind draw) when ``const_only``."""
    kind = 0 if const_only else rng.integers(4)
    if kind == 0:
        return float(rng.uniform(-3, 3))
    if kind == 1:
        return qjr.param(int(rng.integers(n_params)))
    if kind == 2:
        return qjr.param(int(rng.integers(n_params))) * 0.7 - 0.4
    return qjr.inp(int(rng.integers(n_inputs))) * 1.3 + 0.1


def finite_diff(f, v, h=1e-6):
    """Central finite differences ``(f(v + h e_i) - f(v - h e_i)) / 2h`` of a scalar- or
    array-valued ``f`` along each coordinate of the 1-D ``v``; the last axis is ``i``."""
    v = np.asarray(v, dtype=float)
    cols = []
    for i in range(v.shape[0]):
        e = np.zeros_like(v)
        e[i] = h
        cols.append((np.asarray(f(v + e)) - np.asarray(f(v - e))) / (2 * h))
    return np.stack(cols, axis=-1)


def random_unitary(rng, dim):
    """Haar-ish random unitary from the QR decomposition of a complex Gaussian matrix."""
    z = rng.normal(size=(dim, dim)) + 1j * rng.normal(size=(dim, dim))
    q, r = np.linalg.qr(z)
    return q * (np.diag(r) / np.abs(np.diag(r)))


@st.composite
def angles(draw, n_params=3, n_inputs=2):
    """A float, a param, an input, or an affine expression of one of them."""
    kind = draw(st.sampled_from(["const", "param", "inp", "affine_param", "affine_inp"]))
    value = draw(st.floats(-3.0, 3.0, allow_nan=False))
    if kind == "const":
        return value
    i = draw(st.integers(0, (n_params if "param" in kind else n_inputs) - 1))
    base = qjr.param(i) if "param" in kind else qjr.inp(i)
    if kind.startswith("affine"):
        scale = draw(st.floats(-2.0, 2.0, allow_nan=False))
        return base * scale + value
    return base


@st.composite
def circuits(draw, min_qubits=1, max_qubits=8, max_ops=12, with_unitary=True):
    """A random circuit over the whole gate set (plus ``unitary`` ops and cut markers)."""
    n = draw(st.integers(min_qubits, max_qubits))
    c = qjr.Circuit(n)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    names = [g for g in GATE_NAMES if GATES[g].n_wires <= n]
    if with_unitary:
        names += ["unitary"]
    for _ in range(draw(st.integers(1, max_ops))):
        name = draw(st.sampled_from(names))
        if name == "unitary":
            k = draw(st.integers(1, min(3, n)))
            wires = tuple(int(w) for w in rng.permutation(n)[:k])
            c = c.unitary(random_unitary(rng, 2**k), wires)
            continue
        spec = GATES[name]
        wires = tuple(int(w) for w in rng.permutation(n)[: spec.n_wires])
        args = [draw(angles()) for _ in range(spec.n_angles)]
        c = c.gate(name, wires, *args)
    return c


def random_inputs(circuit, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-np.pi, np.pi, circuit.n_params), rng.uniform(-np.pi, np.pi, circuit.n_inputs)
