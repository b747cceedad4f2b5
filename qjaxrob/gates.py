"""Compatibility path: the module lives in :mod:`qjaxrob.ir.gates` (this name is the same
module object, so ``from qjaxrob.gates import ...`` keeps working)."""

import sys

from qjaxrob.ir import gates

sys.modules[__name__] = gates
