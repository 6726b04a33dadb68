"""Conversions between logarithmic (dB, dBm) and linear (ratio, W) quantities.

dBm is referenced to 1 mW, so x_dBm = 10 log10(x_W / 1e-3). All functions are numpy ufunc
compositions: they accept scalars or arrays and broadcast.
"""

from __future__ import annotations

import numpy as np


def db_to_linear(x_db):
    """Power ratio from decibels: 10^(x/10)."""
    return np.power(10.0, np.asarray(x_db, dtype=float) / 10.0)


def linear_to_db(x):
    """Decibels from a power ratio: 10 log10(x). Zero maps to -inf (numpy's log of 0)."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(x, dtype=float))


def dbm_to_w(x_dbm):
    """Watts from dBm."""
    return np.power(10.0, (np.asarray(x_dbm, dtype=float) - 30.0) / 10.0)


def w_to_dbm(x_w):
    """dBm from watts. Zero maps to -inf."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(x_w, dtype=float)) + 30.0
