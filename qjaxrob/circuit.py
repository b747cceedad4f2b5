"""Compatibility path: the module lives in :mod:`qjaxrob.ir.circuit` (this name is the same
module object, so ``from qjaxrob.circuit import ...`` keeps working)."""

import sys

from qjaxrob.ir import circuit

sys.modules[__name__] = circuit
