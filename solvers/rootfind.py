"""Bracketed root finding for the monotone scalar equations of power control (deadlines, prices, τ)."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np


def illinois(fun: Callable[[float], float], a: float, fa: float, b: float, fb: float, *, xtol: float,
             relative: bool = False, ftol: float = 0.0, max_iter: int = 200,
             stop: Optional[Callable[[], bool]] = None) -> float:
    """Root of a monotone function bracketed by [a, b] (fa, fb of opposite signs).

    Illinois regula falsi: superlinear on smooth functions and never leaves the bracket. A bisection step
    is forced whenever a value is infinite or the bracket has not halved in three steps, so it is never
    slower than bisection by more than a constant factor. ``xtol`` is absolute, or relative to
    max(1, |a|, |b|) when ``relative``; ``stop`` ends the search early (e.g. once a caller's bound is met).
    """
    width0 = abs(b - a)
    stale, side = 0, 0
    for _ in range(max_iter):
        scale = max(1.0, abs(a), abs(b)) if relative else 1.0
        if abs(b - a) <= xtol * scale or (stop is not None and stop()):
            break
        if stale >= 3 or not (np.isfinite(fa) and np.isfinite(fb)) or fa == fb:
            c, stale = 0.5 * (a + b), 0
        else:
            c = b - fb * (b - a) / (fb - fa)
            if not (min(a, b) < c < max(a, b)):
                c = 0.5 * (a + b)
        fc = fun(c)
        if abs(fc) <= ftol:
            return c
        if np.sign(fc) == np.sign(fb):
            b, fb = c, fc
            if side == -1 and np.isfinite(fa):
                fa *= 0.5
            side = -1
        else:
            a, fa = c, fc
            if side == 1 and np.isfinite(fb):
                fb *= 0.5
            side = 1
        width = abs(b - a)
        if width > 0.5 * width0:
            stale += 1
        else:
            stale, width0 = 0, width
    return 0.5 * (a + b)
