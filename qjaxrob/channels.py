"""Compatibility path: the module lives in :mod:`qjaxrob.ir.channels` (this name is the same
module object, so ``from qjaxrob.channels import ...`` keeps working)."""

import sys

from qjaxrob.ir import channels

sys.modules[__name__] = channels
