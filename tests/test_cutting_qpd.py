"""QPD tables: each table summed reproduces its channel as a Choi matrix (target built by the
independent reference in tests/reference.py), and gamma matches the literature."""

import numpy as np
import pytest

from qjaxrob.cutting import kak, qpd

C128 = np.complex128
from reference import gate_matrix_ref


def choi_of_unitary(u):
    d = u.shape[0]
    out = np.zeros((d * d, d * d), complex)
    for i in range(d):
        for j in range(d):
            e = np.zeros((d, d))
            e[i, j] = 1
            out += np.kron(e, u @ e @ u.conj().T)
    return out


def test_peng_wire_cut_is_identity_with_gamma_4():
    t = qpd.wire_table(C128)
    assert np.abs(qpd.choi(t, "wire") - choi_of_unitary(np.eye(2))).max() < 1e-12
    assert float(t.gamma) == pytest.approx(4.0)
    assert np.count_nonzero(np.asarray(t.coeffs)) == 8  # Peng's 8 terms
    assert sorted(np.abs(np.asarray(t.coeffs)[np.asarray(t.coeffs) != 0])) == [0.5] * 8


def test_locc_wire_cut_is_identity_with_gamma_3():
    t = qpd.locc_wire_table(C128)
    assert np.abs(qpd.choi(t, "wire") - choi_of_unitary(np.eye(2))).max() < 1e-12
    c = np.asarray(t.coeffs)
    # channel-level one-norm: per basis P, a kept (2/3) and a flipped (-1/3) re-preparation
    per_basis = [abs(c[2 * p, 2 * p]) + abs(c[2 * p, 2 * p + 1]) for p in range(3)]
    assert sum(per_basis) == pytest.approx(3.0)


FIXED = ["cz", "cnot", "cy"]


@pytest.mark.parametrize("name", qpd.GATE_CUTS)
@pytest.mark.parametrize("theta", [0.0, 0.37, -1.3, np.pi / 2, 2.9, np.pi])
def test_gate_tables_reproduce_the_gate(name, theta):
    angles = [] if name in FIXED else [theta]
    target = choi_of_unitary(gate_matrix_ref(name, angles))
    t = qpd.gate_table(name, theta, C128)
    assert np.abs(qpd.choi(t) - target).max() < 1e-12
    if name in FIXED:
        expected = 3.0
    elif name in ("rzz", "rxx", "ryy"):
        expected = 1 + 2 * abs(np.sin(theta))  # Mitarai-Fujii
    else:
        expected = 1 + 2 * abs(np.sin(theta / 2))
    assert float(t.gamma) == pytest.approx(expected, abs=1e-12)
    assert float(qpd.gate_gamma(name, theta)) == pytest.approx(expected, abs=1e-12)
    assert qpd.gate_gamma_bound(name) >= expected - 1e-12


def test_constant_tables_are_numpy_and_equal_the_traced_ones():
    """A constant angle gives NumPy arrays (embedded as constants by a jitted caller); a
    traced angle builds the same table with jax.numpy."""
    import jax

    theta = 0.83
    fields = ("coeffs", "kraus_a", "signs_a", "kraus_b", "signs_b")
    traced = jax.jit(lambda t: [[getattr(qpd.gate_table(name, t, C128), f) for f in fields]
                                for name in qpd.GATE_CUTS])(np.float64(theta))
    for name, tt in zip(qpd.GATE_CUTS, traced):
        t = qpd.gate_table(name, theta, C128)
        assert isinstance(t.kraus_a, np.ndarray) and isinstance(t.coeffs, np.ndarray)
        assert t.kraus_a.dtype == C128 and t.coeffs.dtype == np.float64
        for f, b in zip(fields, tt):
            np.testing.assert_allclose(np.asarray(b), getattr(t, f), atol=1e-14)
    for t in (qpd.wire_table(np.complex64), qpd.kak_table(np.eye(4)[[0, 2, 1, 3]], np.complex64)):
        assert isinstance(t.kraus_b, np.ndarray) and t.kraus_b.dtype == np.complex64


def test_rzz_coefficients_match_the_anchor_print():
    """qiskit-addon-cutting's RZZ(0.3) coefficients printed in CUTTING.md section 3.1."""
    c = np.asarray(qpd.gate_table("rzz", 0.3).coeffs)
    nz = sorted(c[c != 0].round(4))
    assert nz == sorted([0.9777, 0.0223, 0.1478, -0.1478, 0.1478, -0.1478])


# ---- general two-qubit gates through KAK (optimal gamma) ------------------------------------
def _rzz(theta):
    return np.diag(np.exp(-0.5j * theta * np.array([1, -1, -1, 1])))


KAK_CASES = {  # (matrix, literature gamma: CUTTING.md section 3.3 overhead table)
    "swap": (gate_matrix_ref("swap", []), 7.0),
    "iswap": (gate_matrix_ref("iswap", []), 7.0),
    "cz": (gate_matrix_ref("cz", []), 3.0),
    "cs": (np.diag([1, 1, 1, 1j]), 1 + np.sqrt(2)),
    "rzz(0.7)": (_rzz(0.7), 1 + 2 * abs(np.sin(0.7))),
    "local": (np.kron(gate_matrix_ref("h", []), gate_matrix_ref("rx", [0.4])), 1.0),
}


@pytest.mark.parametrize("name", list(KAK_CASES))
def test_kak_tables_reproduce_the_gate_at_the_literature_gamma(name):
    u, gamma = KAK_CASES[name]
    t = qpd.kak_table(u, C128)
    assert np.abs(qpd.choi(t) - choi_of_unitary(u)).max() < 1e-10
    assert float(t.gamma) == pytest.approx(gamma, abs=1e-9)
    assert kak.kak_gamma(u) == pytest.approx(gamma, abs=1e-9)


def test_kak_random_unitaries_match_qiskit_weyl_coordinates():
    """Random 4x4 unitaries: the table is an exact Choi identity, its gamma is
    2 (sum |u_a|)^2 - 1 with u_a from qiskit's independent Weyl decomposition, and the
    anchor's two printed optima (CUTTING.md 3.3) are reproduced."""
    qi = pytest.importorskip("qiskit.quantum_info")
    from qiskit.synthesis import TwoQubitWeylDecomposition
    for seed, anchor in ((1, 6.479), (2, 2.828), (5, None), (9, None)):
        u = qi.random_unitary(4, seed=seed).data
        t = qpd.kak_table(u, C128)
        assert np.abs(qpd.choi(t) - choi_of_unitary(u)).max() < 1e-10
        w = TwoQubitWeylDecomposition(u)
        a, b, c = w.a, w.b, w.c
        ca, cb, cc_, sa, sb, sc = np.cos(a), np.cos(b), np.cos(c), np.sin(a), np.sin(b), np.sin(c)
        # exp(i(a XX + b YY + c ZZ)) = sum_alpha u_alpha P_alpha P_alpha (Mitarai-Fujii Eq. 6)
        u_alpha = [ca * cb * cc_ + 1j * sa * sb * sc, ca * sb * sc + 1j * sa * cb * cc_,
                   sa * cb * sc + 1j * ca * sb * cc_, sa * sb * cc_ + 1j * ca * cb * sc]
        expected = 2 * np.sum(np.abs(u_alpha)) ** 2 - 1
        assert float(t.gamma) == pytest.approx(expected, abs=1e-9)
        if anchor is not None:
            assert float(t.gamma) == pytest.approx(anchor, abs=1e-3)
    # the decomposition itself: u = phase * (a1 (x) a2) N (b1 (x) b2)
    u = qi.random_unitary(4, seed=3).data
    a1, a2, coeffs, b1, b2 = kak.kak(u)
    paulis = [np.eye(2), [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], np.diag([1, -1])]
    core = sum(cf * np.kron(p, p) for cf, p in zip(coeffs, np.asarray(paulis, complex)))
    v = np.kron(a1, a2) @ core @ np.kron(b1, b2)
    phase = np.vdot(v.ravel(), u.ravel()) / 4
    assert abs(abs(phase) - 1) < 1e-9 and np.abs(phase * v - u).max() < 1e-9


def test_tables_default_to_complex64_like_every_simulation_function():
    for t in (qpd.wire_table(), qpd.locc_wire_table(), qpd.gate_table("cz"),
              qpd.kak_table(np.eye(4)[[0, 2, 1, 3]])):
        assert t.kraus_a.dtype == np.complex64 and t.coeffs.dtype == np.float32
