"""Where the clients are as simulated time runs, and the large-scale gain that follows them.

Movement is exogenous (nothing the simulation decides changes where a client walks), so the timeline is
computed ahead, lazily and in chunks, and the radio asks it for the gain of any future block. That keeps a
transfer one SimPy timeout however many position updates it spans.

The large-scale state is refreshed on a grid of steps of ``step_s`` (``mobility.update_s`` rounded up to a
whole number of fading blocks, so every block sees one large-scale gain). At step n (time n step_s) each
moving client has a position from its path (:mod:`channel_models.mobility`), hence

* the 2-D distance and the 38.901 path loss and LOS probability at that distance (Tables 7.4.1-1, 7.4.2-1);
* a LOS state that is spatially consistent (38.901 §7.6.3.3): LOS iff Phi(z_LOS) < P_LOS(d), with z_LOS a
  standard normal that evolves along the path with correlation exp(-dd / d_LOS) (Table 7.6.3.1-2);
* shadowing from two such processes, one for each state (sigma_SF and the correlation distance of
  Table 7.5-6 for LOS and for NLOS; ``channel.path_loss.shadowing_correlation_m`` overrides both): the
  shadowing in dB is sigma_state z_state. Nothing is redrawn independently at an update;
* the fading's Doppler from the current speed (``ObservedFading.set_doppler``, by the radio).

Step 0 is the world drawn at t = 0 (the placement, LOS and shadowing of :class:`fsllm_sim.network.RadioEnvironment`):
the processes start from it (z_LOS conditioned on the drawn state, the current state's z from the drawn
shadowing, the other state's z fresh), so a static client and a moving one share the same t = 0.
Clients that do not move keep their t = 0 gain for the whole run.
"""
from __future__ import annotations

import math

import numpy as np

import channel_models as cm
from channel_models.mobility import RandomDirection, RandomWaypoint, TracePath, interpolate_path
from channel_models.spatial_consistency import (correlated_gaussian_step, gaussian_for_state,
                                                los_correlation_distance_m, los_from_gaussian)

from ..seeding import seed_sequence

CHUNK_STEPS = 256
_MODELS = {"random-waypoint": RandomWaypoint, "random-direction": RandomDirection}


def client_motion(scenario, num_clients: int) -> list:
    """Per client: None (static) or (model, speed_min_mps, speed_max_mps, pause_s) from ``mobility`` and its
    groups (groups take clients in index order, round(share K) each; the rest follow ``mobility.model``)."""
    mob = scenario.mobility
    out, k0 = [], 0
    for g in mob.groups:
        n = min(int(round(g.share * num_clients)), num_clients - k0)
        out += [None if g.model == "static" else (g.model, g.speed_min_mps, g.speed_max_mps, g.pause_s)] * n
        k0 += n
    rest = None if mob.model in ("static", "trace") else (mob.model, mob.speed_min_mps, mob.speed_max_mps,
                                                            mob.pause_s)
    return out + [rest] * (num_clients - k0)


def mobility_step_s(scenario) -> float:
    """The large-scale update's step: update_s rounded up to whole fading blocks (fading on)."""
    update = scenario.mobility.update_s
    if scenario.channel.fading.model == "none":
        return float(update)
    block = scenario.channel.fading.block_s
    return block * max(1, math.ceil(update / block - 1e-9))


class LargeScaleTimeline:
    """Positions, LOS states and large-scale gains of every client on the step grid, extended on demand."""

    def __init__(self, scenario, env, *, traces: dict | None = None):
        self.scenario = scenario
        self.env = env
        self.step_s = mobility_step_s(scenario)
        k = env.num_clients
        lay = scenario.clients.layout
        root = seed_sequence(scenario.seed, "mobility")
        motion = client_motion(scenario, k)
        self.paths: dict[int, object] = {}
        for c in range(k):
            if traces is not None and c in traces:
                self.paths[c] = TracePath(*traces[c])
            elif motion[c] is not None:
                model, vmin, vmax, pause = motion[c]
                rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
                    entropy=root.entropy, spawn_key=tuple(root.spawn_key) + (c,))))
                self.paths[c] = _MODELS[model](rng, env.positions_m[c], radius_m=lay.radius_m,
                                               min_distance_m=lay.min_distance_m, speed_range_mps=(vmin, vmax),
                                               pause_s=pause)
        self.moving = np.array(sorted(self.paths), dtype=int)
        self._index = {int(c): i for i, c in enumerate(self.moving)}
        self._rng = np.random.Generator(np.random.PCG64(seed_sequence(scenario.seed, "spatial")))
        pl = scenario.channel.path_loss
        self._pl = pl
        m = self.moving.size
        # arrays per computed step (rows) and moving client (columns)
        self._xy = np.empty((0, m, 2))
        self._speed = np.empty((0, m))
        self._los = np.empty((0, m), dtype=bool)
        self._gain = np.empty((0, m))
        if m:
            self._init_state()

    # -- the processes ------------------------------------------------------------------------------

    def _d_corr(self, los: bool) -> float:
        pl = self._pl
        if pl.shadowing_correlation_m is not None:
            return float(pl.shadowing_correlation_m)
        if pl.model == "log-distance":
            return 50.0  # no table for the log-distance model: the UMa NLOS value
        return cm.shadowing_correlation_distance_m(pl.model, los)

    def _los_probability(self, d_m: np.ndarray) -> np.ndarray:
        pl = self._pl
        if pl.los == "always":
            return np.ones_like(d_m)
        if pl.los == "never" or pl.model == "log-distance":
            return np.zeros_like(d_m)
        return cm.los_probability(pl.model, d_m, pl.ut_height_m)

    def _std(self, d_m: np.ndarray, los: np.ndarray) -> np.ndarray:
        pl = self._pl
        if pl.shadowing_std_db is not None:
            return np.full(d_m.shape, float(pl.shadowing_std_db))
        if pl.model == "rma":
            beyond = d_m > cm.breakpoint_distance_m("rma", pl.carrier_ghz, pl.bs_height_m, pl.ut_height_m)
            return cm.shadowing_std_db("rma", los, beyond_breakpoint=beyond)
        return cm.shadowing_std_db(pl.model, los)

    def _init_state(self) -> None:
        env, mv = self.env, self.moving
        d0 = env.distance_2d_m[mv]
        los0 = env.los[mv]
        self._z_los = gaussian_for_state(self._rng, los0, self._los_probability(d0))
        z_other = self._rng.standard_normal((2, mv.size))
        std0 = self._std(d0, los0)
        z_now = np.where(std0 > 0, env.shadowing_db[mv] / np.where(std0 > 0, std0, 1.0), z_other[0])
        self._z_shadow = {True: np.where(los0, z_now, z_other[1]), False: np.where(los0, z_other[0], z_now)}
        self._last_xy = env.positions_m[mv].copy()
        self._append(env.positions_m[mv][None], self._speeds(np.array([0.0])), los0[None],
                     env.large_scale_gain[mv][None])

    def _speeds(self, times: np.ndarray) -> np.ndarray:
        out = np.empty((times.size, self.moving.size))
        horizon = float(times[-1]) + self.step_s
        for i, c in enumerate(self.moving):
            t, xy = self.paths[int(c)].knots_until(horizon)
            out[:, i] = interpolate_path(t, xy, times)[1]
        return out

    def _append(self, xy, speed, los, gain) -> None:
        self._xy = np.concatenate([self._xy, xy])
        self._speed = np.concatenate([self._speed, speed])
        self._los = np.concatenate([self._los, los])
        self._gain = np.concatenate([self._gain, gain])

    def _extend(self, last_step: int) -> None:
        """Compute every step up to ``last_step`` (in chunks)."""
        pl, mv = self._pl, self.moving
        while self._gain.shape[0] <= last_step:
            n0 = self._gain.shape[0]
            n = max(CHUNK_STEPS, last_step + 1 - n0)
            times = np.arange(n0, n0 + n) * self.step_s
            xy = np.empty((n, mv.size, 2))
            speed = np.empty((n, mv.size))
            for i, c in enumerate(mv):
                t, knots = self.paths[int(c)].knots_until(float(times[-1]) + self.step_s)
                xy[:, i], speed[:, i] = interpolate_path(t, knots, times)
            d = cm.distances_2d_m(xy)
            los = np.empty((n, mv.size), dtype=bool)
            gain = np.empty((n, mv.size))
            d_los = None if pl.model == "log-distance" else los_correlation_distance_m(pl.model)
            for j in range(n):
                moved = np.hypot(*(xy[j] - self._last_xy).T)
                self._last_xy = xy[j]
                p_los = self._los_probability(d[j])
                if d_los is not None:
                    self._z_los = correlated_gaussian_step(self._rng, self._z_los, moved, d_los)
                los[j] = los_from_gaussian(self._z_los, p_los) if pl.los == "probabilistic" and d_los is not None \
                    else p_los >= 1.0
                for state in (True, False):
                    self._z_shadow[state] = correlated_gaussian_step(self._rng, self._z_shadow[state], moved,
                                                                     self._d_corr(state))
                shadow = np.where(los[j], self._z_shadow[True], self._z_shadow[False]) * self._std(d[j], los[j]) \
                    if pl.shadowing else np.zeros(mv.size)
                path_loss = cm.path_loss_db(pl.model, d[j], pl.carrier_ghz, pl.bs_height_m, pl.ut_height_m, los[j])
                gain[j] = cm.large_scale_gain_linear(path_loss, shadow)
            self._append(xy, speed, los, gain)

    # -- what the radio and the policies ask ---------------------------------------------------------

    def step_of(self, time_s: float) -> int:
        return cm.block_index(time_s, self.step_s)

    def is_moving(self, client: int) -> bool:
        return int(client) in self._index

    def gain_of_steps(self, client: int, first_step: int, n: int) -> np.ndarray:
        """Large-scale gain (n,) [linear] of ``client`` over steps first_step .. first_step + n - 1."""
        i = self._index.get(int(client))
        if i is None:
            return np.full(n, float(self.env.large_scale_gain[client]))
        self._extend(first_step + n - 1)
        return self._gain[first_step:first_step + n, i]

    def gains_at(self, time_s: float) -> np.ndarray:
        """(K,) large-scale gains of every client at ``time_s``."""
        g = self.env.large_scale_gain.copy()
        if self.moving.size:
            step = self.step_of(time_s)
            self._extend(step)
            g[self.moving] = self._gain[step]
        return g

    def speed_at_step(self, client: int, step: int) -> float:
        self._extend(step)
        return float(self._speed[step, self._index[int(client)]])

    def speeds_of_steps(self, client: int, first_step: int, n: int) -> np.ndarray:
        self._extend(first_step + n - 1)
        return self._speed[first_step:first_step + n, self._index[int(client)]]

    def position_rows(self, until_s: float) -> list[tuple]:
        """positions.csv rows (client, t_s, x_m, y_m, los) of the moving clients, every step up to ``until_s``."""
        if not self.moving.size:
            return []
        last = self.step_of(until_s)
        self._extend(last)
        rows = []
        for j in range(last + 1):
            t = j * self.step_s
            for i, c in enumerate(self.moving):
                rows.append((int(c), float(t), float(self._xy[j, i, 0]), float(self._xy[j, i, 1]),
                             bool(self._los[j, i])))
        return rows
