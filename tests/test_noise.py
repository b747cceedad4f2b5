"""qjr.noise.insert: placement rules ("each_gate", "each_layer"), Repeat blocks kept as
scans, traced noise levels, numbers against the dense reference, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.ir.circuit import Repeat
from qjaxrob.errors import ParameterError, ProbabilityError, WireError
from reference import density_ref

F64 = jnp.complex128


def test_each_gate_puts_one_wire_channels_after_every_gate():
    c = qjr.Circuit(3).h(0).cnot(0, 2).cut(1).bit_flip(1, 0.2).rz(1, 0.3)
    got = qjr.noise.insert(c, "depolarizing", "each_gate", p=0.05)
    want = (qjr.Circuit(3).h(0).depolarizing(0, 0.05).cnot(0, 2).depolarizing(0, 0.05)
            .depolarizing(2, 0.05).cut(1).bit_flip(1, 0.2).rz(1, 0.3).depolarizing(1, 0.05))
    assert got == want
    only = qjr.noise.insert(c, "amplitude_damping", "each_gate", p=0.1, wires=(2,))
    assert only == qjr.Circuit(3).h(0).cnot(0, 2).amplitude_damping(2, 0.1).cut(1).bit_flip(1, 0.2).rz(1, 0.3)


def test_each_layer_follows_the_documented_layering():
    """RY on all wires | RZ on all wires | one layer per CNOT of the ring; every layer is
    followed by noise on all wires (idle ones too)."""
    n = 3
    c = qjr.qml.hardware_efficient(n, 1).unroll()
    got = qjr.noise.insert(c, "phase_flip", "each_layer", p=0.1)
    noise = qjr.Circuit(n)
    for q in range(n):
        noise = noise.phase_flip(q, 0.1)
    rys, rzs = qjr.Circuit(n), qjr.Circuit(n)
    for q in range(n):
        rys, rzs = rys.ry(q, qjr.param(q)), rzs.rz(q, qjr.param(n + q))
    want = rys + noise + rzs + noise
    for a in range(n):
        want = want + qjr.Circuit(n).cnot(a, (a + 1) % n) + noise
    assert got == want


def test_repeat_blocks_stay_scans_and_match_the_reference(rng):
    c = qjr.qml.hardware_efficient(3, 3)
    params = rng.uniform(-3, 3, c.n_params)
    for after in ("each_gate", "each_layer"):
        noisy = qjr.noise.insert(c, "amplitude_damping", after, p=0.07)
        assert len(noisy.ops) == 1 and isinstance(noisy.ops[0], Repeat) and noisy.ops[0].times == 3
        assert noisy.n_params == c.n_params
        flat = qjr.noise.insert(c.unroll(), "amplitude_damping", after, p=0.07)
        assert noisy.unroll() == flat
        got = qjr.density_matrix(noisy, params, dtype=F64)
        np.testing.assert_allclose(got, density_ref(noisy, params), atol=1e-10)


def test_layer_closes_before_a_repeat_and_random_rotation_axis():
    block = qjr.Circuit(2).rx(0, qjr.param(0))
    c = qjr.Circuit(2).h(1) + qjr.Circuit.repeat(block, 2)
    got = qjr.noise.insert(c, "random_rotation", "each_layer", p=0.3, wires=1, axis="z")
    rot = qjr.Circuit(2).random_rotation(1, "z", 0.3)
    want_block = block + rot
    assert got == qjr.Circuit(2).h(1) + rot + qjr.Circuit.repeat(want_block, 2)


@pytest.mark.slow
def test_traced_noise_level_sweeps_and_differentiates(rng):
    """p = inp(0) is shared by all repetitions: sweep it under vmap and differentiate."""
    c = qjr.noise.insert(qjr.qml.hardware_efficient(2, 2), "depolarizing", "each_gate", p=qjr.inp(0))
    params = jnp.asarray(rng.uniform(-3, 3, c.n_params))
    f = jax.jit(lambda x: qjr.expval(c, qjr.Z(0) @ qjr.Z(1), params, x, mixed=True, dtype=F64))
    levels = jnp.array([[0.0], [0.2], [0.9]])
    want = [np.real(np.trace(np.diag([1, -1, -1, 1]) @ density_ref(c, np.asarray(params), np.asarray(x))))
            for x in levels]
    np.testing.assert_allclose(jax.vmap(f)(levels), want, atol=1e-10)
    eps, x = 1e-6, jnp.array([0.3])
    fd = (f(x + eps) - f(x - eps)) / (2 * eps)
    assert float(jax.grad(f)(x)[0]) == pytest.approx(float(fd), abs=1e-7)


def test_param_noise_level_outside_repeat_is_a_trainable_parameter():
    c = qjr.noise.insert(qjr.Circuit(1).ry(0, qjr.param(0)), "bit_flip", p=qjr.param(1))
    assert c.n_params == 2 and c.ops[1].angles[0] == qjr.param(1)


def test_bad_arguments_raise():
    c = qjr.qml.hardware_efficient(2, 2)
    with pytest.raises(ParameterError, match="'dephasing'"):
        qjr.noise.insert(c, "dephasing", p=0.1)
    with pytest.raises(ParameterError, match="'each_moment'"):
        qjr.noise.insert(c, "bit_flip", after="each_moment", p=0.1)
    with pytest.raises(ProbabilityError, match="1.2"):
        qjr.noise.insert(c, "bit_flip", p=1.2)
    with pytest.raises(ParameterError, match="p, got None"):
        qjr.noise.insert(c, "bit_flip")
    with pytest.raises(ParameterError, match="axis=None"):
        qjr.noise.insert(c, "random_rotation", p=0.1)
    with pytest.raises(ParameterError, match=r"param.*Repeat"):
        qjr.noise.insert(c, "bit_flip", p=qjr.param(7))
    with pytest.raises(WireError, match="wire 5 out of range"):
        qjr.noise.insert(c, "bit_flip", p=0.1, wires=(0, 5))
