"""The in-place CPU gate kernel (``kernels/inplace.cc`` through ``kernels/inplace.py``)
against NumPy: gates on every wire position (vector and scalar loops), both dtypes, batches
with shared and per-example matrices, an input that stays alive (XLA must copy it, not
clobber it), and first- and second-order derivatives of whole circuits against
``tests/reference.py`` and finite differences. The size threshold is lowered so that small
states take the kernel; programs are traced afresh (the lowering reads it)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import finite_diff, random_unitary
from reference import embed, expval_ref

import qjaxrob as qjr
from qjaxrob.kernels import apply_matrix, inplace
from qjaxrob.qml.ansatze import hardware_efficient

DTYPES = {jnp.complex64: 2e-5, jnp.complex128: 1e-12}


@pytest.fixture
def everywhere(monkeypatch):
    """Every state takes the in-place kernel (threshold 0), compiled afresh."""
    if not inplace.available():
        pytest.fail(f"in-place kernels unavailable: {inplace.status()}")
    monkeypatch.setattr(inplace, "MIN_STATE_BYTES", 0)
    jax.clear_caches()
    yield
    jax.clear_caches()


def _state(rng, shape, dtype):
    v = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(dtype)


def _custom_calls(fn, *args):
    return jax.jit(fn).lower(*args).as_text().count("qjaxrob_inplace_gate")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [3, 5, 7])
def test_gate_on_every_wire_matches_numpy(everywhere, dtype, n):
    rng = np.random.default_rng(n)
    psi = _state(rng, (2**n,), dtype)
    pairs = [(w,) for w in range(n)] + list(itertools.permutations(range(n), 2))
    for wires in pairs:
        u = random_unitary(rng, 2 ** len(wires)).astype(dtype)
        fn = lambda s, m, w=wires: apply_matrix(s.reshape((2,) * n), m, w).reshape(-1)
        assert _custom_calls(fn, psi, u) == 1
        got = np.asarray(jax.jit(fn)(psi, u))
        want = embed(u, wires, n) @ psi
        np.testing.assert_allclose(got, want, rtol=0, atol=DTYPES[dtype] * 10, err_msg=str(wires))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shared", [True, False])
def test_batches_with_shared_and_per_example_matrices(everywhere, dtype, shared):
    n, batch, wires = 6, 5, (4, 1)
    rng = np.random.default_rng(7)
    psis = _state(rng, (batch, 2**n), dtype)
    us = np.stack([random_unitary(rng, 4) for _ in range(batch)]).astype(dtype)

    def one(s, m):
        return apply_matrix(s.reshape((2,) * n), m, wires).reshape(-1)

    if shared:
        fn = jax.vmap(one, in_axes=(0, None))
        args, mats = (psis, us[0]), [us[0]] * batch
    else:
        fn = jax.vmap(one)
        args, mats = (psis, us), list(us)
    assert _custom_calls(fn, *args) == 1
    got = np.asarray(jax.jit(fn)(*args))
    for b in range(batch):
        np.testing.assert_allclose(got[b], embed(mats[b], wires, n) @ psis[b], rtol=0,
                                   atol=DTYPES[dtype] * 10)


def test_an_input_still_needed_is_not_overwritten(everywhere):
    n = 5
    rng = np.random.default_rng(3)
    psi = _state(rng, (2**n,), np.complex128)
    u = random_unitary(rng, 4)

    def both(s, m):
        out = apply_matrix(s.reshape((2,) * n), m, (0, 3)).reshape(-1)
        return s, out, jnp.vdot(s, out)

    s, out, overlap = jax.jit(both)(psi, u)
    np.testing.assert_array_equal(np.asarray(s), psi)
    want = embed(u, (0, 3), n) @ psi
    np.testing.assert_allclose(np.asarray(out), want, atol=1e-13)
    np.testing.assert_allclose(complex(overlap), np.vdot(psi, want), atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("diff", ["backprop", "adjoint"])
def test_circuit_values_and_gradients(everywhere, dtype, diff):
    n = 5
    c = hardware_efficient(n, 2)
    rng = np.random.default_rng(11)
    p = rng.uniform(0, 2 * np.pi, c.n_params).astype(jnp.finfo(dtype).dtype)
    obs = qjr.Z(0) @ qjr.Z(3) + 0.5 * qjr.X(2)

    def f(v):
        return qjr.expval(c, obs, v, dtype=dtype, diff=diff)

    assert _custom_calls(jax.grad(f), p) > 0
    tol = DTYPES[dtype]
    np.testing.assert_allclose(float(jax.jit(f)(p)), expval_ref(c, obs, p), atol=tol * 10)
    g = np.asarray(jax.jit(jax.grad(f))(p))
    fd = finite_diff(lambda v: expval_ref(c, obs, v), p.astype(np.float64))
    np.testing.assert_allclose(g, fd, atol=max(tol * 100, 1e-7))


def test_second_derivatives_match_the_xla_kernels(monkeypatch):
    """``jax.hessian`` with every gate in place against the same program on XLA's kernels
    (whose Hessians the rest of the suite checks against finite differences)."""
    n = 4
    c = hardware_efficient(n, 2)
    p = np.random.default_rng(5).uniform(0, 2 * np.pi, c.n_params)

    def hess():
        jax.clear_caches()
        return np.asarray(jax.jit(jax.hessian(
            lambda v: qjr.expval(c, qjr.Z(1), v, dtype=jnp.complex128)))(p))

    xla = hess()
    monkeypatch.setattr(inplace, "MIN_STATE_BYTES", 0)
    assert inplace.available()
    ours = hess()
    jax.clear_caches()
    np.testing.assert_allclose(ours, xla, atol=1e-11)
    fd = finite_diff(lambda v: np.asarray(jax.grad(
        lambda w: qjr.expval(c, qjr.Z(1), w, dtype=jnp.complex128))(v)), p, h=1e-5)
    np.testing.assert_allclose(ours, fd, atol=1e-7)


def test_small_states_keep_the_xla_kernels():
    n = 10  # 16 KiB at complex128, far below MIN_STATE_BYTES
    psi = jnp.zeros(2**n, jnp.complex128)
    fn = lambda s, m: apply_matrix(s.reshape((2,) * n), m, (2, 5)).reshape(-1)
    jax.clear_caches()
    assert _custom_calls(fn, psi, jnp.eye(4, dtype=jnp.complex128)) == 0


def test_without_a_compiler_the_xla_kernels_run_and_say_why(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "no-such-compiler-qjaxrob")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing cached there
    monkeypatch.setattr(inplace, "MIN_STATE_BYTES", 0)
    monkeypatch.setattr(inplace, "_STATE", None)  # decide again, restored afterwards
    try:
        with pytest.warns(RuntimeWarning, match="no-such-compiler-qjaxrob"):
            assert not inplace.available()
        assert "no-such-compiler-qjaxrob" in inplace.status()
        jax.clear_caches()
        n = 4
        psi = jnp.asarray(_state(np.random.default_rng(0), (2**n,), np.complex128))
        u = jnp.asarray(random_unitary(np.random.default_rng(1), 2))
        fn = lambda s, m: apply_matrix(s.reshape((2,) * n), m, (1,)).reshape(-1)
        assert _custom_calls(fn, psi, u) == 0
        np.testing.assert_allclose(np.asarray(jax.jit(fn)(psi, u)),
                                   embed(np.asarray(u), (1,), n) @ np.asarray(psi), atol=1e-13)
    finally:
        jax.clear_caches()


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(inplace.ENV_VAR, "off")
    monkeypatch.setattr(inplace, "_STATE", None)
    assert not inplace.available()
    assert inplace.ENV_VAR in inplace.status()
