"""The interpreter (qjaxrob.lower.interpreter): a non-repeating gate run executed as one scan over
a block table must equal the op-by-op program and the dense reference (values, backprop and
adjoint gradients w.r.t. params and x, complex64 and complex128, vmap over inputs, second
derivatives), and its lowered program must not grow with depth."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import finite_diff, seeded_angle
from reference import expval_ref

import qjaxrob as qjr
from qjaxrob.sim import engine, measure
from qjaxrob.sim.adjoint import adjoint_expval
from qjaxrob.errors import ParameterError, QjrTypeError
from qjaxrob.lower.interpreter import Program, interpret

GATES_1 = ("rx", "ry", "rz", "phase", "u3", "h", "s", "sx", "t", "x", "y")
GATES_2 = ("cnot", "cy", "cz", "swap", "iswap", "crx", "cry", "crz", "rxx", "ryy", "rzz")
OBS = (qjr.Z(0) @ qjr.X(2) + 0.4 * qjr.Y(1), qjr.X(0) @ qjr.Y(1) - 0.3 * qjr.Z(2))
N_PARAMS, N_INPUTS = 7, 3


def random_circuit(seed, n=3, n_ops=40):
    """No repetition: every gate drawn independently (types, wire orders, angle sources);
    every param and input index used at least once."""
    rng = np.random.default_rng(seed)
    c = qjr.Circuit(n)
    for j in range(N_PARAMS):
        c = c.ry(j % n, qjr.param(j))
    for j in range(N_INPUTS):
        c = c.rx((j + 1) % n, qjr.inp(j))
    for _ in range(n_ops):
        if rng.random() < 0.5:
            name, wires = str(rng.choice(GATES_1)), (int(rng.integers(n)),)
        else:
            name = str(rng.choice(GATES_2))
            wires = tuple(int(w) for w in rng.permutation(n)[:2])
        c = c.gate(name, wires, *[seeded_angle(rng, N_PARAMS, N_INPUTS) for _ in range(qjr.gates.GATES[name].n_angles)])
    return c


@pytest.fixture(scope="module")
def circuits():
    return [random_circuit(seed) for seed in range(2)]


def _loss(c, dtype, blocks):
    def f(p, x):
        t = engine.final_tensor(c, p, x, dtype, False, interpret_blocks=blocks)
        v = measure.observable_values(t, OBS, False)
        return v[0] + 2.0 * v[1]

    return f


def _adjoint_loss(c, dtype, blocks):
    def f(p, x):
        v = adjoint_expval(c, OBS, p, x, dtype, False, interpret_blocks=blocks)
        return v[0] + 2.0 * v[1]

    return f


def _ref_loss(c, p, x):
    p, x = np.asarray(p, float), np.asarray(x, float)
    return sum(w * expval_ref(c, o, p, x) for w, o in zip((1.0, 2.0), OBS))


def _ref_grads(c, p, x):
    """Central finite differences of the dense NumPy reference (float64)."""
    p, x = np.asarray(p, float), np.asarray(x, float)
    return (finite_diff(lambda q: _ref_loss(c, q, x), p),
            finite_diff(lambda xx: _ref_loss(c, p, xx), x))


def test_runs_become_programs(circuits):
    c = circuits[0]
    ops = interpret(c.ops, c.n_qubits, 1)
    assert len(ops) == 1 and isinstance(ops[0], Program)
    # the same gates (fusion may move a block past gates on other wires)
    assert sorted(map(repr, ops[0].ops)) == sorted(map(repr, c.ops))
    assert interpret(c.ops, c.n_qubits, 0) == c.ops
    assert interpret(c.ops, c.n_qubits, 10**6) == c.ops  # too short for this threshold
    # a 3-wire gate and a channel end runs; one-qubit circuits are never interpreted
    split = (c + qjr.Circuit(3).ccx(0, 1, 2).cut(1) + c).ops
    pieces = interpret(split, 3, 1)
    assert [type(p).__name__ for p in pieces] == ["Program", "Op", "Program"]
    one = qjr.Circuit(1).rx(0, qjr.param(0)).ry(0, 0.3)
    assert interpret(one.ops, 1, 1) == one.ops
    assert interpret((c.depolarizing(0, 0.1) + c).ops, 3, 1)[1].is_channel


def test_a_leading_program_takes_the_product_prefix(circuits):
    """A circuit whose lowering starts with an interpreter program keeps its leading 1-wire
    gates (here the ry/rx encoding) in that program: no separate product state to build
    and, in the adjoint, to pull back; without the interpreter they become the prefix."""
    from qjaxrob.lower.pipeline import lower

    c = circuits[0]
    low = lower(c.ops, c.n_qubits, engine.statevector_policy(interpret_blocks=1))
    assert low.prefix == () and len(low.nodes) == 1 and isinstance(low.nodes[0], Program)
    assert sorted(map(repr, low.nodes[0].ops)) == sorted(map(repr, c.ops))
    plain = lower(c.ops, c.n_qubits, engine.statevector_policy(interpret_blocks=0))
    assert {b.wires for b in plain.prefix} == {(0,), (1,), (2,)}
    assert not any(isinstance(node, Program) for node in plain.nodes)


def test_interpreted_equals_unrolled(rng):
    """Interpreted == op-by-op program: values, d/dparams and d/dx, backprop and adjoint."""
    c = random_circuit(7, n_ops=16)
    p = jnp.asarray(rng.uniform(-2, 2, c.n_params))
    x = jnp.asarray(rng.uniform(-2, 2, c.n_inputs))
    for loss in (_loss, _adjoint_loss):
        v0, g0 = jax.jit(jax.value_and_grad(loss(c, jnp.complex128, 0), argnums=(0, 1)))(p, x)
        v1, g1 = jax.jit(jax.value_and_grad(loss(c, jnp.complex128, 1), argnums=(0, 1)))(p, x)
        np.testing.assert_allclose(v1, v0, atol=1e-12)
        np.testing.assert_allclose(g1[0], g0[0], atol=1e-11)
        np.testing.assert_allclose(g1[1], g0[1], atol=1e-11)


def test_repeat_bodies_are_never_interpreted(circuits, monkeypatch):
    """Circuit.repeat (and rolled) bodies keep their scanned blocks: only top-level runs
    become programs, so repeat-built circuits run exactly as before."""
    calls = []
    real = engine.run_program
    monkeypatch.setattr(engine, "run_program", lambda *a: calls.append(1) or real(*a))
    c = circuits[0]
    p, x = jnp.zeros(c.n_params), jnp.zeros(c.n_inputs)
    jax.eval_shape(lambda p: engine.final_tensor(qjr.Circuit.repeat(c, 2), p, x,
                                                 jnp.complex64, False, interpret_blocks=1),
                   jnp.zeros(2 * c.n_params))
    assert calls == []
    jax.eval_shape(lambda p: engine.final_tensor(c, p, x, jnp.complex64, False,
                                                 interpret_blocks=1), p)
    assert calls == [1]


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
def test_interpreted_matches_reference(circuits, dtype, rng):
    """Values against the dense reference, backprop and adjoint gradients against its
    finite differences (every gate type, wire order and angle source)."""
    real = jnp.finfo(dtype).dtype
    tol = 1e-8 if dtype == jnp.complex128 else 2e-4
    for c in circuits if dtype == jnp.complex128 else circuits[:1]:
        p = jnp.asarray(rng.uniform(-2, 2, c.n_params), real)
        x = jnp.asarray(rng.uniform(-2, 2, c.n_inputs), real)
        v, g = jax.jit(jax.value_and_grad(_loss(c, dtype, 1), argnums=(0, 1)))(p, x)
        va, ga = jax.jit(jax.value_and_grad(_adjoint_loss(c, dtype, 1), argnums=(0, 1)))(p, x)
        assert v.dtype == real and g[0].dtype == real and ga[1].dtype == real
        want_p, want_x = _ref_grads(c, p, x)
        for value, grads in ((v, g), (va, ga)):
            assert abs(float(value) - _ref_loss(c, p, x)) < tol
            np.testing.assert_allclose(grads[0], want_p, atol=5 * tol)
            np.testing.assert_allclose(grads[1], want_x, atol=5 * tol)


def test_vmap_over_inputs(circuits, rng):
    """Batched over x (the tables stay unbatched): equal to the one-example program row by
    row (which test_interpreted_matches_reference checks against the reference)."""
    c = circuits[1]
    p = jnp.asarray(rng.uniform(-2, 2, c.n_params))
    xs = jnp.asarray(rng.uniform(-2, 2, (2, c.n_inputs)))
    loss = _loss(c, jnp.complex128, 1)
    vals, grads = jax.jit(jax.vmap(jax.value_and_grad(loss), in_axes=(None, 0)))(p, xs)
    adj = jax.jit(jax.vmap(jax.grad(_adjoint_loss(c, jnp.complex128, 1)),
                           in_axes=(None, 0)))(p, xs)
    single = jax.jit(jax.value_and_grad(loss))
    for i, x in enumerate(xs):
        v, g = single(p, x)
        assert abs(float(vals[i]) - _ref_loss(c, p, x)) < 1e-10
        np.testing.assert_allclose(vals[i], v, atol=1e-12)
        np.testing.assert_allclose(grads[i], g, atol=1e-12)
        np.testing.assert_allclose(adj[i], g, atol=1e-10)


def test_second_derivatives_match_finite_differences(circuits, rng):
    """Hessian in params (backprop through the scan) and the mixed d/dx d/dparams (as
    gradient-inversion attacks use), against finite differences of the gradient; the
    adjoint method's Hessian (autodiff of its backward scan) agrees."""
    c = circuits[0]
    p = jnp.asarray(rng.uniform(-2, 2, c.n_params))
    x = jnp.asarray(rng.uniform(-2, 2, c.n_inputs))
    f = _loss(c, jnp.complex128, 1)
    grad_p = jax.jit(jax.grad(f))
    hess = jax.jit(jax.hessian(f))(p, x)
    np.testing.assert_allclose(hess, finite_diff(lambda q: grad_p(q, x), p, h=1e-5), atol=1e-7)
    mixed = jax.jit(jax.jacrev(lambda xx: jax.grad(f)(p, xx)))(x)
    np.testing.assert_allclose(mixed, finite_diff(lambda xx: grad_p(p, xx), x, h=1e-5),
                               atol=1e-7)
    adj = jax.jit(jax.hessian(_adjoint_loss(c, jnp.complex128, 1)))(p, x)
    np.testing.assert_allclose(adj, hess, atol=1e-9)


def _program_size(text: str) -> int:
    """Length of lowered program text with the contents of constant literals removed: the
    block tables are data whose size grows with depth, the program must not."""
    return len(re.sub(r"dense<[^>]*>", "dense<>", text))


@pytest.mark.parametrize("diff", ["forward", "backprop", "adjoint"])
def test_lowered_size_is_independent_of_depth(diff):
    sizes = []
    for n_ops in (100, 1000):  # ~10 and ~100 layers of 4-qubit gates
        c = random_circuit(5, n=4, n_ops=n_ops)
        assert len(interpret(c.ops, 4)) == 1  # the default threshold interprets both
        x = jnp.ones(c.n_inputs, jnp.float32)
        if diff == "forward":
            def f(p, c=c, x=x):
                return qjr.expval(c, qjr.Z(0), p, x)
        else:
            f = jax.grad(lambda p, c=c, x=x: qjr.expval(c, qjr.Z(0), p, x, diff=diff))
        sizes.append(_program_size(jax.jit(f).lower(jnp.zeros(c.n_params, jnp.float32)).as_text()))
    assert abs(sizes[1] - sizes[0]) < 0.02 * sizes[0], sizes


def test_bad_interpret_blocks(circuits):
    c = circuits[0]
    p, x = jnp.zeros(c.n_params), jnp.zeros(c.n_inputs)
    with pytest.raises(ParameterError, match="-1"):
        engine.final_tensor(c, p, x, jnp.complex64, False, interpret_blocks=-1)
    with pytest.raises(QjrTypeError, match="'many'"):
        engine.final_tensor(c, p, x, jnp.complex64, False, interpret_blocks="many")
    with pytest.raises(QjrTypeError, match="2.5"):
        adjoint_expval(c, OBS, p, x, jnp.complex64, False, interpret_blocks=2.5)
