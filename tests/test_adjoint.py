"""The adjoint-method gradient (qjaxrob/sim/adjoint.py) against backprop: every parameterised
gate type, affine param and inp angles, inside and outside Repeat, both dtypes; and the
generator table against the gate matrices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import qjaxrob as qjr
from helpers import TOL
from qjaxrob.sim.adjoint import generator
from qjaxrob.ir.circuit import Op, as_angle
from qjaxrob.ir.gates import gate_matrix

PARAM_GATES_1Q = ("rx", "ry", "rz", "phase")
PARAM_GATES_2Q = ("crx", "cry", "crz", "rxx", "ryy", "rzz")
CONST_1Q = ("h", "s", "t", "sx", "x", "y", "z", "sdg")
CONST_2Q = ("cnot", "cz", "swap", "iswap", "cy")
PAULI = {"I": np.eye(2), "X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]),
         "Z": np.diag([1.0, -1.0])}


@pytest.mark.parametrize("name", PARAM_GATES_1Q + PARAM_GATES_2Q)
def test_generator_exponentiates_to_the_gate(name):
    k = 1 if name in PARAM_GATES_1Q else 2
    op = Op(name, tuple(range(k)), (as_angle(0.0),))
    g = np.zeros((2**k, 2**k), complex)
    for coeff, word in generator(op):
        letters = dict(word)
        m = np.eye(1)
        for w in range(k):
            m = np.kron(m, PAULI[letters.get(w, "I")])
        g += coeff * m
    theta = 0.731
    expected = np.asarray(gate_matrix(name, (theta,), jnp.complex128))
    np.testing.assert_allclose(scipy.linalg.expm(-0.5j * theta * g), expected, atol=1e-12)


def _angle(rng, n_params, n_inputs):
    kind = rng.integers(4)
    scale, shift = float(rng.uniform(-2, 2)), float(rng.uniform(-1, 1))
    if kind == 0:
        return float(rng.uniform(-3, 3))
    if kind == 1:
        return qjr.param(int(rng.integers(n_params)))
    if kind == 2:
        return qjr.param(int(rng.integers(n_params))) * scale + shift
    return qjr.inp(int(rng.integers(n_inputs))) * scale + shift


def _random_circuit(rng, n, n_gates, n_params, n_inputs, every=True):
    """Random gates; with ``every``, each parameterised gate type appears at least once."""
    c = qjr.Circuit(n)
    names = list(PARAM_GATES_1Q + PARAM_GATES_2Q + ("u3",)) if every else []
    pool = PARAM_GATES_1Q + PARAM_GATES_2Q + ("u3",) + CONST_1Q + CONST_2Q + ("ccx", "unitary")
    names += [pool[i] for i in rng.integers(len(pool), size=n_gates)]
    rng.shuffle(names)
    for name in names:
        wires = [int(w) for w in rng.permutation(n)]
        if name in PARAM_GATES_1Q:
            c = c.gate(name, wires[0], _angle(rng, n_params, n_inputs))
        elif name in PARAM_GATES_2Q:
            c = c.gate(name, wires[:2], _angle(rng, n_params, n_inputs))
        elif name == "u3":
            c = c.u3(wires[0], *(_angle(rng, n_params, n_inputs) for _ in range(3)))
        elif name in CONST_1Q:
            c = c.gate(name, wires[0])
        elif name in CONST_2Q:
            c = c.gate(name, wires[:2])
        elif name == "ccx":
            c = c.ccx(*wires[:3])
        else:
            q, _ = np.linalg.qr(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)))
            c = c.unitary(q, wires[:2])
    return c


def _check(c, obs, p, x, dtype):
    def f(diff):
        def loss(q, y):
            v = qjr.expval(c, obs, q, y, dtype=dtype, diff=diff)
            return jnp.sum(jnp.arange(1.0, 1.0 + v.shape[0], dtype=v.dtype) * v)
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))

    vb, (gpb, gxb) = f("backprop")(p, x)
    va, (gpa, gxa) = f("adjoint")(p, x)
    tol = 20 * TOL[dtype]
    np.testing.assert_allclose(va, vb, atol=tol)
    np.testing.assert_allclose(gpa, gpb, atol=tol)
    np.testing.assert_allclose(gxa, gxb, atol=tol)


def _inputs(rng, c, dtype):
    real = jnp.float64 if dtype == jnp.complex128 else jnp.float32
    p = jnp.asarray(rng.uniform(-2, 2, c.n_params), real)
    x = jnp.asarray(rng.uniform(-2, 2, c.n_inputs), real)
    return p, x


OBS = [qjr.Z(0) @ qjr.X(2) + 0.5 * qjr.Y(1), qjr.Z(3) - 0.25 * qjr.X(0) @ qjr.Y(3)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "seed, dtype", [(0, jnp.complex128), (1, jnp.complex128), (2, jnp.complex64)]
)
def test_random_circuits_with_every_gate_and_repeat(seed, dtype):
    rng = np.random.default_rng(seed)
    n = 4
    head = _random_circuit(rng, n, 3, 3, 2)
    block = _random_circuit(rng, n, 4, 4, 2)
    tail = _random_circuit(rng, n, 5, 5, 2, every=False)
    c = head + qjr.Circuit.repeat(block, 3, param_offset=3) + tail.shift_params(3 + 12)
    c = c.rx(0, qjr.inp(1))  # make sure both inputs are used
    p, x = _inputs(rng, c, dtype)
    _check(c, OBS, p, x, dtype)


@pytest.mark.slow
def test_commuting_layers_and_shared_parameters():
    """Layers whose generators commute (evaluated at one point), a parameter shared by
    gates of different groups, and an observable with several terms."""
    n = 4
    block = qjr.Circuit(n)
    for q in range(n):
        block = block.ry(q, qjr.param(q) * 1.5 - 0.2)
    for q in range(n):
        block = block.rzz(q, (q + 1) % n, qjr.param(n + q))
    for q in range(n):
        block = block.phase(q, qjr.param(q)).crz(q, (q + 2) % n, qjr.inp(q % 2) * 0.7)
    for q in range(n - 1):
        block = block.rxx(q, q + 1, qjr.param(2 * n)).cnot(q, q + 1)
    c = qjr.Circuit(n).h(0).h(3) + qjr.Circuit.repeat(block, 2)
    rng = np.random.default_rng(5)
    p, x = _inputs(rng, c, jnp.complex128)
    _check(c, [qjr.Z(0) + 0.3 * qjr.X(1) @ qjr.X(3), qjr.Y(2)], p, x, jnp.complex128)


@pytest.mark.slow
def test_wide_register_windows_and_split_diagonals():
    """n=10: Pauli words in the head and tail windows, in middle pairs, across pairs,
    wider than any window (slow path); diagonal undo in both halves and across them."""
    n = 10
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.h(q)
    for q in range(n):
        c = c.rz(q, qjr.param(q)).ry(q, qjr.param(n + q))
    c = (c.crz(2, 7, qjr.param(0)).rzz(1, 3, qjr.param(1)).cz(4, 5)
         .rxx(0, 9, qjr.param(2)).crx(4, 6, qjr.param(3) * 0.5).ryy(5, 6, qjr.inp(0))
         .cry(6, 7, qjr.param(4)).rx(8, qjr.param(5)).t(5))
    p, x = _inputs(np.random.default_rng(2), c, jnp.complex128)
    _check(c, [qjr.X(3), qjr.Z(6) @ qjr.Y(0)], p, x, jnp.complex128)
