"""qjr.defenses.qdp: Du et al.'s closed form, Heisenberg effects from the Choi state against a
NumPy adjoint-map reference, Guan et al.'s kappa/epsilon/delta (agreement with the closed
forms, tightness, soundness on random state pairs), and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import embed, flat_ops, kraus_ref, op_unitary, resolve

import qjaxrob as qjr
from qjaxrob import defenses
from qjaxrob.errors import (
    MatrixError,
    ParameterError,
    ProbabilityError,
    QjrTypeError,
    WireError,
)

F64 = jnp.complex128


def heisenberg_ref(circuit, params=None, x=None):
    """E^dagger(|k><k|) for every basis outcome k: the adjoint of every op, last op first."""
    n = circuit.n_qubits
    maps = []
    for op, shift in flat_ops(circuit):
        p = params[shift:] if params is not None and shift else params
        if op.is_channel:
            values = [resolve(a, p, x) for a in op.angles]
            maps.append([embed(k, op.wires, n) for k in
                         kraus_ref(op.name, len(op.wires), values, op.matrices, op.meta)])
        elif op.name != "cut":
            maps.append([op_unitary(op, params, x, n, shift)])
    d = 2**n
    out = []
    for k in range(d):
        a = np.zeros((d, d), complex)
        a[k, k] = 1
        for ks in reversed(maps):
            a = sum(m.conj().T @ a @ m for m in ks)
        out.append(a)
    return np.array(out)


def group(full, n, wires, n_classes=None):
    """Reference grouping of full-basis effects onto measured wires and classes."""
    d = 2**n
    k = 2 ** len(wires)
    out = np.zeros((k, d, d), complex)
    for i in range(d):
        bits = [(i >> (n - 1 - w)) & 1 for w in range(n)]
        m = int("".join(str(bits[w]) for w in wires), 2)
        out[m] += full[i]
    if n_classes is None:
        return out
    return np.array([out[c::n_classes].sum(0) for c in range(n_classes)])


# ---- Du et al. closed form -------------------------------------------------------------
def test_depolarizing_epsilon_hand_values():
    assert np.isclose(defenses.depolarizing_epsilon(0.5, 2), np.log(3))
    assert np.isclose(defenses.depolarizing_epsilon(0.25, 4, eta=0.5), np.log(7))
    assert np.isclose(defenses.depolarizing_epsilon(0.1, 8, eta=0.01), np.log1p(0.01 * 8 * 9))
    assert defenses.depolarizing_epsilon(1.0, 16) == 0.0
    ps = np.array([0.2, 0.4])
    assert np.allclose(defenses.depolarizing_epsilon(ps, 2), np.log1p(2 * (1 - ps) / ps))


def test_depolarizing_epsilon_monotone_in_p_dim_and_eta():
    ps = np.linspace(0.01, 1.0, 40)
    for d in (2, 4, 16):
        e = np.asarray(defenses.depolarizing_epsilon(ps, d))
        assert np.all(np.diff(e) < 0)
    for p in (0.05, 0.5, 0.9):
        e = [float(defenses.depolarizing_epsilon(p, d)) for d in (2, 3, 4, 8, 64)]
        assert np.all(np.diff(e) > 0)
        e = [float(defenses.depolarizing_epsilon(p, 4, eta)) for eta in (0.0, 0.1, 0.5, 1.0)]
        assert e[0] == 0 and np.all(np.diff(e) > 0)


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, float("nan")])
def test_depolarizing_epsilon_rejects_p_outside_0_1(p):
    with pytest.raises(ProbabilityError, match="p"):
        defenses.depolarizing_epsilon(p, 4)
    with pytest.raises(ProbabilityError):
        defenses.depolarizing_epsilon(np.array([0.5, p]), 4)


def test_depolarizing_epsilon_rejects_bad_dim_and_eta():
    with pytest.raises(ParameterError, match="dim"):
        defenses.depolarizing_epsilon(0.5, 1)
    with pytest.raises(QjrTypeError, match="dim"):
        defenses.depolarizing_epsilon(0.5, 2.5)
    with pytest.raises(ParameterError, match="eta"):
        defenses.depolarizing_epsilon(0.5, 2, eta=1.5)
    with pytest.raises(ParameterError, match="eta"):
        defenses.depolarizing_epsilon(0.5, 2, eta=-0.1)


# ---- effects ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed_channel():
    """Two qubits: gates with params, amplitude damping, random rotation about y, a
    two-qubit depolarizing channel and a Kraus channel."""
    theta = 0.4
    k0 = np.diag([1, np.cos(theta)])
    k1 = np.array([[0, np.sin(theta)], [0, 0]])
    return (qjr.Circuit(2).ry(0, qjr.param(0)).cnot(0, 1).rz(1, qjr.param(1))
            .amplitude_damping(0, 0.2).random_rotation(1, "y", 0.6).rx(0, qjr.param(2))
            .depolarizing((0, 1), 0.1).kraus([k0, k1], 1).cry(1, 0, qjr.param(3)))


def test_channel_effects_match_the_adjoint_reference(mixed_channel, rng):
    params = rng.uniform(-3, 3, mixed_channel.n_params)
    full = heisenberg_ref(mixed_channel, params)
    got = defenses.channel_effects(mixed_channel, params, dtype=F64)
    np.testing.assert_allclose(got, full, atol=1e-10)
    for wires, classes in (((1,), None), ((1, 0), None), ((0, 1), 3)):
        got = defenses.channel_effects(mixed_channel, params, wires=wires, n_classes=classes,
                                       dtype=F64)
        np.testing.assert_allclose(got, group(full, 2, wires, classes), atol=1e-10)
    got32 = defenses.channel_effects(mixed_channel, params.astype(np.float32), wires=(1,),
                                     dtype=jnp.complex64)
    assert got32.dtype == jnp.complex64
    np.testing.assert_allclose(got32, group(full, 2, (1,)), atol=2e-6)


def test_effects_reproduce_simulated_probabilities(mixed_channel, rng):
    """Tr(A_k |psi><psi|) equals the density-matrix simulation of (prepare psi) + channel."""
    params = rng.uniform(-3, 3, mixed_channel.n_params)
    eff = np.asarray(defenses.channel_effects(mixed_channel, params, wires=(0,), dtype=F64))
    z = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    u, _ = np.linalg.qr(z)
    psi = u[:, 0]
    c = qjr.Circuit(2).unitary(u, (0, 1)) + mixed_channel
    want = qjr.probs(c, params, wires=(0,), mixed=True, dtype=F64)
    got = np.einsum("i,kij,j->k", psi.conj(), eff, psi).real
    np.testing.assert_allclose(got, want, atol=1e-10)


# ---- Guan et al.: kappa, epsilon, delta ---------------------------------------------------------
@pytest.fixture(scope="module")
def base():
    """A random 2-qubit unitary part (params) that the noise is appended to."""
    return qjr.Circuit(2).ry(0, qjr.param(0)).cnot(0, 1).rx(1, qjr.param(1)).ry(0, qjr.param(2))


@pytest.fixture(scope="module")
def base_params():
    return np.array([0.7, -1.2, 2.1])


def _sweep_effects(circuit, params, levels, dtype=F64):
    f = jax.jit(jax.vmap(lambda p: defenses.channel_effects(circuit, params, p[None],
                                                              dtype=dtype)))
    return f(jnp.asarray(levels))


def test_guan_kappa_matches_du_for_global_depolarizing(base, base_params):
    levels = np.array([0.05, 0.2, 0.5, 0.9, 1.0])
    noisy = defenses.add_noise(base, "global_depolarizing", qjr.inp(0))
    effs = _sweep_effects(noisy, base_params, levels)
    for eff, p in zip(effs, levels):
        assert np.isclose(float(defenses.kappa(eff)), 1 + (1 - p) * 4 / p, rtol=1e-9)
        for eta in (1.0, 0.3, 0.01):
            np.testing.assert_allclose(defenses.epsilon_from_effects(eff, eta),
                                       defenses.depolarizing_epsilon(p, 4, eta), rtol=1e-9,
                                       atol=1e-12)


def test_local_noise_kappa_is_exact(base, base_params):
    """Local depolarizing on every qubit: kappa = ((2-p)/p)^n; random rotation about x on
    every qubit (a bit flip with q = (1 - e^{-sigma^2/2})/2): ((1-q)/q)^n; about z it
    commutes with the measurement: no privacy."""
    levels = np.array([0.1, 0.5])
    effs = _sweep_effects(defenses.add_noise(base, "depolarizing", qjr.inp(0)), base_params,
                          levels)
    for eff, p in zip(effs, levels):
        assert np.isclose(float(defenses.kappa(eff)), ((2 - p) / p) ** 2, rtol=1e-9)
    sigmas = np.array([0.3, 1.5])
    effs = _sweep_effects(defenses.add_noise(base, "random_rotation", qjr.inp(0), axis="x"),
                          base_params, sigmas)
    for eff, s in zip(effs, sigmas):
        q = (1 - np.exp(-s**2 / 2)) / 2
        assert np.isclose(float(defenses.kappa(eff)), ((1 - q) / q) ** 2, rtol=1e-9)
        # measuring one wire only feels one qubit's noise
        one = group(np.asarray(eff), 2, (1,))
        assert np.isclose(float(defenses.kappa(one)), (1 - q) / q, rtol=1e-9)
    eps, _ = defenses.noise_dp(qjr.Circuit(2), "random_rotation", 0.8, axis="z", dtype=F64)
    assert eps == np.inf


def test_delta_formula_tightness_and_soundness(mixed_channel, rng):
    params = rng.uniform(-3, 3, mixed_channel.n_params)
    eff = np.asarray(defenses.channel_effects(mixed_channel, params, dtype=F64))
    lam = np.linalg.eigvalsh(eff)
    lmax, lmin = lam[:, -1], lam[:, 0]
    kap = np.max(lmax / lmin)
    for eta in (1.0, 0.2):
        eps_star = float(defenses.epsilon_from_effects(eff, eta))
        assert np.isclose(eps_star, np.log1p(eta * (kap - 1)), rtol=1e-9)
        assert float(defenses.delta_from_effects(eff, eps_star, eta)) < 1e-9
        for eps in (0.0, 0.3 * eps_star, 0.7 * eps_star):
            want = max(0.0, np.max(eta * lmax - (np.exp(eps) + eta - 1) * lmin))
            got = defenses.delta_from_effects(eff, eps, eta)
            assert np.isclose(got, want, atol=1e-12) and want > 0
            assert np.isclose(defenses.circuit_dp(mixed_channel, params, epsilon=eps, eta=eta,
                                                  dtype=F64)[1], want, atol=1e-12)
        # the worst pair attains e^eps exactly
        k = int(np.argmax(lmax / lmin))
        _, vecs = np.linalg.eigh(eff[k])
        sigma = np.outer(vecs[:, 0], vecs[:, 0].conj())
        rho = (1 - eta) * sigma + eta * np.outer(vecs[:, -1], vecs[:, -1].conj())
        ratio = np.trace(eff[k] @ rho).real / np.trace(eff[k] @ sigma).real
        assert np.isclose(ratio, np.exp(eps_star), rtol=1e-9)
        # random neighbouring pairs never exceed e^eps
        for _ in range(200):
            z = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
            sig = z @ z.conj().T
            sig /= np.trace(sig).real
            v = rng.normal(size=4) + 1j * rng.normal(size=4)
            v /= np.linalg.norm(v)
            rho = (1 - eta) * sig + eta * np.outer(v, v.conj())  # T(rho, sig) <= eta
            a = np.einsum("kij,ji->k", eff, rho).real
            b = np.einsum("kij,ji->k", eff, sig).real
            assert np.all(a <= np.exp(eps_star) * b + 1e-12)


def test_epsilon_from_kappa_and_bad_input(mixed_channel):
    assert np.isclose(defenses.epsilon_from_kappa(3.0, 0.5), np.log(2.0))
    assert defenses.epsilon_from_kappa(np.inf) == np.inf
    with pytest.raises(ParameterError, match="kappa"):
        defenses.epsilon_from_kappa(0.5)
    with pytest.raises(ParameterError, match="epsilon"):
        defenses.delta_from_effects(np.eye(2)[None], -1.0)
    with pytest.raises(ParameterError, match="shape"):
        defenses.kappa(np.eye(2))
    with pytest.raises(ParameterError, match="classes"):
        defenses.channel_effects(mixed_channel, np.zeros(4), wires=(0,), n_classes=3)
    with pytest.raises(WireError):
        defenses.channel_effects(mixed_channel, np.zeros(4), wires=(2,))
    with pytest.raises(QjrTypeError):
        defenses.channel_effects("not a circuit")


def test_add_noise_placements_and_bad_input(base):
    end = defenses.add_noise(base, "bit_flip", 0.1)
    assert end == base + qjr.Circuit(2).bit_flip(0, 0.1).bit_flip(1, 0.1)
    assert (defenses.add_noise(base, "global_depolarizing", 0.3)
            == base + qjr.Circuit(2).depolarizing((0, 1), 0.3))
    assert defenses.add_noise(base, "depolarizing", 0.1, after="each_gate") == \
        qjr.noise.insert(base, "depolarizing", "each_gate", p=0.1)
    with pytest.raises(ParameterError, match="unknown noise"):
        defenses.add_noise(base, "teleport", 0.1)
    with pytest.raises(ParameterError, match="global_depolarizing"):
        defenses.add_noise(base, "global_depolarizing", 0.1, after="each_gate")
    with pytest.raises(ParameterError, match="axis"):
        defenses.add_noise(base, "random_rotation", 0.1)
    with pytest.raises(ParameterError, match="after"):
        defenses.add_noise(base, "depolarizing", 0.1, after="sometimes")
    with pytest.raises(ProbabilityError):
        defenses.add_noise(base, "depolarizing", 1.5)


# ---- effects must be a POVM before any bound is computed --------------------------------------
def _random_povm(rng, k, d):
    """K random PSD effects summing to I: A_k = S^-1/2 B_k S^-1/2 with S = sum B_k."""
    z = rng.normal(size=(k, d, d)) + 1j * rng.normal(size=(k, d, d))
    b = z @ np.conj(np.swapaxes(z, -1, -2))
    w, v = np.linalg.eigh(b.sum(0))
    s = v @ np.diag(w**-0.5) @ v.conj().T
    return s @ b @ s


def _every_bound(eff):
    """Each public function that computes a bound from effects."""
    k = eff.shape[0]
    probs = np.full(k, 1.0 / k)
    probs[0] += 0.1
    probs[1] -= 0.1
    return [lambda: defenses.kappa(eff), lambda: defenses.epsilon_from_effects(eff),
            lambda: defenses.delta_from_effects(eff, 0.5),
            lambda: defenses.channel_trace_radius(eff, probs),
            lambda: defenses.empirical.state_check(
                jax.random.PRNGKey(0), eff, np.eye(eff.shape[1])[:1], pgd=False, restarts=1,
                steps=1, bisections=1)]


@pytest.mark.parametrize("d", [2, 4])
def test_invalid_effects_are_refused_by_every_bound(rng, d):
    good = _random_povm(rng, 2, d)
    nan = good.copy()
    nan[1, 0, 0] = np.nan
    cases = {
        "non-finite": nan,
        "sum to the identity": 2 * good,                       # sums to 2 I
        "positive semidefinite": np.stack([good[0] + good[1] + np.eye(d) * 0.5,
                                           -0.5 * np.eye(d)]),  # sums to I, not PSD
        "Hermitian": good + np.stack([1e-3j * np.triu(np.ones((d, d)), 1),
                                      -1e-3j * np.triu(np.ones((d, d)), 1)]),
    }
    for what, eff in cases.items():
        for bound in _every_bound(eff):
            with pytest.raises(MatrixError, match=what):
                bound()


def test_effect_tolerance_follows_the_dtype(rng):
    """A sum off by 1e-6 is float32 rounding (accepted in complex64) but wrong in complex128;
    effects of noisy circuits simulated in complex64 are accepted at several sizes."""
    for d in (2, 4, 8):
        eff = _random_povm(rng, 3, d)
        eff[0] += 1e-6 * np.eye(d)
        assert np.isfinite(float(defenses.kappa(eff.astype(np.complex64))))
        with pytest.raises(MatrixError, match="differs from I by 1e-06"):
            defenses.kappa(eff)
    for n in (1, 2, 3):
        c = defenses.add_noise(qjr.Circuit(n).ry(0, qjr.param(0)).rx(n - 1, qjr.param(1)),
                               "depolarizing", 0.2)
        c = c + qjr.Circuit(n).cnot(0, n - 1) if n > 1 else c
        params = rng.uniform(-3, 3, c.n_params)
        eff32 = defenses.channel_effects(c, params.astype(np.float32))
        eff64 = defenses.channel_effects(c, params, dtype=F64)
        k32, k64 = float(defenses.kappa(eff32)), float(defenses.kappa(eff64))
        assert np.isclose(k32, k64, rtol=1e-4) and np.isclose(k64, (1.8 / 0.2) ** n, rtol=1e-9)
