"""Finite-shot gradients (qjaxrob.sim.param_shift): the shift rules against finite differences, the
estimator's mean against the exact gradient (z-tests over many keys) for params and x,
through cut circuits, second derivatives, and the clear error where no rule exists."""

import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.sim import param_shift as qs
from qjaxrob.errors import GradientError

ANGLE_GATES = {  # gate -> (wires, number of angles)
    "rx": ((1,), 1), "ry": ((2,), 1), "rz": ((0,), 1), "phase": ((1,), 1), "u3": ((2,), 3),
    "rxx": ((0, 1), 1), "ryy": ((1, 2), 1), "rzz": ((2, 0), 1),
    "crx": ((0, 1), 1), "cry": ((1, 2), 1), "crz": ((2, 0), 1),
}
OBS = qjr.Z(1) + 0.5 * qjr.X(0) @ qjr.Y(2) - 0.3 * qjr.X(1) @ qjr.Z(2)


def _all_gates():
    """A 3-qubit circuit with every parameterised gate, each angle its own parameter, mixed
    by fixed gates; returns it with the gate name of every parameter."""
    c, names = qjr.Circuit(3).ry(0, 0.7).ry(1, 0.4).rx(2, 0.9).cnot(0, 1).cnot(1, 2), []
    for name, (wires, k) in ANGLE_GATES.items():
        c = c.gate(name, wires, *[qjr.param(len(names) + i) for i in range(k)])
        c = c.h(wires[0]).cnot(wires[0], (wires[0] + 1) % 3)
        names += [name] * k
    return c, names


def test_shift_rules_match_finite_differences():
    c, names = _all_gates()
    theta = np.random.default_rng(1).uniform(-3, 3, c.n_params)
    h, rows, plan = 1e-5, [], []
    for i, name in enumerate(names):
        rule = qs.SHIFT_RULES[name]
        for s in [s for s, _ in rule] + [h, -h]:
            rows.append(theta + s * np.eye(c.n_params)[i])
        plan.append([cf for _, cf in rule])
    f = jax.jit(jax.vmap(lambda t: qjr.expval(c, OBS, t, dtype=jnp.complex128)))
    vals, at = np.asarray(f(jnp.asarray(np.array(rows)))), 0
    for i, coefs in enumerate(plan):
        v = vals[at: at + len(coefs) + 2]
        at += len(coefs) + 2
        by_fd = (v[-2] - v[-1]) / (2 * h)
        assert abs(by_fd) > 1e-3, (names[i], by_fd)  # a non-trivial derivative
        np.testing.assert_allclose(np.dot(coefs, v[:-2]), by_fd, rtol=0, atol=1e-7,
                                   err_msg=f"{names[i]} (param {i})")


def _z(samples, exact):
    samples = np.asarray(samples, np.float64)
    se = samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
    return (samples.mean(0) - np.asarray(exact)) / se, se


# every parameterised gate, a parameter shared by three gates (affine), inputs with scales
WIDE = (qjr.Circuit(3).h(0).ry(1, qjr.param(0)).rx(2, qjr.inp(0) * 1.7 + 0.2)
        .crx(0, 1, qjr.param(1)).rzz(1, 2, qjr.param(2)).u3(0, qjr.param(3), qjr.inp(1), 0.4)
        .cry(2, 0, qjr.param(0) * -0.6 + 0.1).rxx(0, 2, qjr.param(4)).phase(1, qjr.inp(0))
        .crz(1, 2, qjr.param(5)).ryy(0, 1, qjr.param(0) * 2.0).rz(2, qjr.param(6)).ry(2, 0.8)
        .cnot(2, 0))
WIDE_OBS = qjr.Z(0) @ qjr.Z(2) + 0.7 * qjr.X(1) - 0.4 * qjr.Y(0)


@pytest.mark.slow
def test_estimator_mean_is_the_exact_gradient(dtype=jnp.complex64):
    """complex64 here (the default); the Hessian and cut-circuit tests run complex128."""
    real = jnp.finfo(dtype).dtype
    p = jnp.asarray(np.random.default_rng(0).uniform(-2, 2, WIDE.n_params), real)
    x = jnp.asarray([0.4, -0.9], real)

    def exact(p, x):
        return qjr.expval(WIDE, WIDE_OBS, p, x, dtype=jnp.complex128)

    gp, gx = jax.grad(exact, (0, 1))(p.astype(jnp.float64), x.astype(jnp.float64))
    assert np.min(np.abs(gp)) > 1e-2 and np.min(np.abs(gx)) > 1e-2

    @jax.jit
    def sampled(keys):
        def one(k):
            f = lambda p, x: qjr.expval(WIDE, WIDE_OBS, p, x, shots=200, key=k, dtype=dtype)
            return jax.grad(f, (0, 1))(p, x)
        return jax.vmap(one)(keys)

    sp, sx = sampled(jax.random.split(jax.random.key(7), 1500))
    assert sp.dtype == real and sx.dtype == real
    zp, se = _z(sp, gp)
    zx, _ = _z(sx, gx)
    assert np.all(np.abs(zp) < 4.5), zp
    assert np.all(np.abs(zx) < 4.5), zx
    # a real estimator: single draws scatter, with the documented per-term error scale
    assert np.all(np.asarray(sp).std(0) > 0.01)
    assert np.all(se < 0.05)


def test_value_is_unchanged_and_keys_matter():
    c = qjr.Circuit(2).ry(0, qjr.param(0)).cnot(0, 1).rx(1, qjr.inp(0))
    p, x, k = jnp.array([0.8]), jnp.array([0.3]), jax.random.key(3)
    f = lambda p: qjr.expval(c, qjr.Z(1), p, x, shots=100, key=k)  # noqa: E731
    v, g = jax.value_and_grad(f)(p)
    assert v == f(p)
    g2 = jax.grad(lambda p: qjr.expval(c, qjr.Z(1), p, x, shots=100, key=jax.random.key(4)))(p)
    assert g[0] != 0.0 and g[0] != g2[0]


def test_new_shot_counts_do_not_recompile(caplog):
    c = qjr.Circuit(2).ry(0, qjr.param(0)).cnot(0, 1).rx(1, qjr.inp(0))
    p, x, k = jnp.array([0.8]), jnp.array([0.3]), jax.random.key(3)
    first = qjr.expval(c, qjr.Z(1), p, x, shots=100, key=k)
    with jax.log_compiles(True), caplog.at_level(logging.DEBUG):
        values = [qjr.expval(c, qjr.Z(1), p, x, shots=n, key=k) for n in (7, 300, 10**6)]
    assert not [r for r in caplog.records if "ompil" in r.getMessage()]
    exact = np.cos(0.8) * np.cos(0.3)
    assert abs(values[-1] - exact) < 5e-3 and first != values[-1]


@pytest.mark.slow
def test_second_derivatives_are_unbiased():
    c = qjr.Circuit(1).ry(0, qjr.param(0)).rz(0, qjr.param(1)).rx(0, qjr.param(0) * 0.5)
    p = jnp.array([0.7, -1.2])
    obs = qjr.X(0) + qjr.Z(0)
    h = jax.hessian(lambda p: qjr.expval(c, obs, p, dtype=jnp.complex128))(p)
    hs = jax.jit(jax.vmap(jax.hessian(
        lambda p, k: qjr.expval(c, obs, p, shots=400, key=k, dtype=jnp.complex128)),
        (None, 0)))(p, jax.random.split(jax.random.key(5), 1500))
    z, _ = _z(hs, h)
    assert np.all(np.abs(z) < 4.5), z


@pytest.mark.slow
def test_cut_circuit_gradient_is_unbiased():
    c = (qjr.Circuit(3).ry(0, qjr.param(0)).cnot(0, 1).crx(0, 1, qjr.param(2)).cut(1)
         .rx(1, qjr.inp(0) * 0.7).rzz(1, 2, qjr.param(1), cut=True).ry(2, qjr.param(0) * 0.5))
    cc = qjr.cutting.partition(c)
    obs = qjr.Z(0) @ qjr.Z(2) + qjr.Z(1)
    p, x = jnp.array([0.4, 1.1, 0.9]), jnp.array([0.3])
    ep, ex = jax.grad(lambda p, x: qjr.expval(c, obs, p, x, dtype=jnp.complex128), (0, 1))(p, x)

    @jax.jit
    def sampled(keys):
        f = lambda p, x, k: qjr.cutting.expval(cc, obs, p, x, shots=1000, key=k,  # noqa: E731
                                               dtype=jnp.complex128)
        return jax.vmap(jax.grad(f, (0, 1)), (None, None, 0))(p, x, keys)

    sp, sx = sampled(jax.random.split(jax.random.key(9), 400))
    zp, _ = _z(sp, ep)
    zx, _ = _z(sx, ex)
    assert np.all(np.abs(zp) < 4.5) and np.all(np.abs(zx) < 4.5), (zp, zx)
    assert np.all(np.asarray(sp).std(0) > 1e-3)


def test_noise_parameter_gradient_raises():
    c = qjr.Circuit(1).ry(0, qjr.param(0)).depolarizing(0, qjr.param(1) * 0.1)
    p, k = jnp.array([0.3, 0.5]), jax.random.key(0)
    with pytest.raises(GradientError, match=r"depolarizing.*params\[1\]"):
        jax.grad(lambda p: qjr.expval(c, qjr.Z(0), p, mixed=True, shots=100, key=k))(p)
    cx = qjr.Circuit(1).ry(0, qjr.param(0)).bit_flip(0, qjr.inp(0))
    with pytest.raises(GradientError, match=r"bit_flip.*x\[0\]"):
        jax.grad(lambda x: qjr.expval(cx, qjr.Z(0), p[:1], x, mixed=True, shots=100,
                                      key=k))(jnp.array([0.2]))
    # the gate parameters stay differentiable when only x is a noise level
    g = jax.grad(lambda q: qjr.expval(cx, qjr.Z(0), q, jnp.array([0.2]), mixed=True,
                                      shots=100, key=k))(p[:1])
    assert np.isfinite(g[0]) and g[0] != 0.0


def test_expansion_is_idempotent_and_records_affine_angles():
    expanded, occ = qs.expand_circuit(WIDE)
    again, occ2 = qs.expand_circuit(expanded)
    assert again == expanded and occ2.scale == (1.0,) * len(occ)
    assert len(occ) == expanded.n_params == 12
    k = occ.what.index(next(w for w in occ.what if "'cry'" in w))
    assert (occ.source[k], occ.index[k], occ.scale[k], occ.offset[k]) == ("param", 0, -0.6, 0.1)
    assert occ.rule[k] is qs.FOUR_TERM


@pytest.mark.parametrize("x64", [False, True])
def test_shot_counts_beyond_the_sampler_range_raise_a_parameter_error(x64):
    """int32 shot counts without x64 (a raw OverflowError before), float64-exact ones with."""
    c = qjr.Circuit(2).h(0).cnot(0, 1)
    cc = qjr.cutting.partition(qjr.Circuit(2).h(0).cnot(0, 1, cut=True))
    limit = 2**53 if x64 else 2**31 - 1
    key = jax.random.key(0)
    with jax.enable_x64(x64):
        assert qjr.checks.max_shots() == limit
        for call in (lambda s: qjr.expval(c, qjr.Z(0), shots=s, key=key),
                     lambda s: qjr.cutting.expval(cc, qjr.Z(0), shots=s, key=key),
                     lambda s: qjr.sample(key, c, s)):
            with pytest.raises(qjr.errors.ParameterError, match=f"at most {limit:,}.*{limit + 1:,}"):
                call(limit + 1)
        est = qjr.expval(c, qjr.Z(0) @ qjr.Z(1), shots=limit, key=key)
        assert abs(float(est) - 1.0) < 1e-6


def test_sample_is_behind_the_memory_guard(monkeypatch):
    """A draw that cannot fit raises ResourceError naming the shots and the bytes, before
    anything is allocated (10**10 shots used to try ~240 GB)."""
    c = qjr.Circuit(3).h(0)
    with pytest.raises(qjr.errors.ResourceError, match="10,000,000,000 shots on 3 qubits"):
        qjr.sample(jax.random.key(0), c, 10**10)
    budget = 1000 * (3 + 8 + 8)  # bits, float64 uniform, int64 index (x64 is on in tests)
    monkeypatch.setattr(qjr.checks, "available_bytes", lambda: (budget, "test budget"))
    bits = qjr.sample(jax.random.key(0), c, 1000, dtype=jnp.complex128)
    assert bits.shape == (1000, 3) and set(np.unique(bits[:, 1:])) == {0}
    with pytest.raises(qjr.errors.ResourceError, match=f"{budget + 19:,} bytes"):
        qjr.sample(jax.random.key(0), c, 1001, dtype=jnp.complex128)
