"""Qiskit's V2 primitives running on qjaxrob (extra ``qiskit``): ``Estimator``
(``BaseEstimatorV2``) and ``Sampler`` (``BaseSamplerV2``).

``Estimator().run([(circuit, observables, parameter_values), ...], precision=...)``
follows Qiskit's V2 estimator contract: each PUB's circuit is converted once by
``from_qiskit`` (exact, or refused with a ``ConversionError`` naming the instruction),
its parameter values (a ``BindingsArray``, rows in ``circuit.parameters`` order) and
observables (an ``ObservablesArray``) broadcast against each other, and the expectation
values of every distinct observable are computed for every parameter row in one
``jax.vmap`` of ``qjr.expval``. Pauli labels are Qiskit's (qubit 0 the rightmost letter);
qjaxrob's wire ``k`` is Qiskit's qubit ``k`` (see ``qjaxrob.interop.qiskit``).

``precision`` as in Qiskit's ``StatevectorEstimator``: 0 gives the exact values (``stds``
0); a positive value adds Gaussian noise of that standard deviation (drawn from
``seed``), and ``stds`` reports it.

``Sampler().run([(circuit, parameter_values), ...], shots=...)`` samples ``qjr.sample``
for every parameter row (one ``vmap`` over rows and keys from ``seed``) and returns one
``BitArray`` per classical register, named as the register: clbit ``j`` of a register
holds the last qubit measured into it (0 if none). Measurements must be final (nothing
may follow on a measured qubit; ``from_qiskit`` refuses mid-circuit measurement).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from qjaxrob.errors import ParameterError
from qjaxrob.extras import require
from qjaxrob.interop.qiskit import from_qiskit

_primitives = require("qiskit.primitives", "qiskit", "the qjaxrob Qiskit Estimator")
_containers = require("qiskit.primitives.containers", "qiskit", "the qjaxrob Qiskit Estimator")
_pub = require("qiskit.primitives.containers.estimator_pub", "qiskit",
               "the qjaxrob Qiskit Estimator")
_job = require("qiskit.primitives.primitive_job", "qiskit", "the qjaxrob Qiskit Estimator")

_spub = require("qiskit.primitives.containers.sampler_pub", "qiskit",
                "the qjaxrob Qiskit Sampler")

__all__ = ["Estimator", "Sampler"]


def _pauli_sum(observable: dict):
    """A ``{qiskit pauli label: coeff}`` dict as a qjaxrob Pauli sum (labels reversed)."""
    total = None
    for label, coeff in observable.items():
        if abs(np.imag(coeff)) > 1e-12:
            raise ParameterError(f"observable coefficient {coeff!r} of {label!r} is not real")
        term = float(np.real(coeff)) * qjr.pauli(label[::-1])
        total = term if total is None else total + term
    return total


class Estimator(_primitives.BaseEstimatorV2):
    """Qiskit's ``BaseEstimatorV2`` on qjaxrob (module docstring).

    Args:
        default_precision: the precision of PUBs that give none (0: exact).
        seed: NumPy seed of the precision noise.
        dtype: ``jnp.complex64`` or ``jnp.complex128`` (default complex128 when
            ``jax_enable_x64`` is on, else complex64).
    """

    def __init__(self, *, default_precision: float = 0.0, seed=None, dtype=None):
        self._default_precision = qjr.checks.check_real(default_precision, "default_precision",
                                                        low=0.0)
        self._seed = seed
        self._dtype = None if dtype is None else qjr.checks.check_dtype(dtype)

    def run(self, pubs, *, precision=None):
        if precision is None:
            precision = self._default_precision
        coerced = [_pub.EstimatorPub.coerce(pub, precision) for pub in pubs]
        job = _job.PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs):
        rng = np.random.default_rng(self._seed)
        return _containers.PrimitiveResult([self._run_pub(pub, rng) for pub in pubs],
                                           metadata={"version": 2})

    def _run_pub(self, pub, rng):
        dtype = self._dtype or (jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64)
        circuit = from_qiskit(pub.circuit)
        values = pub.parameter_values.as_array(pub.circuit.parameters)  # (*shape, n_params)
        shape = pub.shape
        n_rows = int(np.prod(pub.parameter_values.shape, dtype=int))
        rows = values.reshape(n_rows, values.shape[-1])[:, :circuit.n_params]
        row_of = np.arange(n_rows).reshape(pub.parameter_values.shape)
        labels, column_of = {}, np.empty(pub.observables.shape, int)
        for index in np.ndindex(*pub.observables.shape):
            key = tuple(sorted(pub.observables[index].items()))
            column_of[index] = labels.setdefault(key, len(labels))
        observables = [_pauli_sum(dict(key)) for key in labels]
        real = np.finfo(dtype).dtype

        def values_at(p):
            return qjr.expval(circuit, observables, p if circuit.n_params else None, dtype=dtype)

        table = np.asarray(jax.vmap(values_at)(jnp.asarray(rows, real)), np.float64)
        rows_b = np.broadcast_to(row_of, shape)
        cols_b = np.broadcast_to(column_of, shape)
        evs = table[rows_b, cols_b]
        stds = np.zeros(shape)
        if pub.precision:
            evs = evs + rng.normal(0.0, pub.precision, shape)
            stds = np.full(shape, pub.precision)
        data = _containers.DataBin(evs=evs, stds=stds, shape=shape)
        return _containers.PubResult(data, metadata={"target_precision": pub.precision,
                                                     "circuit_metadata": pub.circuit.metadata})


def _register_sources(qc) -> dict:
    """``{register name: [qubit measured into clbit j, or -1]}`` from the final measures."""
    sources = {reg.name: [-1] * reg.size for reg in qc.cregs}
    for instruction in qc.data:
        if instruction.operation.name != "measure":
            continue
        qubit = qc.find_bit(instruction.qubits[0]).index
        for register, j in qc.find_bit(instruction.clbits[0]).registers:
            sources[register.name][j] = qubit
    return sources


class Sampler(_primitives.BaseSamplerV2):
    """Qiskit's ``BaseSamplerV2`` on qjaxrob (module docstring).

    Args:
        default_shots: shots of PUBs that give none.
        seed: int seed of the ``jax.random`` key (``None``: 0).
        dtype: as for :class:`Estimator`.
    """

    def __init__(self, *, default_shots: int = 1024, seed=None, dtype=None):
        self._default_shots = qjr.checks.check_positive_int(default_shots, "default_shots")
        self._seed = 0 if seed is None else qjr.checks.check_int(seed, "seed")
        self._dtype = None if dtype is None else qjr.checks.check_dtype(dtype)

    def run(self, pubs, *, shots=None):
        if shots is None:
            shots = self._default_shots
        coerced = [_spub.SamplerPub.coerce(pub, shots) for pub in pubs]
        job = _job.PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs):
        key = jax.random.PRNGKey(self._seed)
        results = []
        for pub in pubs:
            key, sub = jax.random.split(key)
            results.append(self._run_pub(pub, sub))
        return _containers.PrimitiveResult(results, metadata={"version": 2})

    def _run_pub(self, pub, key):
        dtype = self._dtype or (jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64)
        circuit = from_qiskit(pub.circuit)
        shape, shots = pub.shape, pub.shots
        n_rows = int(np.prod(shape, dtype=int))
        values = pub.parameter_values.as_array(pub.circuit.parameters)
        rows = jnp.asarray(values.reshape(n_rows, values.shape[-1])[:, :circuit.n_params],
                           np.finfo(dtype).dtype)

        def draw(k, p):
            return qjr.sample(k, circuit, shots, p if circuit.n_params else None, dtype=dtype)

        bits = np.asarray(jax.vmap(draw)(jax.random.split(key, n_rows), rows), bool)
        bits = bits.reshape(tuple(shape) + (shots, circuit.n_qubits))
        arrays = {}
        for name, sources in _register_sources(pub.circuit).items():
            out = np.zeros(tuple(shape) + (shots, len(sources)), bool)
            for j, qubit in enumerate(sources):
                if qubit >= 0:
                    out[..., j] = bits[..., qubit]
            arrays[name] = _containers.BitArray.from_bool_array(out, order="little")
        data = _containers.DataBin(**arrays, shape=shape)
        return _containers.SamplerPubResult(
            data, metadata={"shots": shots, "circuit_metadata": pub.circuit.metadata})
