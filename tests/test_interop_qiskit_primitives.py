"""qjaxrob.interop.qiskit.Estimator (Qiskit's BaseEstimatorV2) against Qiskit's own
StatevectorEstimator on the same PUBs: broadcasting of parameter values against
observables, circuits without parameters, precision, and refused circuits."""

import numpy as np
import pytest

from qjaxrob.errors import ConversionError

pytest.importorskip("qiskit")
from qiskit import QuantumCircuit
from qiskit.circuit.library import efficient_su2, real_amplitudes
from qiskit.primitives import BaseEstimatorV2, StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp

from qjaxrob.interop.qiskit import Estimator


def _pubs(rng):
    ra = real_amplitudes(3, reps=2)
    su2 = efficient_su2(2, reps=1)
    ghz = QuantumCircuit(3)
    ghz.h(0)
    ghz.cx(0, 1)
    ghz.cx(1, 2)
    return [
        # observables (2, 1) against parameter rows (3,): shape (2, 3)
        (ra, [[SparsePauliOp("XZI")], [SparsePauliOp(["ZZI", "IIX", "YYY"], [0.5, 2.0, -1.0])]],
         rng.uniform(-3, 3, (3, ra.num_parameters))),
        (ra, SparsePauliOp("ZIZ"), rng.uniform(-3, 3, ra.num_parameters)),    # shape ()
        (su2, [SparsePauliOp("XY"), SparsePauliOp("ZI")], rng.uniform(-3, 3, (4, 1, 8))),
        (ghz, [SparsePauliOp("ZZI"), SparsePauliOp("XXX"), SparsePauliOp("IIZ")]),
    ]


def test_estimator_matches_statevector_estimator():
    rng = np.random.default_rng(0)
    pubs = _pubs(rng)
    ours = Estimator().run(pubs).result()
    ref = StatevectorEstimator().run(pubs).result()
    assert isinstance(Estimator(), BaseEstimatorV2) and len(ours) == len(pubs)
    for a, b in zip(ours, ref):
        assert a.data.evs.shape == b.data.evs.shape
        np.testing.assert_allclose(a.data.evs, b.data.evs, atol=1e-10)
        np.testing.assert_array_equal(a.data.stds, 0.0)
    assert ours[0].data.evs.shape == (2, 3) and ours[2].data.evs.shape == (4, 2)


def test_precision_adds_noise_of_that_size():
    rng = np.random.default_rng(1)
    pubs = _pubs(rng)[:1]
    exact = Estimator().run(pubs).result()[0].data.evs
    noisy = Estimator(seed=3).run(pubs, precision=0.05).result()[0]
    np.testing.assert_array_equal(noisy.data.stds, 0.05)
    diff = noisy.data.evs - exact
    assert np.all(np.abs(diff) < 6 * 0.05) and np.any(diff != 0)
    again = Estimator(seed=3).run(pubs, precision=0.05).result()[0]
    np.testing.assert_array_equal(again.data.evs, noisy.data.evs)   # seeded


def test_unsupported_instruction_names_it():
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.reset(1)
    with pytest.raises(ConversionError, match=r"instruction 1 \(reset"):
        Estimator().run([(qc, SparsePauliOp("ZZ"))]).result()
