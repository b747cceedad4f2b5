"""Plot helpers for the studies (matplotlib, imported lazily: the ``plots`` extra).

Figures are built with the object-oriented ``matplotlib.figure.Figure`` (no ``pyplot``
global state, no GUI backend) and saved as PNG next to the results.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["figure", "integer_ticks", "save"]


def figure(ncols: int = 1, *, width: float = 4.2, height: float = 3.4):
    """A ``(Figure, axes list)`` with ``ncols`` side-by-side panels."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("study plots need matplotlib: python -m pip install 'qjaxrob[plots]'") \
            from None
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def integer_ticks(ax) -> None:
    """Only integer ticks on ``ax``'s x axis (qubit counts, depths)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save(fig, out_dir, name: str) -> Path:
    """Saves ``fig`` as ``out_dir/name.png`` (dpi 110) and returns the path."""
    path = Path(out_dir) / f"{name}.png"
    fig.savefig(path, dpi=110)
    return path
