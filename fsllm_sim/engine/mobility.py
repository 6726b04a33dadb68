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
from channel_models.mobility import RandomDirection, RandomWaypoint, TracePath, interpolate_paths
from channel_models.spatial_consistency import (correlated_gaussian_path, gaussian_for_state,
                                                los_correlation_distance_m, los_from_gaussian,
                                                path_correlation)

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
        # a chunk costs one knots lookup per client, then one compiled pass: fewer, longer chunks when many move
        self._chunk_steps = int(min(4096, max(CHUNK_STEPS, (1 << 20) // max(m, 1))))
        # the computed steps base .. base + count - 1, in buffers that grow by doubling; steps before
        # forget_before() are dropped (nothing asks for the past once a round has started). Only what the radio
        # reads is kept per step (gain, speed: 16 bytes a client); positions and LOS only on the recorded steps
        self._base, self._count = 0, 0
        self._speed = np.empty((0, m))
        self._gain = np.empty((0, m))
        self._forget_step = 0
        record = scenario.mobility.record_every_s
        self.record_stride = max(1, int(round(record / self.step_s))) if record is not None else 1
        self._log: list = []  # (steps (n,), xy (n, m, 2), los (n, m)) every record_stride steps
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
        self._append(env.positions_m[mv][None], self._interpolate(np.array([0.0]))[1], los0[None],
                     env.large_scale_gain[mv][None])

    def _interpolate(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (n, m, 2) and speeds (n, m) of the moving clients at ``times`` (one compiled pass over every
        path's knots from the last one at or before times[0])."""
        horizon = float(times[-1]) + self.step_s
        ts, xys = [], []
        for c in self.moving:
            t, xy = self.paths[int(c)].knots_until(horizon)
            j = max(int(np.searchsorted(t, times[0], side="right")) - 1, 0)
            ts.append(t[j:])
            xys.append(xy[j:])
        first = np.zeros(len(ts) + 1, dtype=np.int64)
        np.cumsum([t.size for t in ts], out=first[1:])
        out_xy = np.empty((times.size, self.moving.size, 2))
        out_speed = np.empty((times.size, self.moving.size))
        interpolate_paths(np.concatenate(ts), np.concatenate(xys), first, np.ascontiguousarray(times, dtype=float),
                          out_xy, out_speed)
        return out_xy, out_speed

    def _append(self, xy, speed, los, gain) -> None:
        n = xy.shape[0]
        first = self._base + self._count
        if self._count + n > self._gain.shape[0]:
            # full: move the steps still wanted to the front, into buffers at least half free afterwards (so each
            # step is copied O(1) times on average, and memory stays within four times what a round needs)
            keep_from = max(self._base, min(self._forget_step, first))
            drop = keep_from - self._base
            live = self._count - drop
            grow = 2 * (live + n) > self._gain.shape[0]
            for name in ("_speed", "_gain"):
                old = getattr(self, name)
                if grow:
                    new = np.empty((2 * (live + n),) + old.shape[1:], dtype=old.dtype)
                    new[:live] = old[drop:self._count]
                    setattr(self, name, new)
                elif drop:
                    old[:live] = old[drop:self._count]  # numpy copies overlapping slices correctly
            self._base, self._count = keep_from, live
        rows = slice(self._count, self._count + n)
        self._speed[rows], self._gain[rows] = speed, gain
        self._count += n
        steps = np.arange(first, first + n)
        pick = steps % self.record_stride == 0
        if pick.any():
            self._log.append((steps[pick], xy[pick], los[pick]))  # fancy indexing copies

    def _extend(self, last_step: int) -> None:
        """Compute every step up to ``last_step`` (in chunks)."""
        pl, m = self._pl, self.moving.size
        while self._base + self._count <= last_step:
            n0 = self._base + self._count
            n = max(self._chunk_steps, last_step + 1 - n0)
            times = np.arange(n0, n0 + n) * self.step_s
            xy, speed = self._interpolate(times)
            d = cm.distances_2d_m(xy)
            prev = np.concatenate([self._last_xy[None], xy[:-1]])
            moved = np.hypot(xy[..., 0] - prev[..., 0], xy[..., 1] - prev[..., 1])
            self._last_xy = xy[-1].copy()
            p_los = self._los_probability(d)
            d_los = None if pl.model == "log-distance" else los_correlation_distance_m(pl.model)
            # the innovations in the order of one step at a time: z_LOS, then the LOS and NLOS shadowing
            w = self._rng.standard_normal((n, 3 if d_los is not None else 2, m))
            if d_los is not None:
                z_los = correlated_gaussian_path(self._z_los, path_correlation(moved, d_los), w[:, 0])
                self._z_los = z_los[-1].copy()
            if pl.los == "probabilistic" and d_los is not None:
                los = los_from_gaussian(z_los, p_los)
            else:
                los = p_los >= 1.0
            z = {}
            for j, state in enumerate((True, False)):
                z[state] = correlated_gaussian_path(self._z_shadow[state], path_correlation(moved, self._d_corr(state)),
                                                    w[:, j + (1 if d_los is not None else 0)])
                self._z_shadow[state] = z[state][-1].copy()
            shadow = np.where(los, z[True], z[False]) * self._std(d, los) if pl.shadowing else np.zeros((n, m))
            path_loss = cm.path_loss_db(pl.model, d, pl.carrier_ghz, pl.bs_height_m, pl.ut_height_m, los)
            self._append(xy, speed, los, cm.large_scale_gain_linear(path_loss, shadow))

    def forget_before(self, time_s: float) -> None:
        """Nothing will ask for a step before the one holding ``time_s`` (a round has started): its memory may
        be reused. positions.csv keeps its own rows."""
        self._forget_step = max(self._forget_step, self.step_of(time_s))

    def _rows(self, first_step: int, n: int) -> slice:
        if first_step + n > self._base + self._count:
            self._extend(first_step + n - 1)
        if first_step < self._base:
            raise IndexError(f"LargeScaleTimeline: step {first_step} was forgotten (steps from {self._base} kept)")
        return slice(first_step - self._base, first_step - self._base + n)

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
        rows = self._rows(first_step, n)  # before reading the buffer: it may grow
        return self._gain[rows, i]

    def gains_at(self, time_s: float) -> np.ndarray:
        """(K,) large-scale gains of every client at ``time_s``."""
        g = self.env.large_scale_gain.copy()
        if self.moving.size:
            rows = self._rows(self.step_of(time_s), 1)
            g[self.moving] = self._gain[rows][0]
        return g

    def speed_at_step(self, client: int, step: int) -> float:
        rows = self._rows(step, 1)
        return float(self._speed[rows, self._index[int(client)]][0])

    def speeds_of_steps(self, client: int, first_step: int, n: int) -> np.ndarray:
        rows = self._rows(first_step, n)
        return self._speed[rows, self._index[int(client)]]

    def position_rows(self, until_s: float) -> "PositionRows":
        """positions.csv rows (client, t_s, x_m, y_m, los) of the moving clients, every record_stride steps up
        to ``until_s``."""
        if not self.moving.size:
            return PositionRows(np.empty(0, dtype=int), np.empty(0), np.empty((0, 0, 2)), np.empty((0, 0), bool))
        last = self.step_of(until_s)
        self._extend(last)
        steps = np.concatenate([s for s, _, _ in self._log])
        keep = steps <= last
        xy = np.concatenate([x for _, x, _ in self._log])[keep]
        los = np.concatenate([b for _, _, b in self._log])[keep]
        return PositionRows(self.moving, steps[keep] * self.step_s, xy, los)


class PositionRows:
    """positions.csv rows held as arrays; iterating gives (client, t_s, x_m, y_m, los) in time order, the
    clients of each time in increasing order."""

    def __init__(self, clients, times_s, xy_m, los):
        self.clients, self.times_s, self.xy_m, self.los = clients, times_s, xy_m, los

    def __len__(self) -> int:
        return int(self.times_s.size * self.clients.size)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self):
        clients = [int(c) for c in self.clients]
        for j, t in enumerate(self.times_s.tolist()):
            xs, ys, ls = self.xy_m[j, :, 0].tolist(), self.xy_m[j, :, 1].tolist(), self.los[j].tolist()
            for i, c in enumerate(clients):
                yield c, t, xs[i], ys[i], ls[i]
