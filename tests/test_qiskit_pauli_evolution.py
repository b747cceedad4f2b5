"""``PauliEvolutionGate(H, t)`` converted as the exact ``exp(-i t H)`` (checked against
SciPy's ``expm`` of H's dense matrix, not Qiskit): a bound time through the exact unitary
whatever the gate's ``synthesis`` (product formulas included, whose circuits differ);
a parametric time (a parameter, an input, or a non-affine expression of several) one
exponential per term when the terms commute, with gradients against finite differences;
non-commuting terms under a parametric time refused naming the terms."""

import jax
import numpy as np
import pytest
import scipy.linalg
from helpers import finite_diff
from reference import expval_ref

import qjaxrob as qjr
from qjaxrob.errors import ConversionError

pytest.importorskip("qiskit")
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import PauliEvolutionGate
from qiskit.quantum_info import Operator, PauliList, SparsePauliOp, Statevector, random_clifford
from qiskit.synthesis import LieTrotter, MatrixExponential, QDrift, SuzukiTrotter

# Qiskit's exact PauliEvolutionGate matrix goes through scipy.sparse.linalg.expm
pytestmark = pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")


def _exact(op, time, n):
    """exp(-i t H) in qjaxrob's wire order (wire 0 the most significant bit), from |0..0>."""
    h = Operator(op).reverse_qargs().data
    psi = np.zeros(2**n, complex)
    psi[0] = 1
    return scipy.linalg.expm(-1j * time * h) @ psi


def _circuit(n, op, time, synthesis=None):
    qc = QuantumCircuit(n)
    kwargs = {} if synthesis is None else {"synthesis": synthesis}
    qc.append(PauliEvolutionGate(op, time=time, **kwargs), range(n))
    return qc


def _random_hamiltonian(rng, n, k):
    labels = ["".join(rng.choice(list("IXYZ"), n)) for _ in range(k)]
    return SparsePauliOp(labels, rng.normal(size=k))


def _commuting_hamiltonian(rng, n, k):
    """k commuting terms: random Z/I strings conjugated by a random Clifford."""
    labels = ["".join(rng.choice(list("IZ"), n)) for _ in range(k)]
    paulis = PauliList(labels).evolve(random_clifford(n, seed=int(rng.integers(1 << 30))))
    paulis = PauliList([p.to_label().lstrip("-") for p in paulis])   # a sign at most
    assert all(paulis.commutes(p).all() for p in paulis)
    return SparsePauliOp(paulis, rng.normal(size=k))


@pytest.mark.parametrize("n", [2, 3, 4])
def test_bound_time_is_the_exact_exponential_whatever_the_synthesis(n):
    rng = np.random.default_rng(n)
    op = _random_hamiltonian(rng, n, 4)
    time = float(rng.uniform(0.3, 1.5))
    want = _exact(op, time, n)
    for synthesis in (None, LieTrotter(reps=2), SuzukiTrotter(order=2, reps=1), MatrixExponential()):
        qc = _circuit(n, op, time, synthesis)
        got = qjr.statevector(qjr.from_qiskit(qc), dtype=np.complex128)
        np.testing.assert_allclose(got, want, atol=1e-10)
    # bound after construction: the same
    t = Parameter("t")
    qc = _circuit(n, op, 2 * t, LieTrotter(reps=1)).assign_parameters({t: time / 2})
    np.testing.assert_allclose(qjr.statevector(qjr.from_qiskit(qc), dtype=np.complex128), want,
                               atol=1e-10)


def test_the_product_formula_is_not_what_is_converted():
    """With non-commuting terms the gate's Trotter circuit differs from exp(-i t H) by far
    more than the tolerance, so the exact conversion is a real check."""
    op = SparsePauliOp(["XX", "ZI", "IY"], [0.8, 0.7, -0.6])
    qc = _circuit(2, op, 1.2, LieTrotter(reps=1))
    trotter = Statevector(qc.decompose(reps=3)).reverse_qargs().data
    assert np.max(np.abs(trotter - _exact(op, 1.2, 2))) > 0.05
    got = qjr.statevector(qjr.from_qiskit(qc), dtype=np.complex128)
    np.testing.assert_allclose(got, _exact(op, 1.2, 2), atol=1e-10)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_parametric_time_with_commuting_terms(n):
    rng = np.random.default_rng(10 + n)
    op = _commuting_hamiltonian(rng, n, 3)
    t, s = Parameter("t"), Parameter("s")
    qc = _circuit(n, op, t * s + t.sin())
    c = qjr.from_qiskit(qc, inputs=["s"])
    assert (c.n_params, c.n_inputs) == (1, 1)
    for _ in range(2):
        tv, sv = rng.uniform(-1.5, 1.5, 2)
        got = qjr.statevector(c, np.array([tv]), np.array([sv]), dtype=np.complex128)
        np.testing.assert_allclose(got, _exact(op, tv * sv + np.sin(tv), n), atol=1e-10)
    obs = qjr.Z(0) @ qjr.X(1)
    p, x = np.array([0.4]), np.array([-0.9])
    grad = jax.grad(lambda p, x: qjr.expval(c, obs, p, x, dtype=np.complex128), argnums=(0, 1))(p, x)
    np.testing.assert_allclose(grad[0], finite_diff(lambda v: expval_ref(c, obs, v, x), p), atol=1e-6)
    np.testing.assert_allclose(grad[1], finite_diff(lambda v: expval_ref(c, obs, p, v), x), atol=1e-6)


@pytest.mark.parametrize("synthesis", [None, LieTrotter(reps=3), SuzukiTrotter(order=4, reps=2),
                                       QDrift(reps=2, seed=1)])
def test_parametric_time_with_non_commuting_terms_is_refused(synthesis):
    op = SparsePauliOp(["ZZ", "XI", "IZ"], [0.3, 0.5, 0.2])
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.append(PauliEvolutionGate(op, time=Parameter("t"), **({} if synthesis is None else
                                                             {"synthesis": synthesis})), [1, 2])
    with pytest.raises(ConversionError, match=r"instruction 1 \(PauliEvolution on qubits \(1, 2\)\)"
                                              r".*non-commuting terms ZZ and XI.*bind the time"):
        qjr.from_qiskit(qc)
