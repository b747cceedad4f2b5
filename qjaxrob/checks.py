"""Input validation shared by every entry point (simulate, adjoint, trajectories, cutting,
qml, attacks, federated, defenses, experiments).

Each check either returns the normalised value or raises a :mod:`qjaxrob.errors` class whose
message names the offending value (and, where given, the argument's name). Checks run on
static (Python / NumPy) values at call time, before anything is traced or allocated.

This module sits just above :mod:`qjaxrob.errors` and :mod:`qjaxrob.ir.observables`: the circuit
IR and everything above it import it, it imports nothing of theirs.
"""

from __future__ import annotations

import numbers
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.errors import (
    DtypeError,
    MatrixError,
    ObservableError,
    ParameterError,
    PrecisionWarning,
    QjrTypeError,
    ResourceError,
    WireError,
)
from qjaxrob.ir.observables import PauliSum

__all__ = [
    "UNITARY_ATOL",
    "check_dtype",
    "real_dtype",
    "check_vector",
    "check_observable",
    "check_observables",
    "check_key",
    "check_shots",
    "check_int",
    "check_positive_int",
    "check_index",
    "check_real",
    "check_probability",
    "check_wires",
    "check_unitary",
    "available_bytes",
    "check_memory",
    "STATE_COPIES",
]

UNITARY_ATOL = 1e-6
"""A matrix U is accepted as unitary when max |U^dagger U - I| <= UNITARY_ATOL (elementwise)."""


# ---- dtypes and arrays ---------------------------------------------------------------
def check_dtype(dtype) -> np.dtype:
    """The complex dtype to simulate in; complex128 requires ``jax_enable_x64``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DtypeError(f"dtype must be complex64 or complex128, got {dtype!r}") from None
    if dt not in (np.complex64, np.complex128):
        raise DtypeError(f"dtype must be complex64 or complex128, got {dt}")
    if dt == np.complex128 and not jax.config.read("jax_enable_x64"):
        raise DtypeError(
            "dtype complex128 needs 64-bit JAX: set jax.config.update('jax_enable_x64', True) "
            "(qjaxrob never silently down-casts)"
        )
    return dt


def real_dtype(complex_dtype) -> np.dtype:
    """The real dtype matching a complex dtype (complex64 -> float32, complex128 -> float64)."""
    return np.finfo(np.dtype(complex_dtype)).dtype


def check_vector(values, length: int, name: str, real):
    """``values`` as a 1-D real array of exactly ``length`` entries in dtype ``real``.

    ``None`` is accepted only when ``length == 0``. float64 values (NumPy, or JAX with
    ``jax_enable_x64``) with ``real`` float32 are rounded, with a ``PrecisionWarning`` (shown
    once per argument name); Python floats and lists carry no precision request."""
    if values is None:
        if length:
            raise ParameterError(f"the circuit needs {name} of length {length}, got None")
        return jnp.zeros((0,), real)
    given = getattr(values, "dtype", None)
    if given is not None and np.dtype(given) == np.float64 and np.dtype(real) == np.float32:
        warnings.warn(
            f"{name} has dtype float64 but this complex64 simulation computes in float32; "
            f"pass dtype=jnp.complex128 (with jax_enable_x64) for double precision, or "
            f"float32 {name} to silence this", PrecisionWarning, stacklevel=2)
    if not isinstance(values, jax.Array):
        try:
            values = np.asarray(values)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"{name} must be a 1-D real array, got {values!r}: {exc}") from None
        if values.dtype.kind not in "biufc":
            raise ParameterError(
                f"{name} must be a 1-D real array, got {values!r} of dtype {values.dtype}"
            )
    values = jnp.asarray(values)
    if values.ndim != 1:
        raise ParameterError(
            f"{name} must be 1-D with {length} entries, got shape {values.shape} "
            f"(use jax.vmap to batch)"
        )
    if values.shape[0] != length:
        raise ParameterError(f"the circuit needs {name} of length {length}, got {values.shape[0]}")
    if jnp.iscomplexobj(values):
        raise ParameterError(f"{name} must be real, got dtype {values.dtype}")
    return values.astype(real)


# ---- observables ----------------------------------------------------------------------
def check_observable(obs, n: int) -> PauliSum:
    """``obs`` as a Hermitian ``PauliSum`` on wires ``< n``."""
    if not isinstance(obs, PauliSum):
        raise QjrTypeError(f"observable must be a PauliSum (e.g. qjr.Z(0)), got {obs!r}")
    bad = [c for c, _ in obs.terms if not np.isfinite(c)]
    if bad:
        raise ObservableError(f"observable {obs!r} has a non-finite coefficient {bad[0]!r}")
    if not obs.is_hermitian:
        raise ObservableError(f"observable {obs!r} has complex coefficients: not Hermitian")
    bad = [w for w in obs.wires if w >= n]
    if bad:
        raise WireError(f"observable wire {bad[0]} out of range for a {n}-qubit circuit")
    return obs


def check_observables(obs, n: int) -> tuple[tuple[PauliSum, ...], bool]:
    """Normalises the observable argument of ``expval``-like functions.

    Returns ``(observables, single)``: a non-empty tuple of checked ``PauliSum`` s, and
    whether a single ``PauliSum`` was given (the caller then returns a scalar)."""
    single = isinstance(obs, PauliSum)
    if single:
        observables = (obs,)
    elif isinstance(obs, (list, tuple)):
        observables = tuple(obs)
    else:
        raise QjrTypeError(
            f"observable must be a PauliSum (e.g. qjr.Z(0)) or a list of them, got {obs!r}"
        )
    if not observables:
        raise ObservableError("expval needs at least one observable, got an empty list")
    return tuple(check_observable(o, n) for o in observables), single


# ---- randomness -------------------------------------------------------------------------
def check_key(key, what: str):
    """``key`` as a JAX PRNG key: a typed key (``jax.random.key``) or a raw ``uint32``
    key (``jax.random.PRNGKey``). Integers, ``None`` and other arrays are rejected."""
    if key is None:
        raise ParameterError(f"{what} needs an explicit PRNG key (key=jax.random.key(seed))")
    if isinstance(key, jax.Array) or isinstance(key, np.ndarray):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            return key
        if key.dtype == np.uint32 and key.shape[-1:] == (2,):
            return key
    raise ParameterError(
        f"{what} needs a PRNG key made by jax.random.key(seed) or jax.random.PRNGKey(seed), "
        f"got {key!r} of type {type(key).__name__}"
    )


def max_shots() -> int:
    """The largest shot count the samplers take: ``2**31 - 1`` (shot counts and binomial
    counts are int32 / float32 data) unless ``jax_enable_x64`` is on, then ``2**53`` (the
    largest float64 run of exact integers)."""
    return 2**53 if jax.config.read("jax_enable_x64") else 2**31 - 1


def check_shots(shots) -> int:
    """``shots`` as a positive Python int of at most :func:`max_shots`."""
    shots = check_positive_int(shots, "shots")
    if shots > max_shots():
        hint = "" if jax.config.read("jax_enable_x64") else " (enable jax_enable_x64 for more)"
        raise ParameterError(f"shots must be at most {max_shots():,}{hint}, got {shots:,}")
    return shots


# ---- numbers ------------------------------------------------------------------------------
def check_int(value, name: str, *, minimum: int | None = None) -> int:
    """``value`` as a Python int (bools rejected), at least ``minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise QjrTypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_int(value, name: str) -> int:
    """``value`` as a Python int >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ParameterError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_index(value, size: int, name: str) -> int:
    """``value`` as an int in ``[0, size)``."""
    value = check_int(value, name)
    if not 0 <= value < size:
        raise ParameterError(f"{name} must be in [0, {size}), got {value}")
    return value


def check_real(value, name: str, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """``value`` as a finite Python float inside the given (closed unless ``*_open``) range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if not (isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0):
            raise QjrTypeError(
                f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
            )
    value = float(value)
    if not np.isfinite(value):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ParameterError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ParameterError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return value


def check_probability(value, name: str) -> float:
    """``value`` as a float in [0, 1]."""
    return check_real(value, name, low=0.0, high=1.0)


# ---- wires and matrices ----------------------------------------------------------------------
def check_wires(wires, n_qubits: int, name: str = "wire") -> tuple[int, ...]:
    """``wires`` (an int or a sequence of ints) as a tuple of distinct ints in ``[0, n_qubits)``."""
    if isinstance(wires, numbers.Integral) and not isinstance(wires, bool):
        wires = (wires,)
    try:
        wires = tuple(wires)
    except TypeError:
        raise QjrTypeError(f"{name}s must be an int or a sequence of ints, got {wires!r}") from None
    out = []
    for w in wires:
        if isinstance(w, bool) or not isinstance(w, numbers.Integral):
            raise QjrTypeError(f"{name} must be an int, got {w!r}")
        if w < 0:
            raise WireError(f"{name} {w} is negative")
        if w >= n_qubits:
            raise WireError(f"{name} {w} out of range for a {n_qubits}-qubit circuit")
        out.append(int(w))
    if len(set(out)) != len(out):
        raise WireError(f"repeated {name} in {tuple(out)}")
    return tuple(out)


def check_unitary(matrix, k: int, name: str = "matrix") -> np.ndarray:
    """``matrix`` as a complex128 NumPy ``(2**k, 2**k)`` unitary (within ``UNITARY_ATOL``)."""
    try:
        m = np.asarray(matrix, dtype=np.complex128)
    except (TypeError, ValueError) as exc:
        raise MatrixError(f"{name} is not a numeric array: {exc}") from None
    dim = 2**k
    if m.shape != (dim, dim):
        raise MatrixError(f"{name}: a unitary on {k} wire(s) must have shape {(dim, dim)}, "
                          f"got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise MatrixError(f"{name} has non-finite entries")
    err = float(np.max(np.abs(m.conj().T @ m - np.eye(dim))))
    if not err <= UNITARY_ATOL:
        raise MatrixError(
            f"{name} is not unitary: max |U^dagger U - I| = {err:.3g} > {UNITARY_ATOL}"
        )
    return m


# ---- problem size ------------------------------------------------------------------------------
STATE_COPIES = 2
"""A simulation holds at least two copies of its state at once (a kernel reads one and
writes the next), so the memory guard asks for ``STATE_COPIES`` times the state's bytes."""


def _host_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def available_bytes() -> tuple[int, str]:
    """``(bytes, where)``: what the default JAX device can still allocate, from
    ``device.memory_stats()`` (``bytes_limit - bytes_in_use``) where JAX reports it (GPU,
    TPU), else the host's available memory (``MemAvailable`` of ``/proc/meminfo``, or
    ``os.sysconf``)."""
    device = jax.devices()[0]
    try:
        stats = device.memory_stats()
    except (AttributeError, NotImplementedError, RuntimeError):
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), str(device)
    return _host_available_bytes(), "host memory"


def check_memory(n_qubits: int, dtype, *, mixed: bool = False, batch: int = 1,
                 what: str = "simulation") -> int:
    """Raises :class:`ResourceError` before anything is allocated when ``batch`` states of
    ``n_qubits`` qubits (density matrices when ``mixed``) in ``dtype`` cannot fit: the bytes
    needed are ``STATE_COPIES * batch * 2**n * itemsize`` (``4**n`` entries when ``mixed``),
    a lower bound on what the simulation uses. Returns the bytes needed."""
    dt = np.dtype(dtype)
    entries = 2 ** (2 * n_qubits if mixed else n_qubits)
    needed = STATE_COPIES * int(batch) * entries * dt.itemsize
    avail, where = available_bytes()
    if needed > avail:
        kind = "density matrix" if mixed else "state vector"
        times = f"{batch} x " if batch != 1 else ""
        raise ResourceError(
            f"{what} of {n_qubits} qubits needs at least {needed:,} bytes ({times}{kind}, {dt}, "
            f"{STATE_COPIES} copies) but only {avail:,} bytes are available ({where}); use "
            "fewer qubits, circuit cutting (qjr.cutting), or quantum trajectories for noise"
        )
    return needed


def check_sample_memory(shots: int, n_qubits: int, real_dtype, what: str = "sample") -> int:
    """Raises :class:`ResourceError` before anything is allocated when ``shots`` samples of
    ``n_qubits`` bits cannot fit: the ``(shots, n)`` int8 bits plus one uniform draw (in
    ``real_dtype``) and one outcome index (int32, int64 with x64) per shot, a lower bound on
    what sampling holds at once. Returns the bytes needed."""
    index = 8 if jax.config.read("jax_enable_x64") else 4
    needed = int(shots) * (int(n_qubits) + np.dtype(real_dtype).itemsize + index)
    avail, where = available_bytes()
    if needed > avail:
        raise ResourceError(
            f"{what} of {shots:,} shots on {n_qubits} qubits needs at least {needed:,} bytes "
            f"but only {avail:,} bytes are available ({where}); draw fewer shots per call "
            "(split the key) or sample fewer wires"
        )
    return needed
