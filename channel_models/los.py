"""Line-of-sight probability, 3GPP TR 38.901 Table 7.4.2-1 (outdoor users), and LOS draws.

* RMa:  1 for d_2D <= 10 m, else exp(-(d_2D - 10) / 1000).
* UMi-Street Canyon: 1 for d_2D <= 18 m, else 18/d + exp(-d/36) (1 - 18/d).
* UMa:  1 for d_2D <= 18 m, else [18/d + exp(-d/63) (1 - 18/d)] (1 + C'(h_UT) 5/4 (d/100)^3 exp(-d/150)),
  with C'(h_UT) = 0 for h_UT <= 13 m and ((h_UT - 13)/10)^1.5 for 13 m < h_UT <= 23 m.
  Just beyond 18 m the table's UMa expression exceeds 1 for tall UTs (1.00007 at d = 18.5 m,
  h_UT = 23 m); it is capped at 1 so it stays a probability.
* log-distance: the model has no LOS state, so the probability is 0 (every link NLOS, hence
  Rayleigh fading and the NLOS shadowing default); this keeps one code path for all scenarios.

h_UT ranges: UMa [1.5, 23] m (where C' is defined), UMi [1.5, 22.5] m, RMa [1, 10] m
(the path-loss table's ranges); d_2D >= 0.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_choice, check_range

SCENARIOS = ("uma", "umi", "rma", "log-distance")


def _c_prime(h_ut_m):
    return np.where(h_ut_m <= 13.0, 0.0, (np.maximum(h_ut_m - 13.0, 0.0) / 10.0) ** 1.5)


def los_probability(scenario: str, d_2d_m, h_ut_m=1.5):
    """Probability that each link is LOS; ``d_2d_m`` and ``h_ut_m`` broadcast."""
    check_choice("los_probability", "scenario", scenario, SCENARIOS)
    where = f"los_probability({scenario})"
    d = check_range(where, "d_2d_m", d_2d_m, 0.0, np.inf, "m", high_open=True)
    if scenario == "log-distance":
        return np.zeros(np.broadcast_shapes(d.shape, np.shape(h_ut_m)))
    h_range = {"uma": (1.5, 23.0), "umi": (1.5, 22.5), "rma": (1.0, 10.0)}[scenario]
    h = check_range(where, "h_ut_m", h_ut_m, *h_range, "m")
    d, h = np.broadcast_arrays(d, h)
    if scenario == "rma":
        return np.where(d <= 10.0, 1.0, np.exp(-(d - 10.0) / 1000.0))
    # Below 18 m the formula is replaced by 1; the max() only avoids dividing by 0 there.
    d_safe = np.maximum(d, 18.0)
    decay_m = 36.0 if scenario == "umi" else 63.0
    base = 18.0 / d_safe + np.exp(-d_safe / decay_m) * (1.0 - 18.0 / d_safe)
    if scenario == "uma":
        if np.any(h > 13.0):  # C'(h_UT) = 0 up to 13 m: the factor is exactly 1 there
            base = base * (1.0 + _c_prime(h) * 1.25 * (d_safe / 100.0) ** 3 * np.exp(-d_safe / 150.0))
        base = np.minimum(base, 1.0)
    return np.where(d <= 18.0, 1.0, base)


def draw_los(rng: np.random.Generator, probability):
    """Independent Bernoulli LOS states (True = LOS) with the given probabilities."""
    p = check_range("draw_los", "probability", probability, 0.0, 1.0)
    return rng.random(p.shape) < p
