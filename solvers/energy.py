"""The energy step (docs/energy.md): for a fixed subchannel assignment, the round time, the DVFS clocks and the powers
that minimise the weighted objective N(r) (T_round + lambda E_round) or the delay under a per-client energy budget.

Client k's round is T_k = c_k + t_c + t_s + t_f: c_k = E (t^S + S_g/R^dl) is fixed, t_c = E C_k / f_k its compute
time (C_k cycles of one iteration's forward and backward), t_s = E S_a / R^s_k and t_f = S_c / R^f_k its two uplink
times. Its energy of the round is

    g_c(t_c) + g_s(t_s) + g_f(t_f) + const_k,   g_c(t) = kappa (E C)^3 / t^2,   g_b(t) = t P_b(bits / t),

P_b(R) the least power that reaches rate R on its subchannels of band b (water-filling inverted), const_k its
receive energy and idle energy. Each g is convex and decreasing, so a client given a deadline D spends least
energy by using all of it: minimise the sum of the g's subject to t_c + t_s + t_f = D, whose KKT conditions are
g'_i(t_i) = -nu for one multiplier nu >= 0. For each nu every component has a closed form:

* compute: t_c = (2 kappa (E C)^3 / nu)^(1/3), clipped to [E C / f_max, E C / f_min];
* a band with water level w (p_i = B_i (w - F_i)^+, F_i = N0 / g_i): g'_b = P - w R ln 2 = h(w), decreasing in w;
  on the stretch where the first j subchannels (by floor) are active, h(w) = B w (1 - ln(w / a)) - S with
  B = sum B_i, ln a = sum B_i ln F_i / B, S = sum B_i F_i, so h(w) = -nu is w = a exp(1 + W0((nu - S) / (B a e)))
  (Lambert's W, principal branch), capped at the level of the client's power cap.

D(nu) = t_c + t_s + t_f is decreasing in nu, so the nu of a deadline is found by bisection in log nu, vectorised over
the clients. Idle energy is constant once the deadline is used in full (idle time = E t^S + t_agg), so it does not
move the optimum; receive energy is fixed by the downlink.

The round time T (every client's deadline is T - c_k): the weighted objective's derivative in T is
1 - lambda sum_k nu_k(T), increasing in T (each nu_k decreases), so its root is found by bisection (T = T_min, every
device at f_max and its cap, when the derivative is already >= 0 there). Under budgets, client k needs
T >= T_k^*, the least deadline at which its least energy fits its budget; T = max(T_min, max_k T_k^*), each client
then at its least energy for that deadline. A budget below the least energy any deadline reaches (f_min, and the
energy per bit of a vanishing rate on its best subchannel, N0 ln 2 / g per bit) is refused in one line naming the
client and that minimum.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import lambertw

from fsllm_sim.errors import SolverError

from .power import PackedBand, bands_of
from .rootfind import illinois

_LN2 = float(np.log(2.0))
# Re-plans of the energy step under budgets when the score's rates (ergodic) are below the plan's (mean-gain).
BUDGET_REPLANS = 20
# The most candidates the exact energy oracle scores (each an energy step of a few ms).
EXACT_ENERGY_LIMIT = 20_000
# Energy-step evaluations of bcd's move search per candidate (energy objectives; option energy_moves): at most 60,
# and fewer on large instances, ENERGY_MOVE_SCALE / (K (M + N)) (none at K = 100, M + N = 256: a few dozen of the
# K (M + N) moves rarely find the one that pays, and each costs an energy step).
DEFAULT_ENERGY_MOVES = 60
ENERGY_MOVE_SCALE = 4000
# bcd's move search runs on at most this many candidates, those within REFINE_RTOL of the best.
REFINE_RTOL = 0.05
REFINED_CANDIDATES = 3


class _BandRows:
    """One band of an assignment as sorted per-client rows: floors F (ascending), bandwidths, prefix sums."""

    def __init__(self, packed: PackedBand, bits, cap_w):
        order = np.argsort(packed.floor, axis=1, kind="stable")
        self.floor = np.take_along_axis(packed.floor, order, axis=1)
        self.bw = np.take_along_axis(packed.bw, order, axis=1)
        self.order = order
        self.packed = packed
        finite = np.isfinite(self.floor)
        b = np.where(finite, self.bw, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.cum_b = np.cumsum(b, axis=1)
            self.cum_bln = np.cumsum(np.where(finite, b * np.log(np.where(finite, self.floor, 1.0)), 0.0), axis=1)
            self.cum_bf = np.cumsum(np.where(finite, b * self.floor, 0.0), axis=1)
        self.finite = finite
        self.bits = np.asarray(bits, dtype=float) * np.ones(self.floor.shape[0])
        self.cap_w = np.asarray(cap_w, dtype=float)
        # the water level of the cap (p_i = B_i (w - F_i)^+ summing to the cap): the fastest this client can send
        with np.errstate(invalid="ignore", divide="ignore"):
            level_m = (self.cap_w[:, None] + self.cum_bf) / self.cum_b
        m = np.sum(finite & (level_m > self.floor), axis=1)
        self.w_cap = np.take_along_axis(level_m, np.maximum(m - 1, 0)[:, None], axis=1)[:, 0]
        # h at each breakpoint w = F_m (with the first m - 1 active; h(F_1) = 0)
        self.h_break = self._h(self.floor, np.arange(self.floor.shape[1])[None, :] - 1)
        self.h_break[:, 0] = 0.0

    def _h(self, w, j):
        """h(w) = B w (1 - ln w) + w sum B ln F - S with the first j + 1 subchannels active (j >= 0)."""
        jj = np.maximum(j, 0)
        rows = np.arange(self.floor.shape[0])[:, None] if np.ndim(w) == 2 else np.arange(self.floor.shape[0])
        B = self.cum_b[rows, jj]
        L = self.cum_bln[rows, jj]
        S = self.cum_bf[rows, jj]
        with np.errstate(divide="ignore", invalid="ignore"):
            return w * (B - B * np.log(w) + L) - S

    def level_for(self, nu) -> np.ndarray:
        """The water level w with h(w) = -nu (capped at the cap's level), per client."""
        nu = np.asarray(nu, dtype=float)
        active = np.sum(self.finite & (self.h_break > -nu[:, None]), axis=1)  # j: the active count
        j = np.maximum(active - 1, 0)
        rows = np.arange(self.floor.shape[0])
        B = self.cum_b[rows, j]
        ln_a = self.cum_bln[rows, j] / B
        S = self.cum_bf[rows, j]
        a = np.exp(ln_a)
        x = (nu - S) / (B * a * np.e)
        y = np.real(lambertw(np.maximum(x, -1.0 / np.e), 0))
        w = a * np.exp(1.0 + y)
        w = np.where(np.isfinite(nu), w, np.inf)
        return np.minimum(w, self.w_cap)

    def rate_power(self, w):
        """(rate R (bit/s), total power P (W)) at water level w."""
        with np.errstate(divide="ignore", invalid="ignore"):
            on = self.finite & (self.floor < w[:, None])
            ratio = np.where(on, w[:, None] / np.where(on, self.floor, 1.0), 1.0)
            rate = np.sum(np.where(on, self.bw * np.log2(ratio), 0.0), axis=1)
            power = np.sum(np.where(on, self.bw * (w[:, None] - self.floor), 0.0), axis=1)
        return rate, power

    def time_energy(self, nu):
        """(time, energy, level w, dt/dnu) of each client's transfer at multiplier nu; dt/dnu = -b B_on / (R^3 w
        ln^2 2) below the cap's level (from h'(w) = -R ln 2 and dR/dw = B_on / (w ln 2)), 0 at it."""
        w = self.level_for(nu)
        rate, power = self.rate_power(w)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(self.bits > 0, self.bits / rate, 0.0)
            on = self.finite & (self.floor < w[:, None])
            b_on = np.sum(np.where(on, self.bw, 0.0), axis=1)
            slope = np.where((w < self.w_cap) & (self.bits > 0), -self.bits * b_on / (rate ** 3 * w * _LN2 ** 2), 0.0)
        return t, t * power, w, slope

    def powers(self, w) -> np.ndarray:
        """Per-subchannel powers of the band (length S) at each client's level w."""
        sorted_p = np.where(self.finite, self.bw * np.maximum(w[:, None] - self.floor, 0.0), 0.0)
        packed = np.zeros_like(sorted_p)
        np.put_along_axis(packed, self.order, sorted_p, axis=1)
        return self.packed.scatter(packed)

    def t_min(self):
        rate, _ = self.rate_power(self.w_cap)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.bits > 0, self.bits / rate, 0.0)

    def energy_floor_j(self):
        """The least energy of sending ``bits`` at any rate: bits x ln 2 x the best floor (a vanishing rate)."""
        return self.bits * _LN2 * self.floor[:, 0]


@dataclass
class EnergyStep:
    """The chosen round's clocks and per-subchannel powers."""

    frequency_hz: np.ndarray
    power_s_w: np.ndarray
    power_f_w: np.ndarray


class ClientEnergyModel:
    """Every client's least energy for a deadline, for one (splits, rank) and one assignment."""

    @classmethod
    def relaxed(cls, problem, rank: int, splits) -> "ClientEnergyModel":
        """Every client holding every subchannel of both bands: its least energy for any deadline, and its fastest
        time, are then at most those of any assignment (a superset of subchannels can only help), so the round
        this model chooses bounds every assignment's objective from below."""
        band_s, band_f = bands_of(problem)
        rows = (PackedBand.from_rows(band_s, band_s.gain, np.broadcast_to(band_s.bandwidth_hz, band_s.gain.shape)),
                PackedBand.from_rows(band_f, band_f.gain, np.broadcast_to(band_f.bandwidth_hz, band_f.gain.shape)))
        return cls(problem, rank, splits, None, None, rows=rows)

    def __init__(self, problem, rank: int, splits, assign_s, assign_f, *, rows=None):
        k = problem.num_clients
        if problem.energy is None:
            raise SolverError("the energy step needs the devices' energy parameters")
        c = problem.client_costs(np.broadcast_to(np.asarray(splits, dtype=int), (k,)), rank)
        e = int(problem.local_iterations)
        en = problem.energy
        inf = np.full(k, np.inf)
        bd = problem.breakdown(int(np.min(splits)), rank, inf, inf, splits=np.broadcast_to(splits, (k,)))
        self.fixed_s = e * (np.asarray(bd.server_compute_s) + bd.downlink_s)  # c_k
        self.tail_s = float(bd.aggregation_s + bd.broadcast_s)
        self.cycles = e * (c["client_forward_flops"] + c["client_backward_flops"]) / en.flops_per_cycle  # E C_k
        self.kappa = en.kappa
        self.f_min_hz, self.f_max_hz = en.f_min_hz, en.f_max_hz
        self.tc_min = self.cycles / en.f_max_hz
        self.tc_max = self.cycles / en.f_min_hz
        band_s, band_f = bands_of(problem)
        packed_s, packed_f = rows if rows is not None else (PackedBand(band_s, assign_s), PackedBand(band_f, assign_f))
        self.s = _BandRows(packed_s, e * c["activation_bits"], problem.p_max_w)
        self.f = _BandRows(packed_f, c["adapter_bits"], problem.p_max_w)
        # constants: receive energy (gradients, broadcast) and idle energy (server time, aggregation)
        self.const_j = (en.rx_power_w * (e * np.asarray(bd.downlink_s) + bd.broadcast_s)
                        + en.idle_power_w * (e * np.asarray(bd.server_compute_s) + bd.aggregation_s))
        self.t_min = self.tc_min + self.s.t_min() + self.f.t_min()
        self.rounds = float(problem.convergence.rounds(rank))

    @property
    def round_min_s(self) -> float:
        """The fastest round's slowest client (every device at f_max and its cap), without the tail."""
        return float(np.max(self.fixed_s + self.t_min))

    def energy_floor_j(self) -> np.ndarray:
        """Each client's least energy of a round over every deadline (f_min, vanishing rates)."""
        return (self.kappa * self.cycles * self.f_min_hz ** 2 + self.s.energy_floor_j() + self.f.energy_floor_j()
                + self.const_j)

    def _components(self, nu, slope: bool = False):
        with np.errstate(divide="ignore", invalid="ignore"):
            free = np.where(np.isfinite(nu), np.cbrt(2.0 * self.kappa * self.cycles ** 3 / nu), 0.0)
        tc = np.clip(free, self.tc_min, self.tc_max)
        ts, es, ws, ds = self.s.time_energy(nu)
        tf, ef, wf, df = self.f.time_energy(nu)
        ec = self.kappa * self.cycles ** 3 / (tc * tc)
        if slope:  # dD/dnu: compute -t_c / (3 nu) inside its clock range, and the two transfers'
            with np.errstate(divide="ignore", invalid="ignore"):
                dc = np.where((free > self.tc_min) & (free < self.tc_max), -tc / (3.0 * nu), 0.0)
            return tc + ts + tf, ec + es + ef, (tc, ws, wf), dc + ds + df
        return tc + ts + tf, ec + es + ef, (tc, ws, wf)

    def _log_time(self, x):
        t, _, _ = self._components(np.exp(x))
        return np.log(t)

    def _log_time_newton(self, x):
        """(ln D, d ln D / d ln nu) at ln nu = x."""
        nu = np.exp(x)
        t, _, _, dt = self._components(nu, slope=True)
        return np.log(t), nu * dt / t

    def nu_for_deadline(self, deadline_s) -> np.ndarray:
        """The multiplier of each client's deadline (inf where the deadline is at or below its fastest time): the
        root in ln nu of ln D(nu) = ln deadline, D decreasing."""
        d = np.asarray(deadline_s, dtype=float)
        feasible = d > self.t_min * (1 + 1e-12)
        log_d = np.log(np.where(feasible, d, 1.0))
        lo = np.full(d.shape, -30.0)  # ln nu where D > d (too slow) ...
        hi = np.full(d.shape, 30.0)  # ... and where D <= d (fits)
        warm = getattr(self, "_warm", None)  # the last solve's ln nu: the outer searches move T a little at a time
        if warm is not None and warm.shape == d.shape:
            # no bracket evaluations: at nu = e^30 every part runs at its fastest (fits, the deadline being
            # feasible); at nu = e^-30 its transfers take ~1e13 times longer than any deadline here (too slow)
            f_lo, f_hi = np.full(d.shape, np.inf), np.full(d.shape, -np.inf)
        else:
            f_lo = self._log_time(lo) - log_d
            f_hi = self._log_time(hi) - log_d
        for _ in range(20):  # widen the bracket where it does not hold yet
            bad_lo, bad_hi = feasible & (f_lo <= 0), feasible & (f_hi > 0)
            if not (np.any(bad_lo) or np.any(bad_hi)):
                break
            lo = np.where(bad_lo, lo - 30.0, lo)
            hi = np.where(bad_hi, hi + 30.0, hi)
            f_lo = np.where(bad_lo, self._log_time(lo) - log_d, f_lo)
            f_hi = np.where(bad_hi, self._log_time(hi) - log_d, f_hi)
        x0 = None
        if warm is not None and warm.shape == d.shape:
            x0 = np.where(np.isfinite(warm) & (warm > lo) & (warm < hi), warm, hi)
        hi = _newton_decreasing(self._log_time_newton, log_d, lo, f_lo, hi, f_hi, active=feasible, x0=x0)
        self._warm = np.where(feasible, hi, np.nan)
        return np.where(feasible, np.exp(hi), np.inf)

    def least_energy_j(self, deadline_s):
        """(energy (K,), nu (K,)) of each client at its least energy within its deadline."""
        nu = self.nu_for_deadline(deadline_s)
        _, energy, _ = self._components(nu)
        return energy + self.const_j, nu

    def step(self, round_s: float) -> EnergyStep:
        """Clocks and powers of every client at its least energy for the round's slowest-client time ``round_s``."""
        deadline = round_s - self.fixed_s
        nu = self.nu_for_deadline(deadline)
        _, _, (tc, ws, wf) = self._components(nu)
        freq = np.clip(self.cycles / tc, self.f_min_hz, self.f_max_hz)
        return EnergyStep(freq, self.s.powers(ws), self.f.powers(wf))

    # ------------------------------------------------------------------ the round time of each objective

    def _nu_and_slope(self, round_s: float):
        """(nu_k, d nu_k / dT) at the round time ``round_s`` (dnu/dT = 1 / dD/dnu at the client's nu)."""
        nu = self.nu_for_deadline(round_s - self.fixed_s)
        _, _, _, dd = self._components(nu, slope=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            dnu = np.where(np.isfinite(nu) & (dd < 0), 1.0 / dd, 0.0)
        return nu, dnu

    def weighted_round_s(self, weight_s_per_j: float) -> float:
        """argmin over T of T + lambda sum_k E_k(T - c_k): the root of ln(lambda sum_k nu_k(T)) = 0, decreasing in
        T, by a Newton step in ln T (d nu_k / dT = 1 / (dD_k/dnu)) kept inside a bracket, else bisection."""
        t_min = self.round_min_s
        if weight_s_per_j <= 0:
            return t_min

        def excess(log_t):  # (ln(lambda sum nu), its derivative in ln T): > 0 where a longer round pays
            t = float(np.exp(log_t))
            nu, dnu = self._nu_and_slope(t)
            total = weight_s_per_j * float(np.sum(nu))
            if not total > 0:
                return -np.inf, 0.0
            return float(np.log(total)), t * weight_s_per_j * float(np.sum(dnu)) / total

        lo = float(np.log(t_min * (1 + 1e-9)))
        f_lo, d_lo = excess(lo)
        if not f_lo > 0:
            return t_min
        hi, f_hi = np.inf, -np.inf
        x, f_x, d_x = lo, f_lo, d_lo
        for _ in range(200):
            # the objective is stationary at the root: a relative error e in T costs O(e^2) in the objective
            if abs(f_x) <= 1e-10 or hi - lo <= 1e-12 * max(1.0, abs(lo)):
                break
            step = x - f_x / d_x if d_x < 0 and np.isfinite(f_x) else np.nan
            if not np.isfinite(hi):  # no upper end yet: Newton, or doubling T
                x = step if np.isfinite(step) and step > lo else lo + np.log(2.0)
            else:
                x = step if lo < step < hi else 0.5 * (lo + hi)
            f_x, d_x = excess(x)
            if f_x <= 0:
                hi, f_hi = x, f_x
            else:
                lo, f_lo = x, f_x
        return float(np.exp(x))

    def budget_round_s(self, budget_j, client_ids=None) -> float:
        """The least T at which every client's least energy fits its budget (SolverError naming the client whose
        budget no deadline meets)."""
        budget = np.asarray(budget_j, dtype=float)
        floor = self.energy_floor_j()
        short = budget < floor * (1 + 1e-9)
        if np.any(short):
            i = int(np.argmax(floor - budget))
            who = i if client_ids is None else int(client_ids[i])
            raise SolverError(f"objective.budget_j: client {who} needs at least {floor[i]:.6g} J a round (at f_min "
                              f"and vanishing rates), above its budget {budget[i]:.6g} J; allowed: a budget above "
                              f"that minimum")
        t_min = self.round_min_s
        log_b = np.log(budget)

        def f(log_d):  # ln E(D) - ln budget, decreasing in D
            e, _ = self.least_energy_j(np.exp(log_d))
            return np.log(e) - log_b

        lo = np.log(self.t_min * (1 + 1e-11))
        f_lo = f(lo)
        need = f_lo > 0
        if not np.any(need):
            return t_min
        hi = lo + np.log(2.0)
        f_hi = f(hi)
        for _ in range(200):
            over = need & (f_hi > 0)
            if not np.any(over):
                break
            lo = np.where(over, hi, lo)
            f_lo = np.where(over, f_hi, f_lo)
            hi = np.where(over, hi + np.log(2.0), hi)
            f_hi = np.where(over, f(hi), f_hi)
        hi = _illinois_decreasing(f, lo, f_lo, hi, f_hi, active=need)
        t_need = np.where(need, self.fixed_s + np.exp(hi), 0.0)
        return max(t_min, float(np.max(t_need)))


def _newton_decreasing(fun_slope, target, lo, f_lo, hi, f_hi, *, active, ftol: float = 1e-13, max_iter: int = 100,
                       x0=None):
    """Safeguarded Newton for decreasing g(x) - target bracketed by f(lo) > 0 >= f(hi), row by row where ``active``:
    a Newton step from the last iterate when it stays inside the bracket, else bisection; starts at ``x0`` (a warm
    start inside the bracket) or ``hi``; stops when f(hi) >= -ftol; returns ``hi`` (f <= 0 there)."""
    lo, hi, f_lo, f_hi = (np.array(x, dtype=float) for x in (lo, hi, f_lo, f_hi))
    x = hi.copy() if x0 is None else np.array(x0, dtype=float)
    g, dg = fun_slope(x)
    if x0 is not None:  # the warm start narrows the bracket
        f0 = g - target
        inside = active & (x > lo) & (x < hi)
        fits = inside & (f0 <= 0)
        hi, f_hi = np.where(fits, x, hi), np.where(fits, f0, f_hi)
        lo, f_lo = np.where(inside & ~fits, x, lo), np.where(inside & ~fits, f0, f_lo)
    for _ in range(max_iter):
        f_x = g - target
        open_ = active & (f_hi < -ftol) & (hi - lo > 1e-15 * np.maximum(1.0, np.abs(hi)))
        if not np.any(open_):
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            step = x - f_x / dg
        bad = ~np.isfinite(step) | (step <= lo) | (step >= hi)
        x = np.where(open_, np.where(bad, 0.5 * (lo + hi), step), x)
        g, dg = fun_slope(x)
        f_new = g - target
        fits = f_new <= 0
        hi = np.where(open_ & fits, x, hi)
        f_hi = np.where(open_ & fits, f_new, f_hi)
        lo = np.where(open_ & ~fits, x, lo)
        f_lo = np.where(open_ & ~fits, f_new, f_lo)
    return hi


def _illinois_decreasing(fun, lo, f_lo, hi, f_hi, *, active, xtol: float = 1e-13, ftol: float = 1e-13,
                         max_iter: int = 100):
    """Vectorised Illinois regula falsi for decreasing functions bracketed by f(lo) > 0 >= f(hi), row by row where
    ``active``, until f(hi) >= -ftol (the functions here are logarithms: a relative tolerance) or the bracket is
    below ``xtol``; returns the ``hi`` end (f <= 0 there: the side that meets the constraint)."""
    lo, hi, f_lo, f_hi = (np.array(x, dtype=float) for x in (lo, hi, f_lo, f_hi))
    side = np.zeros(lo.shape)
    for _ in range(max_iter):
        open_ = active & (hi - lo > xtol * np.maximum(1.0, np.abs(hi))) & (f_hi < -ftol)
        if not np.any(open_):
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            c = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        bad = ~np.isfinite(c) | (c <= lo) | (c >= hi)
        c = np.where(bad, 0.5 * (lo + hi), c)
        c = np.where(open_, c, hi)
        f_c = fun(c)
        fits = f_c <= 0
        move_hi = open_ & fits
        move_lo = open_ & ~fits
        # Illinois: halve the stale end's value when the same end moves twice in a row
        f_lo = np.where(move_hi & (side == -1), 0.5 * f_lo, f_lo)
        f_hi = np.where(move_lo & (side == 1), 0.5 * f_hi, f_hi)
        hi = np.where(move_hi, c, hi)
        f_hi = np.where(move_hi, f_c, f_hi)
        lo = np.where(move_lo, c, lo)
        f_lo = np.where(move_lo, f_c, f_lo)
        side = np.where(move_hi, -1, np.where(move_lo, 1, side))
    return hi


# ------------------------------------------------------------------------------------------- solutions

def energy_solution(problem, split: int, rank: int, assign_s, assign_f, method: str, splits=None):
    """The objective's best round for this assignment (the energy step), scored by :func:`evaluate`.

    The step plans on mean-gain rates (Shannon at the large-scale gain: its closed forms need that law). Under
    ``rate_model: ergodic`` the score's rates are lower, so a client's transfers take longer and cost more than
    planned: under budgets the step is repeated with each over-budget client's planning budget shrunk by the
    ratio of its budget to its scored energy (at most :data:`BUDGET_REPLANS` times) until the score meets every
    budget; a SolverError if it cannot."""
    from .problem import evaluate

    k = problem.num_clients
    client_splits = np.full(k, int(split)) if splits is None else np.asarray(splits, dtype=int)
    model = ClientEnergyModel(problem, rank, client_splits, assign_s, assign_f)

    def scored(round_s):
        step = model.step(round_s)
        return evaluate(problem, int(np.min(client_splits)), rank, assign_s, step.power_s_w, assign_f,
                        step.power_f_w, method=method, frequency_hz=step.frequency_hz, splits=splits)

    if problem.objective == "weighted":
        return scored(model.weighted_round_s(problem.weight_s_per_j))
    if problem.objective != "delay-under-energy":
        raise SolverError(f"the energy step applies to objectives weighted and delay-under-energy, not "
                          f"{problem.objective}")
    budget = np.asarray(problem.budget_j, dtype=float)
    plan = budget.copy()
    for _ in range(BUDGET_REPLANS):
        sol = scored(model.budget_round_s(plan, problem.client_ids))
        spent = sol.energy.client_j
        over = spent > budget * (1 + 1e-9)
        if not np.any(over):
            return sol
        plan = np.where(over, plan * budget / spent * (1 - 1e-9), plan)
    raise SolverError(f"objective.budget_j: the energy step planned on mean-gain rates could not meet the budgets "
                      f"under the problem's {problem.rate_model} rates in {BUDGET_REPLANS} re-plans")


def pair_lower_bound(problem, rank: int, splits) -> float:
    """A lower bound on the objective at (splits, rank) under any assignment, powers and clocks: every transfer
    instantaneous for the delay, every client's energy at its :class:`ClientFloor`; inf when some client's floor is
    above its budget."""
    floor = ClientFloor(problem, rank, splits)
    rounds = float(problem.convergence.rounds(rank))
    if problem.objective == "weighted":
        return rounds * (floor.round_lb_s + problem.weight_s_per_j * float(np.sum(floor.floor)))
    if problem.objective == "delay-under-energy" and np.any(floor.floor > problem.budget_j):
        return np.inf
    return rounds * floor.round_lb_s


def relaxed_pair_bound(problem, rank: int, splits) -> float:
    """The objective of :meth:`ClientEnergyModel.relaxed` at (splits, rank): a lower bound on every assignment's
    objective there, much tighter than :func:`pair_lower_bound` (it costs one energy step); inf when some
    client's budget cannot be met."""
    k = problem.num_clients
    splits = np.broadcast_to(np.asarray(splits, dtype=int), (k,))
    model = ClientEnergyModel.relaxed(problem, rank, splits)
    if problem.objective == "weighted":
        t = model.weighted_round_s(problem.weight_s_per_j)
        energy, _ = model.least_energy_j(t - model.fixed_s)
        return model.rounds * (t + model.tail_s + problem.weight_s_per_j * float(np.sum(energy)))
    try:
        t = model.budget_round_s(problem.budget_j)
    except SolverError:
        return np.inf
    return model.rounds * (t + model.tail_s)


def _delay_problem(problem):
    import dataclasses

    return dataclasses.replace(problem, objective="delay", budget_j=None, per_client_split=False)


def _budget_refusal(problem, pairs) -> SolverError:
    """The line for budgets no (split, rank) can meet: the client whose least energy over every pair (f_min,
    vanishing rates) is furthest above its budget; or, when each client alone fits at some pair but no pair fits
    them all, the pair that comes closest and its client over budget."""
    if problem.per_client_split:  # a client's own split need not be one every client can hold
        ranks = sorted({r for _, r in pairs})
        pairs = [(int(s), r) for r in ranks for s in problem.profile.splits if s >= problem.min_split]
    floors = [ClientFloor(problem, r, s) for s, r in pairs]
    table = np.array([f.floor for f in floors])  # (pairs, K)
    budget = problem.budget_j
    if problem.per_client_split:  # only the splits each client may hold count for it
        allowed = {r: problem.client_splits_allowed(r) for r in {f.rank for f in floors}}
        mine = np.array([[f.split in allowed[f.rank][k] for k in range(table.shape[1])] for f in floors])
        table = np.where(mine, table, np.inf)
    least = table.min(axis=0)
    ids = problem.client_ids
    if np.any(least > budget):
        i = int(np.argmax(least - budget))
        at = floors[int(np.argmin(table[:, i]))]
        return SolverError(f"objective.budget_j: client {int(ids[i])} needs at least {least[i]:.6g} J a round (at "
                           f"split {at.split}, rank {at.rank}, f_min and vanishing rates), above its budget "
                           f"{budget[i]:.6g} J; allowed: a budget above that minimum")
    if problem.per_client_split or np.any(np.all(table <= budget, axis=1)):
        # every client fits at some split on its own (or some pair fits every floor): the assignments did not
        return SolverError(f"objective.budget_j: no allocation bcd found meets every client's budget under the "
                           f"problem's {problem.rate_model} rates (each client's least energy fits its budget only "
                           f"at f_min and vanishing rates on its best subchannel); allowed: larger budgets, or "
                           f"method exact on a small instance")
    p = int(np.argmin(np.max(table - budget, axis=1)))
    i = int(np.argmax(table[p] - budget))
    return SolverError(f"objective.budget_j: no (split, rank) meets every client's budget: the closest, split "
                       f"{floors[p].split} rank {floors[p].rank}, needs {table[p, i]:.6g} J a round from client "
                       f"{int(ids[i])} (budget {budget[i]:.6g} J); allowed: budgets above each client's least energy "
                       f"at one common split")


class ClientFloor:
    """Each client's least energy of a round at (splits, rank) over every assignment and deadline (f_min, and the
    energy per bit of a vanishing rate on its best subchannel of each band), and the round's least time
    ``round_lb_s`` (every transfer instantaneous)."""

    def __init__(self, problem, rank: int, splits):
        k = problem.num_clients
        splits = np.broadcast_to(np.asarray(splits, dtype=int), (k,))
        self.split, self.rank = int(np.min(splits)), int(rank)
        c = problem.client_costs(splits, rank)
        en = problem.energy
        e = int(problem.local_iterations)
        inf = np.full(k, np.inf)
        bd = problem.breakdown(self.split, rank, inf, inf, splits=splits)
        self.round_lb_s = float(np.max(bd.client_round_s)) + bd.aggregation_s + bd.broadcast_s
        n0 = problem.noise_psd_w_per_hz
        with np.errstate(divide="ignore"):
            self.floor = (en.kappa * e * (c["client_forward_flops"] + c["client_backward_flops"])
                          / en.flops_per_cycle * en.f_min_hz ** 2
                          + e * c["activation_bits"] * _LN2 * n0 / np.max(problem.gain_s, axis=1)
                          + c["adapter_bits"] * _LN2 * n0 / np.max(problem.gain_f, axis=1)
                          + en.rx_power_w * (e * np.asarray(bd.downlink_s) + bd.broadcast_s)
                          + en.idle_power_w * (e * np.asarray(bd.server_compute_s) + bd.aggregation_s))


def _pick_client_splits(problem, rank: int, sol, allowed) -> np.ndarray:
    """Per-client splits for the allocation of ``sol``: each client takes, among the splits it may hold, the one
    that minimises its own round time at its current rates (delay) or its least energy at the round's deadline
    (energy objectives; ties and infeasible deadlines: its fastest)."""
    k = problem.num_clients
    r_s, r_f = problem.rates(sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
    best = np.array([a[0] for a in allowed], dtype=int)
    best_t = np.full(k, np.inf)
    candidates = sorted({int(s) for a in allowed for s in a})
    for s in candidates:
        splits = np.array([s if s in allowed[i] else best[i] for i in range(k)], dtype=int)
        bd = problem.breakdown(int(np.min(splits)), rank, r_s, r_f, splits=splits)
        mine = np.array([s in allowed[i] for i in range(k)])
        better = mine & (np.asarray(bd.client_round_s) < best_t)
        best = np.where(better, s, best)
        best_t = np.where(better, bd.client_round_s, best_t)
    return best


def energy_local_search(problem, sol, max_evaluations: int):
    """Moves of one subchannel from one client to another on either band (every client keeps one), each scored
    with the energy step, first improvement kept, until none improves or ``max_evaluations`` are spent. bcd's
    assignment is planned for delay; under an energy budget the client that needs the longest deadline gains
    from a better subchannel that a client with energy to spare can give up, which only such moves find."""
    best = sol
    k = problem.num_clients
    spent = 0
    improved = True
    while improved and spent < max_evaluations:
        improved = False
        for band in ("s", "f"):
            assign = np.asarray(best.assign_s if band == "s" else best.assign_f)
            counts = np.bincount(assign[assign >= 0], minlength=k)
            for i in range(assign.size):
                owner = int(assign[i])
                if owner < 0 or counts[owner] <= 1:
                    continue
                for to in range(k):
                    if to == owner or spent >= max_evaluations:
                        continue
                    trial = assign.copy()
                    trial[i] = to
                    a_s, a_f = (trial, best.assign_f) if band == "s" else (best.assign_s, trial)
                    spent += 1
                    try:
                        cand = energy_solution(problem, best.split, best.rank, a_s, a_f, best.method,
                                               splits=best.splits)
                    except SolverError:
                        continue
                    if cand.objective_s < best.objective_s * (1 - 1e-12):
                        best, improved = cand, True
                        break
                if improved:
                    break
            if improved:
                break
    return best


def _energy_or_none(problem, split, rank, start, splits):
    """The energy step on bcd's assignment ``start``, or None when that assignment cannot meet some budget (its
    subchannels are worse than the band's best, which the pair's bound assumed)."""
    try:
        return energy_solution(problem, split, rank, start.assign_s, start.assign_f, "bcd", splits=splits)
    except SolverError:
        return None


def _energy_client_splits(problem, rank: int, sol) -> np.ndarray:
    """Per client, among the splits it may hold, the one with the least energy of a round for the round time of
    ``sol`` on its assignment (a client that cannot make that time at a split does not take it; none can: the
    split it has)."""
    k = problem.num_clients
    allowed = problem.client_splits_allowed(rank)
    current = np.full(k, int(sol.split)) if sol.splits is None else np.asarray(sol.splits, dtype=int)
    best, best_e = current.copy(), np.full(k, np.inf)
    round_s = float(np.max(sol.breakdown.client_round_s))
    for split in sorted({int(x) for a in allowed for x in a}):
        model = ClientEnergyModel(problem, rank, np.full(k, split), sol.assign_s, sol.assign_f)
        deadline = round_s - model.fixed_s
        energy, _ = model.least_energy_j(deadline)
        ok = (deadline > model.t_min * (1 + 1e-12)) & np.array([split in allowed[i] for i in range(k)])
        better = ok & (energy < best_e)
        best = np.where(better, split, best)
        best_e = np.where(better, energy, best_e)
    return best


def _refine_client_splits(problem, sol, rounds: int = 3):
    """Energy objectives with per-client splits: alternate each client's least-energy split at the round time
    (:func:`_energy_client_splits`) and the energy step, while the objective drops."""
    for _ in range(rounds):
        own = _energy_client_splits(problem, sol.rank, sol)
        if sol.splits is not None and np.array_equal(own, sol.splits):
            break
        try:
            cand = energy_solution(problem, int(np.min(own)), sol.rank, sol.assign_s, sol.assign_f, sol.method,
                                   splits=own)
        except SolverError:
            break
        if not cand.objective_s < sol.objective_s * (1 - 1e-12):
            break
        sol = cand
    return sol


def _own_split_candidate(problem, rank: int, start, energy: bool):
    """Each client at its own split (:func:`_pick_client_splits`) on the assignment of ``start``, scored (energy
    objectives: after the energy step; None when it cannot meet a budget)."""
    from .problem import evaluate

    own = _pick_client_splits(problem, rank, start, problem.client_splits_allowed(rank))
    if energy:
        return _energy_or_none(problem, int(np.min(own)), rank, start, own)
    return evaluate(problem, int(np.min(own)), rank, start.assign_s, start.power_s_w, start.assign_f,
                    start.power_f_w, method="bcd", splits=own)


def solve_energy(problem, split=None, rank=None, **options):
    """bcd for the energy objectives and per-client splits.

    Common split: for each allowed (split, rank) in increasing order of :func:`pair_lower_bound`, and unless its
    :func:`relaxed_pair_bound` is not below the incumbent, bcd's delay-optimal assignment at that pair and the
    energy step on it. Per-client splits (``problem.per_client_split``) add, for every pair visited, the candidate
    in which each client takes its own split; when no common split's bound is finite (a budget some client cannot
    meet at any split every client can hold), that candidate from bcd's delay optimum instead. Then the move
    search on the candidates within :data:`REFINE_RTOL` of the best. ``lower_bound_s``: the least pair bound
    (none with per-client splits)."""
    from .bcd import solve_bcd
    from .problem import select_pairs

    problem = _common_split_if_fixed(problem, split)
    k, width = problem.num_clients, problem.num_subchannels_s + problem.num_subchannels_f
    max_evaluations = int(options.pop("energy_moves", min(DEFAULT_ENERGY_MOVES, ENERGY_MOVE_SCALE // (k * width))))
    if _is_delay(problem):
        return _as_delay(problem, solve_bcd(_delay_problem(problem), split=split, rank=rank, **options))
    pairs = select_pairs(problem, split, rank)
    delay_problem = _delay_problem(problem)
    energy = problem.objective != "delay"
    # bcd's starts only seed the energy step and its move search: no iterated kicks there unless asked for
    options = {"kicks": 0, **options} if energy else options
    if energy and problem.energy is None:
        raise SolverError(f"objective {problem.objective} needs the devices' energy parameters")
    bounds = sorted(((pair_lower_bound(problem, r, s) if energy else 0.0, s, r) for s, r in pairs),
                    key=lambda x: x[0])
    solved = []  # every candidate scored
    best = None

    def consider(sol):
        nonlocal best
        if sol is None:
            return
        solved.append(sol)
        if best is None or sol.objective_s < best.objective_s:
            best = sol

    pair_bounds = {}  # the relaxed bound of each pair visited (the cheap bound stands for the others)
    for lb, s, r in bounds:
        if best is not None and not lb < best.objective_s:
            break
        if not np.isfinite(lb):
            break  # (bounds are sorted: every later pair is infinite too)
        if energy:
            pair_bounds[(s, r)] = max(lb, relaxed_pair_bound(problem, r, s))
            if best is not None and not pair_bounds[(s, r)] < best.objective_s:
                continue
        start = solve_bcd(delay_problem, split=s, rank=r, **options)
        consider(_energy_or_none(problem, s, r, start, None) if energy else start)
        if problem.per_client_split:
            consider(_own_split_candidate(problem, r, start, energy))
    if problem.per_client_split and (best is None or not np.isfinite(best.objective_s)):
        # every common split's bound was infinite (some client cannot meet its budget at any split all can hold):
        # each client's own split, from bcd's delay optimum
        start = solve_bcd(delay_problem, split=split, rank=rank, **options)
        consider(_own_split_candidate(problem, start.rank, start, energy))
    if energy and best is not None and np.isfinite(best.objective_s):
        # the move search, on the candidates within refine_rtol of the best (the others could not win by a move);
        # with per-client splits, first each client's least-energy split at the candidate's round time
        near = sorted((c for c in solved if c.objective_s <= best.objective_s * (1 + REFINE_RTOL)),
                      key=lambda c: c.objective_s)[:REFINED_CANDIDATES]
        if problem.per_client_split:  # and the best candidate of every rank visited: splits move energy a lot
            for r in sorted({c.rank for c in solved}):
                top = min((c for c in solved if c.rank == r and np.isfinite(c.objective_s)),
                          key=lambda c: c.objective_s, default=None)
                if top is not None and all(top is not c for c in near):
                    near.append(top)
            near = [_refine_client_splits(problem, c) for c in near]
            for cand in near:
                if cand.objective_s < best.objective_s:
                    best = cand
            near = sorted(near, key=lambda c: c.objective_s)[:REFINED_CANDIDATES]
        for cand in near:
            sol = energy_local_search(problem, cand, max_evaluations)
            if sol.objective_s < best.objective_s:
                best = sol
    if best is None or not np.isfinite(best.objective_s):
        raise _budget_refusal(problem, pairs)
    best.method = "bcd"
    if energy and not problem.per_client_split:  # the least bound over every pair (relaxed where visited)
        best.lower_bound_s = float(min(pair_bounds.get((s, r), lb) for lb, s, r in bounds))
    else:
        best.lower_bound_s = None
    return best


def _is_delay(problem) -> bool:
    """One common split and the delay objective, or lambda = 0 (the weighted objective IS then the delay
    objective, every device at f_max)."""
    if problem.per_client_split:
        return False
    return problem.objective == "delay" or (problem.objective == "weighted" and problem.weight_s_per_j == 0)


def _common_split_if_fixed(problem, split):
    """A fixed split is one split for every client: per-client splits do not apply then (the fixed-split
    baselines)."""
    import dataclasses

    if split is not None and problem.per_client_split:
        return dataclasses.replace(problem, per_client_split=False)
    return problem


def _as_delay(problem, sol):
    """A delay solution scored under ``problem`` (same allocation, every device at f_max)."""
    from .problem import evaluate

    out = evaluate(problem, sol.split, sol.rank, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w,
                   method=sol.method)
    out.status, out.lower_bound_s, out.notes = sol.status, sol.lower_bound_s, list(sol.notes)
    return out


def solve_energy_exact(problem, split=None, rank=None, **_options):
    """The oracle on tiny instances: every surjective assignment of both bands (leaving a subchannel unused never
    helps: a client can spend no power on it) x every pair x (per-client splits: every combination of the
    clients' allowed splits), each with the energy step (exact for its assignment: a convex problem per client
    and a monotone one in the round time)."""
    import itertools

    from .enumeration import enumeration_size, surjections
    from .problem import evaluate, select_pairs

    problem = _common_split_if_fixed(problem, split)
    if _is_delay(problem):
        from .exact import solve_exact

        return _as_delay(problem, solve_exact(_delay_problem(problem), split=split, rank=rank, **_options))
    pairs = select_pairs(problem, split, rank)
    energy = problem.objective != "delay"
    k = problem.num_clients
    size = enumeration_size(problem) * len(pairs)
    if problem.per_client_split:
        size = enumeration_size(problem) * sum(
            int(np.prod([a.size for a in problem.client_splits_allowed(r)])) for r in {r for _, r in pairs})
    if size > EXACT_ENERGY_LIMIT:
        what = f"{problem.objective}{' and per-client splits' if problem.per_client_split else ''}"
        raise SolverError(f"exact with objective {what}: "
                          f"{size} (assignment, split, rank) candidates exceed {EXACT_ENERGY_LIMIT}, each an energy "
                          f"step; allowed: tiny instances (use bcd)")
    rows_s = surjections(problem.num_subchannels_s, k)
    rows_f = surjections(problem.num_subchannels_f, k)
    band_s, band_f = bands_of(problem)

    def water(assign, band):  # each client water-fills its cap over its own subchannels
        packed = PackedBand(band, assign)
        return packed.scatter(packed.water_fill(band.p_max_w))

    best = None
    ranks = sorted({r for _, r in pairs})
    for r in ranks:
        if problem.per_client_split:
            allowed = problem.client_splits_allowed(r)
            combos = [np.array(c, dtype=int) for c in itertools.product(*allowed)]
        common = [s for s, rr in pairs if rr == r]
        for a_s in rows_s:
            for a_f in rows_f:
                trials = [(s, None) for s in common] if not problem.per_client_split else \
                    [(int(np.min(c)), c) for c in combos]
                for s, own in trials:
                    try:
                        if energy:
                            sol = energy_solution(problem, s, r, a_s, a_f, "exact", splits=own)
                        else:
                            sol = evaluate(problem, s, r, a_s, water(a_s, band_s), a_f, water(a_f, band_f),
                                           method="exact", splits=own)
                    except SolverError:
                        continue
                    if best is None or sol.objective_s < best.objective_s:
                        best = sol
    if best is None or not np.isfinite(best.objective_s):
        raise _budget_refusal(problem, pairs)
    best.status = "optimal"
    best.lower_bound_s = best.objective_s
    return best
