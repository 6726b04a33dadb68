"""Large-scale parameters that stay consistent as a client moves (3GPP TR 38.901 §7.4.4, §7.6.3).

Shadowing and the LOS state of a moving client are not redrawn at each position: they are spatially
correlated, with correlation exp(-dd / d_corr) between two points dd apart along the path.

* A standard normal z along a path follows the first-order process (Gudmundson's model, the exponential
  correlation of 38.901 §7.4.4 and §7.6.3.1)

      z_n = rho_n z_{n-1} + sqrt(1 - rho_n^2) w_n,   rho_n = exp(-dd_n / d_corr),   w_n ~ N(0, 1) i.i.d.,

  whose marginal stays N(0, 1) and whose correlation between steps m and n is the product of the step
  correlations, exp(-(dd_{m+1} + ... + dd_n) / d_corr): exp(-d / d_corr) of the distance travelled d,
  whatever the step sizes. (For a straight path the distance travelled is the distance between the points.)
* Shadowing uses two such processes per client, one for each state, each with its sigma_SF (Table
  7.4.1-1) and its correlation distance (Table 7.5-6, :func:`.shadowing.shadowing_correlation_distance_m`):
  the shadowing in dB is sigma_state z_state. A client turning LOS -> NLOS picks up the NLOS process where
  it has evolved to, not a fresh draw.
* The LOS state is spatially consistent as in §7.6.3.3: LOS iff Phi(z_LOS) < P_LOS(d), with z_LOS such a
  process over the LOS-state correlation distance of Table 7.6.3.1-2 (:func:`los_correlation_distance_m`).
  Phi(z_LOS) is uniform at every point, so the LOS probability at each distance is the table's.
* :func:`gaussian_for_state` starts z_LOS from a LOS state drawn independently at t = 0: conditioned on
  that state, so that the marginal law of Phi(z) is exactly uniform.

Every step draws one normal per client whether or not it moved, so the stream does not depend on who moved.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from ._compiled import njit
from ._validation import check_choice, check_nonnegative, check_positive, check_range
from .errors import ValidityRangeError

# TR 38.901 Table 7.6.3.1-2, correlation distance of the LOS/NLOS state for spatial consistency [m].
_LOS_CORRELATION_DISTANCE_M = {"uma": 50.0, "umi": 50.0, "rma": 60.0}
_U_EPS = 1e-12  # keeps Phi^-1 finite at the ends


def path_correlation(moved_m, correlation_distance_m):
    """exp(-dd / d_corr) between two points dd [m] apart along a path."""
    d = check_nonnegative("path_correlation", "moved_m", moved_m, "m")
    dc = check_positive("path_correlation", "correlation_distance_m", correlation_distance_m, "m")
    return np.exp(-d / dc)


def correlated_gaussian_step(rng: np.random.Generator, z_prev, moved_m, correlation_distance_m) -> np.ndarray:
    """One step of the exponential process of a standard normal along a path (module docstring); one normal
    drawn per element of ``z_prev`` whatever moved (moved_m = 0 returns z_prev exactly)."""
    z = np.asarray(z_prev, dtype=float)
    rho = path_correlation(moved_m, correlation_distance_m)
    w = rng.standard_normal(z.shape)
    return rho * z + np.sqrt(np.clip(1.0 - rho * rho, 0.0, None)) * w


def correlated_gaussian_path(z_prev, rho, w) -> np.ndarray:
    """n steps of the same process at once: rows z_1 .. z_n (n, m) from z_prev (m,), the step correlations
    rho (n, m) (:func:`path_correlation`) and the innovations w (n, m); equal to n calls of
    :func:`correlated_gaussian_step` drawing those w (the same operations, so the same bits)."""
    rho = np.ascontiguousarray(rho, dtype=float)
    scale = np.sqrt(np.clip(1.0 - rho * rho, 0.0, None)) * np.asarray(w, dtype=float)
    out = np.empty(rho.shape)
    _recursion(np.array(z_prev, dtype=float), rho, scale, out)
    return out


@njit(cache=True)
def _recursion(z, rho, scale, out):  # pragma: no cover - compiled (tested against correlated_gaussian_step)
    for j in range(rho.shape[0]):
        for i in range(rho.shape[1]):
            z[i] = rho[j, i] * z[i] + scale[j, i]
            out[j, i] = z[i]


def gaussian_for_state(rng: np.random.Generator, is_true, probability) -> np.ndarray:
    """A standard normal z conditioned on Phi(z) < p where ``is_true``, on Phi(z) >= p elsewhere:
    z = Phi^-1(U p) or Phi^-1(p + U (1 - p)), U uniform."""
    state = np.asarray(is_true, dtype=bool)
    p = check_range("gaussian_for_state", "probability", probability, 0.0, 1.0)
    p = np.broadcast_to(p, state.shape)
    u = rng.random(state.shape)
    v = np.where(state, u * p, p + u * (1.0 - p))
    return ndtri(np.clip(v, _U_EPS, 1.0 - _U_EPS))


def los_from_gaussian(z, probability) -> np.ndarray:
    """The spatially consistent LOS state: Phi(z) < P_LOS."""
    p = check_range("los_from_gaussian", "probability", probability, 0.0, 1.0)
    return ndtr(np.asarray(z, dtype=float)) < p


def los_correlation_distance_m(scenario: str) -> float:
    """Correlation distance of the LOS state, TR 38.901 Table 7.6.3.1-2 (UMa, UMi-Street Canyon, RMa)."""
    if scenario == "log-distance":
        raise ValidityRangeError("los_correlation_distance_m: the log-distance model has no LOS state")
    check_choice("los_correlation_distance_m", "scenario", scenario, tuple(_LOS_CORRELATION_DISTANCE_M))
    return _LOS_CORRELATION_DISTANCE_M[scenario]
