"""The optional-dependency guard: one way to import an extra's package.

qjaxrob's core needs only jax, jaxlib, optax, equinox, numpy and tqdm. Integrations
(Flower, dp-accounting, Qiskit, PennyLane, OpenQASM 3, matplotlib, scikit-learn) live
in optional extras of ``pyproject.toml``; code that needs one imports it through
:func:`require`, so a missing extra always raises
:class:`qjaxrob.errors.MissingDependencyError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from qjaxrob.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Imports ``module`` or raises ``MissingDependencyError``.

    Args:
        module: the dotted module name to import (``"flwr"``, ``"qiskit.circuit"``).
        extra: the qjaxrob extra that installs it (``"flower"``); the message says
            ``pip install 'qjaxrob[extra]'``.
        purpose: what needs it, for the message (``"the Flower adapter"``).

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs {module.split('.')[0]}: pip install 'qjaxrob[{extra}]'"
        ) from exc
