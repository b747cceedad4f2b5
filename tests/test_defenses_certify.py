"""qjr.defenses.certify: hand values, consistency between the DP condition and its radius,
bad input, and soundness on random instances: every perturbed state inside a certified
radius (random and worst-direction pure and mixed perturbations), evaluated exactly by
density-matrix simulation, keeps the predicted class."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob import defenses
from qjaxrob.errors import ParameterError, ProbabilityError

F64 = jnp.complex128


# ---- hand values and bad input ------------------------------------------------------------
def test_hypothesis_testing_radius_hand_values():
    assert np.isclose(defenses.hypothesis_testing_radius(0.9, 0.1), 0.2)
    assert np.isclose(defenses.hypothesis_testing_radius(1.0, 0.0), 0.5)
    assert defenses.hypothesis_testing_radius(0.4, 0.4) == 0.0
    rng = np.random.default_rng(0)
    pa = rng.uniform(0.3, 1.0, 50)
    pb = rng.uniform(0, 1, 50) * np.minimum(pa, 1 - pa)
    g = 1 - pb - pa * (1 - 2 * pb) + 2 * np.sqrt(pa * pb * (1 - pa) * (1 - pb))
    np.testing.assert_allclose(defenses.hypothesis_testing_radius(pa, pb),
                               0.5 * (1 - np.sqrt(g)), atol=1e-12)
    # binary: 1/2 - sqrt(p (1 - p)), increasing in the margin
    p = np.linspace(0.5, 1.0, 30)
    r = np.asarray(defenses.hypothesis_testing_radius(p, 1 - p))
    np.testing.assert_allclose(r, 0.5 - np.sqrt(p * (1 - p)), atol=1e-12)
    assert np.all(np.diff(r) > 0)


def test_hypothesis_testing_radius_bad_input():
    with pytest.raises(ProbabilityError, match="p_a"):
        defenses.hypothesis_testing_radius(1.2, 0.1)
    with pytest.raises(ProbabilityError, match="p_b"):
        defenses.hypothesis_testing_radius(0.5, -0.1)
    with pytest.raises(ProbabilityError, match="<= 1"):
        defenses.hypothesis_testing_radius(0.7, 0.6)
    with pytest.raises(ProbabilityError, match="p_a must be >= p_b"):
        defenses.hypothesis_testing_radius(0.2, 0.3)


def test_dp_condition_hand_values_and_radius():
    probs = np.array([0.7, 0.3])
    assert defenses.dp_certified(probs, 0.2)  # 0.7 > e^0.4 * 0.3 = 0.4475
    assert not defenses.dp_certified(probs, 0.5)  # e^1 * 0.3 = 0.815
    # delta term: 0.7 > e^0.2 0.3 + (1 + e^0.1) 0.1 = 0.5774 but not with delta = 0.2
    assert defenses.dp_certified(probs, 0.1, 0.1) and not defenses.dp_certified(probs, 0.1, 0.2)
    three = np.array([[0.5, 0.2, 0.3], [0.1, 0.6, 0.3]])
    # e^0.6 0.3 = 0.547
    np.testing.assert_array_equal(defenses.dp_certified(three, 0.3), [False, True])
    # the radius is where the condition with Guan's epsilon(eta) switches off
    kap = 5.0
    for p in (three[0], three[1], probs):
        r = float(defenses.dp_radius(p, kap))
        pa, pb = np.sort(p)[-1], np.sort(p)[-2]
        assert np.isclose(r, (np.sqrt(pa / pb) - 1) / (kap - 1))
        assert defenses.dp_certified(p, defenses.epsilon_from_kappa(kap, r * 0.999))
        assert not defenses.dp_certified(p, defenses.epsilon_from_kappa(kap, r * 1.001))
    assert defenses.dp_radius(probs, np.inf) == 0.0
    assert defenses.dp_radius(probs, 1.0) == 1.0  # a constant channel certifies everything
    assert defenses.dp_radius(np.array([1.0, 0.0]), 3.0) == 1.0
    assert np.isclose(defenses.trace_distance_radius(three)[1], 0.15)
    a, pa, pb = defenses.top_two(three)
    np.testing.assert_array_equal(a, [0, 1])
    np.testing.assert_allclose(pa, [0.5, 0.6]) and np.testing.assert_allclose(pb, [0.3, 0.3])


@pytest.mark.parametrize("probs", [[0.5, 0.6], [0.7, 0.2], [1.2, -0.2], [[0.5, 0.5], [0.3, 0.3]]])
def test_probabilities_not_summing_to_one_are_rejected(probs):
    with pytest.raises(ProbabilityError):
        defenses.trace_distance_radius(np.array(probs))
    with pytest.raises(ProbabilityError):
        defenses.dp_certified(np.array(probs), 0.1)


def test_other_bad_input():
    with pytest.raises(ParameterError, match="classes"):
        defenses.top_two(np.array([1.0]))
    with pytest.raises(ParameterError, match="epsilon"):
        defenses.dp_certified(np.array([0.6, 0.4]), -0.1)
    with pytest.raises(ParameterError, match="delta"):
        defenses.dp_certified(np.array([0.6, 0.4]), 0.1, 1.5)
    with pytest.raises(ParameterError, match="kappa"):
        defenses.dp_radius(np.array([0.6, 0.4]), 0.5)
    with pytest.raises(ParameterError, match="effects"):
        defenses.channel_trace_radius(np.zeros((3, 2, 2)), np.array([0.6, 0.4]))


def test_channel_trace_radius_global_depolarizing_hand_formula():
    """Effects (1-p) P_k + p I/d (global depolarizing before a binary projective
    measurement): the radius is (y_A - y_B) / (2 (1 - p))."""
    rng = np.random.default_rng(3)
    d, p = 4, 0.3
    z = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    u, _ = np.linalg.qr(z)
    proj0 = u[:, :2] @ u[:, :2].conj().T
    eff = np.stack([(1 - p) * proj0 + p / 2 * np.eye(d), (1 - p) * (np.eye(d) - proj0)
                    + p / 2 * np.eye(d)])
    probs = np.array([[0.8, 0.2], [0.45, 0.55]])
    np.testing.assert_allclose(defenses.channel_trace_radius(eff, probs),
                               [0.6 / 1.4, 0.1 / 1.4], atol=1e-12)
    assert np.all(defenses.channel_trace_radius(eff, probs)
                  >= defenses.trace_distance_radius(probs))


# ---- soundness on random instances ------------------------------------------------------------
def _prep():
    """Any 2-qubit pure state (Schmidt form): RY, CNOT, then U3 on each wire, from 7 inputs."""
    i = qjr.inp
    return (qjr.Circuit(2).ry(0, i(0)).cnot(0, 1).u3(0, i(1), i(2), i(3))
            .u3(1, i(4), i(5), i(6)))


def _u3_angles(g):
    theta = 2 * np.arctan2(abs(g[1, 0]), abs(g[0, 0]))
    phi = np.angle(g[1, 0]) - np.angle(g[0, 0])
    lam = np.angle(-g[0, 1]) - np.angle(g[0, 0])
    return [theta, phi, lam]


def prep_angles(psi):
    """Inputs of ``_prep`` that prepare ``psi`` (up to a global phase)."""
    u, s, vh = np.linalg.svd(psi.reshape(2, 2))
    return np.array([2 * np.arctan2(s[1], s[0])] + _u3_angles(u) + _u3_angles(vh.T))


@pytest.fixture(scope="module")
def simulator():
    """Exact class-independent evaluator: outcome probabilities of (prepare psi) + a
    2-qubit circuit with depolarizing levels as inputs 7 and 8, for a batch of states."""
    i = qjr.inp
    base = (qjr.Circuit(2).ry(0, qjr.param(0)).cnot(0, 1).rx(1, qjr.param(1))
            .ry(0, qjr.param(2)).depolarizing(0, i(7)).depolarizing(1, i(8)))
    params = np.array([0.4, 1.3, -0.8])
    full = _prep() + base

    @jax.jit
    def evaluate(angles, levels):  # (M, 7), (2,) -> (M, 4)
        return jax.vmap(lambda a: qjr.probs(full, params, jnp.concatenate([a, levels]),
                                            mixed=True, dtype=F64))(angles)

    return base, params, evaluate


# noisy 3-class (outcome i -> class i mod 3), and noiseless binary projective (wire 1), where
# the trace-distance and hypothesis-testing radii are tight
CASES = {"noisy_3_class": ((0.15, 0.1), 3), "noiseless_binary": ((0.0, 0.0), 2)}


@pytest.fixture(scope="module", params=list(CASES))
def classifier(request, simulator):
    base, params, evaluate = simulator
    levels, n_classes = CASES[request.param]
    x = np.concatenate([np.zeros(7), levels])
    eff = np.asarray(defenses.channel_effects(base, params, x, n_classes=n_classes, dtype=F64))
    groups = np.arange(4) % n_classes

    def classes(angles):
        p = np.asarray(evaluate(angles, jnp.asarray(levels)))
        return np.stack([p[:, groups == c].sum(1) for c in range(n_classes)], axis=1)

    return eff, classes, n_classes


def _random_state(rng, d=4):
    v = rng.normal(size=d) + 1j * rng.normal(size=d)
    return v / np.linalg.norm(v)


def _perp(rng, psi, phi=None):
    phi = _random_state(rng) if phi is None else phi
    phi = phi - np.vdot(psi, phi) * psi
    return phi / np.linalg.norm(phi)


def test_certificates_are_sound_on_random_instances(classifier):
    """For random clean states, perturbed states inside each certified radius -- pure ones
    (trace distance sin(theta), infidelity sin^2(theta)) and mixtures (1-t) psi + t phi
    (both distances t), along random and worst-case directions -- keep the class."""
    eff, evaluate, n_classes = classifier
    rng = np.random.default_rng(11)
    kap = float(defenses.kappa(eff))
    assert 1 < kap  # inf without noise: the DP radius is then 0
    n_clean, n_pert = 12, 24
    clean = np.array([_random_state(rng) for _ in range(n_clean)])
    y = np.asarray(evaluate(np.array([prep_angles(s) for s in clean])))
    radii = {
        "trace": np.asarray(defenses.trace_distance_radius(y)),
        "channel_trace": np.asarray(defenses.channel_trace_radius(eff, y)),
        "dp": np.asarray(defenses.dp_radius(y, kap)),
    }
    a, pa, pb = (np.asarray(v) for v in defenses.top_two(y))
    r_fid = np.asarray(defenses.hypothesis_testing_radius(pa, pb))
    # build all perturbed states: (example, trace distance, infidelity, pure part, mixing t)
    records, angles = [], []
    herm = (eff + eff.conj().transpose(0, 2, 1)) / 2
    for b, psi in enumerate(clean):
        worst = []  # per other class: the mixing direction and the gradient direction
        proj = np.eye(4) - np.outer(psi, psi.conj())
        for k in range(n_classes):
            if k == a[b]:
                continue
            diff = herm[a[b]] - herm[k]
            m = proj @ diff @ proj + 4 * np.outer(psi, psi.conj())
            worst.append(np.linalg.eigh(m)[1][:, 0])
            worst.append(-proj @ diff @ psi)
        names = list(radii) + ["fidelity"]
        for j in range(n_pert):
            use_worst = rng.uniform() < 2 / 3
            phi = _perp(rng, psi, worst[rng.integers(len(worst))] if use_worst else None)
            target = names[j % len(names)]
            if target == "fidelity":
                tr, inf = None, rng.uniform(0.7, 1.0) * r_fid[b]
            else:
                tr, inf = rng.uniform(0.7, 1.0) * radii[target][b], None
            if rng.uniform() < 2 / 3:  # pure perturbation
                theta = np.arcsin(tr) if tr is not None else np.arcsin(np.sqrt(inf))
                state = np.cos(theta) * psi + np.sin(theta) * phi
                records.append((b, np.sin(theta), np.sin(theta) ** 2, len(angles), None))
                angles.append(prep_angles(state))
            else:  # mixture with an orthogonal state
                t = tr if tr is not None else inf
                records.append((b, t, t, len(angles), t))
                angles.append(prep_angles(phi))
    yp = np.asarray(evaluate(np.array(angles)))
    checked = {c: 0 for c in list(radii) + ["fidelity"]}
    for b, tr, inf, idx, t in records:
        probs = yp[idx] if t is None else (1 - t) * y[b] + t * yp[idx]
        keeps = np.argmax(probs) == a[b] and probs[a[b]] > np.max(np.delete(probs, a[b]))
        for c, r in radii.items():
            if tr < r[b]:
                checked[c] += 1
                assert keeps, (c, b, tr, r[b], probs, y[b])
        if inf < r_fid[b]:
            checked["fidelity"] += 1
            assert keeps, ("fidelity", b, inf, r_fid[b], probs, y[b])
    if kap == np.inf:
        assert np.all(radii["dp"] == 0)
        del checked["dp"]
    assert min(checked.values()) >= 20, checked
    # the channel-aware radius is never smaller than the generic one (spread <= 2)
    assert np.all(radii["channel_trace"] >= radii["trace"] - 1e-12)
