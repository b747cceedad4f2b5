"""find_cuts budgets and exactness; perturbations equal the uncut circuit with V inserted
(dense NumPy reference); term-dependent perturbations equal the non-CP map they induce."""

import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob import cutting
from qjaxrob.cutting import qpd
from qjaxrob.errors import CutError
from helpers import random_unitary
from reference import expval_ref, observable_matrix, op_unitary, statevector_ref

C128 = jnp.complex128


def layered(n, layers, pairs):
    c = qjr.Circuit(n)
    k = 0
    for layer in range(layers):
        for q in range(n):
            c, k = c.ry(q, qjr.param(k)), k + 1
        for a, b in pairs(layer):
            c = c.cz(a, b) if (a + layer) % 2 else c.rzz(a, b, qjr.param(k))
            k += (a + layer) % 2 == 0
    return c


SHAPES = {
    "chain": lambda n: layered(n, 2, lambda _: [(q, q + 1) for q in range(n - 1)]),
    "ring": lambda n: layered(n, 2, lambda _: [(q, (q + 1) % n) for q in range(n)]),
    "brick": lambda n: layered(n, 3, lambda l: [(q, q + 1) for q in range(l % 2, n - 1, 2)]),
}


@pytest.mark.parametrize("shape,n,k", [("chain", 5, 3), ("ring", 6, 3), ("brick", 6, 4)])
def test_find_cuts_respects_budget_and_reconstructs(shape, n, k):
    c = SHAPES[shape](n)
    cc = cutting.partition(cutting.find_cuts(c, max_fragment_qubits=k))
    assert cc.max_fragment_qubits <= k and len(cc.fragments) >= 2
    assert all(cut.kind == "gate" for cut in cc.cuts)
    # a contiguous blocking is optimal for these nearest-neighbour circuits
    crossing = {"chain": 2, "ring": 4, "brick": 1}[shape]
    assert len(cc.cuts) <= crossing
    rng = np.random.default_rng(3)
    params = rng.uniform(-np.pi, np.pi, c.n_params)
    obs = qjr.Z(0) @ qjr.Z(n - 1) + 0.5 * qjr.X(1) @ qjr.Y(n - 2)
    got = cutting.expval(cc, obs, params, dtype=C128)
    assert abs(float(got) - expval_ref(c, obs, params)) < 1e-9


def test_find_cuts_errors():
    c = qjr.Circuit(4).h(0).ccx(0, 1, 2).cnot(2, 3)
    with pytest.raises(CutError, match="ccx"):
        cutting.find_cuts(c, max_fragment_qubits=2)
    with pytest.raises(CutError, match="max_fragment_qubits"):
        cutting.find_cuts(c, max_fragment_qubits=0)
    assert cutting.find_cuts(c, max_fragment_qubits=4) == c


@pytest.fixture(scope="module")
def circuits():
    rng = np.random.default_rng(11)
    ua, ub = random_unitary(rng, 4), random_unitary(rng, 4)
    wire = (qjr.Circuit(3).unitary(ua, (0, 1)), qjr.Circuit(3).unitary(ub, (1, 2)))
    gate = (qjr.Circuit(4).unitary(ua, (0, 1)).unitary(ub, (2, 3)),
            qjr.Circuit(4).ry(2, 0.4).cnot(2, 3).rx(0, 0.3).cnot(1, 0))
    return rng, wire, gate


def test_uniform_wire_perturbation_is_a_gate_at_the_cut(circuits):
    rng, (a, b), _ = circuits
    cc = cutting.partition(a + qjr.Circuit(3).cut(1) + b)
    v = random_unitary(rng, 2)
    obs = qjr.Z(0) @ qjr.Z(2) + 0.7 * qjr.X(0) @ qjr.Y(2) - 0.2 * qjr.X(1)
    ref = expval_ref(a + qjr.Circuit(3).unitary(v, 1) + b, obs)
    assert abs(float(cutting.expval(cutting.perturb(cc, 0, v), obs, dtype=C128)) - ref) < 1e-9
    assert abs(float(cutting.expval(cc, obs, dtype=C128)) - expval_ref(a + b, obs)) < 1e-9
    # a parametrised 1-qubit circuit works too, and gradients flow through it
    vc = qjr.Circuit(1).ry(0, qjr.param(0))
    got = cutting.expval(cutting.perturb(cc, 0, vc), obs, np.array([0.3]), dtype=C128)
    ref = expval_ref(a + qjr.Circuit(3).ry(1, 0.3) + b, obs)
    assert abs(float(got) - ref) < 1e-9


def test_gate_cut_perturbation_and_insert(circuits):
    rng, _, (a, b) = circuits
    cc = cutting.partition(a + qjr.Circuit(4).cz(1, 2, cut=True) + b)
    v = random_unitary(rng, 2)
    obs = qjr.Z(0) @ qjr.X(3) + qjr.Y(1) @ qjr.Z(2)
    ref = expval_ref(a + qjr.Circuit(4).cz(1, 2).unitary(v, 2) + b, obs)
    assert abs(float(cutting.expval(cutting.perturb(cc, 0, v), obs, dtype=C128)) - ref) < 1e-9
    # insert W at the very start of the fragment holding wires 0, 1 (local wire 0)
    w = random_unitary(rng, 2)
    f = cc.cuts[0].fragments[0]
    ref = expval_ref(qjr.Circuit(4).unitary(w, 0) + a + qjr.Circuit(4).cz(1, 2) + b, obs)
    got = cutting.expval(cutting.insert(cc, f, 0, w, 0), obs, dtype=C128)
    assert abs(float(got) - ref) < 1e-9
    with pytest.raises(CutError, match="position 99"):
        cutting.insert(cc, f, 99, w, 0)


def test_term_dependent_perturbation_matches_its_non_cp_map(circuits):
    rng, (a, b), _ = circuits
    cc = cutting.partition(a + qjr.Circuit(3).cut(1) + b)
    vs = np.stack([random_unitary(rng, 2) for _ in range(6)])
    # reference: Lambda'(rho) = sum_i c_i Tr(O_i rho) V_i rho_i V_i^+ on the cut wire,
    # written from Peng's table (CUTTING.md 2.1), applied to the dense uncut state
    paulis = {"I": np.eye(2), "X": np.array([[0, 1], [1, 0]]),
              "Y": np.array([[0, -1j], [1j, 0]]), "Z": np.diag([1, -1])}
    kets = {"0": [1, 0], "1": [0, 1], "+": [1, 1], "-": [1, -1], "+i": [1, 1j], "-i": [1, -1j]}
    peng = [("I", "0", .5), ("I", "1", .5), ("X", "+", .5), ("X", "-", -.5),
            ("Y", "+i", .5), ("Y", "-i", -.5), ("Z", "0", .5), ("Z", "1", -.5)]
    psi = statevector_ref(a).reshape(2, 2, 2)
    rho = np.einsum("abc,def->abcdef", psi, psi.conj())
    out = 0
    for m, s, coef in peng:
        k = np.asarray(kets[s], complex)
        k = vs[qpd.WIRE_PREPARE.index(s)] @ (k / np.linalg.norm(k))
        reduced = np.einsum("abcdef,eb->acdf", rho, paulis[m])  # Tr_cut[(O_i on cut) rho]
        out = out + coef * np.einsum("acdf,be->abcdef", reduced, np.outer(k, k.conj()))
    u = np.eye(8)
    for op in b.ops:
        u = op_unitary(op, None, None, 3) @ u
    rho2 = u @ out.reshape(8, 8) @ u.conj().T
    obs = qjr.Z(0) @ qjr.Z(2) + qjr.X(0) @ qjr.X(2)
    ref = float(np.real(np.trace(observable_matrix(obs, 3) @ rho2)))
    cp = cutting.perturb(cc, 0, vs)
    assert abs(float(cutting.expval(cp, obs, dtype=C128)) - ref) < 1e-9
    for g in cutting.fragment_values(cp, obs, dtype=C128):
        assert float(jnp.max(jnp.abs(g))) <= 1 + 1e-12
    with pytest.raises(CutError, match="6 unitaries"):
        cutting.perturb(cc, 0, vs[:5])


def staircase(n, reps=3):
    """Each qubit q talks to q-1 several times, then to q+1: one wire cut per boundary beats
    cutting every gate across it."""
    c = qjr.Circuit(n)
    k = 0
    for q in range(n - 1):
        for _ in range(reps):
            c, k = c.ry(q, qjr.param(k)).ry(q + 1, qjr.param(k + 1)).cz(q, q + 1), k + 2
    return c


WIRE_CASES = [("chain", 5, 3, ("wire",)), ("brick", 6, 4, ("wire",)),
              ("ring", 5, 3, ("gate", "wire")), ("staircase", 4, 2, ("gate", "wire"))]


@pytest.mark.parametrize("shape,n,k,kinds", WIRE_CASES)
def test_find_cuts_with_wire_cuts_respects_budget_and_reconstructs(shape, n, k, kinds):
    c = staircase(n) if shape == "staircase" else SHAPES[shape](n)
    marked = cutting.find_cuts(c, max_fragment_qubits=k, cut_types=kinds)
    cc = cutting.partition(marked)
    assert cc.max_fragment_qubits <= k and len(cc.fragments) >= 2
    if kinds == ("wire",):
        assert cc.cuts and all(cut.kind == "wire" for cut in cc.cuts)
    gate_only = cutting.partition(cutting.find_cuts(c, max_fragment_qubits=k))
    assert cc.overhead <= gate_only.overhead + 1e-9 or kinds == ("wire",)
    if shape == "staircase":  # one wire cut (gamma 4) per boundary instead of 3^reps
        assert [cut.kind for cut in cc.cuts] == ["wire"] * (len(cc.fragments) - 1)
        assert cc.overhead == pytest.approx(4.0 ** len(cc.cuts))
        assert cc.overhead < gate_only.overhead
    rng = np.random.default_rng(5)
    params = rng.uniform(-np.pi, np.pi, c.n_params)
    obs = qjr.Z(0) @ qjr.Z(n - 1) + 0.5 * qjr.X(1) @ qjr.Y(n - 2) - 0.3 * qjr.Y(n // 2)
    got = cutting.expval(cc, obs, params, dtype=C128)
    assert abs(float(got) - expval_ref(c, obs, params)) < 1e-9


def test_find_cuts_wire_cuts_handle_uncuttable_gates():
    """Three-qubit gates cannot be gate-cut; a wire cut between them fits k = 3."""
    c = qjr.Circuit(5).ry(0, 0.3).h(1).ccx(0, 1, 2).ry(2, 0.4).ccx(2, 3, 4).rx(4, 0.2)
    with pytest.raises(CutError, match="ccx"):
        cutting.find_cuts(c, max_fragment_qubits=3)
    cc = cutting.partition(cutting.find_cuts(c, max_fragment_qubits=3, cut_types=("gate", "wire")))
    assert [cut.kind for cut in cc.cuts] == ["wire"] and cc.max_fragment_qubits <= 3
    obs = qjr.Z(0) @ qjr.Z(4) + qjr.X(2) @ qjr.Z(3)
    assert abs(float(cutting.expval(cc, obs, dtype=C128)) - expval_ref(c, obs)) < 1e-9
    with pytest.raises(CutError, match="ccx"):
        cutting.find_cuts(c, max_fragment_qubits=2, cut_types=("gate", "wire"))
    with pytest.raises(CutError, match="cut_types"):
        cutting.find_cuts(c, max_fragment_qubits=3, cut_types=("teleport",))
