"""Compatibility path: the module lives in :mod:`qjaxrob.sim.engine` (this name is the
same module object, so ``from qjaxrob.engine import ...`` keeps working)."""

import sys

from qjaxrob.sim import engine

sys.modules[__name__] = engine
