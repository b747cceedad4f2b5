"""The level of an integrity check: one validator shared by every check in this package."""

from __future__ import annotations

from qjaxrob.checks import check_real

__all__ = ["check_alpha"]


def check_alpha(alpha) -> float:
    """``alpha`` (a test's false-positive level) as a float in the open interval ``(0, 1)``,
    else ``ParameterError`` naming the value."""
    return check_real(alpha, "alpha (false-positive level)", low=0.0, high=1.0,
                      low_open=True, high_open=True)
