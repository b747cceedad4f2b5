"""The dense small-state path (qjaxrob.sim.dense, qjaxrob.lower.layers): layer matrices applied
by matrix products must equal the dense NumPy reference (values at complex64 and complex128,
a second-order objective against the engine, vmap over params and x, density matrices with
channels), for random circuits over the whole gate set, unitary ops, parameter-free circuits
and Circuit.repeat; selection (QJAXROB_DENSE, cost model) and its errors. Gradients and
Hessians against finite differences, on every path: test_dense_paths.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TOL, finite_diff, random_unitary, seeded_angle
from reference import density_ref, expval_ref, statevector_ref

import qjaxrob as qjr
from qjaxrob.errors import DensityMatrixOnlyError, ParameterError, ResourceError
from qjaxrob.ir.gates import GATES
from qjaxrob.lower.layers import Layer, Local, layer_ops, tail_map
from qjaxrob.sim import dense, measure

N_PARAMS, N_INPUTS = 6, 3
CHANNELS = ("depolarizing", "bit_flip", "phase_flip", "amplitude_damping", "phase_damping")


def random_circuit(seed, n, n_ops=30, channels=False, const_only=False):
    """Every gate of the table that fits, unitary ops on 1-3 wires, cut markers and (with
    ``channels``) noise channels, wires and angle sources drawn at random; every param and
    input index used at least once unless ``const_only``."""
    rng = np.random.default_rng(seed)
    c = qjr.Circuit(n)
    names = [g for g in sorted(GATES) if GATES[g].n_wires <= n] + ["unitary", "cut"]
    if channels:
        names += list(CHANNELS)
    for _ in range(n_ops):
        name = names[rng.integers(len(names))]
        if name == "unitary":
            k = int(rng.integers(1, min(3, n) + 1))
            wires = tuple(int(w) for w in rng.permutation(n)[:k])
            c = c.unitary(random_unitary(rng, 2**k), wires)
        elif name == "cut":
            c = c.cut(int(rng.integers(n)))
        elif name in CHANNELS:
            q = int(rng.integers(n))
            level = (qjr.param(int(rng.integers(N_PARAMS))) * 0.05 + 0.1
                     if not const_only and rng.random() < 0.5 else float(rng.uniform(0, 0.3)))
            c = getattr(c, name)(q, level)
        else:
            spec = GATES[name]
            wires = tuple(int(w) for w in rng.permutation(n)[: spec.n_wires])
            c = c.gate(name, wires, *[seeded_angle(rng, N_PARAMS, N_INPUTS, const_only) for _ in range(spec.n_angles)])
    if not const_only:
        for i in range(N_PARAMS):
            c = c.rx(i % n, qjr.param(i))
        for j in range(N_INPUTS):
            c = c.ry(j % n, qjr.inp(j))
    return c


def hea(n, layers=2, encode=True):
    """Angle encoding, then ``Circuit.repeat`` of [RY, RZ on every wire, CNOT ring]."""
    block = qjr.Circuit(n)
    for q in range(n):
        block = block.ry(q, qjr.param(q)).rz(q, qjr.param(n + q))
    for q in range(n):
        block = block.cnot(q, (q + 1) % n)
    enc = qjr.Circuit(n)
    for q in range(n if encode else 0):
        enc = enc.ry(q, qjr.inp(q))
    return enc + qjr.Circuit.repeat(block, layers)


def _inputs(c, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-2, 2, c.n_params), rng.uniform(-2, 2, c.n_inputs)


def _tensor(c, p, x, dtype, mixed=False):
    dim = 2**c.n_qubits
    t = dense.final_tensor(c, jnp.asarray(p), jnp.asarray(x), dtype, mixed, dense="1")
    return t.reshape(dim, dim) if mixed else t.reshape(dim)


def _expval_fn(c, obs, dtype, mixed=False, dense_mode="1"):
    def f(p, x):
        t = dense.final_tensor(c, p, x, dtype, mixed, dense=dense_mode)
        return measure.observable_values(t, (obs,), mixed)[0]
    return f


OBS = qjr.Z(0) + 0.5 * qjr.X(0) - 0.3 * qjr.Y(0)


def _obs(n):
    return OBS if n == 1 else qjr.Z(0) @ qjr.X(n - 1) + 0.4 * qjr.Y(n // 2) - 0.2 * qjr.Z(1)


# ---- values --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
@pytest.mark.parametrize("n,seed", [(1, 0), (3, 1), (6, 3)])
def test_statevector_matches_reference(n, seed, dtype):
    c = random_circuit(seed, n)
    p, x = _inputs(c, seed)
    got = np.asarray(jax.jit(lambda p, x: _tensor(c, p, x, dtype))(p, x))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, statevector_ref(c, p, x), atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
@pytest.mark.parametrize("n,seed", [(2, 4), (4, 6)])
def test_density_with_channels_matches_reference(n, seed, dtype):
    c = random_circuit(seed, n, channels=True)
    assert c.has_channels
    p, x = _inputs(c, seed)
    got = np.asarray(jax.jit(lambda p, x: _tensor(c, p, x, dtype, True))(p, x))
    np.testing.assert_allclose(got, density_ref(c, p, x), atol=TOL[dtype])


@pytest.mark.parametrize("n,dtype", [(3, jnp.complex64), (4, jnp.complex128)])
def test_density_monomial_tails_values_and_gradients(n, dtype):
    """Layers whose tails permute with phases (CNOT ring, CZ, S, iSWAP, CY, SWAP) between
    parametrized rotations and noise: the density matrix against the reference and the
    gradient of <X0 Z1> against finite differences of the reference."""
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.ry(q, qjr.param(q)).rz(q, qjr.param(n + q))
    for q in range(n):
        c = c.cnot(q, (q + 1) % n)
    c = c.cz(0, n - 1).s(1).iswap(2, 0).depolarizing(1, 0.1).cy(1, n - 1).swap(0, 2)
    for q in range(n):
        c = c.rx(q, qjr.param(2 * n + q))
    c = c.amplitude_damping(0, 0.2).cnot(n - 1, 1)
    p = np.random.default_rng(n).uniform(-2, 2, c.n_params)
    assert any(isinstance(node, Layer) and node.tail for node in layer_ops(c.ops, n, local=True))
    real = jnp.float64 if dtype == jnp.complex128 else jnp.float32
    pj = jnp.asarray(p, real)
    got = np.asarray(jax.jit(lambda q: _tensor(c, q, jnp.zeros(0), dtype, True))(pj))
    np.testing.assert_allclose(got, density_ref(c, p), atol=TOL[dtype])
    obs = qjr.X(0) @ qjr.Z(1)

    def f(q):
        t = dense.dense_tensor(c, q, None, dtype, True)
        return measure.observable_values(t, (obs,), True)[0]

    g = jax.jit(jax.grad(f))(pj)
    fd = finite_diff(lambda v: expval_ref(c, obs, v, None, True), p)
    np.testing.assert_allclose(g, fd, atol=1e-6 if dtype == jnp.complex128 else 2e-4)


@pytest.mark.parametrize("mixed", [False, True])
def test_parameter_free_circuit(mixed):
    c = random_circuit(7, 4, n_ops=25, channels=mixed, const_only=True)
    assert c.n_params == 0 and c.n_inputs == 0
    got = np.asarray(_tensor(c, np.zeros(0), np.zeros(0), jnp.complex128, mixed))
    want = density_ref(c) if mixed else statevector_ref(c)
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_repeat_matches_reference_and_compiles_flat_in_depth():
    def program_size(times):
        c = qjr.Circuit(4).h(1) + qjr.Circuit.repeat(hea(4, 1, encode=False), times)
        p, x = _inputs(c, times)
        np.testing.assert_allclose(_tensor(c, p, x, jnp.complex128), statevector_ref(c, p, x),
                                   atol=1e-10)
        rho = _tensor(c.depolarizing(2, 0.1), p, x, jnp.complex128, True)
        np.testing.assert_allclose(rho, density_ref(c.depolarizing(2, 0.1), p, x), atol=1e-10)
        return str(jax.make_jaxpr(lambda p: _tensor(c, p, x, jnp.complex128))(p)).count("\n")

    assert program_size(3) == program_size(40)


def test_nested_repeat_and_all_wide_gates():
    rng = np.random.default_rng(8)
    inner = qjr.Circuit(5).crx(4, 1, qjr.param(0)).ccx(3, 0, 2).unitary(
        random_unitary(rng, 16), (4, 0, 2, 1)).rzz(0, 3, qjr.param(1))
    outer = qjr.Circuit.repeat(inner, 3) + qjr.Circuit(5).ryy(2, 4, qjr.param(6))
    c = qjr.Circuit(5).ry(0, qjr.inp(0)) + qjr.Circuit.repeat(outer, 2)
    p, x = _inputs(c, 8)
    np.testing.assert_allclose(_tensor(c, p, x, jnp.complex128), statevector_ref(c, p, x),
                               atol=1e-10)


# ---- derivatives -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_vmap_over_params_and_inputs(dtype):
    c = hea(4, 2)
    obs = _obs(4)
    rng = np.random.default_rng(10)
    ps = rng.uniform(-2, 2, (3, c.n_params))
    xs = rng.uniform(-2, 2, (5, c.n_inputs))
    f = _expval_fn(c, obs, dtype)
    over_x = jax.jit(jax.vmap(f, in_axes=(None, 0)))(ps[0], xs)
    over_both = jax.jit(jax.vmap(jax.vmap(f, (None, 0)), (0, None)))(ps, xs)
    for i in range(3):
        for j in range(5):
            want = expval_ref(c, obs, ps[i], xs[j])
            assert abs(float(over_both[i, j]) - want) < TOL[dtype]
    np.testing.assert_allclose(over_x, over_both[0], atol=TOL[dtype])
    g = jax.jit(jax.vmap(jax.grad(f, argnums=1), (None, 0)))(ps[0], xs)
    if dtype == jnp.complex128:
        for j in (0, 4):
            fd = finite_diff(lambda v: expval_ref(c, obs, ps[0], v), xs[j])
            np.testing.assert_allclose(g[j], fd, atol=1e-7)


def test_second_order_objective_agrees_with_engine():
    """A gradient-of-a-gradient objective (inversion-style) is the same on both paths."""
    c = hea(4, 2)
    obs = _obs(4)
    p, x = _inputs(c, 11)

    def objective(mode):
        f = _expval_fn(c, obs, jnp.complex128, dense_mode=mode)
        target = jax.grad(f)(p, x + 0.3)
        dist = lambda xx: jnp.sum((jax.grad(f)(p, xx) - target) ** 2)  # noqa: E731
        return jax.jit(jax.value_and_grad(dist))(x)

    (v1, g1), (v0, g0) = objective("1"), objective("0")
    np.testing.assert_allclose(v1, v0, rtol=1e-10)
    np.testing.assert_allclose(g1, g0, atol=1e-10)
    assert float(v1) > 1e-6  # not a trivial zero


# ---- layers -------------------------------------------------------------------------
def test_layers_group_rotations_and_fold_the_entangler_into_a_tail():
    c = qjr.Circuit(4).ry(0, qjr.param(0)).rz(0, qjr.param(1)).rx(2, qjr.param(2))
    c = c.cnot(0, 1).cnot(1, 2).cz(2, 3).rx(1, qjr.param(3)).depolarizing(0, 0.1)
    nodes = layer_ops(c.ops, 4)
    assert isinstance(nodes[0], Layer) and isinstance(nodes[1], Layer)
    assert [g.wires for g in nodes[0].groups] == [(0,), (2,)]
    assert [op.name for op in nodes[0].tail] == ["cnot", "cnot", "cz"]
    assert [g.wires for g in nodes[1].groups] == [(1,)] and nodes[2].is_channel


def test_density_layers_collect_one_qubit_gates_and_channels_per_wire():
    """With ``local=True`` a run of one-qubit gates and channels is one ``Local`` node (per
    wire, its ops in order); multi-qubit gates and channels end the run."""
    c = qjr.Circuit(3).ry(0, qjr.param(0)).depolarizing(0, 0.1).rz(2, qjr.param(1))
    c = c.depolarizing(2, 0.2).rx(0, 0.3).cnot(0, 1).cz(1, 2).bit_flip(1, 0.1)
    c = c.swap(0, 2).ry(1, 0.4)
    nodes = layer_ops(c.ops, 3, local=True)
    assert [type(node).__name__ for node in nodes] == ["Local", "Layer", "Local", "Layer",
                                                        "Local"]
    assert nodes[0].wires == (0, 2)
    assert [[op.name for op in ops] for ops in nodes[0].ops] == [
        ["ry", "depolarizing", "rx"], ["rz", "depolarizing"]]
    assert [op.name for op in nodes[1].tail] == ["cnot", "cz"] and not nodes[1].groups
    assert nodes[2].wires == (1,) and nodes[2].ops[0][0].name == "bit_flip"
    assert not any(isinstance(node, Local) for node in layer_ops(c.ops, 3))


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_constant_superoperator_pass_matches_the_general_pass(dtype):
    """``apply_local_const`` (nonzero entries only) equals ``apply_local`` for a sparse
    (depolarizing) and a dense random superoperator, on either axis order, and so do the
    gradients w.r.t. rho."""
    from qjaxrob.ir.channels import kraus_set
    from qjaxrob.kernels.density import apply_local, apply_local_const, superoperator

    rng = np.random.default_rng(3)
    n = 3
    rho = jnp.asarray(rng.normal(size=(2,) * 2 * n) + 1j * rng.normal(size=(2,) * 2 * n),
                      dtype)
    dep = np.asarray(superoperator(kraus_set("depolarizing", 1, (0.3,), (), None,
                                             jnp.complex128)))
    assert np.count_nonzero(np.abs(dep) > 1e-15) == 6
    dense_m = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    w = jnp.asarray(rng.normal(size=(2,) * 2 * n), dtype)
    for m in (dep, dense_m):
        for axes in ((1, 4), (4, 1), (0, 2)):
            got = apply_local_const(rho, m, axes)
            want = apply_local(rho, jnp.asarray(m, dtype), axes)
            np.testing.assert_allclose(got, want, atol=10 * TOL[dtype])
            g = jax.grad(lambda r, f: jnp.real(jnp.sum(w * f(r))))
            gc = g(jnp.real(rho), lambda r, m=m, axes=axes: apply_local_const(
                r.astype(dtype), m, axes))
            ga = g(jnp.real(rho), lambda r, m=m, axes=axes: apply_local(
                r.astype(dtype), jnp.asarray(m, dtype), axes))
            np.testing.assert_allclose(gc, ga, atol=10 * TOL[dtype])


def test_tail_map_is_the_product_of_the_monomial_gates():
    rng = np.random.default_rng(12)
    c = qjr.Circuit(4).cnot(2, 0).cz(1, 3).iswap(3, 1).ccx(0, 3, 2).s(1).swap(0, 3).cy(1, 2)
    perm, phase = tail_map(c.ops, 4)
    v = rng.normal(size=16) + 1j * rng.normal(size=16)
    np.testing.assert_allclose(phase * v[perm], statevector_ref_apply(c, v), atol=1e-12)


def statevector_ref_apply(c, v):
    from reference import op_unitary
    for op in c.ops:
        v = op_unitary(op, None, None, c.n_qubits) @ v
    return v


# ---- selection -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
@pytest.mark.parametrize("shape,axis", [((8,), 0), ((16, 16), 0), ((16, 16), 1), ((4, 32), 1)])
def test_permute_axis_values_and_derivatives_are_gathers(shape, axis, dtype):
    """``permute_axis`` equals NumPy's ``take``; its VJP, JVP, Hessian and vmap equal those
    of plain indexing, and its reverse pass holds no scatter."""
    from qjaxrob.kernels import permute_axis

    rng = np.random.default_rng(sum(shape) + axis)
    perm = rng.permutation(shape[axis])
    x = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    w = jnp.asarray(rng.normal(size=shape).astype(x.real.dtype))
    np.testing.assert_array_equal(permute_axis(jnp.asarray(x), perm, axis), np.take(x, perm, axis))

    def loss(fn):
        return lambda z: jnp.sum(w * jnp.abs(fn(z * jnp.sin(z))) ** 2)

    ours = loss(lambda z: permute_axis(z, perm, axis))
    ref = loss(lambda z: jnp.take(z, perm, axis=axis))
    xr = jnp.asarray(x.real)
    tol = TOL[dtype]
    np.testing.assert_allclose(jax.grad(ours)(xr), jax.grad(ref)(xr), atol=tol, rtol=tol)
    if x.size <= 64:
        np.testing.assert_allclose(jax.hessian(ours)(xr), jax.hessian(ref)(xr), atol=tol,
                                   rtol=tol)
        np.testing.assert_allclose(jax.jacfwd(jax.grad(ours))(xr), jax.hessian(ref)(xr),
                                   atol=tol, rtol=tol)
    batch = jnp.stack([xr, 2 * xr, -xr], axis=-1)  # vmapped over a trailing axis
    np.testing.assert_allclose(jax.vmap(jax.grad(ours), -1, -1)(batch),
                               jax.vmap(jax.grad(ref), -1, -1)(batch), atol=tol, rtol=tol)
    assert "scatter" not in str(jax.make_jaxpr(jax.grad(ours))(xr))


def test_environment_variable_forces_either_path(monkeypatch):
    c = hea(3, 2)
    p, x = _inputs(c, 13)
    want = expval_ref(c, _obs(3), p, x)
    traced = []
    real = dense.dense_tensor
    monkeypatch.setattr(dense, "dense_tensor", lambda *a: traced.append(1) or real(*a))
    for value in ("0", "1"):
        monkeypatch.setenv(dense.ENV, value)
        jax.clear_caches()
        traced.clear()
        got = qjr.expval(c, _obs(3), p, x, dtype=jnp.complex128)
        assert abs(float(got) - want) < 1e-10
        assert bool(traced) == (value == "1") == dense.use_dense(c, False)
    jax.clear_caches()


def test_bad_choice_and_too_wide_forced_raise(monkeypatch):
    c = hea(3, 1)
    with pytest.raises(ParameterError, match="'yes'"):
        dense.use_dense(c, False, dense="yes")
    monkeypatch.setenv(dense.ENV, "2")
    with pytest.raises(ParameterError, match="QJAXROB_DENSE.*'2'"):
        dense.use_dense(c, False)
    wide = qjr.Circuit(dense.MAX_QUBITS + 1).h(0)
    with pytest.raises(ResourceError, match=str(dense.MAX_QUBITS + 1)):
        dense.use_dense(wide, False, dense="1")
    mixed = qjr.Circuit(dense.MAX_QUBITS_MIXED + 1).h(0)
    with pytest.raises(ResourceError, match=str(dense.MAX_QUBITS_MIXED + 1)):
        dense.use_dense(mixed, True, dense="1")


def test_auto_follows_the_cost_model_and_prefers_dense_for_small_states_only():
    small = [(hea(n, 4), mixed) for n in range(2, 9) for mixed in (False, True)]
    for c, mixed in small:
        engine_s, dense_s = dense.costs(c, mixed)
        assert dense.use_dense(c, mixed, dense="auto") == (dense_s < engine_s)
    assert any(dense.use_dense(c, mixed, dense="auto") for c, mixed in small)
    assert not dense.use_dense(hea(dense.MAX_QUBITS + 1, 4), False, dense="auto")
    assert not dense.use_dense(hea(6, 4), False, kernels="pallas", dense="auto")
    engine_s, dense_s = dense.costs(hea(12, 4), False)
    assert dense_s > engine_s  # 4**12 macs per layer lose against passes over 2**12


def test_channel_in_pure_dense_run_raises():
    c = qjr.Circuit(2).h(0).bit_flip(1, 0.1)
    with pytest.raises(DensityMatrixOnlyError, match="bit_flip"):
        _tensor(c, np.zeros(0), np.zeros(0), jnp.complex128)
