"""Circuit cutting: QPD tables, partitioning, batched reconstruction, sampling, automatic
cut finding and fragment perturbation (``qjr.cutting``). See DESIGN.md and
``shared/anchors/CUTTING.md``."""

from qjaxrob.cutting import qpd
from qjaxrob.cutting.partition import Cut, CutCircuit, partition
from qjaxrob.cutting.reconstruct import expval, fragment_axes, fragment_values

__all__ = ["Cut", "CutCircuit", "expval", "fragment_axes", "fragment_values", "partition", "qpd"]
