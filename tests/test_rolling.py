"""Automatic rolling (qjaxrob.lower.rolling): repeated layers of a flat circuit become one scan.

The rolled walk must equal the unrolled one (values, backprop and adjoint gradients w.r.t.
params and x, complex64 and complex128) on random circuits with irregular layers, mixed
constant/param/input angles, shuffled parameter indices, no repetition at all, and runs
broken by a differing constant; and a loop-built circuit must lower to a program whose size
does not grow with depth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import expval_ref

import qjaxrob as qjr
from qjaxrob.sim import engine, measure
from qjaxrob.ir.circuit import Repeat
from qjaxrob.lower.rolling import Roll, roll

N = 3
GATES_1 = ("rx", "ry", "rz", "phase", "h", "s", "sx")
GATES_2 = ("cnot", "cz", "crx", "rzz", "swap")
OBS = qjr.Z(0) @ qjr.X(2) + 0.4 * qjr.Y(1)


def _angle(rng, kind, pindex, n_inputs=2):
    if kind == "const":
        return float(rng.uniform(-3, 3))
    if kind == "param":
        return qjr.param(pindex)
    if kind == "sparam":
        return qjr.param(pindex) * 0.7 + 0.2
    return qjr.inp(int(rng.integers(n_inputs))) * 1.3


def _random_layer(rng, n_ops):
    """A template: ``[(name, wires, angle kinds)]``."""
    out = []
    for _ in range(n_ops):
        if rng.random() < 0.6:
            name = str(rng.choice(GATES_1))
            wires = (int(rng.integers(N)),)
        else:
            name = str(rng.choice(GATES_2))
            wires = tuple(int(w) for w in rng.permutation(N)[:2])
        n_angles = 1 if name in ("rx", "ry", "rz", "phase", "crx", "rzz") else 0
        kinds = tuple(str(rng.choice(["const", "param", "sparam", "inp"])) for _ in range(n_angles))
        out.append((name, wires, kinds))
    return out


def _append(c, rng, layer, consts, next_param):
    """Appends one copy of ``layer``; params get fresh indices in a shuffled order."""
    n_par = sum(k.endswith("param") for _, _, kinds in layer for k in kinds)
    order = iter(next_param + rng.permutation(n_par))
    ci = iter(consts)
    for name, wires, kinds in layer:
        angles = []
        for k in kinds:
            a = _angle(rng, k, int(next(order)) if k.endswith("param") else 0)
            angles.append(next(ci) if k == "const" else a)
        c = c.gate(name, wires, *angles)
    return c, next_param + n_par


def _random_circuit(seed, layers=6, n_ops=6, break_at=None, prefix=3, suffix=3):
    rng = np.random.default_rng(seed)
    c = qjr.Circuit(N)
    for name, wires, kinds in _random_layer(rng, prefix):  # irregular prefix
        c = c.gate(name, wires, *[_angle(rng, k, 0) for k in kinds])
    layer = _random_layer(rng, n_ops)
    n_const = sum(k == "const" for _, _, kinds in layer for k in kinds)
    consts = [float(v) for v in rng.uniform(-3, 3, n_const)]
    nxt = 1
    for r in range(layers):
        cs = consts if r != break_at else [v + 0.5 for v in consts]
        c, nxt = _append(c, rng, layer, cs, nxt)
    for name, wires, kinds in _random_layer(rng, suffix):  # irregular suffix
        c = c.gate(name, wires, *[_angle(rng, k, nxt) for k in kinds])
    return c


def _flat(ops):
    return tuple(o for op in ops for o in (op.unrolled_ops() if isinstance(op, Roll) else (op,)))


def test_roll_structure_and_round_trip():
    hea = qjr.Circuit(4)
    for layer in range(10):
        for q in range(4):
            hea = hea.ry(q, qjr.param(8 * layer + q)).rz(q, qjr.param(8 * layer + 4 + q))
        for q in range(4):
            hea = hea.cnot(q, (q + 1) % 4)
    rolled = roll(hea.ops, 4)
    assert len(rolled) == 1 and isinstance(rolled[0], Roll) and rolled[0].times == 10
    assert len(rolled[0].block.ops) == 12 and rolled[0].block.n_params == 8
    assert _flat(rolled) == hea.ops
    for seed in range(5):
        c = _random_circuit(seed, break_at=3 if seed % 2 else None)
        assert _flat(roll(c.ops, N)) == c.ops
    # no repetition: unchanged; Repeat nodes are kept; rolling off
    irregular = _random_circuit(7, layers=1, prefix=20, suffix=20)
    assert roll(irregular.ops, N) == irregular.ops
    rep = qjr.Circuit.repeat(hea, 2)
    assert isinstance(roll(rep.ops, 4)[0], Repeat)
    assert roll(hea.ops, 4, 0) == hea.ops


def test_broken_run_rolls_around_the_break():
    c = _random_circuit(3, layers=12, n_ops=4, break_at=6, prefix=0, suffix=0)
    rolled = roll(c.ops, N, 8)
    assert [op.times for op in rolled if isinstance(op, Roll)][:1] == [6]
    assert _flat(rolled) == c.ops


def _value_and_grads(c, dtype, roll_ops, p, x):
    def f(p, x):
        t = engine.final_tensor(c, p, x, dtype, False, roll_ops=roll_ops)
        return measure.observable_value(t, OBS, False)

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(p, x)


@pytest.mark.parametrize("dtype,seed", [(jnp.complex128, 0), (jnp.complex128, 1),
                                        (jnp.complex64, 2)])
def test_rolled_equals_unrolled(dtype, seed, rng):
    """Backprop (values, d/dparams, d/dx) with and without rolling, and the adjoint method
    (which rolls with the default threshold) against unrolled backprop."""
    c = _random_circuit(seed, layers=4, n_ops=8, break_at=2 if seed == 1 else None)
    if seed != 1:
        assert any(isinstance(op, Roll) for op in roll(c.ops, N))
    real = jnp.finfo(dtype).dtype
    p = jnp.asarray(rng.uniform(-2, 2, c.n_params), real)
    x = jnp.asarray(rng.uniform(-2, 2, c.n_inputs), real)
    tol = 1e-10 if dtype == jnp.complex128 else 2e-5
    v0, g0 = _value_and_grads(c, dtype, 0, p, x)
    v1, g1 = _value_and_grads(c, dtype, 8, p, x)
    assert abs(float(v0) - expval_ref(c, OBS, np.asarray(p), np.asarray(x))) < 10 * tol
    np.testing.assert_allclose(v1, v0, atol=tol)
    np.testing.assert_allclose(g1[0], g0[0], atol=tol)
    np.testing.assert_allclose(g1[1], g0[1], atol=tol)
    adj = jax.grad(lambda p, x: qjr.expval(c, OBS, p, x, dtype=dtype, diff="adjoint"),
                   argnums=(0, 1))(p, x)
    np.testing.assert_allclose(adj[0], g0[0], atol=10 * tol)
    np.testing.assert_allclose(adj[1], g0[1], atol=10 * tol)


def _loop_hea(layers):
    c = qjr.Circuit(N).ry(0, qjr.inp(0))
    for layer in range(layers):
        for q in range(N):
            c = c.ry(q, qjr.param(2 * N * layer + q)).rz(q, qjr.param(2 * N * layer + N + q))
        for q in range(N):
            c = c.cnot(q, (q + 1) % N)
    return c


@pytest.mark.parametrize("diff", ["backprop", "adjoint"])
def test_lowered_size_is_independent_of_depth(diff):
    sizes = []
    for layers in (10, 100):
        c = _loop_hea(layers)
        f = jax.grad(lambda p, c=c: qjr.expval(c, qjr.Z(0), p, jnp.ones(1), diff=diff))
        text = jax.jit(f).lower(jnp.zeros(c.n_params, jnp.float32)).as_text()
        sizes.append(len(text))
    assert abs(sizes[1] - sizes[0]) < 0.02 * sizes[0], sizes


@pytest.mark.slow
def test_density_matrix_walk_rolls_exactly(rng):
    """Density-matrix simulation rolls repeated layers too (channels with traced
    probabilities included) and equals the unrolled walk, values and gradients."""
    c = qjr.Circuit(2)
    for layer in range(5):
        c = (c.ry(0, qjr.param(2 * layer)).rzz(0, 1, qjr.param(2 * layer + 1)).h(1)
             .depolarizing(0, 0.05).amplitude_damping(1, qjr.param(10) * 0.1 + 0.05))
    assert isinstance(roll(c.ops, 2)[0], Roll)
    p = jnp.asarray(rng.uniform(0, 1, c.n_params))

    def f(p, roll_ops):
        t = engine.final_tensor(c, p, jnp.zeros(0), jnp.complex128, True, roll_ops=roll_ops)
        return measure.observable_value(t, qjr.Z(0) @ qjr.X(1) + qjr.Y(1), True)

    vg = jax.jit(jax.value_and_grad(f), static_argnums=1)
    v0, g0 = vg(p, 0)
    v1, g1 = vg(p, 24)
    np.testing.assert_allclose(v1, v0, atol=1e-12)
    np.testing.assert_allclose(g1, g0, atol=1e-12)
    want = expval_ref(c, qjr.Z(0) @ qjr.X(1) + qjr.Y(1), np.asarray(p), mixed=True)
    assert abs(float(v0) - want) < 1e-10
