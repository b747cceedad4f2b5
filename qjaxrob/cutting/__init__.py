"""Circuit cutting (``qjr.cutting``): QPD tables (``qpd``), KAK decompositions (``kak``),
partitioning into fragments (``partition``), batched exact and sampled reconstruction
(``expval``), per-term fragment results (``fragment_values``), automatic gate-cut placement
(``find_cuts``) and fragment perturbation (``perturb``, ``insert``). The QPD tables and
their sources are listed in :mod:`qjaxrob.cutting.qpd`.

Design choices: mid-circuit signed measurements run as enumerated statevector branches (not
density matrices); wire cuts use Peng's LO decomposition (gamma 4); a cut marker that does
not separate the circuit is simulated directly, with a ``CutWarning`` (``partition``'s
``redundant=``); errors are ``qjaxrob.errors.CutError``.
"""

from qjaxrob.cutting import kak, qpd
from qjaxrob.cutting.find import find_cuts
from qjaxrob.cutting.partition import Cut, CutCircuit, partition
from qjaxrob.cutting.perturb import insert, perturb
from qjaxrob.cutting.reconstruct import expval, fragment_axes, fragment_values

__all__ = [
    "Cut", "CutCircuit", "expval", "find_cuts", "fragment_axes", "fragment_values", "insert",
    "kak", "partition", "perturb", "qpd",
]
