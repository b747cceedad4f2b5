"""Noise channels: the density kernels on random mixed inputs against sum K rho K^dagger
with the reference Kraus sets; CPTP properties; closed forms; depolarizing p=1; gradients
w.r.t. gate parameters and noise levels; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.ir import channels
from qjaxrob.ir.circuit import Circuit
from qjaxrob.errors import MatrixError, ProbabilityError, WireError
from qjaxrob.kernels import density as dk
from helpers import random_unitary
from reference import PAULI, density_ref, embed, kraus_ref, statevector_ref

F64 = jnp.complex128
ONE_WIRE = [("bit_flip", 0.3), ("phase_flip", 0.7), ("amplitude_damping", 0.45),
            ("phase_damping", 0.8), ("random_rotation", 1.3), ("depolarizing", 0.6)]


def random_density(rng, n, rank):
    """A random n-qubit density matrix of the given rank."""
    a = rng.normal(size=(2**n, rank)) + 1j * rng.normal(size=(2**n, rank))
    rho = a @ a.conj().T
    return rho / np.trace(rho)


def channel_ops():
    """(op, n_qubits) for every channel kind, on wires of a 3-qubit register."""
    c = Circuit(3)
    rng = np.random.default_rng(5)
    z = rng.normal(size=(12, 4)) + 1j * rng.normal(size=(12, 4))
    iso = np.linalg.qr(z)[0]
    built = [getattr(c, name)(1, p) for name, p in ONE_WIRE if name != "random_rotation"]
    built += [c.random_rotation(2, (1.0, -2.0, 0.5), 1.3), c.depolarizing((2, 0), 0.9),
              c.depolarizing((0, 1, 2), 0.4), c.kraus([iso[:4], iso[4:8], iso[8:]], (2, 0))]
    return [b.ops[0] for b in built]


@pytest.mark.parametrize("op", channel_ops(), ids=lambda op: f"{op.name}{op.wires}")
def test_channel_on_random_mixed_input(op, rng):
    """Kernel output == reference sum K rho K^dagger; and it is a state (trace 1,
    Hermitian, PSD) for random full-rank and rank-1 inputs."""
    values = [a.offset for a in op.angles]
    ks = channels.kraus_set(op.name, len(op.wires), values, op.matrices, op.meta, F64)
    apply = jax.jit(lambda r: dk.apply_kraus(r, ks, op.wires))
    ref_ks = [embed(k, op.wires, 3) for k in kraus_ref(op.name, len(op.wires), values,
                                                        op.matrices, op.meta)]
    for rank in (8, 1):
        rho = random_density(rng, 3, rank)
        got = np.asarray(apply(jnp.asarray(rho.reshape((2,) * 6)))).reshape(8, 8)
        np.testing.assert_allclose(got, sum(k @ rho @ k.conj().T for k in ref_ks), atol=1e-12)
        assert abs(np.trace(got) - 1) < 1e-12
        np.testing.assert_allclose(got, got.conj().T, atol=1e-13)
        assert np.linalg.eigvalsh(got).min() > -1e-12


@pytest.mark.parametrize("wires", [(1,), (0, 2), (2, 1, 3)])
def test_full_depolarizing_gives_maximally_mixed_wires(wires, rng):
    """p=1: rho -> Tr_wires(rho) (x) I/2^k, so the wires are maximally mixed and the rest
    keeps its reduced state."""
    n = 4
    u = random_unitary(rng, 2**n)
    c = Circuit(n).unitary(u, tuple(range(n))).depolarizing(wires, 1.0)
    rho = np.asarray(qjr.density_matrix(c, dtype=F64)).reshape((2,) * (2 * n))
    psi = statevector_ref(Circuit(n).unitary(u, tuple(range(n))))
    rest = [w for w in range(n) if w not in wires]
    k, r = len(wires), len(rest)
    t = psi.reshape((2,) * n).transpose(list(wires) + rest).reshape(2**k, 2**r)
    rest_rho = t.T @ t.conj()  # Tr_wires |psi><psi| on the remaining wires
    want = np.kron(np.eye(2**k) / 2**k, rest_rho).reshape((2,) * (2 * n))
    order = list(wires) + rest
    inv = list(np.argsort(order))
    want = want.transpose(inv + [n + i for i in inv])
    np.testing.assert_allclose(rho, want, atol=1e-12)


LEVELS = jnp.linspace(0.0, 1.0, 6)


@pytest.mark.parametrize(
    "prep, name, obs, closed_form",
    [
        ("x", "amplitude_damping", "Z", lambda g: 2 * g - 1),  # |1> -> gamma|0><0| + (1-gamma)|1><1|
        ("h", "phase_damping", "X", lambda g: np.sqrt(1 - g)),  # coherence shrinks by sqrt(1-g)
        ("i", "bit_flip", "Z", lambda p: 1 - 2 * p),
        ("h", "phase_flip", "X", lambda p: 1 - 2 * p),
        ("i", "depolarizing", "Z", lambda p: 1 - p),  # Bloch vector shrinks by 1 - p
        ("h", "random_rotation", "X", lambda s: np.exp(-(s**2) / 2)),  # E[cos theta], theta~N(0,s^2)
    ],
)
def test_closed_forms_swept_under_vmap(prep, name, obs, closed_form):
    c = getattr(Circuit(1), prep)(0)
    c = c.random_rotation(0, "z", qjr.param(0)) if name == "random_rotation" else getattr(c, name)(0, qjr.param(0))
    o = getattr(qjr, obs)(0)
    f = jax.vmap(lambda p: qjr.expval(c, o, p[None], mixed=True, dtype=F64))
    np.testing.assert_allclose(f(LEVELS), closed_form(np.asarray(LEVELS)), atol=1e-12)


def test_multi_wire_depolarizing_closed_form():
    """On |00>, k=2 depolarizing leaves <ZZ> = 1 - p and <Z0> = 1 - p."""
    c = Circuit(3).depolarizing((0, 2), qjr.param(0))
    for p in (0.0, 0.35, 1.0):
        got = qjr.expval(c, [qjr.Z(0), qjr.Z(0) @ qjr.Z(2), qjr.Z(1)], jnp.array([p]), mixed=True, dtype=F64)
        np.testing.assert_allclose(got, [1 - p, 1 - p, 1.0], atol=1e-12)


@pytest.fixture(scope="module")
def grad_setup():
    """A noisy 3-qubit circuit whose noise levels are params 2..5 and gate angles 0..1."""
    c = (Circuit(3).ry(0, qjr.param(0)).cnot(0, 1).depolarizing(1, qjr.param(2))
         .rx(2, qjr.param(1) * 1.5 + 0.2).amplitude_damping(0, qjr.param(3)).cz(1, 2)
         .phase_damping(2, qjr.param(4)).bit_flip(1, qjr.param(5)).random_rotation(0, "y", qjr.param(6))
         .depolarizing((0, 2), qjr.param(5)).ry(1, qjr.inp(0)))
    obs = qjr.Z(0) @ qjr.Z(1) + 0.5 * qjr.X(2) + 0.3 * qjr.Y(0)
    f = jax.jit(lambda p, x: qjr.expval(c, obs, p, x, mixed=True, dtype=F64))
    return c, obs, f


@pytest.mark.slow
def test_gradients_wrt_gate_params_noise_levels_and_inputs(grad_setup):
    c, obs, f = grad_setup
    params = jnp.array([0.4, -0.9, 0.3, 0.25, 0.6, 0.15, 0.8])
    x = jnp.array([0.7])
    gp, gx = jax.grad(f, argnums=(0, 1))(params, x)
    eps = 1e-6
    for vec, g, other in ((params, gp, x), (x, gx, params)):
        for i in range(vec.shape[0]):
            e = jnp.zeros_like(vec).at[i].set(eps)
            args = ((vec + e, other), (vec - e, other)) if vec is params else ((other, vec + e), (other, vec - e))
            fd = (f(*args[0]) - f(*args[1])) / (2 * eps)
            assert float(g[i]) == pytest.approx(float(fd), abs=1e-7)


def test_noise_level_gradient_matches_closed_form():
    """d<Z>/dgamma after amplitude damping of |1> is 2 (from <Z> = 2 gamma - 1)."""
    c = Circuit(1).x(0).amplitude_damping(0, qjr.param(0))
    g = jax.grad(lambda p: qjr.expval(c, qjr.Z(0), p, mixed=True, dtype=F64))(jnp.array([0.3]))
    assert float(g[0]) == pytest.approx(2.0, abs=1e-12)


@pytest.mark.parametrize("p", [-0.1, 1.5, 2])
@pytest.mark.parametrize("name", ["depolarizing", "bit_flip", "phase_flip", "amplitude_damping", "phase_damping"])
def test_probability_outside_unit_interval_raises(name, p):
    with pytest.raises(ProbabilityError, match=rf"{name}.*{p}"):
        getattr(Circuit(2), name)(0, p)


def test_negative_sigma_raises():
    with pytest.raises(ProbabilityError, match="-0.5"):
        Circuit(1).random_rotation(0, "x", -0.5)


def test_non_cptp_kraus_sets_raise():
    k0 = np.sqrt(0.5) * np.eye(2)
    with pytest.raises(MatrixError, match=r"not trace preserving.*0\.5"):
        Circuit(1).kraus([k0], 0)
    with pytest.raises(MatrixError, match=r"not trace preserving"):
        Circuit(1).kraus([k0, k0, 0.1 * PAULI["X"]], 0)
    with pytest.raises(MatrixError, match=r"\(4, 4\).*\(2, 2\)"):
        Circuit(2).kraus([np.eye(2)], (0, 1))
    with pytest.raises(WireError, match=r"repeated wire in \(1, 1\)"):
        Circuit(2).depolarizing((1, 1), 0.1)


def test_kraus_within_documented_tolerance_is_accepted():
    k = np.eye(2) * np.sqrt(1 + 0.5 * channels.KRAUS_ATOL)
    np.testing.assert_allclose(qjr.density_matrix(Circuit(1).kraus([k], 0), dtype=F64),
                               density_ref(Circuit(1).kraus([k], 0)), atol=1e-12)
