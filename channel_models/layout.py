"""Client placement around a BS at the origin (system model, section 6: uniform in a disc of
radius R, at least r0 from the BS).

Uniform over the annulus area means the radius has CDF (r^2 - r0^2) / (R^2 - r0^2), so it is
drawn by inverse transform r = sqrt(U (R^2 - r0^2) + r0^2); a uniform r would crowd clients
near the BS.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_integer, check_range, check_positive


def place_clients_in_disc(rng: np.random.Generator, num_clients: int, radius_m: float,
                          min_distance_m: float = 0.0) -> np.ndarray:
    """(K, 2) positions in metres, area-uniform in min_distance_m <= r <= radius_m."""
    where = "place_clients_in_disc"
    k = int(check_integer(where, "num_clients", num_clients, 1))
    r_max = float(check_positive(where, "radius_m", radius_m, "m"))
    r_min = float(check_range(where, "min_distance_m", min_distance_m, 0.0, r_max, "m"))
    u = rng.random(k)
    angle = rng.random(k) * 2.0 * np.pi
    r = np.sqrt(u * (r_max**2 - r_min**2) + r_min**2)
    return np.column_stack((r * np.cos(angle), r * np.sin(angle)))


def distances_2d_m(positions_m, bs_position_m=(0.0, 0.0)) -> np.ndarray:
    """Horizontal distance of each position (..., 2) from the BS."""
    pos = np.asarray(positions_m, dtype=float)
    return np.hypot(pos[..., 0] - bs_position_m[0], pos[..., 1] - bs_position_m[1])
