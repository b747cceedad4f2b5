"""Exact reconstruction, gradients, sampling, sharding and input errors of qjr.cutting.expval,
checked against the dense NumPy reference on the uncut circuit."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qjaxrob as qjr
from qjaxrob import cutting
from qjaxrob.errors import CutError, CutWarning
from helpers import finite_diff
from reference import expval_ref

C128 = jnp.complex128
CUT_GATES = ["cz", "cnot", "cy", "rzz", "rxx", "ryy", "crx", "cry", "crz"]
ROTATED = {"rzz", "rxx", "ryy", "crx", "cry", "crz"}


@st.composite
def cut_circuits(draw):
    """Qubits split into 2-3 groups; gates inside a group stay uncut, gates across groups
    are gate cuts, and up to two wire cuts are placed right before a later gate. Optionally
    a last qubit no gate touches (an idle wire: a fragment without ops) and a wire cut on
    qubit 0 before its first gate (a fragment holding only a measurement site)."""
    n = draw(st.integers(3, 5))
    n_groups = draw(st.integers(2, min(3, n)))
    group = [q * n_groups // n for q in range(n)]
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    idle, early = draw(st.booleans()), draw(st.booleans())
    c = qjr.Circuit(n + idle)
    if early:
        c = c.cut(0)
    for q in range(n):
        c = c.ry(q, qjr.param(q)).rz(q, float(rng.uniform(-3, 3)))
    used, n_wire, n_gate, n_par = set(range(n)), 0, 0, n
    for _ in range(draw(st.integers(3, 7))):
        a, b = (int(w) for w in rng.permutation(n)[:2])
        name = str(rng.choice(CUT_GATES))
        across = group[a] != group[b]
        if across and n_gate >= 2:
            continue
        if n_wire < 2 and rng.uniform() < 0.3:
            c, n_wire = c.cut(a), n_wire + 1
        angle = () if name not in ROTATED else (
            qjr.param(n_par) if rng.uniform() < 0.5 else qjr.inp(0) * 1.5 + 0.2,)
        n_par += name in ROTATED and isinstance(angle[0], qjr.Angle) and angle[0].source == "param"
        c = c.gate(name, (a, b), *angle, cut=across)
        n_gate += across
        c = c.rx(b, qjr.inp(1)).h(a)
    return c


def quiet_partition(c):
    """``partition`` of a random marked circuit: its wire cuts may separate nothing (then
    they are simulated directly; tests/test_defects.py checks the warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CutWarning)
        return cutting.partition(c)


def random_obs(rng, n):
    """A Pauli sum whose terms span several wires (and fragments), plus a constant."""
    obs = 0.3 * qjr.I(0)
    for _ in range(3):
        word = "".join(rng.choice(list("IXYZ"), n))
        obs = obs + float(rng.normal()) * qjr.pauli(word)
    return obs


def draw_inputs(c, seed):
    rng = np.random.default_rng(seed)
    params = rng.uniform(-np.pi, np.pi, c.n_params)
    x = rng.uniform(-np.pi, np.pi, c.n_inputs)
    return params, x, random_obs(rng, c.n_qubits)


@pytest.mark.slow
@settings(max_examples=8)
@given(cut_circuits(), st.integers(0, 1000))
def test_exact_reconstruction(c, seed):
    cc = quiet_partition(c)
    assert 2 <= len(cc.fragments) <= 5 + len(cc.cuts)
    params, x, obs = draw_inputs(c, seed)
    got = cutting.expval(cc, obs, params, x, dtype=C128)
    assert abs(float(got) - expval_ref(c, obs, params, x)) <= 1e-9


@pytest.mark.slow
@settings(max_examples=3)
@given(cut_circuits(), st.integers(0, 1000))
def test_gradients_match_uncut(c, seed):
    cc = quiet_partition(c)
    params, x, obs = draw_inputs(c, seed)
    gp, gx = jax.grad(lambda p, xx: cutting.expval(cc, obs, p, xx, dtype=C128),
                      argnums=(0, 1))(jnp.asarray(params), jnp.asarray(x))
    np.testing.assert_allclose(gp, finite_diff(lambda p: expval_ref(c, obs, p, x), params),
                               atol=1e-7)
    np.testing.assert_allclose(gx, finite_diff(lambda xx: expval_ref(c, obs, params, xx), x),
                               atol=1e-7)


@pytest.fixture(scope="module")
def two_cut():
    """4 qubits: a wire cut on qubit 1 and a CZ gate cut between the halves."""
    c = (qjr.Circuit(4).ry(0, qjr.param(0)).ry(1, 0.7).cnot(0, 1).cut(1).ry(2, qjr.param(1))
         .cnot(1, 2).cz(0, 3, cut=True).rx(3, qjr.inp(0)).crx(2, 3, 0.4).h(0))
    obs = 0.8 * qjr.Z(0) @ qjr.Z(2) + 0.5 * qjr.X(1) @ qjr.Y(3) - 0.3 * qjr.X(0)
    params, x = np.array([0.3, 1.2]), np.array([0.9])
    return quiet_partition(c), c, obs, params, x


def test_structure_and_list_of_observables(two_cut):
    cc, c, obs, params, x = two_cut
    assert [cut.kind for cut in cc.cuts] == ["wire", "gate"]
    assert cc.cuts[0].wires == (1,) and cc.cuts[1].wires == (0, 3)
    assert cc.overhead == pytest.approx(12.0)
    assert cc.max_fragment_qubits <= 3
    assert cc.n_subexperiments >= len(cc.fragments)
    out = cutting.expval(cc, [obs, qjr.Z(3)], params, x, dtype=C128)
    ref = [expval_ref(c, o, params, x) for o in (obs, qjr.Z(3))]
    np.testing.assert_allclose(out, ref, atol=1e-9)
    jitted = jax.jit(lambda p: cutting.expval(cc, obs, p, x, dtype=C128))(params)
    assert abs(float(jitted) - ref[0]) < 1e-9
    batch = jax.vmap(lambda p: cutting.expval(cc, obs, p, x, dtype=C128))(np.stack([params] * 2))
    np.testing.assert_allclose(batch, [ref[0]] * 2, atol=1e-9)


@pytest.mark.slow
def test_sampling_is_unbiased_with_shrinking_stderr(two_cut):
    cc, c, obs, params, x = two_cut
    exact = expval_ref(c, obs, params, x)
    keys = jax.random.split(jax.random.key(7), 40)
    run = jax.vmap(lambda k: cutting.expval(cc, obs, params, x, dtype=C128, shots=2000, key=k,
                                            return_stderr=True))
    est, err = run(keys)
    mean, sem = float(np.mean(est)), float(np.std(est, ddof=1) / np.sqrt(len(est)))
    assert abs(mean - exact) < 5 * sem
    # the reported standard error matches the spread of independent estimates
    assert 0.7 < float(np.mean(err)) / float(np.std(est, ddof=1)) < 1.4
    gamma = cc.overhead
    assert float(np.max(err)) <= 1.01 * gamma * np.sqrt(0.8**2 + 0.5**2 + 0.3**2) / np.sqrt(2000)
    _, err_big = cutting.expval(cc, obs, params, x, dtype=C128, shots=32000,
                                key=jax.random.key(1), return_stderr=True)
    assert float(np.mean(err)) / float(err_big) == pytest.approx(4.0, rel=0.15)


@pytest.mark.slow
def test_sharded_equals_unsharded(two_cut):
    cc, c, obs, params, x = two_cut
    devices = np.array(jax.devices())
    assert devices.size == 8
    mesh = jax.sharding.Mesh(devices, ("terms",))
    plain = cutting.expval(cc, obs, params, x, dtype=C128)
    sharded = cutting.expval(cc, obs, params, x, dtype=C128, mesh=mesh)
    assert abs(float(sharded) - float(plain)) < 1e-12
    g = jax.grad(lambda p: cutting.expval(cc, obs, p, x, dtype=C128, mesh=mesh))(params)
    g0 = jax.grad(lambda p: cutting.expval(cc, obs, p, x, dtype=C128))(params)
    np.testing.assert_allclose(g, g0, atol=1e-12)


def test_fragment_values_are_physical(two_cut):
    cc, _, obs, params, x = two_cut
    vals = cutting.fragment_values(cc, obs, params, x, dtype=C128)
    axes = cutting.fragment_axes(cc)
    assert len(vals) == len(axes) == len(cc.fragments)
    for v, ax in zip(vals, axes):
        assert v.ndim == len(ax) and v.shape[-1] == len(obs.terms)
        assert float(jnp.max(jnp.abs(v))) <= 1 + 1e-12


EARLY = {
    "idle wire": qjr.Circuit(3).ry(0, qjr.param(0)).cnot(0, 1).rx(1, qjr.inp(0)),
    "cut before the first gate": qjr.Circuit(2).cut(0).ry(0, qjr.param(0)).cnot(0, 1)
    .rx(1, qjr.inp(0)),
    "both": qjr.Circuit(4).cut(1).ry(0, qjr.param(0)).cnot(0, 1).cut(1).rx(1, qjr.inp(0))
    .cz(1, 2).ry(2, qjr.param(1)),
}


@pytest.mark.parametrize("name", sorted(EARLY))
def test_idle_wires_and_early_cuts_reconstruct(name):
    """Fragments without ops (an idle wire; the upstream end of a cut placed before the
    wire's first gate) are |0...0>: exact values, gradients and shot estimates equal the
    dense reference on the uncut circuit, also through find_cuts."""
    c = EARLY[name]
    cc = quiet_partition(c)
    rng = np.random.default_rng(5)
    params, x = rng.uniform(-3, 3, c.n_params), rng.uniform(-3, 3, c.n_inputs)
    obs = [qjr.Z(q) for q in range(c.n_qubits)] + [random_obs(rng, c.n_qubits)]
    got = cutting.expval(cc, obs, params, x, dtype=C128)
    np.testing.assert_allclose(got, [expval_ref(c, o, params, x) for o in obs], atol=1e-10)
    g = jax.grad(lambda p: cutting.expval(cc, obs[-1], p, x, dtype=C128))(jnp.asarray(params))
    np.testing.assert_allclose(g, finite_diff(lambda p: expval_ref(c, obs[-1], p, x), params),
                               atol=1e-7)
    est, err = cutting.expval(cc, obs[-1], params, x, dtype=C128, shots=20000,
                              key=jax.random.key(3), return_stderr=True)
    assert abs(float(est) - expval_ref(c, obs[-1], params, x)) < 5 * float(err)
    for kinds in (("gate",), ("wire",)):
        found = cutting.partition(cutting.find_cuts(c, max_fragment_qubits=max(2, c.n_qubits - 1),
                                                    cut_types=kinds))
        np.testing.assert_allclose(cutting.expval(found, obs, params, x, dtype=C128),
                                   [expval_ref(c, o, params, x) for o in obs], atol=1e-10)


def test_two_wire_cuts_in_a_row_name_the_second_cut():
    with pytest.raises(CutError, match=r"followed by another wire cut on the same qubit \(op 2\)"):
        cutting.partition(qjr.Circuit(2).ry(0, 0.3).cut(0).cut(0).cnot(0, 1))


def test_errors_name_the_value():
    with pytest.raises(CutError, match="qubit 1"):
        cutting.partition(qjr.Circuit(2).h(1).cnot(0, 1).cut(1).h(0))
    bad = qjr.Circuit(3, (qjr.circuit.Op("ccx", (0, 1, 2), cut=True),))
    with pytest.raises(CutError, match="ccx"):
        cutting.partition(bad)
    with pytest.raises(qjr.errors.WireError, match="two-qubit"):
        qjr.Circuit(3).unitary(np.eye(8), (0, 1, 2), cut=True)
    cc = cutting.partition(qjr.Circuit(2).h(0).cut(0).cnot(0, 1))
    with pytest.raises(CutError, match="cut_index 3"):
        cutting.perturb(cc, 3, np.eye(2))
    with pytest.raises(CutError, match="not unitary"):
        cutting.perturb(cc, 0, np.array([[1, 1], [0, 1]]))
    with pytest.raises(qjr.errors.ParameterError, match="shots"):
        cutting.expval(cc, qjr.Z(1), shots=1, key=jax.random.key(0))


@pytest.mark.slow
def test_kak_gate_cuts_reconstruct_exactly_with_gradients():
    """SWAP, iSWAP and a random two-qubit unitary cut through their KAK tables: exact
    reconstruction and gradients equal the uncut dense reference; overhead = product of the
    optimal gammas (7 * 7 * gamma_U); the sampled estimate is within 5 standard errors."""
    from helpers import random_unitary
    from qjaxrob.cutting import qpd
    u = random_unitary(np.random.default_rng(4), 4)
    c = (qjr.Circuit(4).ry(0, qjr.param(0)).ry(1, 0.3).cnot(0, 1).ry(2, 0.5).cnot(2, 3)
         .swap(1, 2, cut=True).unitary(u, (0, 3), cut=True).iswap(1, 2, cut=True)
         .rx(1, qjr.param(1)).cz(0, 1).ry(3, qjr.inp(0)).cnot(3, 2))
    cc = cutting.partition(c)
    assert [cut.kind for cut in cc.cuts] == ["gate"] * 3 and len(cc.fragments) == 2
    assert cc.overhead == pytest.approx(49 * cutting.kak.kak_gamma(u))
    obs = qjr.Z(0) @ qjr.Z(3) + 0.5 * qjr.X(1) @ qjr.Y(2) - 0.2 * qjr.X(0) @ qjr.Y(1) @ qjr.Z(2)
    params, x = np.array([0.3, 1.1]), np.array([0.8])
    ref = expval_ref(c, obs, params, x)
    assert abs(float(cutting.expval(cc, obs, params, x, dtype=C128)) - ref) < 1e-9
    g = jax.grad(lambda p: cutting.expval(cc, obs, p, x, dtype=C128))(jnp.asarray(params))
    np.testing.assert_allclose(g, finite_diff(lambda p: expval_ref(c, obs, p, x), params), atol=1e-7)
    est, err = cutting.expval(cc, obs, params, x, dtype=C128, shots=200000,
                              key=jax.random.key(5), return_stderr=True)
    assert abs(float(est) - ref) < 5 * float(err)


# ---- the fragment interpreter (qjaxrob/cutting/interpret.py) ------------------------------
def interpreter_circuit(seed, constant=False):
    """A random 5-6 qubit circuit in two groups of 2-4 qubits with 2 gate cuts (one at a
    traced angle) and a wire cut, so fragments of 2-4 qubits: constant and traced gates
    before and after the sites (constant prefix head, traced prefix tail, switch over blocks
    after the sites), a Toffoli (3-qubit blocks) in the wide group, X/Y/Z words.
    ``constant``: every angle a random constant instead (parameter-free fragments)."""
    rng = np.random.default_rng(seed)
    fixed = np.random.default_rng(seed + 7).uniform(-np.pi, np.pi, 6)
    if constant:
        qjr_param, qjr_inp = (lambda i: float(fixed[i])), (lambda i: float(fixed[4 + i]))
    else:
        qjr_param, qjr_inp = qjr.param, qjr.inp
    n = int(rng.integers(5, 7))
    split = int(rng.integers(2, n - 2))
    groups = [list(range(split)), list(range(split, n))]
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.ry(q, float(rng.uniform(-3, 3))).rz(q, float(rng.uniform(-3, 3)))
    c = c.rx(0, qjr_param(0)).ry(n - 1, qjr_inp(0) * 1.3 + 0.2)

    def inside(c, k):
        for _ in range(k):
            g = groups[int(rng.integers(2))]
            a, b = (int(w) for w in rng.permutation(g)[:2])
            kind = int(rng.integers(4))
            if kind == 0:
                c = c.cnot(a, b)
            elif kind == 1:
                c = c.crx(a, b, qjr_param(1))
            elif kind == 2:
                c = c.h(a).cz(a, b)
            else:
                c = c.ry(a, qjr_param(2)).s(b)
        return c

    c = inside(c, 3)
    c = c.cz(groups[0][-1], groups[1][0], cut=True)
    c = inside(c, 2)
    wide = max(groups, key=len)
    if len(wide) >= 3:
        c = c.ccx(*wide[:3])
    c = c.cut(groups[1][-1]).cnot(groups[1][-1], groups[1][0])
    c = c.rzz(groups[0][0], groups[1][-1], qjr_param(3), cut=True)
    c = inside(c, 2).ry(groups[0][0], 0.4).rx(groups[1][-1], qjr_inp(1))
    obs = (0.7 * qjr.pauli("Z" * n) + 0.4 * qjr.pauli("X" + "I" * (n - 2) + "Y")
           - 0.3 * qjr.pauli("IY" + "Z" * (n - 3) + "X") + 0.2 * qjr.I(0))
    params, x = rng.uniform(-np.pi, np.pi, 4), rng.uniform(-np.pi, np.pi, 2)
    return c, obs, params, x


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_interpreter_values_and_gradients_match_uncut(seed):
    """Values in both dtypes; the gradient (complex128) along a random direction of
    ``(params, x)`` against central differences of the dense reference."""
    c, obs, params, x = interpreter_circuit(seed)
    cc = quiet_partition(c)
    assert len(cc.cuts) >= 2 and 2 <= cc.max_fragment_qubits <= 4
    ref = expval_ref(c, obs, params, x)
    for dtype, tol in ((C128, 1e-9), (jnp.complex64, 2e-5)):
        real = np.float64 if dtype == C128 else np.float32
        got = cutting.expval(cc, obs, params.astype(real), x.astype(real), dtype=dtype)
        assert abs(float(got) - ref) < tol, (dtype, float(got), ref)
    gp, gx = jax.grad(lambda p, xx: cutting.expval(cc, obs, p, xx, dtype=C128),
                      argnums=(0, 1))(jnp.asarray(params), jnp.asarray(x))
    rng = np.random.default_rng(seed + 100)
    dp, dx = rng.normal(size=params.shape), rng.normal(size=x.shape)
    h = 1e-5
    fd = (expval_ref(c, obs, params + h * dp, x + h * dx)
          - expval_ref(c, obs, params - h * dp, x - h * dx)) / (2 * h)
    assert abs(float(gp @ dp + gx @ dx) - fd) < 1e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_parameter_free_fragments_match_uncut_and_compile_no_fragment_runs(seed):
    """Parameter-free fragments are evaluated in NumPy at trace time (no scan left in the
    traced program); values in both dtypes equal the dense reference on the uncut circuit
    and the interpreter's traced run of the same circuit with the angles as parameters."""
    c, obs, _, _ = interpreter_circuit(seed, constant=True)
    traced, _, _, _ = interpreter_circuit(seed)
    fixed = np.random.default_rng(seed + 7).uniform(-np.pi, np.pi, 6)
    cc, cc_traced = quiet_partition(c), quiet_partition(traced)
    assert c.n_params == c.n_inputs == 0 and len(cc.cuts) >= 2
    ref = expval_ref(c, obs)
    for dtype, tol in ((C128, 1e-9), (jnp.complex64, 2e-5)):
        real = np.float64 if dtype == C128 else np.float32
        got = cutting.expval(cc, obs, dtype=dtype)
        other = cutting.expval(cc_traced, obs, fixed[:4].astype(real), fixed[4:].astype(real),
                               dtype=dtype)
        assert abs(float(got) - ref) < tol and abs(float(other) - ref) < tol, (dtype, got, ref)
        assert got.dtype == real
    jaxpr = str(jax.make_jaxpr(lambda: cutting.expval(cc, obs, dtype=C128))())
    assert "scan" not in jaxpr and "scan" in str(
        jax.make_jaxpr(lambda p, x: cutting.expval(cc_traced, obs, p, x, dtype=C128))(
            fixed[:4], fixed[4:]))


@pytest.mark.parametrize("where", ["first", "last", "single-qubit fragments"])
def test_interpreter_site_placement(where):
    """Sites at the very start of a fragment (no shared prefix), at its very end (no gate
    after them) and one-qubit fragments (1-qubit blocks) reconstruct the uncut value."""
    if where == "first":
        c = (qjr.Circuit(3).cz(0, 1, cut=True).ry(0, qjr.param(0)).cnot(0, 2).ry(1, 0.3)
             .rx(2, qjr.param(1)))
    elif where == "last":
        c = (qjr.Circuit(3).ry(0, qjr.param(0)).h(2).cnot(0, 2).ry(1, 0.3)
             .rx(2, qjr.param(1)).cnot(2, 1, cut=True))
    else:
        c = qjr.Circuit(2).ry(0, qjr.param(0)).ry(1, 0.7).cz(0, 1, cut=True).rx(1, qjr.param(1))
    obs = qjr.Z(0) @ qjr.Z(1) + 0.5 * qjr.Y(0) @ qjr.X(1) - 0.25 * qjr.X(1)
    cc = quiet_partition(c)
    params = np.array([0.4, -1.1])
    got = cutting.expval(cc, obs, params, dtype=C128)
    assert abs(float(got) - expval_ref(c, obs, params)) < 1e-9
