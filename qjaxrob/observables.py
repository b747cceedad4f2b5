"""Compatibility path: the module lives in :mod:`qjaxrob.ir.observables` (this name is the same
module object, so ``from qjaxrob.observables import ...`` keeps working)."""

import sys

from qjaxrob.ir import observables

sys.modules[__name__] = observables
