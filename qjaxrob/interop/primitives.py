"""Qiskit's V2 primitives running on qjaxrob (extra ``qiskit``): ``Estimator``
(``BaseEstimatorV2``) and ``Sampler`` (``BaseSamplerV2``).

``Estimator().run([(circuit, observables, parameter_values), ...], precision=...)``
follows Qiskit's V2 estimator contract: each PUB's circuit is converted once by
``from_qiskit`` (exact, or refused with a ``ConversionError`` naming the instruction),
its parameter values (a ``BindingsArray``, rows in ``circuit.parameters`` order) and
observables (an ``ObservablesArray``: Pauli labels and ``SparseObservable``'s projector
letters ``01+-rl``, expanded into Paulis) broadcast against each other, and the
expectation values of every distinct observable are computed for every parameter row in one
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

Bad input raises ``qjaxrob.errors``: a PUB Qiskit cannot coerce or validate (unbound
parameters, parameter values whose last axis is not ``circuit.num_parameters`` long,
observables not broadcastable against the parameter values or of another width, a
negative precision, non-positive shots) a ``ParameterError`` naming the PUB and Qiskit's
reason (which names the shapes); non-finite parameter values a ``ParameterError``
naming the first; an instruction without an exact qjaxrob form a ``ConversionError``
naming it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from qjaxrob.errors import ObservableError, ParameterError
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


def _describe(pub, values_at: int) -> str:
    """`` (circuit of n qubits and p parameters, parameter values of shape s)`` for a
    tuple PUB, to name the shapes in a coercion error; empty otherwise."""
    if not (isinstance(pub, tuple) and pub and hasattr(pub[0], "num_parameters")):
        return ""
    parts = [f"circuit of {pub[0].num_qubits} qubits and {pub[0].num_parameters} parameters"]
    if len(pub) > values_at and pub[values_at] is not None \
            and not isinstance(pub[values_at], dict):
        try:
            parts.append(f"parameter values of shape {np.shape(pub[values_at])}")
        except (TypeError, ValueError):
            pass
    return f" ({', '.join(parts)})"


def _coerce(kind, pubs, default, values_at: int):
    """Qiskit's coercion and validation of each PUB (``kind``: ``EstimatorPub`` or
    ``SamplerPub``; ``values_at``: the position of the parameter values in a tuple PUB),
    its ``ValueError``/``TypeError`` raised as a ``ParameterError`` naming the PUB."""
    coerced = []
    for i, pub in enumerate(pubs):
        try:
            coerced.append(kind.coerce(pub, default))
        except (ValueError, TypeError) as exc:
            raise ParameterError(f"PUB {i}{_describe(pub, values_at)}: {exc}") from exc
    return coerced


def _rows(pub, circuit, real):
    """The PUB's parameter rows as an ``(n_rows, circuit.n_params)`` array (rows in
    ``pub.parameter_values`` order, columns in ``pub.circuit.parameters`` order)."""
    values = pub.parameter_values.as_array(pub.circuit.parameters)  # (*shape, n_params)
    n_rows = int(np.prod(pub.parameter_values.shape, dtype=int))
    rows = np.asarray(values, np.float64).reshape(n_rows, values.shape[-1])[:, :circuit.n_params]
    bad = np.argwhere(~np.isfinite(rows))
    if bad.size:
        row, col = bad[0]
        index = np.unravel_index(row, pub.parameter_values.shape)
        name = pub.circuit.parameters[int(col)].name
        raise ParameterError(f"parameter value {rows[row, col]} of {name!r} at binding "
                             f"{tuple(int(i) for i in index)} is not finite")
    return jnp.asarray(rows, real)


# Qiskit's projector letters (``SparseObservable``) as half sums of Paulis: |0><0| = (I + Z)/2...
_PROJECTORS = {"0": ("I", "Z", 1), "1": ("I", "Z", -1), "+": ("I", "X", 1),
               "-": ("I", "X", -1), "r": ("I", "Y", 1), "l": ("I", "Y", -1)}
_MAX_PROJECTOR_LETTERS = 12


def _pauli_terms(label: str, coeff: float) -> list[tuple[str, float]]:
    """A Qiskit observable label (``IXYZ`` and the projectors ``01+-rl``) as
    ``[(pauli label, coeff)]``; each projector letter doubles the terms."""
    terms = [("", coeff)]
    projectors = sum(letter in _PROJECTORS for letter in label)
    if projectors > _MAX_PROJECTOR_LETTERS:
        raise ObservableError(f"observable term {label!r} has {projectors} projector letters; "
                              f"at most {_MAX_PROJECTOR_LETTERS} are expanded into Paulis")
    for letter in label:
        if letter in _PROJECTORS:
            identity, pauli, sign = _PROJECTORS[letter]
            terms = [(word + p, c * s / 2) for word, c in terms
                     for p, s in ((identity, 1), (pauli, sign))]
        else:
            terms = [(word + letter, c) for word, c in terms]
    return terms


def _pauli_sum(observable: dict):
    """A ``{qiskit label: coeff}`` dict (coefficients real: Qiskit's ``ObservablesArray``
    checks that) as a qjaxrob Pauli sum (labels reversed: Qiskit's qubit 0 is the last
    letter)."""
    total = None
    for label, coeff in observable.items():
        for word, c in _pauli_terms(label, float(np.real(coeff))):
            term = c * qjr.pauli(word[::-1])
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
        coerced = _coerce(_pub.EstimatorPub, pubs, precision, 2)
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
        real = np.finfo(dtype).dtype
        rows = _rows(pub, circuit, real)
        shape = pub.shape
        row_of = np.arange(rows.shape[0]).reshape(pub.parameter_values.shape)
        labels, column_of = {}, np.empty(pub.observables.shape, int)
        for index in np.ndindex(*pub.observables.shape):
            key = tuple(sorted(pub.observables[index].items()))
            column_of[index] = labels.setdefault(key, len(labels))
        observables = [_pauli_sum(dict(key)) for key in labels]

        def values_at(p):
            return qjr.expval(circuit, observables, p if circuit.n_params else None, dtype=dtype)

        table = np.asarray(jax.vmap(values_at)(rows), np.float64)
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
        coerced = _coerce(_spub.SamplerPub, pubs, shots, 1)
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
        rows = _rows(pub, circuit, np.finfo(dtype).dtype)
        n_rows = rows.shape[0]

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
