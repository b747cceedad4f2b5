"""Kernel choice (qjaxrob.backend): QJAXROB_KERNELS, the keyword, what ``auto`` may select,
and the whole statevector path with Pallas forced (interpret mode on CPU) against the
dense reference: forward, backprop, adjoint, second derivatives and vmap."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import finite_diff, random_unitary
from jax.experimental import pallas as pl
from reference import expval_ref

import qjaxrob as qjr
from qjaxrob import backend
from qjaxrob.errors import ParameterError

BACKENDS = ("cpu", "gpu", "tpu")


# ---- the switch ----------------------------------------------------------------------------
def test_env_and_keyword_select(monkeypatch):
    monkeypatch.delenv(backend.ENV, raising=False)
    assert backend.kernel_choice() == "xla"
    monkeypatch.setenv(backend.ENV, "pallas")
    assert backend.kernel_choice() == "pallas"
    assert backend.kernel_set().apply_matrix is qjr.kernels.pallas.apply_matrix
    assert backend.kernel_choice("xla") == "xla"  # the keyword wins over the environment
    monkeypatch.setenv(backend.ENV, "xla")
    assert backend.kernel_set("pallas").name == "pallas"
    assert backend.kernel_set().apply_diagonal is qjr.kernels.apply_diagonal


def test_bad_values_raise_naming_them(monkeypatch):
    monkeypatch.setenv(backend.ENV, "triton")
    with pytest.raises(ParameterError, match="QJAXROB_KERNELS.*'triton'"):
        backend.kernel_choice()
    with pytest.raises(ParameterError, match="kernels.*'cuda'"):
        backend.kernel_choice("cuda")


def test_auto_selects_xla_until_pallas_is_proven(monkeypatch):
    monkeypatch.delenv(backend.ENV, raising=False)
    assert backend.PALLAS_PROVEN == frozenset()
    assert {backend.kernel_choice(backend=b) for b in BACKENDS} == {"xla"}
    monkeypatch.setattr(backend, "PALLAS_PROVEN", frozenset({"gpu"}))
    assert backend.kernel_choice(backend="gpu") == "pallas"
    assert backend.kernel_choice(backend="cpu") == "xla"


# ---- auto only selects kernels with autodiff rules ------------------------------------------
def _autodiff_report(apply_matrix, apply_diagonal):
    """Runs forward, grad (state and operand), jvp, hessian and vmap through one matrix and
    one diagonal kernel on a 2-qubit state; returns the values (raises if a rule is missing)."""
    psi = jnp.asarray([0.6, 0.2j, -0.3, 0.1 + 0.7j], jnp.complex128).reshape(2, 2)

    def loss(t, s=psi):
        m = jnp.asarray(np.arange(16.0).reshape(4, 4) % 3 - 1j * np.eye(4)) * jnp.cos(t)
        out = apply_matrix(s * jnp.sin(t), m, (1, 0))
        out = apply_diagonal(out, jnp.exp(1j * t * jnp.arange(4.0)), (1, 0))
        return jnp.real(jnp.vdot(out, out * jnp.arange(4.0).reshape(2, 2)))

    states = jnp.stack([psi, 1j * psi, psi.conj()])
    return (loss(0.3), jax.grad(loss)(0.3), jax.jvp(loss, (0.3,), (1.0,))[1],
            jax.hessian(loss)(0.3), jax.grad(lambda s: loss(0.3, s))(psi),
            jax.vmap(jax.grad(loss))(jnp.asarray([0.1, 0.5])),  # operands and states batched
            jax.vmap(lambda s: loss(0.3, s))(states))  # states batched, one shared operand


def _raw_pallas_matrix(state, matrix, wires):
    """A Pallas kernel with no autodiff rules (the pre-issue-10 design): a negative control."""
    def kernel(x_ref, o_ref):
        o_ref[...] = x_ref[...] * 2.0

    return pl.pallas_call(kernel, out_shape=jax.ShapeDtypeStruct(state.shape, state.dtype),
                          interpret=True)(state)


@pytest.fixture(scope="module")
def xla_report():
    return jax.jit(lambda: _autodiff_report(qjr.kernels.apply_matrix, qjr.kernels.apply_diagonal))()


def test_checker_catches_a_kernel_without_rules():
    with pytest.raises(Exception):  # noqa: B017 - whatever JAX raises, it must not pass
        jax.jit(lambda: _autodiff_report(_raw_pallas_matrix, qjr.kernels.apply_diagonal))()


@pytest.mark.parametrize("proven", [frozenset(), frozenset({"gpu", "tpu"})])
def test_auto_never_selects_a_kernel_without_autodiff(monkeypatch, xla_report, proven):
    """Whatever ``auto`` picks on any backend (today, and once Pallas is marked proven) must
    differentiate like the XLA kernels, to every order and under vmap."""
    monkeypatch.delenv(backend.ENV, raising=False)
    monkeypatch.setattr(backend, "PALLAS_PROVEN", proven)
    chosen = {backend.kernel_set(backend=b) for b in BACKENDS}
    assert ({k.name for k in chosen} == {"xla"}) == (not proven)
    for ks in chosen - {backend.kernel_set("xla")}:  # XLA: the fixture itself
        got = jax.jit(lambda ks=ks: _autodiff_report(ks.apply_matrix, ks.apply_diagonal))()
        for g, w in zip(got, xla_report):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-10)


# ---- the whole statevector path with Pallas forced ------------------------------------------
def _random_circuit(rng):
    """3 qubits: dense, diagonal and permutation gates, a random 2-qubit ``unitary``, params,
    affine angles and a ``Repeat`` (lax.scan); 4 fused blocks."""
    body = (qjr.Circuit(3).ry(0, qjr.param(0)).cnot(0, 2)
            .rzz(1, 2, qjr.param(1) * 0.5 + 0.1))
    return (qjr.Circuit(3).rx(2, qjr.inp(0) * 1.5).u3(0, 0.3, qjr.param(2), -0.4)
            .unitary(random_unitary(rng, 4), (2, 0)).cz(0, 1)
            + qjr.Circuit.repeat(body, 2, param_offset=3))


@pytest.fixture
def forced(monkeypatch):
    monkeypatch.setenv(backend.ENV, "pallas")


def _uses_pallas(fn, *args):
    return "qjaxrob_pallas_apply" in str(jax.make_jaxpr(fn)(*args))


def test_forced_pallas_forward_backprop_adjoint(forced):
    rng = np.random.default_rng(5)
    c = _random_circuit(rng)
    p, x = rng.uniform(-np.pi, np.pi, c.n_params), rng.uniform(-1, 1, c.n_inputs)
    obs = qjr.Z(0) @ qjr.X(2) + 0.5 * qjr.Y(1)

    def f(p, diff="backprop"):
        return qjr.expval(c, obs, p, x, dtype=jnp.complex128, diff=diff)

    both = lambda p: (f(p), jax.grad(f)(p), jax.grad(partial(f, diff="adjoint"))(p))
    assert _uses_pallas(f, p) and _uses_pallas(partial(f, diff="adjoint"), p)
    value, g_backprop, g_adjoint = jax.jit(both)(p)
    ref = lambda v: expval_ref(c, obs, v, x)
    np.testing.assert_allclose(value, ref(p), atol=1e-12)
    g_ref = finite_diff(ref, p)
    np.testing.assert_allclose(g_backprop, g_ref, atol=1e-7)
    np.testing.assert_allclose(g_adjoint, g_ref, atol=1e-7)


def test_forced_pallas_second_derivatives_and_vmap(forced):
    """A 2-qubit random circuit (interpret-mode compile time grows fast with depth here)."""
    rng = np.random.default_rng(9)
    c = (qjr.Circuit(2).ry(0, qjr.param(0)).unitary(random_unitary(rng, 4), (1, 0))
         .rzz(0, 1, qjr.param(1) * 2.0).rx(1, qjr.param(0)))
    obs = qjr.X(0) + qjr.Z(0) @ qjr.Y(1)
    p = rng.uniform(-np.pi, np.pi, c.n_params)
    ps = p + np.linspace(0, 1, 3)[:, None]
    f = lambda p: qjr.expval(c, obs, p, dtype=jnp.complex128)
    hess, batch = jax.jit(lambda p, ps: (jax.hessian(f)(p), jax.vmap(f)(ps)))(p, ps)
    ref = lambda v: expval_ref(c, obs, v)
    h_ref = finite_diff(lambda v: finite_diff(ref, v, 1e-4), p, 1e-4)
    assert np.abs(h_ref).max() > 0.1
    np.testing.assert_allclose(hess, h_ref, atol=1e-5)
    np.testing.assert_allclose(batch, [ref(q) for q in ps], atol=1e-12)


def test_switching_the_variable_mid_process_takes_effect(monkeypatch):
    """The jitted entry points take the resolved kernel choice as a static argument: a
    circuit first run under ``xla`` runs on Pallas once ``QJAXROB_KERNELS=pallas`` is set
    (counted at trace time through a spy kernel set), for every public path."""
    calls = []

    def spy(fn):
        def wrapped(*args):
            calls.append(fn.__name__)
            return fn(*args)
        return wrapped

    pallas_set = backend.kernel_set("pallas")
    monkeypatch.setitem(backend._SETS, "pallas", backend.KernelSet(
        "pallas", spy(pallas_set.apply_matrix), spy(pallas_set.apply_diagonal)))
    rng = np.random.default_rng(21)
    c = (qjr.Circuit(2).rx(0, qjr.param(0)).unitary(random_unitary(rng, 4), (0, 1))
         .rzz(0, 1, qjr.param(1) * 0.731))  # a structure no other test compiles
    obs = qjr.Z(0) @ qjr.X(1) + 0.3 * qjr.Y(0)
    p = rng.uniform(-np.pi, np.pi, c.n_params)

    f = lambda p, diff: qjr.expval(c, obs, p, dtype=jnp.complex128, diff=diff)
    paths = (lambda: qjr.statevector(c, p, dtype=jnp.complex128),
             lambda: qjr.probs(c, p, dtype=jnp.complex128),
             lambda: f(p, "backprop"), lambda: jax.grad(f)(p, "adjoint"))

    def run():
        out = []
        for path in paths:
            before = len(calls)
            out.append(path())
            out.append(len(calls) - before)  # spy calls (Pallas traces) this path made
        return out[0::2], out[1::2]

    monkeypatch.setenv(backend.ENV, "xla")
    first, traced = run()
    assert traced == [0, 0, 0, 0]
    monkeypatch.setenv(backend.ENV, "pallas")
    again, traced = run()
    assert min(traced) >= 1  # each path re-traced on Pallas
    for a, b in zip(first, again):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12)
    np.testing.assert_allclose(again[2], expval_ref(c, obs, p), atol=1e-12)
