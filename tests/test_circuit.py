"""The circuit IR: immutability, hashing, angle bookkeeping, composition, repeat."""

import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.ir.circuit import Repeat
from reference import statevector_ref


def test_builders_return_new_frozen_circuits():
    c0 = qjr.Circuit(2)
    c1 = c0.h(0)
    assert c0.ops == () and len(c1.ops) == 1
    with pytest.raises(AttributeError):
        c1.n_qubits = 3


def test_equal_circuits_hash_equal_and_work_as_dict_keys():
    a = qjr.Circuit(2).h(0).rx(1, qjr.param(0) * 2.0 + 0.1)
    b = qjr.Circuit(2).h(0).rx(1, qjr.param(0) * 2.0 + 0.1)
    c = qjr.Circuit(2).h(0).rx(1, qjr.param(0) * 2.0 + 0.2)
    assert a == b and hash(a) == hash(b) and a != c
    assert {a: 1}[b] == 1
    u = np.eye(2)
    assert qjr.Circuit(1).unitary(u, 0) == qjr.Circuit(1).unitary(u.copy(), 0)


def test_n_params_and_n_inputs():
    c = qjr.Circuit(3).ry(0, qjr.param(4)).rx(1, qjr.inp(2) * 3.0).rz(2, 0.5)
    assert (c.n_params, c.n_inputs) == (5, 3)
    assert (qjr.Circuit(1).h(0).n_params, qjr.Circuit(1).h(0).n_inputs) == (0, 0)


def test_affine_angles_compose():
    a = (qjr.inp(0) * 2.0 + 0.5) * 3.0 - 1.0
    assert (a.source, a.index, a.scale, a.offset) == ("inp", 0, 6.0, 0.5)
    b = 1.0 - qjr.param(1) / 2
    assert (b.source, b.index, b.scale, b.offset) == ("param", 1, -0.5, 1.0)
    c = qjr.Circuit(1).rx(0, b)
    psi = qjr.statevector(c, jnp.array([0.0, 0.8]), dtype=jnp.complex128)
    np.testing.assert_allclose(psi, statevector_ref(qjr.Circuit(1).rx(0, 0.6)), atol=1e-14)


def test_concatenation():
    a = qjr.Circuit(2).h(0)
    b = qjr.Circuit(2).cnot(0, 1)
    assert (a + b).ops == a.ops + b.ops


def test_repeat_offsets_params_and_shares_inputs():
    block = qjr.Circuit(2).ry(0, qjr.param(0)).rx(1, qjr.inp(0)).rz(1, qjr.param(1)).cz(0, 1)
    c = qjr.Circuit.repeat(block, 3, param_offset=2)
    assert isinstance(c.ops[0], Repeat)
    assert c.n_params == 2 + 3 * 2 and c.n_inputs == 1
    flat = c.unroll()
    idx = [op.angles[0].index for op in flat.ops if op.name == "ry"]
    assert idx == [2, 4, 6]


def test_repeat_equals_unrolled_circuit(rng):
    block = (qjr.Circuit(3).ry(0, qjr.param(0)).rzz(0, 2, qjr.param(1))
             .crx(2, 1, qjr.inp(0) * 0.5).cnot(1, 0))
    inner = qjr.Circuit.repeat(block, 2)
    c = qjr.Circuit(3).h(1) + qjr.Circuit.repeat(inner.rx(2, qjr.param(4)), 3, param_offset=1)
    params = rng.normal(size=c.n_params)
    x = rng.normal(size=c.n_inputs)
    got = qjr.statevector(c, params, x, dtype=jnp.complex128)
    unrolled = qjr.statevector(c.unroll(), params, x, dtype=jnp.complex128)
    np.testing.assert_allclose(got, unrolled, atol=1e-12)
    np.testing.assert_allclose(got, statevector_ref(c, params, x), atol=1e-12)


def test_shift_params():
    c = qjr.Circuit(1).ry(0, qjr.param(0)).rx(0, qjr.inp(0))
    s = c.shift_params(3)
    assert s.n_params == 4 and s.ops[1] == c.ops[1]


def test_cut_markers_are_ignored_by_plain_simulation(rng):
    c = qjr.Circuit(2).h(0).cut(0).cnot(0, 1, cut=True).ry(1, 0.3)
    plain = qjr.Circuit(2).h(0).cnot(0, 1).ry(1, 0.3)
    assert c.ops[1].name == "cut" and c.ops[2].cut
    np.testing.assert_allclose(
        qjr.statevector(c, dtype=jnp.complex128), qjr.statevector(plain, dtype=jnp.complex128)
    )
