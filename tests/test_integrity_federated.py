"""Quantum-native QFL integrity checks (qjaxrob.defenses.integrity.federated): the
parameter-shift gradient bound against random circuits and observables, the VQC update
bound against honest exact, finite-shot and FedAvg updates of many random models,
soundness (false-positive rate within a binomial CI of alpha over >= 200 honest runs) and
power (>= 0.9 against named attacks, Clopper-Pearson lower bound) of each check, and bad
inputs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import finite_diff
from scipy import stats

import reference

import qjaxrob as qjr
from qjaxrob import federated as fed
from qjaxrob.attacks import byzantine
from qjaxrob.defenses import integrity
from qjaxrob.defenses.integrity import federated as F
from qjaxrob.errors import ParameterError, QjrTypeError

PARAM_GATES = ("rx", "ry", "rz", "phase", "rxx", "ryy", "rzz", "crx", "cry", "crz")


def cp_lower(k, n, level=0.95):
    """One-sided Clopper-Pearson lower bound on a binomial rate."""
    return 0.0 if k == 0 else stats.beta.ppf(1 - level, k, n - k + 1)


def fpr_ok(k, n, alpha, level=0.999):
    """``k`` false positives in ``n`` honest runs are within the binomial CI of ``alpha``
    (or below it)."""
    return k <= stats.binom.ppf(level, n, alpha)


# ---- (a) the parameter-shift bound ------------------------------------------------------
PAULI = {"I": np.eye(2), "X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]),
         "Z": np.diag([1.0, -1.0])}
AXES = {"rx": "X", "ry": "Y", "rz": "Z", "rxx": "XX", "ryy": "YY", "rzz": "ZZ",
        "crx": "X", "cry": "Y", "crz": "Z"}


def _pauli_rotation(word, t):
    p = reference.kron(*[PAULI[a] for a in word])
    return np.cos(t / 2) * np.eye(p.shape[0]) - 1j * np.sin(t / 2) * p


def _gate(op, params):
    """Closed-form gate matrices (no qjaxrob simulation code)."""
    t = [a.scale * params[a.index] + a.offset if a.source == "param" else a.offset
         for a in op.angles]
    if op.name == "h":
        return np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    if op.name == "cnot":
        return np.block([[np.eye(2), 0 * np.eye(2)], [0 * np.eye(2), PAULI["X"]]])
    if op.name == "phase":
        return np.diag([1, np.exp(1j * t[0])])
    if op.name == "u3":
        th, ph, la = t
        return np.array([[np.cos(th / 2), -np.exp(1j * la) * np.sin(th / 2)],
                         [np.exp(1j * ph) * np.sin(th / 2),
                          np.exp(1j * (ph + la)) * np.cos(th / 2)]])
    r = _pauli_rotation(AXES[op.name], t[0])
    if op.name.startswith("c"):
        return np.block([[np.eye(2), np.zeros((2, 2))], [np.zeros((2, 2)), r]])
    return r


def exact_expval(circuit, obs, params):
    """<O> of a pure-gate circuit by NumPy einsum on the (2,)*n state tensor."""
    n = circuit.n_qubits
    psi = np.zeros((2,) * n, complex)
    psi[(0,) * n] = 1.0
    for op in circuit.ops:
        k = len(op.wires)
        u = _gate(op, params).reshape((2,) * (2 * k))
        psi = np.tensordot(u, psi, axes=(list(range(k, 2 * k)), list(op.wires)))
        psi = np.moveaxis(psi, list(range(k)), list(op.wires))
    vec = psi.reshape(-1)
    return float(np.real(np.vdot(vec, reference.observable_matrix(obs, n) @ vec)))


def random_circuit(rng, n, n_params):
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.h(q) if rng.random() < 0.5 else c.ry(q, float(rng.uniform(0, 3)))
    for _ in range(4 * n):
        name = PARAM_GATES[rng.integers(len(PARAM_GATES))]
        j = int(rng.integers(n_params))
        angle = qjr.param(j) * float(rng.choice([-2.0, 0.5, 1.0, 1.5])) + float(rng.normal())
        if name in ("rx", "ry", "rz", "phase"):
            c = c.gate(name, int(rng.integers(n)), angle)
        else:
            a, b = rng.choice(n, 2, replace=False)
            c = c.gate(name, (int(a), int(b)), angle)
        if rng.random() < 0.3:
            a, b = rng.choice(n, 2, replace=False)
            c = c.cnot(int(a), int(b))
    if rng.random() < 0.5:
        c = c.u3(0, qjr.param(0), qjr.param(n_params - 1) * -1.0, 0.3)
    return c


def random_observable(rng, n):
    obs = 0.0 * qjr.Z(0) + float(rng.normal())  # an identity term never counts
    for _ in range(3):
        word = "".join(rng.choice(list("IXYZ"), n))
        if set(word) != {"I"}:
            obs = obs + float(rng.normal()) * qjr.pauli(word)
    return obs


@pytest.mark.parametrize("n", [2, 3])
def test_shift_bound_holds_on_random_circuits_and_observables(n):
    """Float64 central differences of an independent NumPy simulation of random circuits
    (every parametrised gate kind, parameters reused with scales) and random Pauli-sum
    observables at 48 random points each never exceed the bound."""
    rng = np.random.default_rng(n)
    worst = 0.0
    for _ in range(8):
        n_params = 3
        c = random_circuit(rng, n, n_params)
        obs = random_observable(rng, n)
        bound = F.shift_bound(c, obs)
        for p in rng.uniform(-2 * np.pi, 2 * np.pi, (48, n_params)):
            g = finite_diff(lambda v: exact_expval(c, obs, v), p, h=1e-5)
            assert np.all(np.abs(g) <= bound + 1e-6), (g, bound)
            worst = max(worst, float(np.max(np.abs(g) / bound)))
    assert worst > 0.2  # the bound is not vacuous on these circuits


def test_numpy_reference_matches_qjaxrob():
    rng = np.random.default_rng(9)
    c, obs = random_circuit(rng, 3, 3), random_observable(rng, 3)
    p = rng.uniform(-3, 3, 3)
    assert exact_expval(c, obs, p) == pytest.approx(reference.expval_ref(c, obs, p), abs=1e-9)


def test_shift_bound_is_tight_for_one_rotation_and_holds_with_noise():
    c = qjr.Circuit(1).ry(0, qjr.param(0))
    assert F.shift_bound(c, qjr.Z(0)) == pytest.approx([1.0])
    ts = np.linspace(0, 2 * np.pi, 41)
    g = [finite_diff(lambda v: exact_expval(c, qjr.Z(0), v), [t]) for t in ts]
    assert np.max(np.abs(g)) == pytest.approx(1.0, abs=1e-4)
    noisy = (qjr.Circuit(2).h(0).crx(0, 1, qjr.param(0) * 2.0).depolarizing(1, 0.2)
             .rzz(0, 1, qjr.param(0)))
    obs = qjr.X(1) @ qjr.Z(0) + 0.5 * qjr.Y(1)
    bound = F.shift_bound(noisy, obs)
    assert bound == pytest.approx([3.0 * 1.5])
    g = [finite_diff(lambda v: reference.expval_ref(noisy, obs, v, mixed=True), [t])
         for t in ts[::4]]
    assert np.all(np.abs(g) <= bound[0] + 1e-6)


def random_vqc(key, n_classes, post, w_scale, n_features=3, layers=2):
    model = qjr.qml.make_vqc(key, n_features=n_features, n_classes=n_classes, layers=layers,
                             post=post, scale=3.0)
    if post:
        w = jax.random.normal(jax.random.fold_in(key, 1), model.weights.shape) * w_scale
        model = eqx.tree_at(lambda m: m.weights, model, w.astype(model.weights.dtype))
    return model


@eqx.filter_jit
def mean_loss_grad(model, x, y):
    w, unravel = fed.flatten(model)
    return jax.grad(lambda v: optax.softmax_cross_entropy_with_integer_labels(
        jax.vmap(unravel(v))(x), y).mean())(w)


@pytest.mark.parametrize("n_classes,post", [(2, True), (3, True), (3, False)])
def test_vqc_update_bound_never_violated_by_honest_gradients(n_classes, post):
    """60 random models (parameters, linear layer up to 5x its usual scale), each on its
    own random example with a random label (single examples approach the bound most;
    batches are covered by the FedAvg test)."""
    worst = 0.0
    for s in range(60):
        key = jax.random.key(s)
        model = random_vqc(key, n_classes, post, w_scale=float(1 + 4 * (s % 3 == 0)))
        b = 1
        x = jax.random.uniform(jax.random.fold_in(key, 2), (b, 3), maxval=np.pi)
        y = jax.random.randint(jax.random.fold_in(key, 3), (b,), 0, n_classes)
        g = mean_loss_grad(model, x, y)
        res = F.bounded_updates(g[None], model)
        assert not bool(res.reject[0]), (s, float(res.ratio[0]), float(res.zero_sum[0]))
        worst = max(worst, float(res.ratio[0]))
    assert 0.2 < worst <= 1.0


def shot_logits(model, x, shots, key):
    """The model's logits from finite-shot readouts (differentiable by parameter shift)."""
    r = qjr.expval(model.circuit, [qjr.Z(w) for w in model.readout_wires], model.params,
                   model.encoding.features(x), shots=shots, key=key)
    if model.weights is not None:
        return model.weights @ r + model.bias
    return model.scale * jnp.stack([r[0], -r[0]]) / 2 if model.n_classes == 2 \
        else model.scale * r


def shot_gradient(model, x, y, shots, key):
    """An honest FedSGD client's update with ``shots`` shots per circuit."""
    w, unravel = fed.flatten(model)
    keys = jax.random.split(key, x.shape[0])

    def loss(v):
        m = unravel(v)
        logits = jax.vmap(lambda xi, k: shot_logits(m, xi, shots, k))(x, keys)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return jax.grad(loss)(w)


SHOTS = 64


@eqx.filter_jit
def shot_grads(model, x, y, keys):
    """200 honest finite-shot FedSGD updates (one per key) on the batch ``(x, y)``."""
    return jax.vmap(lambda k: shot_gradient(model, x, y, SHOTS, k))(keys)


def small_vqc(seed, w_scale):
    return random_vqc(jax.random.key(seed), 2, True, w_scale, n_features=2, layers=1)


def test_vqc_update_bound_holds_for_finite_shot_gradients():
    model = small_vqc(7, 3.0)
    x = jax.random.uniform(jax.random.key(8), (2, 2), maxval=np.pi)
    y = jnp.asarray([0, 1])
    g = shot_grads(model, x, y, jax.random.split(jax.random.key(9), 200))
    res = F.bounded_updates(g, model)
    assert not bool(jnp.any(res.reject)) and float(jnp.max(res.ratio)) > 0.2


def fl_setup(n=10, n_qubits=2, per_client=16, seed=0):
    x, y = qjr.qml.data.teacher(jax.random.key(seed), n * per_client, n_qubits=n_qubits)
    data = fed.stack_clients(x.astype(np.float32), y,
                             fed.iid_split(jax.random.key(seed + 1), n * per_client, n))
    return data


def round_updates(model, data, spec, key):
    n = data.n_clients
    return fed.local_updates(model, key, jnp.arange(n), data.x, data.y, data.counts,
                             jnp.zeros(n, bool), spec)


def test_fedavg_updates_stay_in_bound_and_attacks_leave_it():
    """FedAvg, 5 plain-SGD steps at lr 0.5 on 10 clients, 16 random models: no honest
    update rejected (160 updates); rejected: IPM (epsilon 1000), Gaussian (sigma 0.1),
    ALIE with z = 1 (breaks the softmax zero sums), model replacement with gamma = 50;
    sign flip is inside the bound (undetectable, as documented)."""
    data = fl_setup()
    cfg = fed.FedConfig(clients_per_round=10, rounds=1, local_steps=5, batch_size=8,
                        client_optimizer=optax.sgd(0.5))
    mal = jnp.arange(10) < 2
    attacks = {"ipm": byzantine.IPM(1000.0), "gauss": byzantine.GaussianNoise(0.1),
               "alie": byzantine.ALIE(z=1.0), "replace": byzantine.Scaling(50.0),
               "sign": byzantine.SignFlip()}
    hits = {k: 0 for k in attacks}
    honest_rej, n_models = 0, 16
    for s in range(n_models):
        model = small_vqc(100 + s, 1.0)
        u = round_updates(model, data, cfg.client_spec, jax.random.key(s))
        honest_rej += int(F.bounded_updates(u, model, lr=0.5, steps=5).reject.sum())
        for name, att in attacks.items():
            bad = att(u, mal, jax.random.key(s))[:2]
            hits[name] += int(F.bounded_updates(bad, model, lr=0.5, steps=5).reject.sum())
    assert honest_rej == 0
    n = 2 * n_models
    for name in ("ipm", "gauss", "alie", "replace"):
        assert cp_lower(hits[name], n) >= 0.9, (name, hits[name], n)
    assert hits["sign"] == 0


# ---- (b) shot-noise consistency -----------------------------------------------------------
def record_probs(n_obs=48, seed=0):
    """Readout probabilities of real parameter-shift circuits of a VQC."""
    model = qjr.qml.make_vqc(jax.random.key(seed), 2, 2, layers=1)
    x = jax.random.uniform(jax.random.key(seed + 1), (8, 2), maxval=np.pi)
    p = F.shift_probabilities(model, x)
    return p[:n_obs]


def test_shift_probabilities_match_the_parameter_shift_rule():
    model = qjr.qml.make_vqc(jax.random.key(3), 2, 2, layers=1)
    x = jnp.asarray([[0.3, 1.2]])
    p = F.shift_probabilities(model, x).reshape(1 + 2 * model.params.shape[0])
    r = 2 * p - 1
    grad = jax.grad(lambda t: qjr.expval(model.circuit, qjr.Z(1), t, x[0]))(model.params)
    assert np.allclose((r[1::2] - r[2::2]) / 2, grad, atol=1e-5)
    assert r[0] == pytest.approx(float(qjr.expval(model.circuit, qjr.Z(1), model.params,
                                                  x[0])), abs=1e-5)


@pytest.mark.parametrize("shots,alpha", [(64, 0.05), (16, 0.1)])
def test_shot_consistency_false_positive_rate(shots, alpha):
    p = record_probs()
    keys = jax.random.split(jax.random.key(shots), 400)
    counts = jax.vmap(lambda k: F.shot_record(k, p, shots, 4))(keys)
    res = F.shot_consistency(counts, shots, alpha)
    k = int(res.reject.sum())
    assert fpr_ok(k, 400, alpha), (k, alpha)
    assert int(res.dof.min()) > 0


def test_shot_consistency_catches_fabricated_and_inflated_records():
    """At 64 shots per split, 4 splits, 48 observables, alpha 0.05: a record without shot
    noise (the exact means, what a fabricated or exactly computed update has), one taken
    with 16 shots and scaled up to claim 64, and one with Gaussian noise of std 4 counts
    added are each rejected with probability >= 0.9."""
    p, shots, n = record_probs(), 64, 300
    keys = jax.random.split(jax.random.key(1), n)
    exact = jnp.broadcast_to(jnp.round(shots * p).astype(jnp.int32), (n, 4, p.shape[0]))
    cheap = 4 * jax.vmap(lambda k: F.shot_record(k, p, shots // 4, 4))(keys)
    noisy = jax.vmap(lambda k: F.shot_record(k, p, shots, 4) + jnp.round(
        4 * jax.random.normal(jax.random.fold_in(k, 1), (4, p.shape[0]))).astype(jnp.int32)
    )(keys)
    noisy = jnp.clip(noisy, 0, shots)
    for rec in (exact, cheap, noisy):
        k = int(F.shot_consistency(rec, shots, 0.05).reject.sum())
        assert cp_lower(k, n) >= 0.9, k


def test_shot_consistency_rejects_impossible_counts():
    c = jnp.asarray([[10, 70], [12, 30]], jnp.int32)
    assert bool(F.shot_consistency(c, 64, 0.05).reject)


# ---- (c) audit rounds ------------------------------------------------------------------
def test_audit_false_positive_rate_and_power_with_shots():
    """Audits of FedSGD replies with 64 shots per circuit, 19 simulated honest replies,
    alpha 0.05: 200 honest replies rejected at a rate within the CI of alpha; sign-flipped
    replies and replies boosted 5x (model replacement) are caught with probability
    >= 0.9."""
    model = small_vqc(5, 2.0)
    x = jax.random.uniform(jax.random.key(6), (2, 2), maxval=np.pi)
    y = jnp.asarray([0, 1])
    n, m_ref, alpha = 200, 19, 0.05
    honest = shot_grads(model, x, y, jax.random.split(jax.random.key(1), n))
    refs = jnp.stack([shot_grads(model, x, y, jax.random.split(jax.random.key(10 + i), n))
                      for i in range(m_ref)], axis=1)
    run = jax.jit(jax.vmap(lambda u, r: F.audit(u, r, alpha).reject))
    assert fpr_ok(int(run(honest, refs).sum()), n, alpha)
    for bad in (-honest, 5.0 * honest):
        k = int(run(bad, refs).sum())
        assert cp_lower(k, n) >= 0.9, k


def test_audit_deterministic_clients_and_catch_probability():
    """Deterministic FedAvg clients: the server recomputes the honest reply exactly (it
    fixed the client key); honest never rejected, any attack caught on every audit; a
    client attacking every round is caught within R rounds at the measured rate
    ``1 - (1 - fraction)^R``."""
    data = fl_setup()
    cfg = fed.FedConfig(clients_per_round=10, rounds=1, local_steps=3, batch_size=8,
                        client_optimizer=optax.sgd(0.3))
    model = small_vqc(11, 1.0)
    u = round_updates(model, data, cfg.client_spec, jax.random.key(0))
    again = round_updates(model, data, cfg.client_spec, jax.random.key(0))
    mal = jnp.arange(10) < 3
    assert not bool(jnp.any(jax.vmap(lambda a, b: F.audit(a, b[None], 0.05).reject)(u, again)))
    for att in (byzantine.SignFlip(), byzantine.ALIE(z=0.5), byzantine.Scaling(10.0)):
        bad = att(u, mal, jax.random.key(1))[:3]
        assert bool(jnp.all(jax.vmap(lambda a, b: F.audit(a, b[None], 0.05).reject)(
            bad, again[:3])))
    fraction, rounds, trials = 0.2, 10, 2000
    sched = jax.vmap(lambda k: F.audit_schedule(k, rounds, 1, fraction))(
        jax.random.split(jax.random.key(3), trials))
    caught = int(jnp.any(sched, axis=(1, 2)).sum())
    expect = F.catch_probability(1.0, fraction, rounds)
    lo, hi = stats.binom.interval(0.999, trials, expect)
    assert lo <= caught <= hi
    assert float(jnp.mean(sched)) == pytest.approx(fraction, abs=0.02)


# ---- bad inputs ---------------------------------------------------------------------------
def test_bad_inputs_raise_named_errors():
    model = qjr.qml.make_vqc(jax.random.key(0), 2, 2, layers=1)
    c = jnp.zeros((3, 4), jnp.int32)
    for alpha in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ParameterError, match="alpha"):
            F.shot_consistency(c, 8, alpha)
        with pytest.raises(ParameterError, match="alpha"):
            F.audit(jnp.zeros(3), jnp.zeros((30, 3)), alpha)
    for frac in (-0.1, 1.1):
        with pytest.raises(ParameterError, match="audit fraction"):
            F.audit_schedule(jax.random.key(0), 3, 2, frac)
        with pytest.raises(ParameterError, match="audit fraction"):
            F.catch_probability(0.5, frac, 3)
    with pytest.raises(ParameterError, match="lr"):
        F.update_bound(model, lr=-0.1, steps=2)
    with pytest.raises(ParameterError, match="steps"):
        F.update_bound(model, lr=0.1, steps=0)
    with pytest.raises(ParameterError, match="shots"):
        F.shot_consistency(c, -5, 0.05)
    with pytest.raises(ParameterError, match="shots"):
        F.shot_record(jax.random.key(0), jnp.ones(3) / 2, 0, 2)
    with pytest.raises(ParameterError, match="rounds"):
        F.audit_schedule(jax.random.key(0), -1, 2, 0.5)
    with pytest.raises(ParameterError, match="K >= 2"):
        F.shot_consistency(jnp.zeros((1, 4), jnp.int32), 8, 0.05)
    with pytest.raises(ParameterError, match="integer"):
        F.shot_consistency(jnp.zeros((2, 4)), 8, 0.05)
    with pytest.raises(ParameterError, match="reference replies"):
        F.audit(jnp.zeros(3), jnp.zeros((5, 3)), 0.05)
    with pytest.raises(ParameterError, match=r"shape \(m, "):
        F.bounded_updates(jnp.zeros((2, 3)), model)
    probs_model = qjr.qml.make_vqc(jax.random.key(0), 2, 2, layers=1, readout="probs")
    with pytest.raises(ParameterError, match="'probs'"):
        F.update_bound(probs_model)
    with pytest.raises(ParameterError, match="qml.VQC"):
        F.update_bound(object())
    noisy_param = qjr.Circuit(1).ry(0, qjr.param(0)).depolarizing(0, qjr.param(1))
    with pytest.raises(ParameterError, match="gate angles only"):
        F.shift_bound(noisy_param, qjr.Z(0))
    with pytest.raises(QjrTypeError, match="rtol"):
        F.bounded_updates(jnp.zeros((2, 5)), model, rtol="x")


def test_package_exports():
    assert integrity.bounded_updates is F.bounded_updates
    assert integrity.shot_consistency is F.shot_consistency and integrity.audit is F.audit


# ---- the qfl-integrity study ------------------------------------------------------------
@pytest.mark.slow
def test_qfl_integrity_quick_study_and_notebook(tmp_path):
    """The quick study (and its notebook against the same run): the bound check rejects
    every IPM update and no honest update, and keeps accuracy where FedAvg falls; the
    shot-consistency check catches exact and cheap records and keeps its false-positive
    rate near alpha; the summary has the contract's columns."""
    import importlib.util

    from study_runs import execute_notebook, quick_run

    res = quick_run("qfl-integrity")
    assert res.complete and res.plots and all(p.stat().st_size > 5000 for p in res.plots)
    cols = {"attack", "check", "detection_rate", "false_positive_rate", "clean_accuracy",
            "attack_success_rate"}
    assert cols <= set(res.summary[0])
    row = {(r["kind"], r["attack"], r["check"]): r for r in res.summary}
    ipm_bound = row[("training", "ipm", "bound")]
    assert ipm_bound["detection_rate"] == 1.0 and ipm_bound["false_positive_rate"] == 0.0
    assert ipm_bound["clean_accuracy"] > row[("training", "ipm", "fedavg")]["clean_accuracy"] + 0.2
    for check in ("bound", "audit"):
        assert row[("training", "none", check)]["false_positive_rate"] == 0.0
    n = 100  # n_records of the quick configuration
    assert row[("shot", "exact_record", "shot_consistency")]["detection_rate"] == 1.0
    assert row[("shot", "fewer_shots", "shot_consistency")]["detection_rate"] >= 0.9
    for r in res.summary:
        if r["kind"] == "shot":
            assert fpr_ok(round(r["false_positive_rate"] * n), n, 0.05)
    if importlib.util.find_spec("nbclient") is not None:
        outputs = execute_notebook("qfl-integrity", res.out_dir, tmp_path)
        text = "".join(o.get("text", "") for o in outputs)
        assert "16 units, complete: True" in text
        assert not any(o.get("output_type") == "error" for o in outputs)
