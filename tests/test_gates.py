"""Every gate's matrix against its definition (tests/reference.py), wire order, the trig
forms fusion builds blocks from, and the dense kernel's values and derivatives (first and
second order, under vmap) against a tensordot reference."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.ir.gates import GATES, gate_diagonal
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


@pytest.mark.parametrize("name", sorted(n for n, s in GATES.items() if s.trig is not None))
def test_trig_form_equals_matrix(name, rng):
    """``GateSpec.trig``: matrix(t) = A + cos(w t) B + sin(w t) C (used by fusion)."""
    w, a, b, c = GATES[name].trig
    for t in rng.uniform(-7, 7, 4):
        np.testing.assert_allclose(a + np.cos(w * t) * b + np.sin(w * t) * c,
                                   gate_matrix_ref(name, [t]), atol=1e-14)


# ---- the dense kernel (slice-and-combine primitive) against a tensordot reference ----
def _tensordot_apply(state, m, wires):
    k = len(wires)
    out = jnp.tensordot(m.reshape((2,) * (2 * k)), state, axes=(tuple(range(k, 2 * k)), wires))
    return jnp.moveaxis(out, tuple(range(k)), wires)


def _random_complex(rng, shape):
    return rng.normal(size=shape) + 1j * rng.normal(size=shape)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("wires", [(3, 1), (0, 3, 1)])
def test_dense_kernel_values_gradients_and_hessian(dtype, tol, wires, rng):
    from qjaxrob.kernels import apply_matrix
    from reference import embed

    n, k = 4, len(wires)
    s0, s1 = (jnp.asarray(_random_complex(rng, (2,) * n), dtype) for _ in range(2))
    m0, m1, m2 = (jnp.asarray(_random_complex(rng, (2**k, 2**k)), dtype) for _ in range(3))
    weights = jnp.asarray(rng.uniform(size=(2,) * n), jnp.finfo(dtype).dtype)
    got = apply_matrix(s0, m0, wires)
    ref = embed(np.asarray(m0, complex), wires, n) @ np.asarray(s0, complex).reshape(-1)
    np.testing.assert_allclose(np.asarray(got).reshape(-1), ref, atol=50 * tol)

    @partial(jax.jit, static_argnums=1)
    def derivatives(theta, kernel):  # of a real scalar along random directions
        def loss(t):
            s = s0 + t[0].astype(dtype) * s1
            m = m0 + t[1].astype(dtype) * m1 + 1j * t[2].astype(dtype) * m2
            y = kernel(s, m, wires)
            return jnp.sum(weights * jnp.abs(y) ** 2) + jnp.real(jnp.sum(y * s1))

        return jax.grad(loss)(theta), jax.hessian(loss)(theta)

    theta = jnp.asarray([0.3, -0.2, 0.5], jnp.finfo(dtype).dtype)
    for a, b in zip(derivatives(theta, apply_matrix), derivatives(theta, _tensordot_apply)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=100 * tol, atol=100 * tol)


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_dense_kernel_under_vmap(dtype, tol, rng):
    """Batched states, batched matrices (per example) and both, values and gradients."""
    from qjaxrob.kernels import apply_matrix

    n, wires, batch = 3, (2, 0), 3
    states = jnp.asarray(_random_complex(rng, (batch,) + (2,) * n), dtype)
    mats = jnp.asarray(_random_complex(rng, (batch, 4, 4)), dtype)
    cases = [((0, None), (states, mats[0])), ((None, 0), (states[0], mats)),
             ((0, 0), (states, mats)), ((1, 0), (jnp.moveaxis(states, 0, 1), mats))]

    @partial(jax.jit, static_argnums=(2, 3))
    def value_and_grads(s, m, kernel, axes):
        def total(s, m):
            y = jax.vmap(lambda a, b: kernel(a, b, wires), in_axes=axes)(s, m)
            ramp = jnp.arange(1, y.size + 1, dtype=jnp.finfo(dtype).dtype).reshape(y.shape)
            return jnp.sum(jnp.abs(y) ** 2 * ramp), y

        return jax.grad(total, argnums=(0, 1), has_aux=True)(s, m)

    for axes, args in cases:
        (ga, ya), (gb, yb) = (value_and_grads(*args, kern, axes)
                              for kern in (apply_matrix, _tensordot_apply))
        np.testing.assert_allclose(np.asarray(ya), np.asarray(yb), atol=50 * tol)
        for a, b in zip(ga, gb):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=100 * tol,
                                       atol=100 * tol)


@pytest.mark.parametrize("name,angles", [("rx", ()), ("u3", (0.1, 0.2)), ("h", (0.3,)),
                                         ("rzz", [])])
def test_gate_matrix_with_the_wrong_number_of_angles_names_the_gate(name, angles):
    n = qjr.GATES[name].n_angles
    with pytest.raises(qjr.errors.ParameterError, match=f"gate '{name}' takes {n} angle"):
        qjr.gate_matrix(name, angles)
    if qjr.GATES[name].diag_fn is not None:
        with pytest.raises(qjr.errors.ParameterError, match=f"gate '{name}' takes {n} angle"):
            gate_diagonal(name, angles)


@pytest.mark.parametrize("x64", [False, True])
def test_gate_matrix_follows_the_enabled_precision(x64, rng):
    """Without ``dtype`` the matrix is complex128 when x64 is on, complex64 otherwise;
    an explicit ``dtype`` wins; values equal the reference in both."""
    t = float(rng.uniform(-3, 3))
    with jax.enable_x64(x64):
        m = qjr.gate_matrix("ry", [t])
        assert m.dtype == (jnp.complex128 if x64 else jnp.complex64)
        np.testing.assert_allclose(np.asarray(m), gate_matrix_ref("ry", [t]),
                                   atol=1e-14 if x64 else 1e-6)
        assert qjr.gate_matrix("cnot").dtype == m.dtype
        assert qjr.gate_matrix("rz", t, jnp.complex64).dtype == jnp.complex64


@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_parity_sign_table_static_traced_and_grouped_agree_with_kron(n, dtype, rng):
    """The one Z-mask sign table (kernels.pauli): NumPy ``sign_table``, traced
    ``parity_signs`` and the grouped ``z_expval`` all equal the diagonal of the Kronecker
    product of Z (on the mask's wires, wire 0 the most significant bit) and I."""
    from qjaxrob.kernels import parity_signs, sign_table, z_expval

    masks = rng.integers(0, 2**n, size=4)
    p = rng.uniform(0, 1, 2**n)
    table = sign_table(masks, n)
    traced = parity_signs(jnp.arange(2**n)[None, :], jnp.asarray(masks)[:, None], dtype)
    np.testing.assert_array_equal(np.asarray(traced), table)
    for mask, row in zip(masks, table):
        wires = [w for w in range(n) if (int(mask) >> (n - 1 - w)) & 1]
        diag = np.ones(1)
        for w in range(n):
            diag = np.kron(diag, [1, -1] if w in wires else [1, 1])
        np.testing.assert_array_equal(row, diag)
        got = z_expval(jnp.asarray(p, dtype).reshape((2,) * n), wires)
        np.testing.assert_allclose(got, diag @ p, rtol=1e-12 if dtype == jnp.float64 else 1e-5)
