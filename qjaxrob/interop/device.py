"""``qml.device("qjaxrob.qubit", wires=n)``: qjaxrob as a PennyLane device (new device API).

Each tape is converted by ``qjaxrob.interop.pennylane.convert_tape`` (wire ``i`` of the
device = qjaxrob wire ``i``; gate angles become ``params``) and simulated by qjaxrob:

* analytic expectation values of observables with a Pauli form (``X Y Z I Hadamard``,
  products, sums, scalar multiples: ``obs.pauli_rep``) come from one ``qjr.expval``
  call over all Pauli words of the tape (coefficients may be traced and are
  differentiable);
* every other analytic measurement (``probs``, ``var``, ``state``, ``density_matrix``,
  ``expval`` of ``Hermitian``...) is PennyLane's ``devices.qubit.measure`` applied to
  qjaxrob's statevector;
* a broadcast tape (a batch of angles, e.g. ``AngleEmbedding`` of a data batch) runs as
  one ``jax.vmap`` over the batch, not one tape per element (``pennylane.vmappable``:
  analytic tapes whose broadcast operations are gates with scalar angles; other
  broadcasts are expanded);
* with shots, PennyLane's ``measure_with_samples`` samples from qjaxrob's statevector
  (``seed``: an int or ``None`` for a NumPy generator, or a ``jax.random`` key, which
  lets a shot-based QNode be jitted end to end; as with ``default.qubit``, a jitted
  QNode then reuses the key drawn when it was traced); classical shadows
  (``classical_shadow``, ``shadow_expval``) are sampled in NumPy, so under ``jax.jit`` such
  a tape runs in a host callback, whatever the seed;
* mid-circuit measurements (``qml.measure``, ``qml.cond``, ``reset=True``) run deferred
  (``qml.defer_measurements``: one extra wire per reused measured wire, so the device
  needs spare wires); postselection and ``mcm_method`` other than ``"deferred"`` are
  refused (``ConversionError`` / ``ParameterError``).

Gradients: with ``interface="jax"`` PennyLane uses ``diff_method="backprop"`` (also what
``"best"`` resolves to for analytic tapes): ``jax.grad`` and ``jax.jit`` go straight
through qjaxrob; ``diff="adjoint"`` makes the expectation-value path use qjaxrob's
adjoint-method gradient instead of reverse-mode backprop (same values, memory independent
of depth). With autograd (PennyLane's NumPy interface) backprop runs the differentiated
parameters through JAX, ``jax.vjp`` serving as autograd's derivative (any order;
``qjaxrob.interop.autograd_bridge``). Torch and TensorFlow are not declared, so PennyLane
uses its gradient transforms for them, as for tapes with shots (parameter shift).

Compiles: qjaxrob's jitted simulation is cached per circuit structure, so tapes that
differ only in parameter values (gate angles, observable coefficients, the matrices of
1- and 2-wire ``QubitUnitary`` gates, which are decomposed into rotations) reuse one
executable; with concrete (untraced) inputs PennyLane's measurements run in NumPy on the
final state, so they add no compiles per shape. Still compiled per value: operations
converted through a constant matrix (``QubitUnitary`` on 3+ wires,
``DoubleExcitationPlus``...) and state preparations whose values choose the gates
(``BasisState``).

Samples are drawn from the state renormalised in float64 (a complex64 state of a deep
circuit can miss norm 1 by more than PennyLane's sampler allows). Under ``jax.jit``
without backprop PennyLane runs the device inside a host callback; the device then
preprocesses and converts each circuit once at trace time, so an unsupported operation
or a ``qjaxrob.errors`` error is raised as itself, not as a ``JaxRuntimeError``.

PennyLane's own device test suite (PennyLane 0.45.1; needs ``flaky`` and ``pytest-mock``),
run from a checkout whose ``qjaxrob`` is first on ``sys.path``::

    D=$(python -c "import os, pennylane.devices.tests as t; print(os.path.dirname(t.__file__))")
    python -m pytest $D --device=qjaxrob.qubit -q -p no:cacheprovider
    python -m pytest $D --device=qjaxrob.qubit --shots=10000 -q -p no:cacheprovider
"""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from qjaxrob.errors import ConversionError, GradientError, MatrixError, ParameterError
from qjaxrob.extras import require
from qjaxrob.interop.autograd_bridge import autograd_call, autograd_value, is_boxed
from qjaxrob.interop.pennylane import convert_tape, supported_operation, vmappable

# the device is only loaded through PennyLane's plugin entry point; one guard for the extra
qml = require("pennylane", "pennylane", "the qjaxrob.qubit device")
from pennylane.devices import Device, ExecutionConfig  # noqa: E402
from pennylane.devices.preprocess import (  # noqa: E402
    decompose,
    no_sampling,
    validate_device_wires,
    validate_measurements,
)
from pennylane.devices.qubit import measure, measure_with_samples  # noqa: E402
from pennylane.measurements import (  # noqa: E402
    ClassicalShadowMP,
    ExpectationMP,
    SampleMeasurement,
    ShadowExpvalMP,
    StateMeasurement,
)

__all__ = ["QjaxrobQubit"]

_JAX = {qml.math.Interface.JAX, qml.math.Interface.JAX_JIT}
_BACKPROP_INTERFACES = _JAX | {qml.math.Interface.NUMPY, qml.math.Interface.AUTOGRAD}
_PAULI = {"X": qjr.X, "Y": qjr.Y, "Z": qjr.Z}


def _analytic_ok(mp) -> bool:
    return isinstance(mp, StateMeasurement) and (mp.obs is None or mp.obs.has_matrix
                                                 or mp.obs.pauli_rep is not None)


def _sample_ok(mp) -> bool:
    return isinstance(mp, (SampleMeasurement, ClassicalShadowMP, ShadowExpvalMP))


def _has_shadow(tape) -> bool:
    """Whether ``tape`` measures classical shadows (sampled in NumPy only: under
    ``jax.jit`` such a tape runs in a host callback, also with a ``jax.random`` key)."""
    return tape is not None and any(isinstance(m, (ClassicalShadowMP, ShadowExpvalMP))
                                    for m in tape.measurements)


def _shadow_ints(tape, results):
    """Classical shadow results (bits and recipes, int8 from PennyLane's sampler) as JAX's
    default integer type, which ``jax.jit``'s host callback expects."""
    int_dtype = jnp.zeros((), int).dtype

    def fix(per_mp):
        return tuple(np.asarray(r, int_dtype) if isinstance(m, ClassicalShadowMP) else r
                     for m, r in zip(tape.measurements, per_mp))

    if tape.shots.has_partitioned_shots:
        return tuple(fix(r) for r in results)
    return fix(results)


def _output(out, jax_in: bool, to_jax: bool):
    """Results as NumPy arrays for non-JAX callers (tracers, e.g. samples drawn with a
    traced ``jax.random`` key, stay as they are); for a tape holding JAX arrays, as they
    are, or (``to_jax``: computed in NumPy) as JAX arrays."""
    if not jax_in:
        return jax.tree.map(lambda v: v if isinstance(v, jax.core.Tracer) else np.asarray(v),
                            out)
    return jax.tree.map(jnp.asarray, out) if to_jax else out


def _stops(op) -> bool:
    """The device's stopping condition for PennyLane's ``decompose``: as
    ``supported_operation``, except that a 1- or 2-wire ``QubitUnitary`` is decomposed
    (ZYZ rotations, or PennyLane's two-qubit decomposition into rotations and CNOTs, both
    exact to float64 rounding), so its matrix enters the compiled program as gate angles
    rather than as a constant: tapes that differ only in such a matrix reuse one executable
    (per CNOT count, 0 to 3, for two wires). A matrix that is not unitary (or is traced or
    broadcast) is not decomposed: the conversion refuses it, or PennyLane decomposes it,
    as before."""
    if op.name == "QubitUnitary" and len(op.wires) <= 2 and supported_operation(op):
        try:
            qjr.checks.check_unitary(op.data[0], len(op.wires))
        except MatrixError:
            return True
        return False
    return supported_operation(op)


@qml.transform
def _no_postselection(tape):
    """Refuses postselected mid-circuit measurements (deferred, they would need a
    non-unitary projector and a renormalised state): a ``ConversionError`` naming the
    measurement."""
    for position, op in enumerate(tape.operations):
        if getattr(op, "postselect", None) is not None:
            raise ConversionError(
                f"operation {position} (mid-circuit measurement on wires {op.wires.tolist()} "
                f"with postselect={op.postselect}): postselection is not supported on "
                "qjaxrob.qubit")
    return (tape,), lambda results: results[0]


@qml.transform
def _expand_unless_vmappable(tape):
    """Broadcast tapes that ``vmappable`` accepts stay one tape (run as one ``vmap``);
    others are expanded into one tape per batch element."""
    if tape.batch_size is None or vmappable(tape):
        return (tape,), lambda results: results[0]
    return qml.transforms.broadcast_expand(tape)


class QjaxrobQubit(Device):
    """A PennyLane device simulating with qjaxrob (see the module docstring).

    Args:
        wires: number of wires or their labels (label ``i`` = qjaxrob wire ``i``); if
            ``None``, each tape's own wires in PennyLane's order.
        shots: deprecated by PennyLane on devices; use ``qml.set_shots`` on the QNode.
        seed: ``None`` or an int (NumPy generator for sampling), or a ``jax.random`` key.
        dtype: ``jnp.complex64`` or ``jnp.complex128``; default complex128 when
            ``jax_enable_x64`` is on, else complex64.
        diff: ``"backprop"`` or ``"adjoint"``: how qjaxrob differentiates expectation values.
    """

    def __init__(self, wires=None, shots=None, seed=None, dtype=None, diff="backprop"):
        super().__init__(wires=wires, shots=shots)
        if diff not in ("backprop", "adjoint"):
            raise ParameterError(f"diff must be 'backprop' or 'adjoint', got {diff!r}")
        self._diff = diff
        self._dtype = None if dtype is None else qjr.checks.check_dtype(dtype)
        if isinstance(seed, jax.Array):
            self._prng_key, self._rng = seed, None
        else:
            self._prng_key, self._rng = None, np.random.default_rng(seed)

    @property
    def name(self) -> str:
        return "qjaxrob.qubit"

    # ---- configuration -----------------------------------------------------------------
    def supports_derivatives(self, execution_config=None, circuit=None) -> bool:
        """Backprop on analytic tapes for the JAX interfaces (through qjaxrob) and for
        autograd / NumPy (through JAX, ``autograd_bridge``); torch and TensorFlow get
        ``False``, so PennyLane falls back to its gradient transforms."""
        if execution_config is None:
            return True
        if execution_config.gradient_method not in ("backprop", "best"):
            return False
        if execution_config.interface not in _BACKPROP_INTERFACES:
            return False
        return circuit is None or not circuit.shots

    def setup_execution_config(self, config=None, circuit=None) -> ExecutionConfig:
        config = config or ExecutionConfig()
        method = config.gradient_method
        if method == "best":
            method = "backprop"
        jaxish = config.interface in _JAX
        mcm = config.mcm_config
        if mcm.mcm_method not in (None, "deferred"):
            raise ParameterError(
                f"mcm_method={mcm.mcm_method!r}: qjaxrob.qubit runs mid-circuit measurements "
                "deferred only (mcm_method='deferred' or None)")
        config = replace(
            config,
            mcm_config=replace(mcm, mcm_method="deferred"),
            gradient_method=method,
            use_device_gradient=method == "backprop",
            use_device_jacobian_product=False,
            grad_on_execution=False,
            convert_to_numpy=_has_shadow(circuit) or not (
                jaxish and (method == "backprop" or self._prng_key is not None)),
        )
        if circuit is not None and config.interface is qml.math.Interface.JAX_JIT \
                and not config.use_device_gradient:
            self._dry_run(circuit, config)
        return config

    def _dry_run(self, circuit, config):
        """Preprocesses and converts ``circuit`` once, now. Under ``jax.jit`` without
        backprop, PennyLane runs the device's preprocessing and execution inside a host
        callback, where any error (an unsupported operation or measurement, a
        ``qjaxrob.errors`` error) would reach the user as an opaque ``JaxRuntimeError``;
        here, at trace time, it is raised as itself."""
        tapes, _ = self.preprocess_transforms(config)((circuit,))
        for tape in tapes:
            self._convert(tape)

    def preprocess_transforms(self, execution_config=None):
        config = execution_config or ExecutionConfig()
        program = qml.CompilePipeline()
        program.add_transform(_no_postselection)
        program.add_transform(qml.defer_measurements, allow_postselect=False)
        program.add_transform(decompose, stopping_condition=_stops,
                              skip_initial_state_prep=False, name=self.name)
        program.add_transform(validate_device_wires, self.wires, name=self.name)
        program.add_transform(validate_measurements, analytic_measurements=_analytic_ok,
                              sample_measurements=_sample_ok, name=self.name)
        program.add_transform(_expand_unless_vmappable)
        if config.gradient_method == "backprop":
            program.add_transform(no_sampling, name="backprop + qjaxrob.qubit")
        return program

    # ---- execution ---------------------------------------------------------------------
    def execute(self, circuits, execution_config=None):
        if self.tracker.active:
            self.tracker.update(batches=1)
            self.tracker.record()
        results = []
        for tape in circuits:
            results.append(self._run(tape))
            if self.tracker.active:
                self.tracker.update(executions=1, simulations=1,
                                    shots=tape.shots.total_shots if tape.shots else None)
                self.tracker.record()
        return tuple(results)

    def _dtype_now(self):
        if self._dtype is not None:
            return self._dtype
        return np.dtype(np.complex128 if jax.config.jax_enable_x64 else np.complex64)

    def _convert(self, tape):
        """``(tape, circuit, params, n_wires)``: the tape on wires ``0..n-1`` and its
        qjaxrob circuit and parameters."""
        wire_order = list(self.wires) if self.wires is not None else tape.wires.tolist()
        if wire_order != list(range(len(wire_order))):
            (tape,), _ = qml.map_wires(tape, {label: i for i, label in enumerate(wire_order)})
            wire_order = list(range(len(wire_order)))
        real = np.finfo(self._dtype_now()).dtype
        return (tape, *convert_tape(tape, wire_order, real), len(wire_order))

    def _run(self, tape):
        values = tape.get_parameters(trainable_only=False)
        boxed = [i for i, v in enumerate(values) if is_boxed(v)]
        if boxed:
            return self._run_autograd(tape, boxed, values)
        return self._run_plain(tape)

    def _run_autograd(self, tape, boxed, values):
        """Backprop for the autograd (NumPy) interface: the tape's differentiated
        parameters run through JAX, with ``jax.vjp`` as autograd's derivative."""
        if any(np.iscomplexobj(autograd_value(values[i])) for i in boxed):
            raise GradientError("autograd backprop on qjaxrob.qubit differentiates real gate "
                                "and observable parameters only")

        def fn(*xs):
            return self._run_plain(tape.bind_new_parameters(list(xs), boxed))

        return autograd_call(fn, *[values[i] for i in boxed])

    def _run_plain(self, tape):
        dtype = self._dtype_now()
        tape, circuit, params, n_wires = self._convert(tape)
        data = [v for op in tape.operations for v in op.data]
        data += [v for m in tape.measurements if m.obs is not None for v in m.obs.data]
        jax_in = any(isinstance(v, jax.Array) for v in data)
        concrete = not isinstance(params, jax.core.Tracer) and not any(
            isinstance(v, jax.core.Tracer) for v in data)
        mps = tape.measurements
        batched = params.ndim == 2      # a broadcast tape: one vmap over the batch
        if not tape.shots and all(isinstance(m, ExpectationMP) and m.obs is not None
                                  and m.obs.pauli_rep is not None for m in mps):
            if batched:
                out = list(jax.vmap(
                    lambda p: tuple(self._pauli_expvals(circuit, p, mps, dtype, False)))(params))
            else:
                out = self._pauli_expvals(circuit, params, mps, dtype, concrete)
        elif batched:
            states = jax.vmap(lambda p: qjr.statevector(circuit, p, dtype=dtype))(params)
            states = states.reshape((-1,) + (2,) * n_wires)
            out = [measure(m, states, is_state_batched=True) for m in mps]
        else:
            state = qjr.statevector(circuit, params, dtype=dtype).reshape((2,) * n_wires)
            if tape.shots:
                return _output(self._sampled(tape, state), jax_in, False)
            if concrete:        # PennyLane's measurements in NumPy: no per-shape compiles
                state = np.asarray(state)
            out = [measure(m, state) for m in mps]
        return _output(out[0] if len(out) == 1 else tuple(out), jax_in, concrete)

    def _pauli_expvals(self, circuit, params, mps, dtype, concrete):
        """The expectation values of ``mps`` (Pauli sums): one ``qjr.expval`` over their
        distinct Pauli words, summed with their coefficients in NumPy when ``concrete``
        (no tracers), else in JAX (coefficients may be traced and are differentiated)."""
        words, terms = {}, []
        for m in mps:
            entry = []
            for word, coeff in m.obs.pauli_rep.items():
                key = tuple(sorted((w, letter) for w, letter in word.items()))
                if key and key not in words:
                    words[key] = len(words)
                entry.append((words.get(key, -1) if key else -1, coeff))
            terms.append(entry)
        real = np.finfo(dtype).dtype
        if words:
            observables = []
            for key in words:
                obs = _PAULI[key[0][1]](key[0][0])
                for wire, letter in key[1:]:
                    obs = obs @ _PAULI[letter](wire)
                observables.append(obs)
            values = qjr.expval(circuit, observables, params, dtype=dtype, diff=self._diff)
            if concrete:
                values = np.asarray(values, np.float64)
        out = []
        for entry in terms:
            total = 0.0 if concrete else jnp.zeros((), real)
            for position, coeff in entry:
                term = 1.0 if position < 0 else values[position]
                if concrete:
                    coeff = float(np.real(np.asarray(coeff)))
                elif isinstance(coeff, jax.Array):   # trainable (possibly traced) coefficient
                    coeff = jnp.real(coeff).astype(real)
                else:
                    coeff = float(np.real(coeff))
                total = total + coeff * term
            out.append(np.asarray(total, real) if concrete else total)
        return out

    def _sampled(self, tape, state):
        """Samples from ``state``, renormalised first: in float64 for a concrete state (a
        complex64 state of a deep circuit misses norm 1 by more than PennyLane's sampler
        allows), in its own dtype when traced."""
        if isinstance(state, jax.core.Tracer):
            if _has_shadow(tape):
                raise ConversionError(
                    "classical shadows are sampled in NumPy and cannot be traced; run the "
                    "QNode under jax.jit as a whole (the device then samples in a callback)")
            state = state / jnp.linalg.norm(state)
        else:
            state = np.asarray(state, np.complex128)
            state = state / np.linalg.norm(state)
        key = None
        if self._prng_key is not None:
            self._prng_key, key = jax.random.split(self._prng_key)
        results = measure_with_samples(tape.measurements, state, shots=tape.shots,
                                       rng=self._rng, prng_key=key)
        if any(isinstance(m, ClassicalShadowMP) for m in tape.measurements):
            results = _shadow_ints(tape, results)
        if len(tape.measurements) == 1:
            if tape.shots.has_partitioned_shots:
                return tuple(r[0] for r in results)
            return results[0]
        return results
