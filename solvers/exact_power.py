"""Optimal continuous power for a fixed subchannel assignment, written for certification.

This is the reference the exact solvers (enumeration, and the polishing step of the MILP) rely on.
It is deliberately independent of :mod:`solvers.power` (the heuristic solvers' power step), so the
two can be checked against each other.

For one (split, rank), client k's round time is ``T_k = base_k + A / R^s_k + C / R^f_k`` with
``A = E * S_a`` and ``C = S_c`` (:class:`PairTerms`), and the objective is ``rounds * (max_k T_k + tail)``.

* Per-client caps only: water-filling each client's cap over its own subchannels maximises every
  R^s_k and R^f_k at once (the caps are separable and T_k decreases in both rates), so it is optimal.
* Total caps: epigraph form, a bracketing search on ``T``. For a trial T, client k has the deadline
  ``D_k = T - base_k``, shared as ``u`` seconds on the s-band and ``D_k - u`` on the f-band. The least
  powers are ``phi_k(u) = P^s_k(A / u)`` and ``psi_k(D_k - u) = P^f_k(C / (D_k - u))`` (the inverse
  of water-filling, ``min_power_for_rate_w_batched``), both convex and decreasing; per-client caps
  confine u to ``[A / R^s_max_k, D_k - C / R^f_max_k]``.

  - one total cap (say on s): the other band runs at its per-client cap, the s-band gets the rest;
    T is feasible iff ``sum_k phi_k(u_hi_k) <= P^s_total``.
  - both total caps: for a price ``nu >= 0`` let ``u(nu)`` minimise ``phi_k(u) + nu psi_k(D_k - u)``
    per client (a 1-D convex problem, solved by safeguarded Newton on its derivative with the closed
    form ``dP/dR = ln 2 * mu``, mu the water level). The s-power sum rises and the f-power sum falls
    with nu; at the nu* where both normalised sums equal the same s (a root in log nu, Illinois),
    s <= 1 means ``u(nu*)`` is a witness (T feasible), and s > 1 is a Lagrangian certificate that T
    is infeasible: ``u(nu*)`` minimises ``sum phi + nu* sum psi``, which then equals
    ``s (P^s_total + nu* P^f_total)`` > what any feasible point could reach.

  The feasibility margin (least power over the cap, relative; ``s - 1`` with two caps) is continuous
  and decreasing in T; its root is found by Illinois regula falsi (with bisection safeguards) between
  the uncapped optimum (a lower bound) and a doubling upper end. The upper end always carries a
  witness, so the returned powers are feasible, and the lower end (``core_lower_s``) is certified up
  to the inner searches' tolerance. Powers are scaled down by at most rounding-sized factors so that
  no cap is crossed by a last-bit error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from channel_models.ofdma import (min_power_for_rate_w_batched, subchannel_rate_bps,
                                  water_filling_power_w_batched)
from fsllm_sim.errors import SolverError

from .rootfind import illinois

_LN2 = float(np.log(2.0))


@dataclass(frozen=True)
class PairTerms:
    """``T_k = base_s[k] + s_bits / R^s_k + f_bits / R^f_k``; objective ``rounds * (max_k T_k + tail_s)``.

    Taken from ``Problem.breakdown`` with infinite uplink rates (transfers then take 0 s, so what is
    left is exactly the rate-independent part): the formula stays in :mod:`fsllm_sim.delay`.
    """

    split: int
    rank: int
    base_s: np.ndarray
    s_bits: float
    f_bits: float
    tail_s: float
    rounds: float

    def client_times(self, rate_s, rate_f) -> np.ndarray:
        return self.base_s + _transfer(self.s_bits, rate_s) + _transfer(self.f_bits, rate_f)

    def objective(self, round_core_s: float) -> float:
        """Objective for a given max_k T_k."""
        return self.rounds * (round_core_s + self.tail_s)

    def core_for(self, objective_s: float) -> float:
        """The max_k T_k that gives ``objective_s``."""
        return objective_s / self.rounds - self.tail_s


def pair_terms(problem, split: int, rank: int) -> PairTerms:
    k = problem.num_clients
    inf = np.full(k, np.inf)
    bd = problem.breakdown(split, rank, inf, inf)
    c = problem.costs(split, rank)
    return PairTerms(split=int(split), rank=int(rank),
                     base_s=np.asarray(bd.client_round_s, dtype=float).copy(),
                     s_bits=float(problem.local_iterations) * c["activation_bits"],
                     f_bits=float(c["adapter_bits"]),
                     tail_s=float(bd.aggregation_s + bd.broadcast_s),
                     rounds=float(problem.convergence.rounds(rank)))


def _transfer(bits: float, rate) -> np.ndarray:
    rate = np.asarray(rate, dtype=float)
    if bits == 0:
        return np.zeros_like(rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rate > 0, bits / np.where(rate > 0, rate, 1.0), np.inf)


def assignment_mask(assign, num_clients: int) -> np.ndarray:
    """(K, S) bool: True where subchannel i is assigned to client k."""
    assign = np.asarray(assign, dtype=int)
    return assign[None, :] == np.arange(num_clients)[:, None]


class _Band:
    """One band under a fixed assignment: every quantity as a (K, S) array masked by the assignment."""

    def __init__(self, gain, bandwidth_hz, noise_psd, p_max_w, total_cap_w, assign):
        self.k, self.s = gain.shape
        self.mask = assignment_mask(assign, self.k)
        self.gain = np.where(self.mask, gain, 0.0)
        self.bw = np.broadcast_to(np.asarray(bandwidth_hz, dtype=float), (self.k, self.s))
        self.n0 = float(noise_psd)
        self.p_max = np.asarray(p_max_w, dtype=float)
        self.cap = total_cap_w
        with np.errstate(divide="ignore"):
            self.floor = np.where(self.gain > 0, self.n0 / np.where(self.gain > 0, self.gain, 1.0), np.inf)
        self.full = water_filling_power_w_batched(self.gain, self.bw, self.n0, self.p_max)
        self.r_max = self.rates(self.full)

    def rates(self, powers) -> np.ndarray:
        return subchannel_rate_bps(self.bw, powers, self.gain, self.n0).sum(axis=1)

    def min_power(self, rate):
        """(powers (K, S), totals (K,), water level mu (K,), active bandwidth (K,))."""
        rate = np.where(np.isfinite(rate), np.maximum(rate, 0.0), 0.0)
        powers, total = min_power_for_rate_w_batched(self.gain, self.bw, self.n0, rate)
        active = powers > 0
        b_act = np.sum(np.where(active, self.bw, 0.0), axis=1)
        with np.errstate(invalid="ignore"):
            mu = np.max(np.where(active, powers / self.bw + np.where(active, self.floor, 0.0), 0.0), axis=1)
        return powers, total, mu, b_act

    def to_vector(self, powers) -> np.ndarray:
        """Per-subchannel power vector (S,) from the masked (K, S) array."""
        return np.where(self.mask, np.where(np.isfinite(powers), powers, 0.0), 0.0).sum(axis=0)


@dataclass
class PowerSolution:
    """Powers for a fixed assignment; ``core_s`` = max_k T_k they achieve, ``core_lower_s`` a bound."""

    power_s_w: np.ndarray
    power_f_w: np.ndarray
    core_s: float
    core_lower_s: float
    evaluations: int = 0


class AssignmentPower:
    """Optimal power for one assignment pair; reusable across (split, rank) pairs."""

    def __init__(self, problem, assign_s, assign_f):
        self.problem = problem
        n0 = problem.noise_psd_w_per_hz
        self.bs = _Band(problem.gain_s, problem.bandwidth_s_hz, n0, problem.p_max_w, problem.p_total_s_w, assign_s)
        self.bf = _Band(problem.gain_f, problem.bandwidth_f_hz, n0, problem.p_max_w, problem.p_total_f_w, assign_f)
        self.evaluations = 0

    # -- the uncapped optimum (also a lower bound when total caps exist) ----------------------
    def uncapped_core(self, terms: PairTerms) -> float:
        return float(np.max(terms.client_times(self.bs.r_max, self.bf.r_max)))

    def solve(self, terms: PairTerms, rtol: float = 1e-10, which: Optional[str] = None) -> PowerSolution:
        """Optimal powers. ``which`` in {None, 's', 'f'} keeps only that total cap (a relaxation)."""
        bs, bf = self.bs, self.bf
        cap_s = bs.cap if which in (None, "s") else None
        cap_f = bf.cap if which in (None, "f") else None
        core0 = self.uncapped_core(terms)
        if not np.isfinite(core0):
            return PowerSolution(bs.to_vector(bs.full), bf.to_vector(bf.full), np.inf, np.inf)
        s_used = terms.s_bits > 0
        f_used = terms.f_bits > 0
        bind_s = cap_s is not None and s_used
        bind_f = cap_f is not None and f_used
        full_s = bs.to_vector(bs.full) if s_used else np.zeros(bs.s)
        full_f = bf.to_vector(bf.full) if f_used else np.zeros(bf.s)
        if not bind_s and not bind_f:
            return PowerSolution(full_s, full_f, core0, core0)
        ctx = _Feasibility(self, terms, cap_s if bind_s else None, cap_f if bind_f else None)
        m0, ps, pf = ctx.margin(core0)
        if m0 <= 0:
            self.evaluations += ctx.evaluations
            return self._finish(terms, ps, pf, full_s, full_f, core0, core0)
        lo, m_lo = core0, m0
        base_max = float(np.max(terms.base_s))
        hi = base_max + 2.0 * (core0 - base_max)
        for _ in range(200):
            m_hi, ps, pf = ctx.margin(hi)
            if m_hi <= 0:
                break
            lo, m_lo = hi, m_hi
            hi = base_max + 2.0 * (hi - base_max)
        else:  # pragma: no cover - a positive-gain instance is always feasible for a large enough T
            raise RuntimeError("no feasible round time found for the total caps")
        best = [hi, ps, pf]
        lower = [lo]

        def fun(core):
            m, p_s, p_f = ctx.margin(core)
            if m <= 0:
                if core < best[0]:
                    best[:] = [core, p_s, p_f]
            else:
                lower[0] = max(lower[0], core)
            return m

        illinois(fun, lo, m_lo, hi, m_hi, xtol=rtol, relative=True)
        self.evaluations += ctx.evaluations
        return self._finish(terms, best[1], best[2], full_s, full_f, best[0], lower[0])

    def _finish(self, terms, ps, pf, full_s, full_f, core, core_lower) -> PowerSolution:
        """Vectors, trimmed onto every cap by rounding-sized factors; the achieved core recomputed."""
        bs, bf = self.bs, self.bf
        out = []
        for band, p, full, used in ((bs, ps, full_s, terms.s_bits > 0), (bf, pf, full_f, terms.f_bits > 0)):
            if p is None:
                vec = full
            else:
                p = np.where(band.mask & np.isfinite(p), np.maximum(p, 0.0), 0.0)
                per_client = p.sum(axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    scale = np.where(per_client > band.p_max, band.p_max / per_client, 1.0)
                vec = band.to_vector(p * scale[:, None])
            if not used:
                vec = np.zeros(band.s)
            if band.cap is not None and vec.sum() > band.cap:
                vec = vec * (band.cap / vec.sum())
            out.append(vec)
        rs = bs.rates(np.where(bs.mask, out[0][None, :], 0.0))
        rf = bf.rates(np.where(bf.mask, out[1][None, :], 0.0))
        achieved = float(np.max(terms.client_times(rs, rf)))
        return PowerSolution(out[0], out[1], achieved, min(core_lower, achieved), self.evaluations)


class _Feasibility:
    """Is max_k T_k <= T achievable under the total caps? Returns (ok, powers_s, powers_f) (K, S)."""

    def __init__(self, ap: AssignmentPower, terms: PairTerms, cap_s, cap_f):
        self.ap, self.t = ap, terms
        self.cap_s, self.cap_f = cap_s, cap_f
        bs, bf = ap.bs, ap.bf
        self.u_min = _transfer(terms.s_bits, bs.r_max)  # fastest s-time per client (full power)
        self.w_min = _transfer(terms.f_bits, bf.r_max)
        self.evaluations = 0
        self.log_nu = None  # the last price found, a warm start for the next trial T

    def _phi(self, u):
        self.evaluations += 1
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(u > 0, self.t.s_bits / np.where(u > 0, u, 1.0), 0.0)
        if self.t.s_bits == 0:
            rate = np.zeros_like(rate)
        return self.ap.bs.min_power(rate)

    def _psi(self, w):
        self.evaluations += 1
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(w > 0, self.t.f_bits / np.where(w > 0, w, 1.0), 0.0)
        if self.t.f_bits == 0:
            rate = np.zeros_like(rate)
        return self.ap.bf.min_power(rate)

    def margin(self, core: float):
        """(margin, powers_s, powers_f): margin <= 0 means feasible, with those powers as the witness.

        margin > 0 certifies infeasibility (up to the tolerance of the inner searches): with one cap
        it is the least power over the cap; with two it is the value s - 1 at the price nu* where
        both normalised power sums equal s, and ``sum phi + nu* sum psi`` is then minimal and equal to
        ``s (P^s_total + nu* P^f_total)`` (the Lagrangian certificate).
        """
        t = self.t
        d = core - t.base_s
        lo = self.u_min
        hi = d - self.w_min
        if np.any(hi < lo * (1 - 1e-15)):
            return np.inf, None, None
        hi = np.maximum(hi, lo)
        if self.cap_f is None:  # s-cap only: every client gives the f-band its full power
            p_s, tot_s, _, _ = self._phi(hi)
            return float(tot_s.sum()) / self.cap_s - 1.0, p_s, None
        if self.cap_s is None:
            p_f, tot_f, _, _ = self._psi(d - lo)
            return float(tot_f.sum()) / self.cap_f - 1.0, None, p_f
        # Both caps. nu = 0 end (least s-power) and nu = inf end (least f-power) first.
        p_s, tot_s, _, _ = self._phi(hi)
        p_f, tot_f, _, _ = self._psi(d - hi)
        ns, nf = float(tot_s.sum()) / self.cap_s, float(tot_f.sum()) / self.cap_f
        if ns >= nf:  # the s-band is the harder one even at its least power
            return ns - 1.0, p_s, p_f
        p_s2, tot_s2, _, _ = self._phi(lo)
        p_f2, tot_f2, _, _ = self._psi(d - lo)
        ns2, nf2 = float(tot_s2.sum()) / self.cap_s, float(tot_f2.sum()) / self.cap_f
        if nf2 >= ns2:
            return nf2 - 1.0, p_s2, p_f2
        # Interior: the root in log(nu) of log(ns / nf), increasing in nu.
        best = [np.inf, None, None]
        state = {"u": 0.5 * (lo + hi)}

        def g(log_nu):
            u = self._argmin(float(np.exp(log_nu)), d, lo, hi, state["u"])
            state["u"] = u
            q_s, tq_s, _, _ = self._phi(u)
            q_f, tq_f, _, _ = self._psi(d - u)
            a, b = float(tq_s.sum()) / self.cap_s, float(tq_f.sum()) / self.cap_f
            if max(a, b) < best[0]:
                best[:] = [max(a, b), q_s, q_f]
            return np.log(a) - np.log(b)

        x0 = self.log_nu if self.log_nu is not None else 0.0
        f0 = g(x0)
        step = 2.0 if f0 < 0 else -2.0
        x1, f1 = x0 + step, g(x0 + step)
        while np.sign(f1) == np.sign(f0) and f0 != 0 and abs(x1) < 300:
            x0, f0 = x1, f1
            step *= 2.0
            x1 = x0 + step
            f1 = g(x1)
        if f0 != 0 and np.sign(f1) != np.sign(f0):
            root = illinois(g, x0, f0, x1, f1, xtol=1e-13, relative=True, ftol=1e-13)
            self.log_nu = root
        return best[0] - 1.0, best[1], best[2]

    def _argmin(self, nu, d, lo, hi, guess):
        """Per client: argmin over u in [lo, hi] of phi(u) + nu * psi(d - u) (convex in u)."""
        t = self.t
        a_bits, c_bits = t.s_bits, t.f_bits
        if a_bits == 0:
            return lo.copy()
        if c_bits == 0:
            return hi.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            log_nu = np.log(nu)

            def f_and_df(u):
                # F(u) = log(mu_s A / u^2) - log(nu mu_f C / w^2): decreasing; F > 0 means the objective
                # still falls as u grows.
                w = d - u
                _, _, mu_s, b_s = self._phi(u)
                _, _, mu_f, b_f = self._psi(w)
                f = (np.log(mu_s) + np.log(a_bits) - 2 * np.log(u)) - (log_nu + np.log(mu_f) + np.log(c_bits) - 2 * np.log(w))
                df = (-(_LN2 / b_s) * a_bits / u ** 2 - 2.0 / u - (_LN2 / b_f) * c_bits / w ** 2 - 2.0 / w)
                return f, df

            f_hi, _ = f_and_df(hi)
            f_lo, _ = f_and_df(lo)
        at_hi = f_hi >= 0
        at_lo = (f_lo <= 0) & ~at_hi
        inner = ~(at_hi | at_lo) & (hi > lo)
        u = np.where(at_hi, hi, lo).astype(float)
        if np.any(inner):
            a, b = lo.copy(), hi.copy()
            x = np.clip(np.where(np.isfinite(guess), guess, 0.5 * (lo + hi)), lo, hi)
            x = np.where(inner, x, u)
            for _ in range(100):
                with np.errstate(divide="ignore", invalid="ignore"):
                    f, df = f_and_df(x)
                a = np.where(f > 0, x, a)
                b = np.where(f < 0, x, b)
                with np.errstate(divide="ignore", invalid="ignore"):
                    nx = x - f / df
                ok = np.isfinite(nx) & (nx > a) & (nx < b)
                nx = np.where(ok, nx, 0.5 * (a + b))
                settled = ~inner | (np.abs(f) <= 1e-12)
                nx = np.where(settled, x, nx)
                done = settled | (np.abs(nx - x) <= 1e-13 * np.maximum(np.abs(x), 1e-300)) | ((b - a) <= 1e-13 * b)
                x = nx
                if np.all(done):
                    break
            u = np.where(inner, x, u)
        return u


def optimal_power(problem, split: int, rank: int, assign_s, assign_f, rtol: float = 1e-10) -> PowerSolution:
    """Optimal continuous powers for a fixed assignment at one (split, rank)."""
    return AssignmentPower(problem, assign_s, assign_f).solve(pair_terms(problem, split, rank), rtol=rtol)


def select_pairs(problem, split=None, rank=None) -> list[tuple[int, int]]:
    """The problem's candidate (split, rank) pairs, restricted to ``split`` and/or ``rank`` when given."""
    pairs = [(s, r) for s, r in problem.candidate_pairs()
             if (split is None or s == int(split)) and (rank is None or r == int(rank))]
    if not pairs:
        raise SolverError(f"no allowed (split, rank) pair matches split={split}, rank={rank}; "
                          f"allowed: {problem.candidate_pairs()}")
    return pairs


def greedy_assignment(problem) -> tuple[np.ndarray, np.ndarray]:
    """A simple feasible assignment: each client first takes its best free subchannel (clients in
    order of their best SNR, weakest first), then every other subchannel goes to its best client."""
    out = []
    for gain in (problem.gain_s, problem.gain_f):
        k, s = gain.shape
        a = np.full(s, -1, dtype=int)
        order = np.argsort(np.max(gain, axis=1))
        for kk in order:
            free = np.flatnonzero(a < 0)
            a[free[int(np.argmax(gain[kk, free]))]] = kk
        free = a < 0
        a[free] = np.argmax(gain[:, free], axis=0)
        out.append(a)
    return out[0], out[1]
