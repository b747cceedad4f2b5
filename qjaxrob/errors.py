"""Exceptions raised by qjaxrob.

Every error is a subclass of ``ValueError`` or ``TypeError`` (so generic handlers keep
working) and of :class:`QjrError` (so callers can catch everything qjaxrob raises).
Messages always name the offending value.
"""

from __future__ import annotations


class QjrError(Exception):
    """Base class of every exception raised by qjaxrob."""


class QjrValueError(QjrError, ValueError):
    """A value is out of its allowed range."""


class QjrTypeError(QjrError, TypeError):
    """A value has the wrong type."""


class WireError(QjrValueError):
    """A wire index is out of range, negative, or repeated; or a qubit count is invalid."""


class MatrixError(QjrValueError):
    """A matrix has the wrong shape, is not unitary, or a Kraus set is not CPTP."""


class UnknownGateError(QjrValueError):
    """A gate name is not in the gate table."""


class ParameterError(QjrValueError):
    """``params`` or ``x`` has the wrong length, rank or dtype; or an angle is malformed."""


class ProbabilityError(QjrValueError):
    """A channel probability or damping rate lies outside [0, 1]."""


class DensityMatrixOnlyError(QjrValueError):
    """A noise channel was met by a pure-state simulation that cannot represent it."""


class ObservableError(QjrValueError):
    """An observable is malformed (bad Pauli letter, non-Hermitian, wires out of range)."""


class DtypeError(QjrValueError):
    """A dtype is not a supported complex dtype, or needs ``jax_enable_x64``."""


class CutError(QjrValueError):
    """A cut cannot be placed or reconstructed."""


class ConversionError(QjrValueError):
    """A circuit from another framework (OpenQASM, Qiskit, PennyLane) cannot be converted:
    malformed text, or an instruction qjaxrob cannot represent; the message names the
    statement or instruction and where it is (line, or instruction index)."""


class MissingDependencyError(QjrError, ImportError):
    """An optional extra (``qasm``, ``qiskit``, ``pennylane``, ...) is needed but not installed."""


class GradientError(QjrValueError):
    """A derivative was requested that cannot be computed honestly (e.g. a finite-shot
    gradient with respect to a noise parameter, which has no unbiased shift rule)."""


class ResourceError(QjrValueError):
    """A problem needs more memory than the backend can hold (checked before allocating)."""


class OutputError(QjrValueError):
    """An output folder or file cannot be used as asked: a path that is a file or cannot be
    written, a damaged or foreign line in a results log, unreadable run metadata."""


class CheckpointError(OutputError):
    """A checkpoint file is missing, truncated or corrupt, or was not written by qjaxrob."""


class LockError(OutputError):
    """An output folder is locked by another live writer (the message names its pid and host)."""


class QjrWarning(UserWarning):
    """Base class of every warning issued by qjaxrob."""


class CutWarning(QjrWarning):
    """A cut marker was ignored or handled differently than placed (e.g. it separates nothing)."""


class PrecisionWarning(QjrWarning):
    """Inputs are rounded to a lower precision than they were given in (float64 ``params``
    or ``x`` to a complex64 simulation, which computes in float32)."""
