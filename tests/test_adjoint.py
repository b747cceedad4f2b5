"""The adjoint-method gradient (qjaxrob/sim/adjoint.py) against backprop: every parameterised
gate type, affine param and inp angles, inside and outside Repeat, both dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from helpers import TOL

PARAM_GATES_1Q = ("rx", "ry", "rz", "phase")
PARAM_GATES_2Q = ("crx", "cry", "crz", "rxx", "ryy", "rzz")
CONST_1Q = ("h", "s", "t", "sx", "x", "y", "z", "sdg")
CONST_2Q = ("cnot", "cz", "swap", "iswap", "cy")


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
    """Layers of commuting rotations, a parameter shared by gates of different blocks, and
    an observable with several terms."""
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
    """n=10: blocks on distant wires (head, tail, middle, across the register), diagonal
    blocks in both halves and across them."""
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


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
def test_equal_blocks_in_one_run_and_a_prefix(dtype):
    """Two equal fused blocks (one shared parameter) in one run of the backward walk, after
    a product-state prefix: each block's cotangent counts once."""
    from qjaxrob.lower.fusion import Block
    from qjaxrob.lower.pipeline import lower
    from qjaxrob.sim.engine import statevector_policy

    c = qjr.Circuit(3).ry(0, qjr.param(1)).rx(2, qjr.inp(0) * 0.5)
    for _ in range(2):
        c = c.rx(0, qjr.param(0)).cnot(0, 1).crz(1, 2, qjr.param(2))
    low = lower(c.ops, 3, statevector_policy())
    blocks = [b for b in low.nodes if isinstance(b, Block)]
    assert low.prefix and len(blocks) != len(set(blocks))  # the case under test
    rng = np.random.default_rng(9)
    p, x = _inputs(rng, c, dtype)
    _check(c, [qjr.Z(0) @ qjr.Y(1) + 0.3 * qjr.X(2)], p, x, dtype)
