"""One state vector over 2, 4 and 8 devices (``mesh=``): amplitudes, probabilities, samples,
expectation values and their backprop/adjoint gradients (vmapped over inputs) equal the
dense NumPy reference (values) and its central finite differences (gradients) on random
circuits whose gates touch every wire, in both dtypes; each device holds ``1/2**k`` of the
state (the compiled program's memory analysis) and the compiled program has as many
all-to-alls as the planner counts; the planner's exchange count is small for layered
circuits; bad meshes and unsupported options raise ``qjaxrob.errors`` errors naming the value.

Devices: every pytest process (xdist workers included) has 8 host CPU devices because
``tests/conftest.py`` sets ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` before
JAX starts, so the tests run in-process and share compiled programs (same circuits, same
meshes) instead of paying a second JAX start-up in a subprocess. Sizes are small: the cost
is compilation, about a second per program."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

import qjaxrob as qjr
from qjaxrob.errors import DensityMatrixOnlyError, ParameterError, QjrTypeError, WireError
from qjaxrob.lower.exchanges import Swap
from qjaxrob.qml.ansatze import hardware_efficient
from qjaxrob.sim.sharded import physical_state_program
from tests.helpers import TOL, random_unitary
from tests.reference import flat_ops, observable_matrix, op_unitary, statevector_ref


@pytest.fixture(scope="module", autouse=True)
def _eight_devices():
    if len(jax.devices()) >= 8:
        return
    if jax.default_backend() != "cpu":
        pytest.skip(f"needs 8 devices of one kind, {jax.default_backend()} has "
                    f"{len(jax.devices())} (run the CPU suite)")
    pytest.fail(f"sharding tests need 8 host devices, got {len(jax.devices())}: an XLA_FLAGS "
                "set outside pytest overrides conftest's --xla_force_host_platform_device_count=8")


def _mesh(d):
    return Mesh(np.array(jax.devices()[:d]), ("devices",))


def _circuit(n, seed, ccx=True):
    """A random layer over every wire (rotations reading affine inputs on wires 0 and 1 and
    parameters elsewhere, then two-qubit gates of every kind in a random order), a
    ``Circuit.repeat`` block on the last and first wire (scanned when it fits in the local
    wires), a ccx (three local wires needed; else a cz) and more inputs."""
    rng = np.random.default_rng(seed)
    c, p = qjr.Circuit(n), 0
    for q in range(n):
        gate = str(rng.choice(["rx", "ry", "rz"])) if q > 1 else "ry"
        angle = qjr.inp(q) * 1.3 + 0.2 if q < 2 else qjr.param(p)
        c, p = c.gate(gate, (q,), angle), p + (q > 1)
    order = rng.permutation(n)
    for i in range(n):
        a, b = int(order[i]), int(order[(i + 1) % n])
        kind = ("cnot", "crx", "unitary", "rzz", "iswap", "ryy")[i % 6]
        if kind == "unitary":
            c = c.unitary(random_unitary(rng, 4), (a, b))
        elif kind in ("crx", "rzz", "ryy"):
            c, p = c.gate(kind, (a, b), qjr.param(p) * 0.7 + 0.1), p + 1
        else:
            c = c.gate(kind, (a, b))
    c = c + qjr.Circuit.repeat(qjr.Circuit(n).ry(n - 1, qjr.param(0)).cnot(n - 1, 0), 2,
                               param_offset=c.n_params)
    c = c.ccx(0, n - 1, 1) if ccx else c.cz(0, n - 1)
    return c.rx(0, qjr.inp(1)).u3(n - 1, qjr.param(1), 0.3, qjr.inp(0))


def _observables(n, rng):
    """Three random Pauli sums of three terms each (letters on every wire)."""
    out = []
    for _ in range(3):
        terms = [qjr.pauli("".join(rng.choice(list("IXYZ"), size=n))) * float(rng.normal())
                 for _ in range(3)]
        out.append(sum(terms[1:], terms[0]))
    return out


def _ref_cost(c, matrices, weights):
    """``(params, x) -> sum_i w_i <psi|O_i|psi>`` with the dense reference (float64)."""
    def cost(params, x):
        psi = statevector_ref(c, params, x)
        return sum(w * np.real(np.vdot(psi, m @ psi)) for w, m in zip(weights, matrices))
    return cost


def _ref_probs(psi, wires, n):
    p = np.abs(psi.reshape((2,) * n)) ** 2
    p = np.sum(p, axis=tuple(w for w in range(n) if w not in wires))
    return np.transpose(p, np.argsort(np.argsort(wires))).reshape(-1)


CASES = [(2, 4, jnp.complex128), (4, 5, jnp.complex64), (8, 5, jnp.complex128)]


@pytest.mark.parametrize("devices,n,dtype", CASES)
def test_sharded_results_equal_reference(devices, n, dtype):
    k = devices.bit_length() - 1
    c, mesh = _circuit(n, seed=devices + n, ccx=n - k >= 3), _mesh(devices)
    rng = np.random.default_rng(n)
    real = np.float64 if dtype == jnp.complex128 else np.float32
    params = rng.uniform(-np.pi, np.pi, c.n_params).astype(real)
    xs = rng.uniform(-1, 1, (2, c.n_inputs)).astype(real)
    tol = TOL[dtype] * 10
    plan = qjr.sharding_plan(c, mesh)
    assert plan.global_wires == k and plan.exchanges > 0

    psi = statevector_ref(c, params, xs[0])
    np.testing.assert_allclose(qjr.statevector(c, params, xs[0], mesh=mesh, dtype=dtype), psi,
                               atol=tol)
    wires = tuple(int(w) for w in rng.permutation(n)[:3])
    np.testing.assert_allclose(
        qjr.probs(c, params, xs[0], wires=wires, mesh=mesh, dtype=dtype),
        _ref_probs(psi, wires, n), atol=tol)

    # expectation values and gradients, vmapped over two inputs, against the reference: the
    # values, and the gradients along random directions (central differences)
    obs = _observables(n, rng)
    weights = rng.normal(size=len(obs))
    ref = _ref_cost(c, [observable_matrix(o, n) for o in obs], weights)
    dirs = rng.normal(size=(2, c.n_params + c.n_inputs))
    p64, h = params.astype(float), 1e-6
    want = [(ref(p64, xx), [(ref(p64 + h * d[:c.n_params], xx + h * d[c.n_params:])
                             - ref(p64 - h * d[:c.n_params], xx - h * d[c.n_params:])) / (2 * h)
                            for d in dirs]) for xx in xs.astype(float)]
    grad_tol = 1e-6 if dtype == jnp.complex128 else 2e-4
    for diff in ("backprop", "adjoint"):
        def cost(p, xx, diff=diff):
            values = qjr.expval(c, obs, p, xx, dtype=dtype, mesh=mesh, diff=diff)
            return jnp.dot(jnp.asarray(weights, real), values)

        values, (gp, gx) = jax.vmap(jax.value_and_grad(cost, argnums=(0, 1)),
                                    in_axes=(None, 0))(params, xs)
        grads = np.concatenate([gp, gx], axis=1)
        for i, (v, slopes) in enumerate(want):
            np.testing.assert_allclose(values[i], v, atol=tol, err_msg=diff)
            np.testing.assert_allclose(dirs @ grads[i], slopes, atol=grad_tol, err_msg=diff)


def test_sharded_sample_distribution():
    c, mesh = _circuit(4, seed=5, ccx=False), _mesh(4)
    params, x = np.linspace(-1, 1, c.n_params), np.array([0.3, -0.7])
    shots = 20000
    bits = np.asarray(qjr.sample(jax.random.key(0), c, shots, params, x, mesh=mesh,
                                 dtype=jnp.complex128))
    assert bits.shape == (shots, 4) and bits.dtype == np.int8
    counts = np.bincount(bits @ (2 ** np.arange(3, -1, -1)), minlength=16)
    p = np.abs(statevector_ref(c, params, x)) ** 2
    # each count is Binomial(shots, p): within 5 standard deviations (+1 for p ~ 0); 16
    # outcomes, so a false alarm has probability < 1e-5
    assert np.all(np.abs(counts - shots * p) <= 5 * np.sqrt(shots * p * (1 - p)) + 1), counts
    # same key, same draws
    again = qjr.sample(jax.random.key(0), c, shots, params, x, mesh=mesh, dtype=jnp.complex128)
    np.testing.assert_array_equal(again, bits)


@pytest.mark.parametrize("devices", [2, 4, 8])
def test_sharded_memory_and_exchange_count(devices):
    """Per-device output bytes are exactly ``1/2**k`` of the state; working memory is about
    one more share (an out-of-place all-to-all), never the whole state; the compiled
    program's all-to-alls are the planner's exchanges."""
    n, dtype = 12, jnp.complex64
    c = hardware_efficient(n, 1)
    mesh = _mesh(devices)
    plan = qjr.sharding_plan(c, mesh)
    program = physical_state_program(plan, mesh, dtype)
    lowered = program.lower(jnp.zeros(c.n_params, jnp.float32),
                            jnp.zeros(c.n_inputs, jnp.float32))
    assert lowered.as_text().count("all_to_all") == plan.exchanges > 0
    mem = lowered.compile().memory_analysis()
    share = 2**n * 8 // devices
    assert plan.state_bytes_per_device(dtype) == share
    assert plan.exchange_bytes_per_device(dtype) == share // 2
    assert mem.output_size_in_bytes == share
    assert share <= mem.temp_size_in_bytes < 3 * share


@pytest.mark.parametrize("entangler", ["ring", "chain"])
def test_layered_circuit_costs_at_most_k_exchanges_per_layer(entangler):
    """Planning needs no devices: a 36-qubit hardware-efficient ansatz over 8 and 16
    devices. Every layer touches every wire, so the k initially global wires cost at least
    k swaps; the planner needs at most k per layer plus k."""
    for devices, k in ((8, 3), (16, 4)):
        for layers in (1, 4):
            plan = qjr.sharding_plan(hardware_efficient(36, layers, entangler=entangler),
                                     devices)
            assert plan.global_wires == k and plan.amplitudes_per_device == 2 ** (36 - k)
            assert k <= plan.exchanges <= k * (layers + 1), (devices, layers, plan.exchanges)
            swaps = [s for s in plan.steps if isinstance(s, Swap)]
            assert len(swaps) == plan.exchanges
            assert all(0 <= s.slot < k and 0 <= s.axis < 36 - k for s in swaps)
    # gates on local wires only: no exchange
    assert qjr.sharding_plan(qjr.Circuit(6).h(5).cnot(4, 5), 8).exchanges == 0


def test_plan_replays_to_the_logical_state():
    """The plan's swaps and renamed ops, replayed densely in NumPy, give the reference."""
    c = _circuit(5, seed=11)
    params, x = np.linspace(0, 1, c.n_params), np.array([0.1, 0.2])
    plan = qjr.sharding_plan(c, 4)
    k, nl = plan.global_wires, plan.local_wires
    state = np.zeros((2,) * 5, complex)
    state[(0,) * 5] = 1
    for step in plan.steps:
        if isinstance(step, Swap):
            state = np.swapaxes(state, step.slot, k + step.axis)
            continue
        u = np.eye(2**nl)
        for op, shift in flat_ops(qjr.Circuit(nl, step)):
            u = op_unitary(op, params, x, nl, shift) @ u
        state = (state.reshape(2**k, 2**nl) @ u.T).reshape((2,) * 5)
    got = np.transpose(state, plan.layout).reshape(-1)
    np.testing.assert_allclose(got, statevector_ref(c, params, x), atol=1e-10)


def test_one_device_mesh_is_the_unsharded_path():
    c = _circuit(3, seed=1)
    params, x = np.linspace(0, 1, c.n_params), np.array([0.5, 0.1])
    np.testing.assert_allclose(
        qjr.statevector(c, params, x, mesh=_mesh(1), dtype=jnp.complex128),
        statevector_ref(c, params, x), atol=1e-12)


# ---- bad input -----------------------------------------------------------------------------
def test_mesh_device_count_not_power_of_two():
    c = qjr.Circuit(4).h(0)
    with pytest.raises(ParameterError, match="power-of-two number of devices, got 6"):
        qjr.statevector(c, mesh=_mesh(6))
    with pytest.raises(ParameterError, match="got 3"):
        qjr.sharding_plan(c, 3)
    with pytest.raises(ParameterError, match="positive int, got 0"):
        qjr.sharding_plan(c, 0)


def test_mesh_with_two_axes():
    mesh = Mesh(np.array(jax.devices()[:4]).reshape(2, 2), ("a", "b"))
    with pytest.raises(ParameterError, match=r"one axis, got axes \('a', 'b'\)"):
        qjr.expval(qjr.Circuit(4).h(0), qjr.Z(0), mesh=mesh)


def test_not_a_mesh():
    with pytest.raises(QjrTypeError, match="jax.sharding.Mesh, got list"):
        qjr.probs(qjr.Circuit(4).h(0), mesh=jax.devices()[:2])


def test_more_global_wires_than_the_circuit_allows():
    with pytest.raises(WireError, match="at most 1 global wires"):
        qjr.statevector(qjr.Circuit(4).ccx(0, 1, 2).h(0), mesh=_mesh(4))
    with pytest.raises(WireError, match="at most 2 global wires"):
        qjr.sharding_plan(qjr.Circuit(3).h(0), 8)


def test_fewer_amplitudes_than_devices():
    with pytest.raises(WireError, match="2 amplitudes, fewer than the 8 devices"):
        qjr.statevector(qjr.Circuit(1).h(0), mesh=_mesh(8))


def test_unsupported_options_with_a_mesh():
    c, mesh = qjr.Circuit(4).h(0).cnot(0, 3), _mesh(2)
    with pytest.raises(ParameterError, match="mixed=True is not supported with a mesh"):
        qjr.probs(c, mixed=True, mesh=mesh)
    with pytest.raises(ParameterError, match="shots=100 is not supported"):
        qjr.expval(c, qjr.Z(0), shots=100, key=jax.random.key(0), mesh=mesh)
    with pytest.raises(ParameterError, match="trajectories=4 is not supported"):
        qjr.expval(c, qjr.Z(0), trajectories=4, key=jax.random.key(0), mesh=mesh)
    with pytest.raises(TypeError, match="mesh"):
        qjr.density_matrix(c, mesh=mesh)  # no sharded density matrix: not silently ignored
    noisy = c.depolarizing(1, 0.1)
    with pytest.raises(DensityMatrixOnlyError, match="channel 'depolarizing' on wires \\(1,\\)"):
        qjr.expval(noisy, qjr.Z(0), mesh=mesh)
    with pytest.raises(ParameterError, match="key=<.*> is not supported"):
        qjr.statevector(noisy, key=jax.random.key(0), mesh=mesh)


def test_expression_angles_on_a_mesh_equal_the_unsharded_path():
    """A circuit with non-affine angles (products, sin) is rewritten before sharding: values
    and backprop/adjoint gradients on 4 devices equal the one-device path."""
    n, rng = 6, np.random.default_rng(7)
    a, b = qjr.param(0), qjr.param(1)
    c = qjr.Circuit(n)
    for w in range(n):
        c = c.ry(w, a * qjr.inp(0) + w).rz(w, qjr.sin(b) * (w + 1))
    for w in range(n):
        c = c.cnot(w, (w + 1) % n)
    c = c.rx(0, a * b)
    obs = (qjr.pauli("Z" + "I" * (n - 2) + "Z"), qjr.pauli("IIXIII"))
    p = jnp.asarray(rng.normal(size=2), jnp.float32)
    x = jnp.asarray(rng.normal(size=1), jnp.float32)
    mesh = _mesh(4)
    np.testing.assert_allclose(qjr.statevector(c, p, x, mesh=mesh), qjr.statevector(c, p, x),
                               atol=TOL[jnp.complex64])
    for diff in ("backprop", "adjoint"):
        def cost(p, mesh):
            return jnp.sum(qjr.expval(c, obs, p, x, mesh=mesh, diff=diff))
        np.testing.assert_allclose(jax.grad(cost)(p, mesh), jax.grad(cost)(p, None),
                                   atol=10 * TOL[jnp.complex64])
