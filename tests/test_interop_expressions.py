"""Angle expressions through the converters: Qiskit ``ParameterExpression`` s
(``ZZFeatureMap``'s ``2(pi - x0)(pi - x1)``, products, ``sin``/``cos``/``exp``/powers of
parameters) against Qiskit's ``Statevector`` with the values bound, gradients of the
converted feature map against finite differences, and what has no qjaxrob form refused
by name."""

import jax
import numpy as np
import pytest
from helpers import finite_diff
from reference import expval_ref

import qjaxrob as qjr
from qjaxrob.errors import ConversionError

qiskit = pytest.importorskip("qiskit")
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit import library as lib
from qiskit.quantum_info import Statevector


def _bound_state(qc, values):
    return Statevector(qc.assign_parameters(dict(zip(qc.parameters, values)))).reverse_qargs().data


@pytest.mark.parametrize("n", [2, 3, 4])
def test_zz_feature_map_matches_qiskit(n):
    rng = np.random.default_rng(n)
    for reps in (1, 2):
        fm = lib.zz_feature_map(n, reps=reps)
        c = qjr.from_qiskit(fm, inputs=list(fm.parameters))
        assert (c.n_params, c.n_inputs) == (0, n)
        for _ in range(2):
            x = rng.uniform(0, 2 * np.pi, n)
            got = qjr.statevector(c, None, x, dtype=np.complex128)
            np.testing.assert_allclose(got, _bound_state(fm, x), atol=1e-10)


def _random_expression(rng, a):
    i, j = (int(k) for k in rng.choice(len(a), 2, replace=False))
    s, t = rng.uniform(0.5, 2.0, 2)
    forms = [
        lambda: a[i] * a[j],
        lambda: (s * a[i]).sin() * a[j],
        lambda: a[i].cos() + a[j] ** 2,
        lambda: (a[i] * a[j] / 3).exp(),
        lambda: a[i] / (a[j] ** 2 + t),
        lambda: 2 * (np.pi - a[i]) * (np.pi - a[j]),
        lambda: (a[i].sin() + 2).log() - a[j].arctan(),
        lambda: a[i] + s * a[j] - t,      # affine in two parameters: the split fast path
    ]
    return forms[int(rng.integers(len(forms)))]()


@pytest.mark.parametrize("n,seed", [(2, 0), (3, 1), (4, 2)])
def test_random_circuits_with_expressions_match_qiskit(n, seed):
    rng = np.random.default_rng(100 + seed)
    a = ParameterVector("a", 4)
    qc = QuantumCircuit(n)
    for q in range(n):
        qc.h(q)
    for _ in range(8):
        kind = rng.integers(6)
        q0, q1 = (int(q) for q in rng.choice(n, 2, replace=False))
        e = _random_expression(rng, a)
        if kind == 0:
            qc.rx(e, q0)
        elif kind == 1:
            qc.ry(e, q0)
        elif kind == 2:
            qc.p(e, q0)
        elif kind == 3:
            qc.crx(e, q0, q1)
        elif kind == 4:
            qc.rzz(e, q0, q1)
        else:
            qc.u(e, _random_expression(rng, a), 0.3, q0)
    values = rng.uniform(-1.5, 1.5, len(qc.parameters))
    c = qjr.from_qiskit(qc)
    assert c.n_params == len(qc.parameters)
    got = qjr.statevector(c, values, dtype=np.complex128)
    np.testing.assert_allclose(got, _bound_state(qc, values), atol=1e-10)
    # the same circuit with two of its parameters as data inputs
    inputs = [p for p in qc.parameters][:2]
    c = qjr.from_qiskit(qc, inputs=inputs)
    x = values[:2]
    got = qjr.statevector(c, values[2:] if c.n_params else None, x, dtype=np.complex128)
    np.testing.assert_allclose(got, _bound_state(qc, values), atol=1e-10)


def test_zz_feature_map_gradients_match_finite_differences():
    fm = lib.zz_feature_map(2, reps=2)
    ansatz = lib.real_amplitudes(2, reps=1)
    qc = fm.compose(ansatz)
    names = [p.name for p in fm.parameters]
    c = qjr.from_qiskit(qc, inputs=names)
    rng = np.random.default_rng(0)
    p, x = rng.normal(size=c.n_params), rng.uniform(0, 2 * np.pi, c.n_inputs)
    obs = qjr.Z(0) @ qjr.Z(1)
    fd_p = finite_diff(lambda v: expval_ref(c, obs, v, x), p)
    fd_x = finite_diff(lambda v: expval_ref(c, obs, p, v), x)
    for diff in ("backprop", "adjoint"):
        gp, gx = jax.grad(lambda p, x: qjr.expval(c, obs, p, x, dtype=np.complex128,
                                                  diff=diff), argnums=(0, 1))(p, x)
        np.testing.assert_allclose(gp, fd_p, atol=1e-6)
        np.testing.assert_allclose(gx, fd_x, atol=1e-6)


def test_unsupported_qiskit_functions_are_named():
    a = ParameterVector("a", 2)
    for angle, name in ((abs(a[0] * a[1]), "Abs"), (a[0].conjugate() * a[1], "conjugate")):
        qc = QuantumCircuit(1)
        qc.ry(angle, 0)
        with pytest.raises(ConversionError, match=rf"instruction 0 \(ry.*{name}"):
            qjr.from_qiskit(qc)


def test_complex_qiskit_angles_are_named():
    """A complex coefficient or constant (affine or not) is refused, not cast."""
    a = ParameterVector("a", 2)
    for angle in (a[0] * 1j, a[0] + 0.5j, a[0] * a[1] * 1j):
        qc = QuantumCircuit(1)
        qc.ry(angle, 0)
        with pytest.raises(ConversionError, match=r"instruction 0 \(ry.*complex"):
            qjr.from_qiskit(qc)
