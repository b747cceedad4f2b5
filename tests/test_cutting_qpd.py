"""QPD tables: each table summed reproduces its channel as a Choi matrix (target built by the
independent reference in tests/reference.py), and gamma matches the literature."""

import numpy as np
import pytest

from qjaxrob.cutting import qpd
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
    t = qpd.wire_table()
    assert np.abs(qpd.choi(t, "wire") - choi_of_unitary(np.eye(2))).max() < 1e-12
    assert float(t.gamma) == pytest.approx(4.0)
    assert np.count_nonzero(np.asarray(t.coeffs)) == 8  # Peng's 8 terms
    assert sorted(np.abs(np.asarray(t.coeffs)[np.asarray(t.coeffs) != 0])) == [0.5] * 8


def test_locc_wire_cut_is_identity_with_gamma_3():
    t = qpd.locc_wire_table()
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
    t = qpd.gate_table(name, theta)
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


def test_rzz_coefficients_match_the_anchor_print():
    """qiskit-addon-cutting's RZZ(0.3) coefficients printed in CUTTING.md section 3.1."""
    c = np.asarray(qpd.gate_table("rzz", 0.3).coeffs)
    nz = sorted(c[c != 0].round(4))
    assert nz == sorted([0.9777, 0.0223, 0.1478, -0.1478, 0.1478, -0.1478])
