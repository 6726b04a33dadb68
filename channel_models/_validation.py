"""Argument checks shared by the channel models.

Every check raises :class:`channel_models.errors.ValidityRangeError` with one line that names the
function, the argument, the first offending value and the allowed range, because the CLI prints
the message as the whole error report.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ValidityRangeError


def _fmt_bound(x: float) -> str:
    if np.isposinf(x):
        return "inf"
    if np.isneginf(x):
        return "-inf"
    return f"{float(x):g}"


def _fmt(x: float) -> str:
    """The offending value in full precision (repr), so the user sees exactly what was passed."""
    if not np.isfinite(x):
        return _fmt_bound(x)
    return repr(float(x))


def check_range(
    where: str,
    name: str,
    value,
    low: float = -np.inf,
    high: float = np.inf,
    unit: str = "",
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> np.ndarray:
    """Return ``value`` as a float array after checking every element lies in the interval.

    NaN always fails (comparisons with NaN are false), so a NaN never slips through as "in range".
    """
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:  # a scalar: Python comparisons (these checks sit on the engine's hot paths)
        x = float(arr)
        if (x > low if low_open else x >= low) and (x < high if high_open else x <= high):
            return arr
        ok = False
    else:
        ok_low = arr > low if low_open else arr >= low
        ok_high = arr < high if high_open else arr <= high
        ok = ok_low & ok_high
    if not np.all(ok):
        bad = arr[~ok].flat[0] if arr.ndim else arr.item()
        lb = "(" if low_open else "["
        hb = ")" if high_open or np.isposinf(high) else "]"
        if np.isneginf(low):
            lb = "("
        suffix = f" {unit}" if unit else ""
        raise ValidityRangeError(
            f"{where}: {name}={_fmt(bad)} outside the validity range "
            f"{lb}{_fmt_bound(low)}, {_fmt_bound(high)}{hb}{suffix}"
        )
    return arr


def check_positive(where: str, name: str, value, unit: str = "") -> np.ndarray:
    """Strictly positive and finite."""
    return check_range(where, name, value, 0.0, np.inf, unit, low_open=True, high_open=True)


def check_nonnegative(where: str, name: str, value, unit: str = "") -> np.ndarray:
    """Non-negative and finite."""
    return check_range(where, name, value, 0.0, np.inf, unit, high_open=True)


def check_choice(where: str, name: str, value: str, allowed) -> str:
    """``value`` must be one of ``allowed`` (listed in the message so the user can fix the typo)."""
    if value not in allowed:
        raise ValidityRangeError(
            f"{where}: {name}={value!r} is not one of {', '.join(repr(a) for a in allowed)}"
        )
    return value


def check_integer(where: str, name: str, value, low: float = -np.inf, high: float = np.inf) -> np.ndarray:
    """Integer-valued (any dtype) and inside [low, high]; returned as an int64 array."""
    arr = check_range(where, name, value, low, high)
    if arr.ndim == 0:
        x = float(arr)
        if math.isfinite(x) and x == round(x):
            return arr.astype(np.int64)
    frac = arr != np.round(arr)
    if np.any(frac):
        bad = arr[frac].flat[0] if arr.ndim else arr.item()
        raise ValidityRangeError(f"{where}: {name}={_fmt(bad)} is not an integer")
    return arr.astype(np.int64)


def check_shape(where: str, name: str, value, shape: tuple) -> np.ndarray:
    """Float array of exactly ``shape``."""
    arr = np.asarray(value, dtype=float)
    if arr.shape != tuple(shape):
        raise ValidityRangeError(f"{where}: {name} has shape {arr.shape}, expected {tuple(shape)}")
    return arr


def check_ndim(where: str, name: str, value, ndim: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != ndim:
        raise ValidityRangeError(f"{where}: {name} has {arr.ndim} dimensions, expected {ndim}")
    return arr


def broadcast_to_shape(where: str, name: str, value, shape: tuple) -> np.ndarray:
    """Float array broadcast to ``shape`` (read-only view), or a one-line error if it cannot be."""
    arr = np.asarray(value, dtype=float)
    try:
        return np.broadcast_to(arr, tuple(shape))
    except ValueError:
        raise ValidityRangeError(
            f"{where}: {name} has shape {arr.shape}, which does not broadcast to {tuple(shape)}"
        ) from None
