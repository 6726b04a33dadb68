"""numba's ``njit`` where numba is installed, else a stand-in that runs the Python function (slow; said once).

Every compiled loop of the package takes ``njit`` from here, so the fallback and its warning live in one place.
The compiled functions keep their Python twin as ``.py_func`` either way (the tests compare the two).
"""
from __future__ import annotations

import warnings

try:  # pragma: no cover - which branch runs depends on the install
    from numba import njit
    COMPILED = True
except ImportError:  # pragma: no cover
    COMPILED = False

    def njit(*_args, **_kwargs):
        def deco(func):
            func.py_func = func
            return func
        return deco

    warnings.warn("numba is not installed: fading blocks and mobility run in pure Python (about 100x slower; "
                  "pip install numba)", RuntimeWarning, stacklevel=2)
