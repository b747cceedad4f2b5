"""Compatibility path: parameter-shift gradients of shot estimates live in
:mod:`qjaxrob.sim.param_shift` (this name is the same module object, so
``from qjaxrob.shots import ...`` keeps working)."""

import sys

from qjaxrob.sim import param_shift

sys.modules[__name__] = param_shift
