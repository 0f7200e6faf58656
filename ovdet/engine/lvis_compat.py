"""A narrow shim for the ``lvis`` package (0.5.3), whose evaluation still calls ``np.float``.

NumPy 1.24 removed that alias. Rather than pinning an old NumPy or patching NumPy for the whole process, the
``lvis.eval`` module alone is given a NumPy proxy that also answers ``np.float`` (the builtin ``float``, which is
what the alias always was). Nothing else in the process sees it.
"""

from __future__ import annotations

import types

import numpy as np

__all__ = ["import_lvis"]


class _NumpyWithFloatAlias(types.ModuleType):
    float = float  # the removed alias, for lvis.eval only

    def __getattr__(self, name: str):
        return getattr(np, name)


def import_lvis():
    """Import ``lvis`` with its evaluation made to work on current NumPy; returns ``(LVIS, LVISResults, LVISEval)``."""
    import lvis.eval
    from lvis import LVIS, LVISEval, LVISResults

    if not hasattr(np, "float") and lvis.eval.np is np:
        lvis.eval.np = _NumpyWithFloatAlias("numpy")
    return LVIS, LVISResults, LVISEval
