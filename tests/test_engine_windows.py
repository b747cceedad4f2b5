"""Cache-blocked passes of the statevector engine (``qjaxrob.sim.engine.windowed_runs``,
``window_pass``, ``qjaxrob.lower.fusion.plan_windows``): windowed walks with tiny windows on
8-10 wires against the dense NumPy reference, both dtypes; derivatives (backprop and second
order), vmap; and the pass plan's invariants."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TOL, finite_diff, random_unitary, seeded_angle
from reference import expval_ref, statevector_ref

import qjaxrob as qjr
from qjaxrob.lower.fusion import plan_windows
from qjaxrob.lower.pipeline import lower
from qjaxrob.qml import hardware_efficient
from qjaxrob.sim.engine import (
    product_state,
    statevector_op,
    statevector_policy,
    walk,
    windowed_runs,
    zero_state,
)

TWO = ["cnot", "cz", "swap", "crx", "rzz", "ryy", "iswap"]
ONE = ["rx", "ry", "rz", "h", "s", "x", "phase"]


def _random_circuit(n, n_ops, seed, n_params=5, n_inputs=2):
    """1-3 wire gates (constant, parameterised, input-driven, unitaries) on ``n`` wires,
    placed so that runs need several windows."""
    from qjaxrob.ir.gates import GATES

    rng = np.random.default_rng(seed)
    c = qjr.Circuit(n)
    for _ in range(n_ops):
        r = rng.uniform()
        if r < 0.1:
            k = int(rng.integers(1, 4))
            wires = tuple(int(w) for w in rng.permutation(n)[:k])
            c = c.unitary(random_unitary(rng, 2**k), wires)
            continue
        name = str(rng.choice(ONE if r < 0.55 else TWO if r < 0.95 else ["ccx"]))
        spec = GATES[name]
        wires = tuple(int(w) for w in rng.permutation(n)[: spec.n_wires])
        args = [seeded_angle(rng, n_params, n_inputs) for _ in range(spec.n_angles)]
        c = c.gate(name, wires, *args)
    # make sure every parameter and input index exists
    for i in range(n_params):
        c = c.ry(i % n, qjr.param(i))
    for j in range(n_inputs):
        c = c.rx(j % n, qjr.inp(j))
    return c


def _state(c, p, x, dtype, window, contiguous, policy=None):
    """The final flat state with runs of blocks in windows (``window=0``: block by block)."""
    low = lower(c.ops, c.n_qubits, policy or statevector_policy(interpret_blocks=0))
    n = c.n_qubits
    start = product_state(low.prefix, n, p, x, dtype) if low.prefix else zero_state(n, dtype)
    run = windowed_runs(dtype, window=window, contiguous=contiguous, min_qubits=0) \
        if window else None
    return walk(low.nodes, start, p, x, statevector_op(dtype), run).reshape(-1)


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
@pytest.mark.parametrize("n,window,contiguous,seed", [(8, 3, 1, 0), (10, 5, 2, 2), (9, 4, 0, 3)])
def test_windowed_state_matches_reference(dtype, n, window, contiguous, seed):
    c = _random_circuit(n, 24, seed)
    p, x = (np.random.default_rng(seed).uniform(-np.pi, np.pi, k) for k in (c.n_params, c.n_inputs))
    f = jax.jit(partial(_state, c, dtype=dtype, window=window, contiguous=contiguous))
    out = np.asarray(f(jnp.asarray(p), jnp.asarray(x)))
    np.testing.assert_allclose(out, statevector_ref(c, p, x), atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
def test_windowed_repeat_and_vmap(dtype):
    """A ``Circuit.repeat`` (a scanned body in windows) under ``vmap`` over parameter rows."""
    n = 9
    c = qjr.Circuit(n).h(0) + hardware_efficient(n, 3)
    ps = np.random.default_rng(5).uniform(-np.pi, np.pi, (3, c.n_params))
    f = jax.jit(jax.vmap(lambda p: _state(c, p, jnp.zeros(0), dtype, 4, 2)))
    out = np.asarray(f(jnp.asarray(ps)))
    for row, p in zip(out, ps):
        np.testing.assert_allclose(row, statevector_ref(c, p), atol=TOL[dtype])


def _z0(c, window, p, x):
    s = _state(c, p, x, jnp.complex128, window, 1)
    half = s.shape[0] // 2
    return jnp.sum(jnp.abs(s[:half]) ** 2) - jnp.sum(jnp.abs(s[half:]) ** 2)


def test_windowed_gradients_and_hessian_match_finite_differences():
    c = _random_circuit(8, 16, 7, n_params=4, n_inputs=2)
    p, x = (np.random.default_rng(8).uniform(-np.pi, np.pi, k) for k in (c.n_params, c.n_inputs))
    obs = qjr.Z(0)
    grad = jax.jit(jax.grad(partial(_z0, c, 3), argnums=(0, 1)))
    gp, gx = grad(jnp.asarray(p), jnp.asarray(x))
    np.testing.assert_allclose(
        gp, finite_diff(lambda v: expval_ref(c, obs, v, x), p), atol=1e-6)
    np.testing.assert_allclose(
        gx, finite_diff(lambda v: expval_ref(c, obs, p, v), x), atol=1e-6)
    hess = jax.jit(jax.hessian(partial(_z0, c, 3)))(jnp.asarray(p), jnp.asarray(x))
    fd = finite_diff(lambda v: np.asarray(jax.grad(partial(_z0, c, 0))(jnp.asarray(v),
                                                                        jnp.asarray(x))), p, h=1e-5)
    np.testing.assert_allclose(hess, fd, atol=1e-5)


def _blocks(n, layers):
    low = lower(hardware_efficient(n, layers).ops, n, statevector_policy())
    return low.nodes[0].body.nodes


@pytest.mark.parametrize("n,window,contiguous", [(20, 14, 4), (12, 5, 2), (9, 9, 3), (7, 12, 4)])
def test_plan_windows_invariants(n, window, contiguous):
    blocks = _blocks(n, 1)
    plan = plan_windows(blocks, n, window, contiguous)
    assert sorted(map(id, (b for _, m in plan for b in m))) == sorted(map(id, blocks))
    for wires, members in plan:
        assert len(wires) == min(window, n) and list(wires) == sorted(set(wires))
        assert set(range(max(0, n - contiguous), n)) <= set(wires)
        assert all(set(b.wires) <= set(wires) for b in members)
    # a later pass never holds a block that an earlier-taken block had to follow
    order = {id(b): i for i, b in enumerate(blocks)}
    for k, (_, members) in enumerate(plan):
        for _, later in plan[k + 1:]:
            for a in members:
                for b in later:
                    assert not (order[id(b)] < order[id(a)] and set(a.wires) & set(b.wires))


def test_hea_layer_is_two_passes_at_20_qubits():
    """The HEA layer (19 dense pairs and a CNOT permutation) in two 14-wire passes."""
    assert len(plan_windows(_blocks(20, 1), 20, 14, 4)) == 2


@pytest.mark.slow
def test_default_windows_at_17_qubits_match_block_by_block():
    """The defaults block a 17-qubit state (the smallest blocked size): the public entry
    points' state, backprop and adjoint gradients equal the block-by-block walk (checked
    against the reference above at small sizes), and the program holds the chunk loop."""
    n = 17
    c = hardware_efficient(n, 2) + _random_circuit(n, 12, 11, n_params=3, n_inputs=1)
    p = jnp.asarray(np.random.default_rng(12).uniform(-np.pi, np.pi, c.n_params))
    x = jnp.asarray([0.7])
    plain = jax.jit(lambda p: _state(c, p, x, jnp.complex128, 0, 0))
    out = qjr.statevector(c, p, x, dtype=jnp.complex128)
    np.testing.assert_allclose(out, plain(p), atol=1e-12)
    hlo = jax.jit(lambda p: qjr.statevector(c, p, x, dtype=jnp.complex128)).lower(p).as_text()
    assert "dynamic_update_slice" in hlo

    def z0(s):
        return jnp.sum(jnp.abs(s[: s.shape[0] // 2]) ** 2) - jnp.sum(jnp.abs(s[s.shape[0] // 2:]) ** 2)

    ref = jax.jit(jax.grad(lambda p: z0(plain(p))))(p)
    for diff in ("backprop", "adjoint"):
        g = jax.jit(jax.grad(lambda p: qjr.expval(c, qjr.Z(0), p, x, dtype=jnp.complex128,
                                                  diff=diff)))(p)
        np.testing.assert_allclose(g, ref, atol=1e-10)
