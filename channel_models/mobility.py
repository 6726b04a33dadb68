"""Client movement in the cell: random waypoint, random direction, or a given path (system-level mobility).

The cell is the annulus r0 <= |p| <= R around a base station at the origin (the layout of
:mod:`.layout`). A path is piecewise linear: knots ``t_s`` (n,) non-decreasing [s] and ``xy_m`` (n, 2) [m];
a pause is two knots at the same place. Paths extend lazily from their own generator: asking for knots
up to 10 s and then up to 100 s gives the same knots as asking for 100 s at once, because each leg is
drawn in sequence from the same stream.

* :class:`RandomWaypoint` (Johnson and Maltz): from the current point, a waypoint uniform by area in the
  annulus, a straight leg to it at a speed uniform in [v_min, v_max], a pause, again. A straight leg
  between two points of an annulus may cut through the inner disc, where the path-loss tables are not
  valid (TR 38.901: d_2D >= 10 m); waypoints whose leg passes closer than r0 to the base station are
  drawn again, so this is random waypoint restricted to legs that stay in the cell. (Its stationary
  position law is not uniform: it favours the middle of the cell, as random waypoint always does.)
* :class:`RandomDirection` (Royer, Melliar-Smith and Moser): a direction uniform among those leading into
  the cell, a straight leg at a uniform speed until the path meets the outer or the inner circle (the
  exact intersection), a pause, a new direction from that boundary point. Its stationary position law is
  uniform in the cell.
* :class:`TracePath`: given knots (e.g. a measured trace); the client holds its last position after them.

:func:`interpolate_path` gives positions and speeds at any times; the speed is that of the leg in force
(right-continuous at a knot), 0 during pauses and outside the knots. :func:`interpolate_paths` does the same for
many paths at once in one compiled pass, with the same floating-point operations as ``numpy.interp`` (so the same
bits); a timeline of a thousand walkers would otherwise spend most of its time in per-client numpy calls.
"""

from __future__ import annotations

import math

import numpy as np

from ._compiled import njit
from ._validation import check_nonnegative, check_positive, check_range
from .errors import ValidityRangeError

_MAX_TRIES = 10_000  # redraws of a waypoint or a direction before giving up (never reached in a sane cell)


def _check_cell(where, radius_m, min_distance_m):
    r_max = float(check_positive(where, "radius_m", radius_m, "m"))
    r_min = float(check_range(where, "min_distance_m", min_distance_m, 0.0, r_max, "m", high_open=True))
    return r_max, r_min


def _check_speeds(where, speed_range_mps, pause_s):
    try:
        vmin, vmax = (float(v) for v in speed_range_mps)
    except (TypeError, ValueError):
        raise ValidityRangeError(f"{where}: speed_range_mps={speed_range_mps!r} must be a pair (v_min, v_max) "
                                 f"[m/s]") from None
    check_positive(where, "speed_range_mps[0]", vmin, "m/s")
    check_range(where, "speed_range_mps[1]", vmax, vmin, 1e4, "m/s")
    return vmin, vmax, float(check_nonnegative(where, "pause_s", pause_s, "s"))


def _segment_min_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest distance from the origin to the segment a-b."""
    d = b - a
    dd = float(d @ d)
    u = 0.0 if dd == 0 else min(1.0, max(0.0, -float(a @ d) / dd))
    return float(np.hypot(*(a + u * d)))


class _GeneratedPath:
    """Knots extended leg by leg from a generator (base of the random models)."""

    def __init__(self, where, rng, start_xy_m, radius_m, min_distance_m, speed_range_mps, pause_s):
        if not isinstance(rng, np.random.Generator):
            raise ValidityRangeError(f"{where}: rng={rng!r} is not a numpy.random.Generator")
        self._r_max, self._r_min = _check_cell(where, radius_m, min_distance_m)
        self._vmin, self._vmax, self._pause = _check_speeds(where, speed_range_mps, pause_s)
        start = np.asarray(start_xy_m, dtype=float)
        if start.shape != (2,) or not np.all(np.isfinite(start)):
            raise ValidityRangeError(f"{where}: start_xy_m={start_xy_m!r} must be a finite (x, y) [m]")
        r = float(np.hypot(*start))
        if not self._r_min - 1e-9 <= r <= self._r_max + 1e-9:
            raise ValidityRangeError(f"{where}: start_xy_m is {r:g} m from the BS (allowed: "
                                     f"{self._r_min:g} to {self._r_max:g} m)")
        self._rng = rng
        self._t = [0.0]
        self._xy = [start]

    def _speed(self) -> float:
        return float(self._rng.uniform(self._vmin, self._vmax)) if self._vmax > self._vmin else self._vmin

    def _add_leg(self, end: np.ndarray, speed: float) -> None:
        here = self._xy[-1]
        self._t.append(self._t[-1] + float(np.hypot(*(end - here))) / speed)
        self._xy.append(end)
        if self._pause > 0:
            self._t.append(self._t[-1] + self._pause)
            self._xy.append(end)

    def knots_until(self, until_s: float) -> tuple[np.ndarray, np.ndarray]:
        """All knots so far, extended until the last one is at or after ``until_s`` [s] (copies)."""
        until = float(until_s)
        while self._t[-1] < until:
            self._next_leg()
        return np.array(self._t), np.array(self._xy)


class RandomWaypoint(_GeneratedPath):
    """Random waypoint in the annulus, with legs that stay in it (module docstring)."""

    def __init__(self, rng, start_xy_m, *, radius_m, min_distance_m, speed_range_mps, pause_s=0.0):
        super().__init__("RandomWaypoint", rng, start_xy_m, radius_m, min_distance_m, speed_range_mps, pause_s)

    def _next_leg(self) -> None:
        here = self._xy[-1]
        for _ in range(_MAX_TRIES):
            u, a = self._rng.random(2)
            r = np.sqrt(u * (self._r_max ** 2 - self._r_min ** 2) + self._r_min ** 2)
            end = np.array([r * np.cos(2 * np.pi * a), r * np.sin(2 * np.pi * a)])
            if _segment_min_distance(here, end) >= self._r_min and np.hypot(*(end - here)) > 0:
                self._add_leg(end, self._speed())
                return
        raise ValidityRangeError("RandomWaypoint: no waypoint reachable in a straight line within the cell")


class RandomDirection(_GeneratedPath):
    """Random direction: straight legs to the cell's boundary (module docstring)."""

    def __init__(self, rng, start_xy_m, *, radius_m, min_distance_m, speed_range_mps, pause_s=0.0):
        super().__init__("RandomDirection", rng, start_xy_m, radius_m, min_distance_m, speed_range_mps, pause_s)

    def _exit_distance(self, here: np.ndarray, u: np.ndarray) -> float:
        """Distance along unit direction u from ``here`` to the first boundary crossing (outer or inner)."""
        b = float(here @ u)
        c_out = float(here @ here) - self._r_max ** 2
        s_out = -b + np.sqrt(max(b * b - c_out, 0.0))  # the outer circle is always met ahead
        if self._r_min > 0:
            c_in = float(here @ here) - self._r_min ** 2
            disc = b * b - c_in
            if disc > 0:
                s_in = -b - np.sqrt(disc)
                if s_in > 1e-9:
                    return min(s_out, s_in)
        return s_out

    def _next_leg(self) -> None:
        here = self._xy[-1]
        for _ in range(_MAX_TRIES):
            a = 2 * np.pi * self._rng.random()
            u = np.array([np.cos(a), np.sin(a)])
            step = here + 1e-6 * max(1.0, self._r_max) * u  # the direction must lead into the cell
            r = float(np.hypot(*step))
            if not self._r_min < r < self._r_max:
                continue
            length = self._exit_distance(here, u)
            if length > 1e-6:
                end = here + length * u
                # land exactly on the boundary circle that was met
                rr = float(np.hypot(*end))
                end = end * ((self._r_max if abs(rr - self._r_max) < abs(rr - self._r_min) else self._r_min) / rr)
                self._add_leg(end, self._speed())
                return
        raise ValidityRangeError("RandomDirection: no direction leads into the cell")


class TracePath:
    """A given path: knots (t_s (n,) non-decreasing [s], xy_m (n, 2) [m]); held at its last position after."""

    def __init__(self, t_s, xy_m):
        t = np.asarray(t_s, dtype=float)
        xy = np.asarray(xy_m, dtype=float)
        if t.ndim != 1 or t.size < 1 or xy.shape != (t.size, 2):
            raise ValidityRangeError(f"TracePath: t_s {t.shape} and xy_m {xy.shape} must be (n,) and (n, 2), n >= 1")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(xy))):
            raise ValidityRangeError("TracePath: knots must be finite")
        if np.any(np.diff(t) < 0):
            raise ValidityRangeError("TracePath: t_s must be non-decreasing")
        self._t, self._xy = t.copy(), xy.copy()

    def knots_until(self, until_s: float) -> tuple[np.ndarray, np.ndarray]:
        return self._t.copy(), self._xy.copy()


def interpolate_path(t_s, xy_m, times_s) -> tuple[np.ndarray, np.ndarray]:
    """Positions (m, 2) [m] and speeds (m,) [m/s] at ``times_s`` on the piecewise-linear path of the knots."""
    t = np.asarray(t_s, dtype=float)
    xy = np.asarray(xy_m, dtype=float)
    q = np.atleast_1d(np.asarray(times_s, dtype=float))
    if t.ndim != 1 or t.size < 1 or xy.shape != (t.size, 2):
        raise ValidityRangeError(f"interpolate_path: t_s {t.shape} and xy_m {xy.shape} must be (n,) and (n, 2)")
    pos = np.column_stack((np.interp(q, t, xy[:, 0]), np.interp(q, t, xy[:, 1])))
    speed = np.zeros(q.size)
    if t.size > 1:
        dt = np.diff(t)
        length = np.hypot(*np.diff(xy, axis=0).T)
        with np.errstate(divide="ignore", invalid="ignore"):
            leg_speed = np.where(dt > 0, length / np.where(dt > 0, dt, 1.0), 0.0)
        # the leg in force: the last knot at or before q (right-continuous), among legs of positive duration
        i = np.searchsorted(t, q, side="right") - 1
        inside = (i >= 0) & (i < t.size - 1)
        speed[inside] = leg_speed[i[inside]]
    return pos, speed


@njit(cache=True)
def interpolate_paths(knot_t, knot_xy, first, times_s, out_xy, out_speed):  # pragma: no cover - compiled
    """:func:`interpolate_path` of m paths at once: path i has the knots ``first[i]`` .. ``first[i + 1] - 1`` of
    ``knot_t`` (total,) [s] and ``knot_xy`` (total, 2) [m]; ``times_s`` (n,) non-decreasing. Writes out_xy
    (n, m, 2) [m] and out_speed (n, m) [m/s]. Each position is numpy.interp's: the value at a knot, the first or
    last knot's outside them, slope (t - t_j) + xy_j inside (the other end's form if that is NaN)."""
    for i in range(first.size - 1):
        a, b = first[i], first[i + 1]
        j = a
        for k in range(times_s.size):
            q = times_s[k]
            while j + 1 < b and knot_t[j + 1] <= q:
                j += 1
            if q < knot_t[a] or j == b - 1:
                last = a if q < knot_t[a] else b - 1
                out_xy[k, i, 0] = knot_xy[last, 0]
                out_xy[k, i, 1] = knot_xy[last, 1]
                out_speed[k, i] = 0.0
                continue
            dt = knot_t[j + 1] - knot_t[j]
            dx = knot_xy[j + 1, 0] - knot_xy[j, 0]
            dy = knot_xy[j + 1, 1] - knot_xy[j, 1]
            out_speed[k, i] = math.hypot(dx, dy) / dt if dt > 0 else 0.0
            if knot_t[j] == q:
                out_xy[k, i, 0] = knot_xy[j, 0]
                out_xy[k, i, 1] = knot_xy[j, 1]
                continue
            for c in range(2):
                slope = (knot_xy[j + 1, c] - knot_xy[j, c]) / dt
                v = slope * (q - knot_t[j]) + knot_xy[j, c]
                if math.isnan(v):
                    v = slope * (q - knot_t[j + 1]) + knot_xy[j + 1, c]
                    if math.isnan(v) and knot_xy[j, c] == knot_xy[j + 1, c]:
                        v = knot_xy[j, c]
                out_xy[k, i, c] = v
