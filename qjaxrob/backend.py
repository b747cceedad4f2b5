"""Which kernels and which fusion policy the statevector path uses on the current backend.

Kernel choice (read at trace time; the public functions of :mod:`qjaxrob.simulate` resolve
it at call time and pass it to their jitted entry points as a static argument, so a changed
variable re-traces them; a function the caller jitted keeps the kernels of its first trace
until ``jax.clear_caches()``):

* ``QJAXROB_KERNELS=auto`` (default): only kernels that compile *and* differentiate on
  this backend. The XLA kernels (``kernels.dense``, ``kernels.structured``) do so
  everywhere. The Pallas kernels (``kernels.pallas``) have autodiff rules and are checked
  in interpret mode and through the Triton lowering on CPU, but they have never run
  compiled on a GPU, so ``PALLAS_PROVEN`` is empty and ``auto`` selects XLA on every
  backend. A GPU run of ``benchmarks/gpu.py`` (rows ``check`` and ``kernel``) that shows
  them compiling, agreeing with XLA and beating it is what adds ``"gpu"`` there.
* ``QJAXROB_KERNELS=xla``: always the XLA kernels.
* ``QJAXROB_KERNELS=pallas``: always the Pallas kernels (Triton on CUDA/ROCm, interpret
  mode elsewhere: slow, for tests).

The choice applies to the op-by-op and rolled walks. Long top-level runs of 1-2 wire gates
with no repetition run on :mod:`qjaxrob.lower.interpreter`'s one generic kernel (a gather and a
``4 x 4`` product, plain XLA) whatever the kernel set; ``interpret_blocks=0`` on the engine
functions turns that off.

The keyword ``kernels=`` of :func:`kernel_set` (and of the engine functions that pass it
on) overrides the environment variable.

Fusion policy: on CPU (and TPU) the policy is exactly :mod:`qjaxrob.lower.fusion`'s
``DEFAULT_MAX_QUBITS`` and ``KERNEL_COST``. On a GPU it is a cost table read from the data
file ``gpu_costs.json`` beside this module, one table per kernel set (a GPU pass costs
about the same for any width up to 3-4 qubits, so it fuses wider). The engine uses it:
``engine.statevector_policy`` lowers with ``policy.max_qubits`` and ``policy.cost`` for the
chosen kernel set unless the caller passes ``fuse_qubits`` (``diff="adjoint"`` walks the
same blocks forwards and backwards). The
JSON ships with the package (``[tool.setuptools.package-data]`` in ``pyproject.toml``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import NamedTuple

import jax

from qjaxrob.errors import ParameterError
from qjaxrob.lower.fusion import DEFAULT_MAX_QUBITS, KERNEL_COST
from qjaxrob.kernels import apply_diagonal, apply_matrix, pallas

__all__ = [
    "CHOICES",
    "COSTS_FILE",
    "ENV",
    "PALLAS_PROVEN",
    "FusionPolicy",
    "KernelSet",
    "fusion_policy",
    "kernel_choice",
    "kernel_set",
    "load_gpu_costs",
]

ENV = "QJAXROB_KERNELS"
CHOICES = ("auto", "xla", "pallas")

PALLAS_PROVEN: frozenset[str] = frozenset()
"""Backends (``jax.default_backend()`` names) on which the Pallas kernels were compiled,
differentiated and checked against the XLA kernels on the device. Empty until a GPU run
proves them: ``auto`` then picks XLA everywhere."""

COSTS_FILE = Path(__file__).with_name("gpu_costs.json")

WIDEST_GATE = 16
"""Dense widths beyond a table's widest entry get extrapolated costs (doubling per qubit)
up to this width, so a wide ``unitary`` that fusion leaves alone can still be priced."""


class KernelSet(NamedTuple):
    """A statevector kernel implementation: ``apply_matrix(state, matrix, wires)`` and
    ``apply_diagonal(state, diag, wires)`` with the contracts of :mod:`qjaxrob.kernels`."""

    name: str
    apply_matrix: Callable
    apply_diagonal: Callable


_SETS = {
    "xla": KernelSet("xla", apply_matrix, apply_diagonal),
    "pallas": KernelSet("pallas", pallas.apply_matrix, pallas.apply_diagonal),
}


def kernel_choice(kernels: str | None = None, backend: str | None = None) -> str:
    """``"xla"`` or ``"pallas"``: ``kernels`` if given, else ``$QJAXROB_KERNELS`` (default
    ``"auto"``), with ``"auto"`` resolved for ``backend`` (default: the current one)."""
    source = "kernels" if kernels is not None else ENV
    value = os.environ.get(ENV, "auto") if kernels is None else kernels
    if value not in CHOICES:
        raise ParameterError(f"{source} must be one of {CHOICES}, got {value!r}")
    if value != "auto":
        return value
    backend = jax.default_backend() if backend is None else backend
    return "pallas" if backend in PALLAS_PROVEN else "xla"


def kernel_set(kernels: str | None = None, backend: str | None = None) -> KernelSet:
    """The :class:`KernelSet` chosen by :func:`kernel_choice`."""
    return _SETS[kernel_choice(kernels, backend)]


class FusionPolicy(NamedTuple):
    """Arguments for :func:`qjaxrob.lower.fusion.fuse`: the widest block and the kernel costs as
    hashable ``(key, cost)`` pairs (keys ``"diagonal"``, ``"permutation"`` and dense widths
    ``1..max_qubits``; ``dict(policy.cost)`` is the table), and where the numbers come from."""

    max_qubits: int
    cost: tuple
    source: str


def _check_table(name: str, entry) -> FusionPolicy:
    where = f"{COSTS_FILE.name}[{name}]"
    try:
        max_qubits = int(entry["max_qubits"])
        raw = dict(entry["cost"])
        source = str(entry.get("source", ""))
    except (KeyError, TypeError, ValueError) as e:
        raise ParameterError(f"{where} needs max_qubits and cost: {e}") from None
    cost = {}
    for key, value in raw.items():
        k = key if key in ("diagonal", "permutation") else int(key)
        if not float(value) > 0:
            raise ParameterError(f"{where} cost {key!r} must be positive, got {value!r}")
        cost[k] = float(value)
    needed = ["diagonal", "permutation"] + list(range(1, max_qubits + 1))
    missing = [k for k in needed if k not in cost]
    if max_qubits < 1 or missing:
        raise ParameterError(f"{where}: max_qubits={max_qubits} needs costs for {missing}")
    widest = max(k for k in cost if isinstance(k, int))
    for k in range(widest + 1, WIDEST_GATE + 1):  # gates wider than the table stay alone
        cost[k] = 2 * cost[k - 1]
    return FusionPolicy(max_qubits, tuple(cost.items()), source)


@cache
def load_gpu_costs(path: str | None = None) -> dict:
    """``{kernel set name: FusionPolicy}`` from the GPU cost table (default
    :data:`COSTS_FILE`), validated: positive costs for every kind up to ``max_qubits``."""
    with open(COSTS_FILE if path is None else path) as f:
        data = json.load(f)
    return {name: _check_table(name, entry) for name, entry in data["gpu"].items()}


def fusion_policy(backend: str | None = None, kernels: str | None = None) -> FusionPolicy:
    """The fusion policy for ``backend`` (default: current) and the chosen kernel set:
    the CPU policy of :mod:`qjaxrob.lower.fusion` except on GPUs, where it is the cost table."""
    backend = jax.default_backend() if backend is None else backend
    if backend != "gpu":
        return FusionPolicy(DEFAULT_MAX_QUBITS, tuple(KERNEL_COST.items()), "qjaxrob.lower.fusion (CPU)")
    return load_gpu_costs()[kernel_choice(kernels, backend)]
