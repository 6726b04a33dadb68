"""Convex power control for a fixed subchannel assignment (spec section 5, step 2 of the reference algorithm).

For a fixed (split, rank) the objective depends on the allocation only through each client's time

    T_k = base_k + s_bits / R^s_k + f_bits / R^f_k,     base_k = E (t^F_k + t^S_k + S_g/R^dl_k + t^B_k),
    s_bits = E S_a,  f_bits = S_c,   objective = N(r) (max_k T_k + tail),  tail = t_agg + S_c / R_bcast,

(``RoundTerms`` takes every number from :mod:`fsllm_sim.delay` through ``Problem.breakdown``, so the
formula lives in one place). Power control minimises max_k T_k over the powers for a fixed assignment.

Per-client caps only (the default scenario). The constraints are separable: client k's s-band powers
appear only in its own cap on the s-band, its f-band powers only in its cap on the f-band, and no
other constraint links them. T_k is strictly decreasing in R^s_k and in R^f_k, and the max is
non-decreasing in every T_k. Water-filling each client's cap over its own subchannels maximises
R^s_k and R^f_k *simultaneously for every k* (each is maximised over its own independent feasible
set), so it minimises every T_k at once and hence their maximum: it is an optimum (indeed the
componentwise-best one), with no search.

Total caps per band. Epigraph form: minimise tau s.t. T_k <= tau, sum of powers <= caps. The constraint
s_bits / R(p) <= t is convex because R is concave in p. For a trial tau, client k has the deadline
D_k = tau - base_k to share between its two transfers, t^s + t^f <= D_k. The least s-band power that
moves s_bits in t^s seconds is P^s_k(s_bits / t^s) (``min_power_for_rate_w_batched``, the inverse of
water-filling); it is convex and decreasing in t^s (a convex increasing function of the convex rate
s_bits / t). Feasibility of tau:

* one binding total cap (say on s): give the other band its full per-client cap (its fastest time
  t^f_min) and the whole remaining deadline to the s-band; tau is feasible iff sum_k P^s_k <= P^s_total.
* both caps binding: the set of achievable (sum P^s, sum P^f) is convex; its Pareto points minimise
  sum P^s + lambda sum P^f, which splits into one 1-D convex problem per client (how to share its
  deadline between its bands; solved by safeguarded Newton with the closed-form derivatives
  dP/dR = mu ln 2 and d2P/dR2 = mu (ln 2)^2 / B_active, mu the water level). tau is feasible iff some
  Pareto point fits both caps, i.e. iff min over lambda of max(sum P^s / P^s_total, sum P^f / P^f_total)
  <= 1; the minimiser is where the two normalised sums are equal (a root in log lambda).

The optimal tau is then the root of that feasibility margin, found by a bracketing (Illinois) search
between the all-full-power bound and the equal-power-split point, always keeping a feasible end, so
the powers returned are feasible by construction (then trimmed by a relative 1e-12 at most so that
rounding cannot cross a cap).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from channel_models.ofdma import (_active_prefix, _sorted_cumsums, min_power_for_rate_w_batched,
                                  subchannel_rate_bps, water_filling_power_w_batched)

from .rootfind import illinois

_LN2 = float(np.log(2.0))


# --------------------------------------------------------------------------------------------
# The objective's structure at one (split, rank)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoundTerms:
    """T_k = base_k + s_bits / R^s_k + f_bits / R^f_k; objective = rounds * (max_k T_k + tail).

    Built by :meth:`from_problem` from ``Problem.breakdown`` with infinite uplink rates (the
    transfers then take 0 s and what remains is exactly the rate-independent part), so it can never
    disagree with ``evaluate``.
    """

    base_s: np.ndarray
    s_bits: float
    f_bits: float
    tail_s: float
    rounds: float

    @classmethod
    def from_problem(cls, problem, split: int, rank: int) -> "RoundTerms":
        k = problem.num_clients
        inf = np.full(k, np.inf)
        bd = problem.breakdown(split, rank, inf, inf)
        c = problem.costs(split, rank)
        base = np.asarray(bd.client_round_s, dtype=float)
        tail = float(bd.aggregation_s + bd.broadcast_s)  # round_s - max(base), without its rounding
        return cls(base_s=base, s_bits=float(problem.local_iterations) * c["activation_bits"],
                   f_bits=c["adapter_bits"], tail_s=tail,
                   rounds=float(problem.convergence.rounds(rank)))

    def key(self) -> tuple:
        """Everything the allocation for this pair depends on (pairs with equal keys share answers)."""
        return (self.s_bits, self.f_bits, self.tail_s, self.base_s.tobytes())

    def client_times(self, rate_s, rate_f) -> np.ndarray:
        return self.base_s + _transfer(self.s_bits, rate_s) + _transfer(self.f_bits, rate_f)

    def objective(self, rate_s, rate_f) -> float:
        return self.rounds * (float(np.max(self.client_times(rate_s, rate_f))) + self.tail_s)


def _transfer(bits: float, rate) -> np.ndarray:
    rate = np.asarray(rate, dtype=float)
    if bits == 0:
        return np.zeros_like(rate)
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, bits / np.where(rate > 0, rate, 1.0), np.inf)


# --------------------------------------------------------------------------------------------
# Bands and packed per-client views
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BandSpec:
    """One uplink band of a problem: gains (K, S), bandwidths (S,), noise, per-client and total caps."""

    name: str
    gain: np.ndarray
    bandwidth_hz: np.ndarray
    noise_psd_w_per_hz: float
    p_max_w: np.ndarray
    total_cap_w: Optional[float]

    @property
    def num_clients(self) -> int:
        return self.gain.shape[0]

    @property
    def num_subchannels(self) -> int:
        return self.gain.shape[1]

    def initial_budgets_w(self) -> np.ndarray:
        """Each client's cap, scaled down uniformly when the caps together exceed the total cap.

        This is the power every client spends under the equal/max-power baselines, and the budget
        bcd starts from, so bcd's first iterate is never worse than max-power's allocation.
        """
        total = float(self.p_max_w.sum())
        if self.total_cap_w is not None and total > self.total_cap_w:
            return self.p_max_w * (self.total_cap_w / total)
        return self.p_max_w.copy()

    def total_cap_binds(self) -> bool:
        return self.total_cap_w is not None and float(self.p_max_w.sum()) > self.total_cap_w


def bands_of(problem) -> tuple[BandSpec, BandSpec]:
    n0 = float(problem.noise_psd_w_per_hz)
    return (BandSpec("s", problem.gain_s, problem.bandwidth_s_hz, n0, problem.p_max_w, problem.p_total_s_w),
            BandSpec("f", problem.gain_f, problem.bandwidth_f_hz, n0, problem.p_max_w, problem.p_total_f_w))


def pack_assignment(assign, num_clients: int) -> np.ndarray:
    """(K, L) matrix of each client's subchannel indices (ascending), padded with -1; L = max count >= 1."""
    assign = np.asarray(assign, dtype=int)
    used = np.flatnonzero(assign >= 0)
    owners = assign[used]
    order = np.argsort(owners, kind="stable")
    sub, own = used[order], owners[order]
    counts = np.bincount(own, minlength=num_clients)
    width = max(1, int(counts.max()) if counts.size else 1)
    starts = np.cumsum(counts) - counts
    idx = np.full((num_clients, width), -1, dtype=int)
    idx[own, np.arange(sub.size) - starts[own]] = sub
    return idx


class PackedBand:
    """A band seen through an assignment: row k holds client k's subchannels (padding has gain 0).

    Padding has zero gain, which the ofdma functions treat as unusable, so they can run on the
    (K, L) arrays directly: L is a client's largest subchannel count, not the band's size.
    """

    def __init__(self, band: BandSpec, assign):
        self.band = band
        self.assign = np.asarray(assign, dtype=int)
        self.idx = pack_assignment(self.assign, band.num_clients)
        valid = self.idx >= 0
        safe = np.where(valid, self.idx, 0)
        rows = np.arange(band.num_clients)[:, None]
        self.valid = valid
        self._set_rows(np.where(valid, band.gain[rows, safe], 0.0), np.where(valid, band.bandwidth_hz[safe], 1.0))

    def _set_rows(self, gain, bw) -> None:
        self.gain = np.asarray(gain, dtype=float)
        self.bw = np.asarray(bw, dtype=float)
        self.n0 = self.band.noise_psd_w_per_hz
        with np.errstate(divide="ignore"):
            self.floor = np.where(self.gain > 0, self.n0 / np.where(self.gain > 0, self.gain, 1.0), np.inf)

    @classmethod
    def from_rows(cls, band: BandSpec, gain, bw) -> "PackedBand":
        """Rows that are candidate subchannel sets (gain 0 = padding), not an assignment's clients: for
        the water-filling / least-power methods only (``assign``, ``idx`` and ``scatter`` are absent)."""
        pb = cls.__new__(cls)
        pb.band = band
        pb._set_rows(gain, bw)
        return pb

    def water_fill(self, budget_w) -> np.ndarray:
        return water_filling_power_w_batched(self.gain, self.bw, self.n0, budget_w)

    def rates(self, powers) -> np.ndarray:
        return subchannel_rate_bps(self.bw, powers, self.gain, self.n0).sum(axis=1)

    def _least_power(self, rate_bps):
        """``min_power_for_rate_w_batched`` on these rows, with the sort by noise floor done once per
        object (the power searches call this many times on the same rows): the same arithmetic on the
        same arrays, so the same numbers, without re-validating and re-sorting at every call."""
        rate = np.asarray(rate_bps, dtype=float)
        if rate.shape != (self.gain.shape[0],) or not np.all(rate >= 0):
            return min_power_for_rate_w_batched(self.gain, self.bw, self.n0, rate_bps)  # raises as it does
        cached = getattr(self, "_sorted", None)
        if cached is None:
            f_s, cum_b, cum_blog = _sorted_cumsums(self.floor, self.bw, np.log2)
            with np.errstate(divide="ignore"):
                log_f_s = np.log2(f_s)
            cached = self._sorted = (cum_b, cum_blog, log_f_s)
        cum_b, cum_blog, log_f_s = cached
        with np.errstate(invalid="ignore", divide="ignore"):
            log_level_m = (rate[:, None] + cum_blog) / cum_b
        m = np.where(rate > 0, _active_prefix(log_f_s, log_level_m), 0)
        log_level = np.take_along_axis(log_level_m, np.maximum(m - 1, 0)[:, None], axis=1)[:, 0]
        level = np.where(m > 0, np.exp2(log_level), 0.0)
        powers = self.bw * np.maximum(level[:, None] - self.floor, 0.0)
        powers[(m == 0) & (rate > 0)] = np.inf
        return powers, powers.sum(axis=1)

    def min_power(self, rate_bps):
        """Least powers for the rates: (packed powers, totals (K,), water level mu (K,), active width (K,))."""
        powers, total = self._least_power(rate_bps)
        active = powers > 0
        b_act = np.sum(np.where(active, self.bw, 0.0), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            level = np.sum(np.where(active, powers + self.bw * np.where(active, self.floor, 0.0), 0.0), axis=1) / b_act
        level = np.where(b_act > 0, level, 0.0)
        return powers, total, level, b_act

    def scatter(self, powers) -> np.ndarray:
        out = np.zeros(self.band.num_subchannels)
        out[self.idx[self.valid]] = np.asarray(powers)[self.valid]
        return out


# --------------------------------------------------------------------------------------------
# Power control
# --------------------------------------------------------------------------------------------

@dataclass
class PowerResult:
    power_s_w: np.ndarray
    power_f_w: np.ndarray
    budget_s_w: np.ndarray
    budget_f_w: np.ndarray
    rate_s_bps: np.ndarray
    rate_f_bps: np.ndarray
    client_time_s: np.ndarray
    max_time_s: float
    method: str
    evaluations: int = 0


def _result(terms, ps: PackedBand, pf: PackedBand, packed_s, packed_f, method, evaluations) -> PowerResult:
    power_s, power_f = _trim(ps, packed_s), _trim(pf, packed_f)
    rate_s, rate_f = ps.rates(ps_packed(ps, power_s)), pf.rates(ps_packed(pf, power_f))
    times = terms.client_times(rate_s, rate_f)
    return PowerResult(power_s_w=power_s, power_f_w=power_f,
                       budget_s_w=np.bincount(ps.assign[ps.assign >= 0], weights=power_s[ps.assign >= 0],
                                              minlength=ps.band.num_clients),
                       budget_f_w=np.bincount(pf.assign[pf.assign >= 0], weights=power_f[pf.assign >= 0],
                                              minlength=pf.band.num_clients),
                       rate_s_bps=rate_s, rate_f_bps=rate_f, client_time_s=times,
                       max_time_s=float(np.max(times)), method=method, evaluations=evaluations)


def ps_packed(pb: PackedBand, power_full) -> np.ndarray:
    """Packed (K, L) view of a full-length power vector."""
    return np.where(pb.valid, np.asarray(power_full)[np.where(pb.valid, pb.idx, 0)], 0.0)


def _trim(pb: PackedBand, packed) -> np.ndarray:
    """Scatter packed powers and scale them down (by rounding-sized factors) onto every cap."""
    p = np.where(np.isfinite(packed), np.maximum(packed, 0.0), 0.0)
    band = pb.band
    per_client = p.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(per_client > band.p_max_w, band.p_max_w / per_client, 1.0)
    p = p * scale[:, None]
    full = pb.scatter(p)
    if band.total_cap_w is not None and full.sum() > band.total_cap_w:
        full *= band.total_cap_w / full.sum()
    return full


def optimal_power(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms, assign_s, assign_f,
                  rtol: float = 1e-10, max_iter: int = 200) -> PowerResult:
    """Powers minimising max_k T_k for a fixed assignment (see the module docstring for the proof/method)."""
    ps, pf = PackedBand(band_s, assign_s), PackedBand(band_f, assign_f)
    full_s, full_f = ps.water_fill(band_s.p_max_w), pf.water_fill(band_f.p_max_w)
    bind_s = band_s.total_cap_binds() and terms.s_bits > 0
    bind_f = band_f.total_cap_binds() and terms.f_bits > 0
    if not bind_s and not bind_f:
        if band_s.total_cap_binds():  # the s-band carries nothing: spend nothing on it
            full_s = np.zeros_like(full_s)
        if band_f.total_cap_binds():
            full_f = np.zeros_like(full_f)
        return _result(terms, ps, pf, full_s, full_f, "water-filling", 1)
    return _TotalCapSolver(terms, ps, pf, full_s, full_f, bind_s, bind_f, rtol, max_iter).solve()


class _TotalCapSolver:
    """Bisection-type search on the epigraph variable tau (see the module docstring)."""

    def __init__(self, terms, ps, pf, full_s, full_f, bind_s, bind_f, rtol, max_iter):
        self.t, self.ps, self.pf = terms, ps, pf
        self.bind_s, self.bind_f = bind_s, bind_f
        self.rtol, self.max_iter = rtol, max_iter
        self.full_s, self.full_f = full_s, full_f
        self.rs_max, self.rf_max = ps.rates(full_s), pf.rates(full_f)
        self.ts_min = _transfer(terms.s_bits, self.rs_max)
        self.tf_min = _transfer(terms.f_bits, self.rf_max)
        self.cap_s, self.cap_f = ps.band.total_cap_w, pf.band.total_cap_w
        self.evaluations = 0
        self._t_guess = None
        self._omega = 0.0
        # The price lambda of the last two-cap margin: 0 when the f-band cap is slack at the best split
        # of the deadlines, inf when the s-band cap is, else exp(omega) at the root (see _margin_both).
        self.price = None

    # -- one band's least power for its time share -------------------------------------------
    def _band_power(self, pb, bits, time):
        """Packed least powers, totals, level, width for transfer times ``time`` (inf time -> 0 W)."""
        self.evaluations += 1
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(time > 0, bits / np.where(time > 0, time, 1.0), np.inf)
        rate = np.where(np.isfinite(rate), rate, 0.0)
        powers, total, level, b_act = pb.min_power(rate)
        return powers, total, level, b_act

    # -- feasibility margin of one tau ------------------------------------------------------
    def _margin(self, tau):
        """(margin, packed_s, packed_f): margin <= 0 iff tau is feasible with the returned powers."""
        t = self.t
        deadline = tau - t.base_s
        slack = deadline - self.ts_min - self.tf_min
        if np.any(slack < -1e-12 * tau):
            return np.inf, None, None
        # Rounding-sized negative slack (at tau_lo itself) is zero slack: the client runs at its caps.
        deadline = np.maximum(deadline, self.ts_min + self.tf_min)
        if self.bind_s and not self.bind_f:
            p_s, tot_s, _, _ = self._band_power(self.ps, t.s_bits, deadline - self.tf_min)
            return float(tot_s.sum()) / self.cap_s - 1.0, p_s, self._f_unbound()
        if self.bind_f and not self.bind_s:
            p_f, tot_f, _, _ = self._band_power(self.pf, t.f_bits, deadline - self.ts_min)
            return float(tot_f.sum()) / self.cap_f - 1.0, self._s_unbound(), p_f
        return self._margin_both(deadline)

    def _s_unbound(self):
        return self.full_s if self.t.s_bits > 0 else np.zeros_like(self.full_s)

    def _f_unbound(self):
        return self.full_f if self.t.f_bits > 0 else np.zeros_like(self.full_f)

    def _slopes(self, x, deadline, ws, wf):
        """First and second derivative in t^s of ws P^s(s_bits / t^s) + wf P^f(f_bits / (D - t^s))."""
        t = self.t
        tf = deadline - x
        _, _, mu_s, b_s = self._band_power(self.ps, t.s_bits, x)
        _, _, mu_f, b_f = self._band_power(self.pf, t.f_bits, tf)
        d1s, d1f = mu_s * _LN2, mu_f * _LN2  # dP/dR
        with np.errstate(divide="ignore", invalid="ignore"):
            d2s = np.where(b_s > 0, mu_s * _LN2 ** 2 / b_s, 0.0)  # d2P/dR2
            d2f = np.where(b_f > 0, mu_f * _LN2 ** 2 / b_f, 0.0)
            g = -ws * d1s * t.s_bits / x ** 2 + wf * d1f * t.f_bits / tf ** 2
            h = (ws * (d2s * (t.s_bits / x ** 2) ** 2 + d1s * 2 * t.s_bits / x ** 3)
                 + wf * (d2f * (t.f_bits / tf ** 2) ** 2 + d1f * 2 * t.f_bits / tf ** 3))
        return g, h

    def _pareto(self, lam, deadline, lo, hi):
        """The Pareto point of price ``lam``: (t^s, packed s powers, packed f powers, sum P^s / cap_s,
        sum P^f / cap_f); see :meth:`pareto_rows`."""
        x, p_s, p_f, tot_s, tot_f = self.pareto_rows(lam, deadline, lo, hi)
        return x, p_s, p_f, float(tot_s.sum()) / self.cap_s, float(tot_f.sum()) / self.cap_f

    def pareto_rows(self, lam, deadline, lo, hi, xtol: float = 1e-10):
        """Per client: argmin over t^s in [lo, hi] of P^s(s_bits/t) / cap_s + lam P^f(f_bits/(D - t)) / cap_f.

        The function is convex in t, so its derivative g is increasing: a client whose g >= 0 at lo
        (or <= 0 at hi) sits at that end; the others are solved by Newton kept inside a sign bracket
        (bisection when a Newton step would leave it), to ``xtol`` (hi - lo).
        """
        t = self.t
        ws, wf = 1.0 / self.cap_s, lam / self.cap_f
        a, b = lo.copy(), hi.copy()
        guess = self._t_guess if self._t_guess is not None else 0.5 * (lo + hi)
        x = np.where((guess >= lo) & (guess <= hi), guess, 0.5 * (lo + hi))
        tol = xtol * (hi - lo)
        active = hi > lo
        x = np.where(active, x, lo)
        for _ in range(80):
            g, h = self._slopes(x, deadline, ws, wf)
            at_end = ((x <= lo) & (g >= 0)) | ((x >= hi) & (g <= 0))  # optimum at an end of [lo, hi]
            a = np.where(g < 0, x, a)
            b = np.where(g > 0, x, b)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = g / h
            newton = np.clip(x - step, lo, hi)  # clamped: a root outside [lo, hi] means the end
            ok = np.isfinite(newton) & (newton >= a) & (newton <= b)
            # A Newton step below the tolerance means converged (stepping would only chase rounding).
            done = at_end | (g == 0) | (np.isfinite(step) & (np.abs(step) <= tol)) | (b - a <= tol)
            x_new = np.where(ok, newton, np.where(done, x, 0.5 * (a + b)))
            x = np.where(active & ~at_end, x_new, x)
            active &= ~done
            if not np.any(active):
                break
        self._t_guess = x
        p_s, tot_s, _, _ = self._band_power(self.ps, t.s_bits, x)
        p_f, tot_f, _, _ = self._band_power(self.pf, t.f_bits, deadline - x)
        return x, p_s, p_f, tot_s, tot_f

    def _margin_both(self, deadline):
        lo, hi = self.ts_min, deadline - self.tf_min
        t = self.t
        # lambda = 0: the s-band gets the whole slack; lambda = inf: the f-band does.
        p_s0, tot_s0, _, _ = self._band_power(self.ps, t.s_bits, hi)
        ns0, nf0 = float(tot_s0.sum()) / self.cap_s, float(self.pf.band.p_max_w.sum()) / self.cap_f
        if ns0 >= nf0:
            self.price = 0.0
            return ns0 - 1.0, p_s0, self.full_f
        p_f1, tot_f1, _, _ = self._band_power(self.pf, t.f_bits, deadline - lo)
        ns1, nf1 = float(self.ps.band.p_max_w.sum()) / self.cap_s, float(tot_f1.sum()) / self.cap_f
        if nf1 >= ns1:
            self.price = np.inf
            return nf1 - 1.0, self.full_s, p_f1
        best = [np.inf, None, None]

        def psi(omega):
            _, p_s, p_f, ns, nf = self._pareto(np.exp(omega), deadline, lo, hi)
            if max(ns, nf) < best[0]:
                best[:] = [max(ns, nf), p_s, p_f]
            return ns - nf

        # Bracket the root of psi (increasing in omega) around the last root, then Illinois.
        w0 = self._omega
        f0 = psi(w0)
        if f0 == 0:
            self.price = float(np.exp(w0))
            return best[0] - 1.0, best[1], best[2]
        step = 0.25 if f0 < 0 else -0.25
        w1, f1 = w0 + step, psi(w0 + step)
        while np.sign(f1) == np.sign(f0) and abs(w1 - self._omega) < 200:
            w0, f0 = w1, f1
            step *= 2.0
            w1 = w0 + step
            f1 = psi(w1)
        if np.sign(f1) != np.sign(f0):
            self._omega = illinois(psi, w0, f0, w1, f1, xtol=1e-10, ftol=1e-12, max_iter=100)
        self.price = float(np.exp(self._omega))
        return best[0] - 1.0, best[1], best[2]

    # -- the outer search on tau ------------------------------------------------------------
    def solve(self) -> PowerResult:
        t, ps, pf = self.t, self.ps, self.pf
        # A feasible start: every client's cap scaled uniformly onto the total caps.
        eq_s = ps.water_fill(ps.band.initial_budgets_w()) if t.s_bits > 0 else np.zeros_like(self.full_s)
        eq_f = pf.water_fill(pf.band.initial_budgets_w()) if t.f_bits > 0 else np.zeros_like(self.full_f)
        incumbent = _result(t, ps, pf, eq_s, eq_f, "total-cap search", self.evaluations)
        tau_lo = float(np.max(t.base_s + self.ts_min + self.tf_min))
        if not np.isfinite(tau_lo):  # a client without any usable subchannel: nothing to optimise
            return incumbent
        m_lo, s_lo, f_lo = self._margin(tau_lo)
        if m_lo <= 0:
            return _result(t, ps, pf, s_lo, f_lo, "total-cap search", self.evaluations)
        tau_hi = incumbent.max_time_s
        if not np.isfinite(tau_hi) or tau_hi <= tau_lo:
            return incumbent
        m_hi, s_hi, f_hi = self._margin(tau_hi)
        if m_hi > 0:  # cannot happen in exact arithmetic; keep the equal-split point then
            return incumbent
        if not np.isfinite(m_lo):
            m_lo = 1e6  # keeps Illinois' secant finite; the bracket logic only needs the sign
        best = {"tau": tau_hi, "s": s_hi, "f": f_hi, "m": m_hi}

        def margin(tau):
            m, s, f = self._margin(tau)
            if m <= 0 and tau < best["tau"]:
                best.update(tau=tau, s=s, f=f, m=m)
            return m if np.isfinite(m) else 1e6

        # Stop once a feasible tau uses the total caps to within a relative 1e-10: tau is then optimal
        # to rounding (a smaller tau would need more power than the caps allow).
        illinois(margin, tau_lo, m_lo, tau_hi, m_hi, xtol=self.rtol * tau_hi, ftol=0.0,
                 max_iter=self.max_iter, stop=lambda: best["m"] >= -1e-10)
        res = _result(t, ps, pf, best["s"], best["f"], "total-cap search", self.evaluations)
        return res if res.max_time_s <= incumbent.max_time_s else incumbent


