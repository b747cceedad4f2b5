"""qjaxrob.interop.primitives.Estimator and Sampler (Qiskit's V2 primitives) against Qiskit:
StatevectorEstimator on the same PUBs (broadcasting of parameter values against
observables, circuits without parameters, precision, projector observables, refused
circuits), sampled register distributions against Statevector's exact marginals, and bad
PUBs (unbound parameters, wrong shapes, non-finite values, unsupported instructions) raised
as qjaxrob errors naming the PUB, shape or instruction."""

import numpy as np
import pytest

from qjaxrob.errors import ConversionError, ObservableError, ParameterError

pytest.importorskip("qiskit")
from qiskit import QuantumCircuit
from qiskit.circuit.library import efficient_su2, real_amplitudes
from qiskit.primitives import BaseEstimatorV2, StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp

from qjaxrob.interop.primitives import Estimator


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


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_projector_observables_match_statevector(dtype):
    """SparseObservable labels with projector letters (01+-rl) against Statevector's
    exact expectation of the observable's matrix, random bindings of EfficientSU2."""
    from qiskit.quantum_info import SparseObservable, Statevector
    rng = np.random.default_rng(4)
    qc = efficient_su2(3, reps=1)
    values = rng.uniform(-3, 3, (2, qc.num_parameters))
    labels = ["0ZI", "+X1", "1l-", "r0Y", "III", "-+0"]
    observables = [SparseObservable.from_list([(lab, c)]) + SparseObservable("XIZ")
                   for lab, c in zip(labels, rng.uniform(-2, 2, len(labels)))]
    ours = Estimator(dtype=dtype).run([(qc, [[o] for o in observables], values)]).result()[0]
    assert ours.data.evs.shape == (len(labels), 2)
    tol = 1e-5 if dtype == np.complex64 else 1e-11
    for j, obs in enumerate(observables):
        matrix = obs.as_paulis().to_matrix()
        for row in range(2):
            state = Statevector(qc.assign_parameters(values[row])).data
            exact = np.real(np.vdot(state, matrix @ state))
            assert abs(ours.data.evs[j, row] - exact) < tol, (labels[j], row)


def test_too_many_projector_letters_raise():
    from qiskit.quantum_info import SparseObservable
    with pytest.raises(ObservableError, match=r"'0000000000000' has 13 projector letters"):
        Estimator().run([(QuantumCircuit(13), SparseObservable("0" * 13))]).result()


def _bad_pubs():
    ra = real_amplitudes(2, reps=1)      # 2 qubits, 4 parameters
    zz = SparsePauliOp("ZZ")
    return [
        ((ra, zz), (r"PUB 0 \(circuit of 2 qubits and 4 parameters\): The number of values "
                    r"\(0\) does not match the number of parameters \(4\)")),
        ((ra, zz, np.zeros(3)), r"parameter values of shape \(3,\)"),
        ((ra, [zz] * 3, np.zeros((2, 4))), (r"observables shape \(3,\) and the parameter "
                                            r"values shape \(2,\) are not broadcastable")),
        ((ra, SparsePauliOp("ZZZ"), np.zeros(4)), (r"number of qubits of the circuit \(2\) "
                                                   r"does not match")),
    ]


@pytest.mark.parametrize("case", range(4))
def test_estimator_bad_pub_shapes_raise_parameter_error(case):
    pub, message = _bad_pubs()[case]
    with pytest.raises(ParameterError, match=message):
        Estimator().run([pub])


def test_bad_precision_and_non_finite_values_raise():
    ra = real_amplitudes(2, reps=1)
    with pytest.raises(ParameterError, match="PUB 0.*precision must be non-negative"):
        Estimator().run([(ra, SparsePauliOp("ZZ"), np.zeros(4))], precision=-0.1)
    values = np.zeros((2, 4))
    values[1, 2] = np.inf
    with pytest.raises(ParameterError, match=r"inf of 'θ\[2\]' at binding \(1,\)"):
        Estimator().run([(ra, SparsePauliOp("ZZ"), values)]).result()


def _measured_circuit():
    from qiskit import ClassicalRegister
    qc = real_amplitudes(3, reps=1)
    a, b = ClassicalRegister(2, "a"), ClassicalRegister(2, "b")
    qc.add_register(a)
    qc.add_register(b)
    qc.measure(2, a[0])
    qc.measure(0, a[1])
    qc.measure(1, b[1])          # b[0] is never written: always 0
    return qc


def test_sampler_matches_the_exact_distributions():
    """Per register and parameter row, outcome frequencies over 4000 shots lie within 5
    binomial standard deviations of the exact marginals (Qiskit's Statevector, register
    clbit j = its measured qubit, clbit 0 least significant); same data layout as
    StatevectorSampler."""
    from qiskit.primitives import BaseSamplerV2, StatevectorSampler
    from qiskit.quantum_info import Statevector

    from qjaxrob.interop.primitives import Sampler
    qc = _measured_circuit()
    shots = 4000
    values = np.random.default_rng(2).uniform(-3, 3, (3, qc.num_parameters))
    ours = Sampler(seed=5).run([(qc, values)], shots=shots).result()[0]
    ref = StatevectorSampler(seed=5).run([(qc, values)], shots=shots).result()[0]
    assert isinstance(Sampler(), BaseSamplerV2)
    for name in ("a", "b"):
        mine, theirs = getattr(ours.data, name), getattr(ref.data, name)
        assert (mine.shape, mine.num_shots, mine.num_bits) == (theirs.shape, theirs.num_shots,
                                                               theirs.num_bits)
    for row in range(3):
        bound = qc.assign_parameters(values[row])
        bound.remove_final_measurements()
        state = Statevector(bound)
        for name, qubits in (("a", [2, 0]), ("b", [1])):
            exact = state.probabilities(qubits)
            if name == "b":     # clbit 1 holds qubit 1, clbit 0 stays 0: values 0 or 2
                exact = np.array([exact[0], 0.0, exact[1], 0.0])
            counts = getattr(ours.data, name)[row].get_int_counts()
            freq = np.array([counts.get(k, 0) for k in range(len(exact))]) / shots
            sigma = np.sqrt(np.maximum(exact * (1 - exact), 1e-12) / shots)
            assert np.all(np.abs(freq - exact) <= 5 * sigma + 1e-12), (name, row, freq, exact)
    again = Sampler(seed=5).run([(qc, values)], shots=shots).result()[0]
    assert again.data.a.get_counts() == ours.data.a.get_counts()      # seeded


def test_sampler_bad_input_raises_naming_it():
    """Unbound parameters, a wrong parameter count, bad shots and non-finite values are
    ParameterErrors naming the PUB/shape/value; mid-circuit measurement and classical
    control are ConversionErrors naming the instruction."""
    from qiskit import QuantumCircuit

    from qjaxrob.interop.primitives import Sampler
    qc = _measured_circuit()                 # 3 qubits, 6 parameters
    with pytest.raises(ParameterError, match=r"PUB 0 \(circuit of 3 qubits and 6 parameters\)"):
        Sampler().run([(qc,)])
    with pytest.raises(ParameterError, match=r"parameter values of shape \(2, 5\)"):
        Sampler().run([(qc, np.zeros((2, 5)))])
    with pytest.raises(ParameterError, match="shots must be positive"):
        Sampler().run([(qc, np.zeros(6))], shots=0)
    with pytest.raises(ParameterError, match=r"nan of 'θ\[0\]' at binding \(\)"):
        Sampler().run([(qc, np.full(6, np.nan))]).result()
    mid = QuantumCircuit(2, 2)
    mid.h(0)
    mid.measure(0, 0)
    mid.x(0)
    mid.measure(0, 1)
    with pytest.raises(ConversionError, match=r"instruction 2 \(x on qubits \(0,\)\).*"
                                              r"mid-circuit measurement"):
        Sampler().run([mid]).result()
    control = QuantumCircuit(2, 2)
    control.h(0)
    control.measure(0, 0)
    with control.if_test((control.clbits[0], 1)):
        control.x(1)
    control.measure(1, 1)
    with pytest.raises(ConversionError, match=r"instruction 2 \(if_else"):
        Sampler().run([control]).result()
