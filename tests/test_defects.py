"""Regressions for issue 18 (defects found by independent random testing), each against an
independent reference (tests/reference.py, analytic values) or the exact error it must raise.
Every test here failed on the code before the fix."""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TOL, finite_diff, random_unitary
from reference import density_ref, expval_ref, statevector_ref

import qjaxrob as qjr
from qjaxrob import checks
from qjaxrob.sim.measure import BATCHED_TERMS
from qjaxrob.errors import (
    CutError,
    CutWarning,
    GradientError,
    ObservableError,
    ParameterError,
    ResourceError,
    WireError,
)

C128 = jnp.complex128


# ---- 1. diagonal matrices in Circuit.unitary ---------------------------------------------
def _diagonal_oracle_circuit(rng):
    d = np.exp(1j * rng.uniform(0, 2 * np.pi, 8))
    c = qjr.Circuit(3).h(0).h(1).h(2).unitary(np.diag(d), (2, 0, 1))
    return c.ry(0, qjr.param(0)).unitary(np.diag([1, 1, 1, -1]), (1, 2))


def test_diagonal_unitaries_simulate_and_differentiate(rng):
    c = _diagonal_oracle_circuit(rng)
    p = np.array([0.37])
    psi = qjr.statevector(c, p, dtype=C128)
    np.testing.assert_allclose(psi, statevector_ref(c, p), atol=TOL[C128])
    lone = qjr.Circuit(2).unitary(np.diag([1, 1, 1, -1]), (0, 1))
    np.testing.assert_allclose(qjr.statevector(lone, dtype=C128), [1, 0, 0, 0], atol=TOL[C128])
    np.testing.assert_allclose(qjr.probs(c, p, dtype=C128), np.abs(statevector_ref(c, p)) ** 2,
                               atol=TOL[C128])
    obs = qjr.X(0) @ qjr.Y(1) + qjr.Z(2)
    for diff in ("backprop", "adjoint"):
        g = jax.grad(lambda q, d=diff: qjr.expval(c, obs, q, dtype=C128, diff=d))(p)
        np.testing.assert_allclose(g, finite_diff(lambda q: expval_ref(c, obs, q), p), atol=1e-8)


# ---- 2. the memory guard ----------------------------------------------------------------------
@pytest.mark.parametrize("call, mixed", [
    (lambda c: qjr.statevector(c), False),
    (lambda c: qjr.probs(c), False),
    (lambda c: qjr.expval(c, qjr.Z(0)), False),
    (lambda c: qjr.sample(jax.random.key(0), c, 10), False),
    (lambda c: qjr.expval(c, qjr.Z(0), trajectories=4, key=jax.random.key(0)), False),
    (lambda c: qjr.density_matrix(c), True),
    (lambda c: qjr.expval(c, qjr.Z(0), mixed=True), True),
])
def test_memory_guard_raises_before_allocating(call, mixed):
    n = 20 if mixed else 40
    with pytest.raises(ResourceError) as info:
        call(qjr.Circuit(n).h(0))
    msg = str(info.value)
    assert f"{n} qubits" in msg and "complex64" in msg and "bytes are available" in msg
    needed = checks.STATE_COPIES * 2 ** (2 * n if mixed else n) * 8
    assert f"{needed:,}" in msg


def test_memory_guard_counts_cut_fragments(monkeypatch):
    cc = qjr.cutting.partition(qjr.Circuit(2).h(0).cnot(0, 1, cut=True))
    assert qjr.cutting.expval(cc, qjr.Z(0) @ qjr.Z(1)) == pytest.approx(1.0, abs=1e-5)
    monkeypatch.setattr(checks, "available_bytes", lambda: (100, "test budget"))
    with pytest.raises(ResourceError, match="cutting fragment 0 .*5 term rows"):
        qjr.cutting.expval(cc, qjr.Z(0))


def test_absurd_circuit_width_fails_at_construction():
    with pytest.raises(WireError, match="n_qubits=1000000 is beyond"):
        qjr.Circuit(10**6)
    assert qjr.Circuit(1000).n_qubits == 1000  # wide circuits stay legal for cutting


# ---- 3. cuts that separate nothing -------------------------------------------------------------
ISSUE_CIRCUIT = (qjr.Circuit(2).iswap(1, 0).cut(0).ryy(0, 1, -0.71).iswap(0, 1, cut=True)
                 .cry(1, 0, 0.5).ryy(1, 0, -0.16, cut=True).cnot(0, 1).cry(1, 0, -0.94, cut=True))


def test_non_separating_cuts_are_simulated_directly():
    with pytest.warns(CutWarning, match="4 cut\\(s\\) that separate nothing"):
        cc = qjr.cutting.partition(ISSUE_CIRCUIT)
    assert len(cc.fragments) == 1 and cc.cuts == () and cc.n_subexperiments == 1
    assert cc.uncut == (1, 3, 5, 7) and "simulated directly" in repr(cc)
    obs = qjr.Z(0) + qjr.X(0) @ qjr.Y(1)
    got = qjr.cutting.expval(cc, obs, dtype=C128)
    assert float(got) == pytest.approx(expval_ref(ISSUE_CIRCUIT, obs), abs=1e-10)
    with pytest.raises(CutError, match="separate nothing"):
        qjr.cutting.partition(ISSUE_CIRCUIT, redundant="error")


def test_separating_cuts_are_kept_silently():
    c = qjr.Circuit(3).h(0).cnot(0, 1).cut(1).cnot(1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cc = qjr.cutting.partition(c)
    assert len(cc.cuts) == 1 and cc.uncut == ()


# ---- 4. traced noise levels outside [0, 1] ------------------------------------------------------
@pytest.mark.parametrize("name, level, physical", [
    ("depolarizing", 1.7, 1.0), ("amplitude_damping", -0.5, 0.0), ("bit_flip", 3.0, 1.0),
    ("phase_damping", -2.0, 0.0),
])
def test_traced_noise_levels_are_clamped_to_a_physical_channel(name, level, physical):
    base = qjr.Circuit(1).h(0).rx(0, 0.4)
    traced = getattr(base, name)(0, qjr.param(0))
    rho = np.asarray(qjr.density_matrix(traced, [level], dtype=C128))
    want = density_ref(getattr(base, name)(0, physical))
    np.testing.assert_allclose(rho, want, atol=TOL[C128])
    assert np.trace(rho).real == pytest.approx(1.0, abs=1e-12)
    assert np.linalg.eigvalsh(rho).min() > -1e-12


# ---- 6. repeated wires in pauli --------------------------------------------------------------
def test_pauli_rejects_repeated_wires():
    with pytest.raises(WireError, match=re.escape("repeated wire 0 in wires=(0, 0)")):
        qjr.pauli("ZZ", wires=(0, 0))
    with pytest.raises(WireError, match="repeated wire 2"):
        qjr.pauli("XYZ", wires=(2, 1, 2))


# ---- 8. keys and messages -----------------------------------------------------------------------
NOISY = qjr.Circuit(1).h(0).depolarizing(0, 0.1)


@pytest.mark.parametrize("call", [
    lambda: qjr.statevector(NOISY, key=0),
    lambda: qjr.sample(0, qjr.Circuit(1).h(0), 10),
    lambda: qjr.sample("abc", qjr.Circuit(1).h(0), 10),
    lambda: qjr.expval(NOISY, qjr.Z(0), trajectories=2, key=np.zeros(3)),
])
def test_keys_are_validated_with_a_clear_error(call):
    with pytest.raises(ParameterError, match="PRNG key"):
        call()


def test_messages_name_the_offending_value():
    with pytest.raises(ParameterError, match="divide the angle .* by zero"):
        qjr.param(0) / 0.0
    with pytest.raises(ParameterError, match="overflows: scale inf"):
        (qjr.param(0) * 1e308) * 1e308
    with pytest.raises(qjr.errors.QjrTypeError, match="'Z0'"):
        qjr.expval(qjr.Circuit(1), "Z0")
    with pytest.raises(ObservableError, match="non-finite coefficient"):
        qjr.expval(qjr.Circuit(1), float("nan") * qjr.Z(0))
    with pytest.raises(qjr.errors.ParameterError, match="trajectories must be a positive int"):
        qjr.expval(NOISY, qjr.Z(0), trajectories=0, key=jax.random.key(0))
    with pytest.raises(ParameterError, match="layers must be a positive int, got -1"):
        qjr.qml.make_vqc(jax.random.key(0), 2, 2, layers=-1)


def test_adjoint_forward_mode_raises_and_hessian_matches_backprop():
    c = qjr.Circuit(1).ry(0, qjr.param(0)).rx(0, qjr.param(1))
    p = jnp.array([0.3, -0.8])

    def f(diff):
        return lambda q: qjr.expval(c, qjr.Z(0) + 0.5 * qjr.X(0), q, dtype=C128, diff=diff)

    with pytest.raises(GradientError, match="forward mode"):
        jax.jvp(f("adjoint"), (p,), (jnp.ones(2),))
    with pytest.raises(GradientError, match="diff='backprop'"):
        jax.jacfwd(f("adjoint"))(p)
    np.testing.assert_allclose(jax.hessian(f("adjoint"))(p), jax.hessian(f("backprop"))(p),
                               atol=1e-12)


# ---- 7. observables with many terms ---------------------------------------------------------------
def test_many_term_observables_match_the_reference_and_finite_differences(rng):
    n = 3
    c = qjr.Circuit(n).unitary(random_unitary(rng, 8), (0, 1, 2))
    c = c.ry(0, qjr.param(0)).rx(1, qjr.param(1)).cnot(1, 2).rz(2, qjr.param(2))
    words = ["".join(w) for w in rng.choice(list("IXYZ"), (24, n))]
    obs = sum((float(rng.normal()) * qjr.pauli(w) for w in words), 0.25 * qjr.I())
    assert len(obs.terms) > BATCHED_TERMS
    p = rng.uniform(-2, 2, 3)
    both = qjr.expval(c, [obs, qjr.Z(0)], p, dtype=C128)
    np.testing.assert_allclose(both, [expval_ref(c, obs, p), expval_ref(c, qjr.Z(0), p)],
                               atol=1e-10)
    g = jax.grad(lambda q: qjr.expval(c, obs, q, dtype=C128))(p)
    np.testing.assert_allclose(g, finite_diff(lambda q: expval_ref(c, obs, q), p), atol=1e-7)
    noisy = c.depolarizing(1, 0.2).amplitude_damping(0, 0.3)
    got = qjr.expval(noisy, obs, p, mixed=True, dtype=C128)
    assert float(got) == pytest.approx(expval_ref(noisy, obs, p, mixed=True), abs=1e-10)
