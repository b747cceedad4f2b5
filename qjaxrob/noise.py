"""Compatibility path: the module lives in :mod:`qjaxrob.ir.noise` (this name is the same
module object, so ``from qjaxrob.noise import ...`` keeps working)."""

import sys

from qjaxrob.ir import noise

sys.modules[__name__] = noise
