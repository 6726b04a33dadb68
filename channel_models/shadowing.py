"""Log-normal shadowing: standard deviations from 3GPP TR 38.901 Table 7.4.1-1 and decorrelation
distances from Table 7.5-6, with optional spatial correlation between clients.

sigma_SF (dB): UMa LOS 4 / NLOS 6; UMi LOS 4 / NLOS 7.82; RMa LOS 4 before the breakpoint and
6 beyond it (so RMa LOS needs ``beyond_breakpoint``), NLOS 8. The log-distance model has no
table; it uses ``log_distance_std_db`` (default 8 dB, the value TR 36.814 pairs with
128.1 + 37.6 log10 d) for every link.

Correlated shadowing follows the exponential model of TR 38.901 section 7.6.3.1 / Gudmundson:
corr(X_a, X_b) = exp(-|pos_a - pos_b| / d_corr), realised by a Cholesky factor of the K x K
correlation matrix; each client's own sigma scales its column so the marginals keep the
per-client std while the correlation is that of the model.
"""

from __future__ import annotations

import numpy as np

from .errors import ValidityRangeError

from ._validation import (broadcast_to_shape, check_choice, check_integer, check_nonnegative,
                          check_positive)

SCENARIOS = ("uma", "umi", "rma", "log-distance")

_SIGMA_DB = {
    "uma": (4.0, 6.0),
    "umi": (4.0, 7.82),
    "rma": (None, 8.0),  # LOS: 4 dB before, 6 dB beyond the breakpoint.
}

# Table 7.5-6, "SF correlation distance" (m), LOS / NLOS.
_CORRELATION_DISTANCE_M = {
    "uma": (37.0, 50.0),
    "umi": (10.0, 13.0),
    "rma": (37.0, 120.0),
}


def shadowing_std_db(scenario: str, los, *, beyond_breakpoint=None, log_distance_std_db: float = 8.0):
    """Shadowing standard deviation (dB) per link; ``los`` is a bool array.

    ``beyond_breakpoint`` (bool array broadcastable with ``los``) is needed for RMa LOS links.
    """
    check_choice("shadowing_std_db", "scenario", scenario, SCENARIOS)
    where = f"shadowing_std_db({scenario})"
    los_arr = np.asarray(los, dtype=bool)
    if scenario == "log-distance":
        std = check_nonnegative(where, "log_distance_std_db", log_distance_std_db, "dB")
        return np.full(los_arr.shape, float(std))
    los_std, nlos_std = _SIGMA_DB[scenario]
    if scenario == "rma":
        if beyond_breakpoint is None:
            if np.any(los_arr):
                raise ValidityRangeError(
                    f"{where}: beyond_breakpoint is required for LOS links (sigma_SF is 4 dB "
                    "before and 6 dB beyond the breakpoint)")
            beyond = np.zeros_like(los_arr)
        else:
            beyond = np.asarray(beyond_breakpoint, dtype=bool)
        los_std = np.where(beyond, 6.0, 4.0)
    return np.where(los_arr, los_std, nlos_std).astype(float)


def shadowing_correlation_distance_m(scenario: str, los: bool) -> float:
    """Decorrelation distance of shadowing (Table 7.5-6) for UMa, UMi and RMa."""
    check_choice("shadowing_correlation_distance_m", "scenario", scenario, tuple(_CORRELATION_DISTANCE_M))
    return _CORRELATION_DISTANCE_M[scenario][0 if los else 1]


def _correlation_factor(positions_m, correlation_distance_m):
    diff = positions_m[:, None, :] - positions_m[None, :, :]
    corr = np.exp(-np.sqrt(np.sum(diff**2, axis=-1)) / correlation_distance_m)
    try:
        return np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        # Coincident clients make the matrix only semi-definite; a symmetric square root still
        # reproduces the covariance exactly.
        vals, vecs = np.linalg.eigh(corr)
        return vecs * np.sqrt(np.clip(vals, 0.0, None))


def draw_shadowing_db(rng: np.random.Generator, positions_m, std_db, correlation_distance_m=None,
                      num_draws: int | None = None):
    """Shadowing X_k ~ N(0, std_k^2) in dB for K clients at ``positions_m`` (K, 2).

    Independent when ``correlation_distance_m`` is None, else correlated as exp(-d/d_corr).
    Returns (K,) for one realisation, or (num_draws, K) for that many independent drops.
    """
    where = "draw_shadowing_db"
    pos = np.asarray(positions_m, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValidityRangeError(f"{where}: positions_m has shape {pos.shape}, expected (K, 2)")
    k = pos.shape[0]
    std = check_nonnegative(where, "std_db", broadcast_to_shape(where, "std_db", std_db, (k,)), "dB")
    n = 1 if num_draws is None else int(check_integer(where, "num_draws", num_draws, 1))
    z = rng.standard_normal((n, k))
    if correlation_distance_m is not None:
        d_corr = float(check_positive(where, "correlation_distance_m", correlation_distance_m, "m"))
        z = z @ _correlation_factor(pos, d_corr).T
    x = std * z
    return x[0] if num_draws is None else x
