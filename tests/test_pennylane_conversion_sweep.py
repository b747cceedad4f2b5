"""No silent conversion from PennyLane: every qubit operation PennyLane lists
(``qml.ops._qubit__ops__``, built with random parameters) and the templates, controlled,
adjoint, power and evolution forms listed by hand either convert through
``qjr.from_pennylane`` to the state PennyLane's ``default.qubit`` gives (from a random
product input state, simulated by the dense reference of tests/reference.py), or raise a
``qjaxrob.errors`` error. Exact evolutions (``qml.evolve``/``qml.exp`` of non-commuting
terms) must be exact, product formulas (``TrotterProduct``, ``ApproxTimeEvolution``) must
be the product formula."""

import numpy as np
import pytest
from reference import statevector_ref

import qjaxrob as qjr
from qjaxrob.errors import QjrError

qml = pytest.importorskip("pennylane")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::UserWarning")


def _unitary(rng, d):
    z = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    q, r = np.linalg.qr(z)
    return q * (np.diag(r) / np.abs(np.diag(r)))


def _state(rng, d):
    v = rng.normal(size=d) + 1j * rng.normal(size=d)
    return v / np.linalg.norm(v)


def _enumerated():
    out = {}
    for name in sorted(getattr(qml.ops, "_qubit__ops__", ())):
        cls = getattr(qml, name, None) or getattr(qml.ops, name, None)
        if cls is None or not isinstance(cls.num_wires, int) or not isinstance(cls.num_params, int):
            continue
        k, n_params = cls.num_wires, cls.num_params
        try:
            cls(*np.zeros(n_params), wires=list(range(k)))
        except Exception:  # noqa: BLE001 - needs other arguments: listed by hand below
            continue
        out[name] = (lambda rng, cls=cls, k=k, n_params=n_params:
                     cls(*rng.uniform(-np.pi, np.pi, n_params), wires=list(range(k))))
    return out


H = qml.Hamiltonian([0.3, 0.5, -0.4], [qml.X(0) @ qml.X(1), qml.Z(0), qml.Y(1)])
H_COMMUTING = qml.Hamiltonian([0.3, 0.5], [qml.Z(0) @ qml.Z(1), qml.X(0) @ qml.X(1)])
W3 = [0, 1, 2]
BY_HAND = {
    "ControlledQubitUnitary": lambda rng: qml.ControlledQubitUnitary(_unitary(rng, 2), wires=[0, 1]),
    "QubitUnitary": lambda rng: qml.QubitUnitary(_unitary(rng, 4), wires=[0, 2]),
    "DiagonalQubitUnitary": lambda rng: qml.DiagonalQubitUnitary(np.exp(1j * rng.uniform(0, 3, 4)), wires=[1, 2]),
    "PCPhase": lambda rng: qml.PCPhase(rng.uniform(-3, 3), dim=3, wires=[0, 1]),
    "PauliRot": lambda rng: qml.PauliRot(rng.uniform(-3, 3), "XYZ", wires=W3),
    "SpecialUnitary": lambda rng: qml.SpecialUnitary(rng.normal(size=15), wires=[0, 1]),
    "StatePrep": lambda rng: qml.StatePrep(_state(rng, 8), wires=W3),
    "BasisState": lambda rng: qml.BasisState(np.array([1, 0, 1]), wires=W3),
    "IntegerComparator": lambda rng: qml.IntegerComparator(2, geq=True, wires=W3),
    "evolve_noncommuting": lambda rng: qml.evolve(H, rng.uniform(0.3, 1.5)),
    "exp_noncommuting": lambda rng: qml.exp(H, -1j * rng.uniform(0.3, 1.5)),
    "evolve_commuting": lambda rng: qml.evolve(H_COMMUTING, rng.uniform(0.3, 1.5)),
    "TrotterProduct": lambda rng: qml.TrotterProduct(H, rng.uniform(0.3, 1.5), n=2, order=2),
    "ApproxTimeEvolution": lambda rng: qml.ApproxTimeEvolution(H, rng.uniform(0.3, 1.5), 2),
    "CommutingEvolution": lambda rng: qml.CommutingEvolution(H_COMMUTING, rng.uniform(0.3, 1.5)),
    "ctrl_RX": lambda rng: qml.ctrl(qml.RX(rng.uniform(-3, 3), wires=2), control=[0, 1], control_values=[1, 0]),
    "adjoint_Rot": lambda rng: qml.adjoint(qml.Rot(*rng.uniform(-3, 3, 3), wires=1)),
    "pow_SX": lambda rng: qml.pow(qml.SX(0), 0.5),
    "pow_RX": lambda rng: qml.pow(qml.RX(rng.uniform(-3, 3), wires=0), 3),
    "StronglyEntanglingLayers": lambda rng: qml.StronglyEntanglingLayers(rng.normal(size=(2, 3, 3)), wires=W3),
    "AmplitudeEmbedding": lambda rng: qml.AmplitudeEmbedding(rng.normal(size=8), wires=W3, normalize=True),
    "IQPEmbedding": lambda rng: qml.IQPEmbedding(rng.normal(size=3), wires=W3),
    "QFT": lambda rng: qml.QFT(wires=W3),
    "ArbitraryUnitary": lambda rng: qml.ArbitraryUnitary(rng.normal(size=15), wires=[0, 1]),
    "QAOAEmbedding": lambda rng: qml.QAOAEmbedding(rng.normal(size=3), rng.normal(size=(1, 6)), wires=W3),
    "MottonenStatePreparation": lambda rng: qml.MottonenStatePreparation(_state(rng, 8), wires=W3),
    "DoubleExcitationPlus": lambda rng: qml.DoubleExcitationPlus(rng.uniform(-3, 3), wires=[0, 1, 2, 3]),
    "FermionicDoubleExcitation": lambda rng: qml.FermionicDoubleExcitation(rng.uniform(-3, 3), wires1=[0, 1], wires2=[2, 3]),
    "Select": lambda rng: qml.Select([qml.X(2), qml.Y(2), qml.Z(2), qml.H(2)], control=[0, 1]),
    "BlockEncode": lambda rng: qml.BlockEncode(np.array([[0.3, 0.1], [0.2, 0.4]]), wires=[0, 1]),
    "Permute": lambda rng: qml.Permute([2, 0, 1], wires=W3),
    "MultiControlledX": lambda rng: qml.MultiControlledX(wires=[0, 1, 2, 3], control_values=[1, 0, 1]),
    "Projector": lambda rng: qml.Projector([1, 0], wires=[0, 1]),
}
CASES = {**_enumerated(), **BY_HAND}
MUST_CONVERT = ("evolve_noncommuting", "exp_noncommuting", "TrotterProduct", "StronglyEntanglingLayers",
                "FermionicDoubleExcitation", "Select", "DoubleExcitationPlus", "BlockEncode",
                "IsingXX", "CRot", "U3", "PauliRot")


@pytest.mark.parametrize("name", sorted(CASES))
def test_pennylane_operation_converts_exactly_or_is_refused(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    op = CASES[name](rng)
    n = max(3, len(op.wires))
    prep = [qml.Rot(*rng.uniform(-np.pi, np.pi, 3), wires=w) for w in range(n)]
    tape = qml.tape.QuantumScript(prep + [op], [qml.state()])
    try:
        c, params = qjr.from_pennylane(tape)
    except QjrError:
        assert name not in MUST_CONVERT
        return
    want = qml.execute([tape], qml.device("default.qubit", wires=n))[0]
    np.testing.assert_allclose(statevector_ref(c, np.asarray(params, dtype=float)), want, atol=1e-9)


def test_the_pennylane_sweep_is_broad():
    assert len(CASES) >= 80 and set(MUST_CONVERT) <= set(CASES)
