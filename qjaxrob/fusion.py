"""Compatibility path: the module lives in :mod:`qjaxrob.lower.fusion` (this name is the
same module object, so ``from qjaxrob.fusion import ...`` keeps working)."""

import sys

from qjaxrob.lower import fusion

sys.modules[__name__] = fusion
