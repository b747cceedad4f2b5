"""Every gate's matrix against its definition (tests/reference.py), and wire order."""

import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.gates import GATES, gate_diagonal
from reference import gate_matrix_ref, statevector_ref

DTYPES = [(jnp.complex128, 1e-12), (jnp.complex64, 1e-6)]


@pytest.mark.parametrize("name", sorted(GATES))
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_gate_matrix_matches_definition(name, dtype, tol, rng):
    spec = GATES[name]
    for _ in range(3):
        angles = rng.uniform(-2 * np.pi, 2 * np.pi, spec.n_angles)
        got = np.asarray(qjr.gate_matrix(name, angles, dtype))
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, gate_matrix_ref(name, angles), atol=tol)
        dim = 2**spec.n_wires
        np.testing.assert_allclose(got.conj().T @ got, np.eye(dim), atol=10 * tol)


@pytest.mark.parametrize("name", sorted(n for n, s in GATES.items() if s.kind == "diagonal"))
def test_diagonal_gates_diagonal_equals_matrix_diagonal(name, rng):
    angles = rng.uniform(-3, 3, GATES[name].n_angles)
    m = np.asarray(qjr.gate_matrix(name, angles, jnp.complex128))
    d = np.asarray(gate_diagonal(name, angles, jnp.complex128))
    np.testing.assert_allclose(np.diag(d), m, atol=1e-14)


def test_definitions_rotations_and_sx():
    t = 0.7
    np.testing.assert_allclose(
        np.asarray(qjr.gate_matrix("rx", [t], jnp.complex128)),
        np.cos(t / 2) * np.eye(2) - 1j * np.sin(t / 2) * np.array([[0, 1], [1, 0]]),
        atol=1e-14,
    )
    sx = np.asarray(qjr.gate_matrix("sx", [], jnp.complex128))
    np.testing.assert_allclose(sx @ sx, [[0, 1], [1, 0]], atol=1e-14)
    np.testing.assert_allclose(
        np.asarray(qjr.gate_matrix("phase", [t], jnp.complex128)), np.diag([1, np.exp(1j * t)])
    )


def test_wire_zero_is_most_significant_bit():
    # X on wire 0 of 3 qubits: |000> -> |100>, basis index 4.
    psi = np.asarray(qjr.statevector(qjr.Circuit(3).x(0), dtype=jnp.complex128))
    assert np.argmax(np.abs(psi)) == 4
    psi = np.asarray(qjr.statevector(qjr.Circuit(3).x(2), dtype=jnp.complex128))
    assert np.argmax(np.abs(psi)) == 1


def test_first_wire_controls_and_matrix_msb_is_first_wire():
    # cnot(2, 0) with wire 2 set flips wire 0: |001> -> |101> (index 1 -> 5).
    psi = np.asarray(qjr.statevector(qjr.Circuit(3).x(2).cnot(2, 0), dtype=jnp.complex128))
    assert np.argmax(np.abs(psi)) == 5
    # A unitary's first listed wire is the MSB of its matrix index.
    u = np.kron(np.array([[0, 1], [1, 0]]), np.eye(2))  # X on its first wire
    psi = np.asarray(qjr.statevector(qjr.Circuit(3).unitary(u, (2, 1)), dtype=jnp.complex128))
    assert np.argmax(np.abs(psi)) == 1


@pytest.mark.parametrize("name", sorted(n for n, s in GATES.items() if s.n_wires >= 2))
def test_multi_qubit_gates_on_reversed_and_gapped_wires(name, rng):
    spec = GATES[name]
    n = 4
    wires = tuple(int(w) for w in rng.permutation(n)[: spec.n_wires])[::-1]
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.ry(q, float(rng.uniform(0, 3))).rz(q, float(rng.uniform(0, 3)))
    c = c.gate(name, wires, *rng.uniform(-3, 3, spec.n_angles))
    got = np.asarray(qjr.statevector(c, dtype=jnp.complex128))
    np.testing.assert_allclose(got, statevector_ref(c), atol=1e-12)
