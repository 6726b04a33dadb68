"""One MILP/LP formulation of the allocation problem, with solver-independent model data.

``LinearModel`` holds a minimisation model as plain arrays (columns, rows, integrality); the backends
in :mod:`solvers.backends` (HiGHS, Gurobi) solve it, so there is one formulation and two backends.
``AllocationModel`` builds the formulation used by the exact solver (binary assignment) and by the
relaxation (fractional assignment). This module imports no backend and no solver method: imports run
``milp_model`` <- ``backends`` <- ``relaxation`` <- ``exact``.

Formulation (units: rates in Mbit/s, bits in Mbit, power as a fraction pi of the client's cap)
------------------------------------------------------------------------------------------------
For each band b in {s, f}, client k, subchannel i:

* ``x[b,k,i]`` in {0, 1} (exact) or [0, 1] (relaxation): k uses i;
* ``pi[b,k,i]`` in [0, 1]: power p = pi * P^max_k;
* ``r[b,k,i]`` >= 0: rate credited to k on i;
* ``z[b,k]``: the model's stand-in for 1 / R^b_k (s per Mbit); ``T``: the epigraph variable max_k T_k.

Linear constraints: ``sum_k x[b,k,i] <= 1`` (OFDMA exclusivity); ``sum_i x[b,k,i] >= 1`` (a subchannel
per client and band); ``sum_i pi[b,k,i] <= 1`` (per-client cap); ``sum_{k,i} P^max_k pi <= P^b_total``
(optional); ``pi <= x`` (exact model only: no power on a subchannel one does not hold); and per client
``base_k + A z[s,k] + C z[f,k] <= T`` with ``A = E S_a``, ``C = S_c`` of the (split, rank) at hand.

The two nonlinear facts are kept as outer approximations, refined by cuts:

* rate: ``r <= x c(pi / x)``, the perspective of the concave Shannon rate ``c(q) = B log2(1 + q gamma)``
  (gamma = P^max g / (N0 B)). It is jointly concave and positively homogeneous, so each tangent plane
  ``r <= (c(q) - c'(q) q) x + c'(q) pi`` (taken at any q = pi / x) is valid everywhere; with x binary
  it is the tangent of c at q on the subchannel, and 0 off it (pi <= x forces pi = 0).
* inverse rate: ``z >= 1 / R`` is convex in R = sum_i r; each tangent ``z >= 2 / R0 - R / R0^2`` is valid.

Since every cut over-estimates a rate or under-estimates a time, the model with any set of cuts is a
relaxation: its optimum (and any dual bound of the solver) is a valid lower bound. Cuts accumulate
and do not depend on (split, rank) (only the K time rows do), so one model serves every pair.
Column bounds are valid too: ``r <= c(1)`` (x c(pi / x) <= c(pi) <= c(1) for x <= 1), ``z >= 1 / R_max``
(R_max: the client's water-filled rate over the whole band), ``T >= base_k + A / R^s_max + C / R^f_max``,
and, given an incumbent, ``T <= cut-off`` with the z upper bounds that implies. The solvers' own
verdicts (an "infeasible" model under a cut-off, a MIP dual bound) are trusted within their tolerances.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from channel_models.ofdma import subchannel_rate_bps, water_filling_power_w_batched

INF = float("inf")
RATE_UNIT_BPS = 1e6  # rates in Mbit/s, payloads in Mbit
_LN2 = float(np.log(2.0))


# --------------------------------------------------------------------------------------------
# Model data
# --------------------------------------------------------------------------------------------

class LinearModel:
    """min c'x s.t. row_lower <= A x <= row_upper, col_lower <= x <= col_upper, some x integer."""

    def __init__(self):
        self.cost: list[float] = []
        self.col_lower: list[float] = []
        self.col_upper: list[float] = []
        self.integer: list[bool] = []
        self.row_idx: list[np.ndarray] = []
        self.row_val: list[np.ndarray] = []
        self.row_lower: list[float] = []
        self.row_upper: list[float] = []

    @property
    def num_cols(self) -> int:
        return len(self.cost)

    @property
    def num_rows(self) -> int:
        return len(self.row_lower)

    def add_cols(self, n: int, cost=0.0, lower=0.0, upper=INF, integer: bool = False) -> np.ndarray:
        start = self.num_cols
        self.cost.extend(np.broadcast_to(np.asarray(cost, dtype=float), (n,)).tolist())
        self.col_lower.extend(np.broadcast_to(np.asarray(lower, dtype=float), (n,)).tolist())
        self.col_upper.extend(np.broadcast_to(np.asarray(upper, dtype=float), (n,)).tolist())
        self.integer.extend([bool(integer)] * n)
        return np.arange(start, start + n)

    def set_bounds(self, cols, lower, upper) -> None:
        cols = np.atleast_1d(cols)
        lo = np.broadcast_to(np.asarray(lower, dtype=float), cols.shape)
        hi = np.broadcast_to(np.asarray(upper, dtype=float), cols.shape)
        for j, a, b in zip(cols.tolist(), lo.tolist(), hi.tolist()):
            self.col_lower[j] = a
            self.col_upper[j] = b

    def add_row(self, idx, val, lower=-INF, upper=INF) -> int:
        idx = np.asarray(idx, dtype=np.int64).ravel()
        val = np.asarray(val, dtype=float).ravel()
        keep = val != 0
        self.row_idx.append(idx[keep])
        self.row_val.append(val[keep])
        self.row_lower.append(float(lower))
        self.row_upper.append(float(upper))
        return self.num_rows - 1

    def set_row(self, row: int, idx, val, lower=-INF, upper=INF) -> None:
        idx = np.asarray(idx, dtype=np.int64).ravel()
        val = np.asarray(val, dtype=float).ravel()
        keep = val != 0
        self.row_idx[row] = idx[keep]
        self.row_val[row] = val[keep]
        self.row_lower[row] = float(lower)
        self.row_upper[row] = float(upper)

    def csr(self):
        """(start, index, value) of the row-wise constraint matrix."""
        lengths = np.array([len(i) for i in self.row_idx], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        index = np.concatenate(self.row_idx) if self.row_idx else np.zeros(0, dtype=np.int64)
        value = np.concatenate(self.row_val) if self.row_val else np.zeros(0)
        return start, index.astype(np.int64), value.astype(float)

    def arrays(self):
        return (np.asarray(self.cost, dtype=float), np.asarray(self.col_lower, dtype=float),
                np.asarray(self.col_upper, dtype=float), np.asarray(self.integer, dtype=bool),
                np.asarray(self.row_lower, dtype=float), np.asarray(self.row_upper, dtype=float))

    def size(self) -> dict:
        """Counts as a solver with one-sided rows sees them (a ranged row counts twice)."""
        rl = np.asarray(self.row_lower)
        ru = np.asarray(self.row_upper)
        ranged = np.isfinite(rl) & np.isfinite(ru) & (rl != ru)
        return {"variables": self.num_cols, "integer_variables": int(np.sum(self.integer)),
                "linear_constraints": int(self.num_rows + np.sum(ranged)), "nonlinear_terms": 0}


@dataclass
class MilpResult:
    """What a backend returns. ``bound`` is the solver's proven lower bound (+inf when infeasible)."""

    status: str  # "optimal", "infeasible", "time_limit", "error"
    x: Optional[np.ndarray]
    objective: float
    bound: float
    backend: str
    runtime_s: float = 0.0
    row_dual: Optional[np.ndarray] = None
    message: str = ""
    notes: list = field(default_factory=list)


def safe_lp_bound(model: LinearModel, row_dual) -> float:
    """A lower bound on the LP valid for ANY multipliers y (Lagrangian, with the column box).

    For feasible x: c'x = (c - A'y)'x + y'Ax >= sum_j min(d_j l_j, d_j u_j) + sum_i min(y_i rl_i, y_i ru_i).
    Multipliers whose sign meets an infinite row bound are set to 0 first. The result does not depend
    on the solver's tolerances (only on its dual values as a good guess), hence "safe".
    """
    cost, cl, cu, _, rl, ru = model.arrays()
    y = np.asarray(row_dual, dtype=float).copy()
    y[(y > 0) & ~np.isfinite(rl)] = 0.0
    y[(y < 0) & ~np.isfinite(ru)] = 0.0
    start, index, value = model.csr()
    rows = np.repeat(np.arange(model.num_rows), np.diff(start))
    aty = np.zeros(model.num_cols)
    np.add.at(aty, index, value * y[rows])
    d = cost - aty
    with np.errstate(invalid="ignore"):
        col_part = np.where(d > 0, d * cl, np.where(d < 0, d * cu, 0.0))
        row_part = np.where(y > 0, y * rl, np.where(y < 0, y * ru, 0.0))
    total = float(np.sum(col_part) + np.sum(row_part))
    return total if np.isfinite(total) else -INF


# --------------------------------------------------------------------------------------------
# The allocation formulation
# --------------------------------------------------------------------------------------------

@dataclass
class _BandData:
    name: str
    gamma: np.ndarray  # (K, S) SNR at the client's full cap
    bw: np.ndarray  # (S,) bandwidth in Mbit/s per log2 unit (B / 1e6)
    c_full: np.ndarray  # (K, S) rate at the full cap, Mbit/s
    r_max: np.ndarray  # (K,) water-filled rate over the whole band, Mbit/s (client alone)
    p_max_w: np.ndarray
    total_cap_w: Optional[float]
    x: np.ndarray = None
    pi: np.ndarray = None
    r: np.ndarray = None
    z: np.ndarray = None


class AllocationModel:
    """The formulation of the module docstring, with cut management.

    ``integer``: binary x (exact solver) or x in [0, 1] (relaxation). ``link_power``: add pi <= x.
    """

    def __init__(self, problem, *, integer: bool = True, link_power: bool = True,
                 power_points=(1.0, 0.5, 0.25, 0.125, 1 / 16), num_rate_points: int = 6,
                 extra_power_points=()):
        self.problem = problem
        self.integer = integer
        self.model = LinearModel()
        k = problem.num_clients
        self.k = k
        n0 = problem.noise_psd_w_per_hz
        self.bands = []
        for name, gain, bw_hz, cap in (("s", problem.gain_s, problem.bandwidth_s_hz, problem.p_total_s_w),
                                       ("f", problem.gain_f, problem.bandwidth_f_hz, problem.p_total_f_w)):
            gamma = problem.p_max_w[:, None] * gain / (n0 * bw_hz[None, :])
            bw = bw_hz / RATE_UNIT_BPS
            c_full = subchannel_rate_bps(bw_hz[None, :], problem.p_max_w[:, None], gain, n0) / RATE_UNIT_BPS
            wf = water_filling_power_w_batched(gain, bw_hz[None, :], n0, problem.p_max_w)
            r_max = subchannel_rate_bps(bw_hz[None, :], wf, gain, n0).sum(axis=1) / RATE_UNIT_BPS
            self.bands.append(_BandData(name, gamma, bw, c_full, r_max, problem.p_max_w, cap))
        m = self.model
        for b in self.bands:
            s = b.gamma.shape[1]
            # A zero-gain subchannel may still be held (it carries nothing): no restriction at all.
            b.x = m.add_cols(k * s, 0.0, 0.0, 1.0, integer=integer).reshape(k, s)
            b.pi = m.add_cols(k * s, 0.0, 0.0, 1.0).reshape(k, s)
            b.r = m.add_cols(k * s, 0.0, 0.0, b.c_full.ravel()).reshape(k, s)
            with np.errstate(divide="ignore"):
                z_lo = np.where(b.r_max > 0, 1.0 / b.r_max, INF)
            b.z = m.add_cols(k, 0.0, np.where(np.isfinite(z_lo), z_lo, 0.0), INF)
            self._z_lo = getattr(self, "_z_lo", {})
            self._z_lo[b.name] = z_lo
        self.t_col = int(m.add_cols(1, 1.0, 0.0, INF)[0])
        for b in self.bands:
            s = b.gamma.shape[1]
            for i in range(s):
                m.add_row(b.x[:, i], np.ones(k), upper=1.0)
            for kk in range(k):
                m.add_row(b.x[kk, :], np.ones(s), lower=1.0)
                m.add_row(b.pi[kk, :], np.ones(s), upper=1.0)
            if b.total_cap_w is not None:
                coef = np.broadcast_to((b.p_max_w / b.total_cap_w)[:, None], (k, s))
                m.add_row(b.pi.ravel(), coef.ravel(), upper=1.0)
            if link_power:
                for kk in range(k):
                    for i in range(s):
                        m.add_row([b.pi[kk, i], b.x[kk, i]], [1.0, -1.0], upper=0.0)
        self.time_rows = [m.add_row([self.t_col], [-1.0], upper=0.0) for _ in range(k)]
        self._rate_cut_keys = set()
        self._inv_cut_keys = set()
        for b in self.bands:
            for q in tuple(power_points) + tuple(extra_power_points):
                for kk in range(k):
                    for i in range(b.gamma.shape[1]):
                        self.add_rate_cut(b, kk, i, q)
            for kk in range(k):
                if b.r_max[kk] <= 0:
                    continue
                r_lo = max(float(np.max(b.c_full[kk])) / 64.0, 1e-9)
                for rr in np.geomspace(r_lo, b.r_max[kk], num_rate_points):
                    self.add_inverse_cut(b, kk, float(rr))
        self.terms = None

    # -- curves ---------------------------------------------------------------------------
    @staticmethod
    def rate(b: _BandData, k, i, q):
        """c(q) in Mbit/s for normalised power q on subchannel i (vectorised)."""
        return b.bw[i] * np.log1p(b.gamma[k, i] * q) / _LN2

    @staticmethod
    def rate_slope(b: _BandData, k, i, q):
        return b.bw[i] * b.gamma[k, i] / ((1.0 + b.gamma[k, i] * q) * _LN2)

    # -- cuts -----------------------------------------------------------------------------
    def add_rate_cut(self, b: _BandData, k: int, i: int, q: float) -> bool:
        if b.gamma[k, i] <= 0:
            return False
        q = float(min(max(q, 0.0), 1e12))
        key = (b.name, k, i, round(float(np.log1p(b.gamma[k, i] * q)), 9))
        if key in self._rate_cut_keys:
            return False
        self._rate_cut_keys.add(key)
        c = float(self.rate(b, k, i, q))
        d = float(self.rate_slope(b, k, i, q))
        self.model.add_row([b.r[k, i], b.x[k, i], b.pi[k, i]], [1.0, -(c - d * q), -d], upper=0.0)
        return True

    def add_inverse_cut(self, b: _BandData, k: int, r0: float) -> bool:
        if not (r0 > 0 and np.isfinite(r0)):
            return False
        key = (b.name, k, round(float(np.log(r0)), 9))
        if key in self._inv_cut_keys:
            return False
        self._inv_cut_keys.add(key)
        s = b.gamma.shape[1]
        idx = np.concatenate([[b.z[k]], b.r[k, :]])
        val = np.concatenate([[1.0], np.full(s, 1.0 / r0 ** 2)])
        self.model.add_row(idx, val, lower=2.0 / r0)
        return True

    def separate(self, xval, rtol: float = 1e-7) -> int:
        """Add the cuts violated by the model point ``xval``; returns how many were added."""
        added = 0
        for b in self.bands:
            X = xval[b.x]
            P = xval[b.pi]
            R = xval[b.r]
            Z = xval[b.z]
            k, s = X.shape
            P = np.maximum(P, 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                q = np.where(X > 1e-12, P / np.maximum(X, 1e-12), np.where(P > 0, 1e12, 0.0))
            true = np.where(X > 1e-12, X * self.rate(b, np.arange(k)[:, None], np.arange(s)[None, :], np.minimum(q, 1e12)), 0.0)
            viol = R > true * (1 + rtol) + rtol * 1e-3 * b.c_full
            for kk, i in zip(*np.nonzero(viol & (b.gamma > 0))):
                added += self.add_rate_cut(b, int(kk), int(i), float(q[kk, i]))
            rsum = R.sum(axis=1)
            for kk in range(k):
                if rsum[kk] > 0 and Z[kk] * rsum[kk] < 1 - rtol:
                    added += self.add_inverse_cut(b, kk, float(rsum[kk]))
                elif rsum[kk] <= 0 and np.isfinite(Z[kk]) and b.r_max[kk] > 0:
                    # No rate at all: the tangent at R0 = 1 / z gives z >= 2 z at R = 0, cutting the point.
                    added += self.add_inverse_cut(b, kk, 1.0 / max(float(Z[kk]), 1e-12))
        return added

    def add_allocation_cuts(self, assign_s, power_s_w, assign_f, power_f_w) -> int:
        """Tangents at a real allocation (the OA 'NLP' cuts): rate cuts at its powers, time cuts at its rates."""
        added = 0
        n0 = self.problem.noise_psd_w_per_hz
        for b, assign, power, gain, bw_hz in ((self.bands[0], assign_s, power_s_w, self.problem.gain_s,
                                               self.problem.bandwidth_s_hz),
                                              (self.bands[1], assign_f, power_f_w, self.problem.gain_f,
                                               self.problem.bandwidth_f_hz)):
            assign = np.asarray(assign)
            power = np.asarray(power, dtype=float)
            rate = np.zeros(self.k)
            for i in np.flatnonzero(assign >= 0):
                kk = int(assign[i])
                added += self.add_rate_cut(b, kk, int(i), float(power[i] / b.p_max_w[kk]))
                rate[kk] += float(subchannel_rate_bps(bw_hz[i], power[i], gain[kk, i], n0)) / RATE_UNIT_BPS
            for kk in range(self.k):
                added += self.add_inverse_cut(b, kk, float(rate[kk]))
        return added

    # -- the (split, rank) at hand ----------------------------------------------------------
    def core_lower(self, terms) -> float:
        """max_k T_k of each client alone with its whole bands: a valid lower bound for the pair
        (+inf when a client cannot move its bits at all: no positive gain on a band that carries bits)."""
        a = terms.s_bits / RATE_UNIT_BPS
        c = terms.f_bits / RATE_UNIT_BPS
        zs, zf = self._z_lo["s"], self._z_lo["f"]
        with np.errstate(invalid="ignore"):
            t = terms.base_s + (a * zs if a > 0 else 0.0) + (c * zf if c > 0 else 0.0)
        return float(np.max(t))

    def set_pair(self, terms, core_upper: float = INF) -> None:
        """Point the time rows at (split, rank) and cap T at ``core_upper`` (an incumbent cut-off)."""
        self.terms = terms
        a = terms.s_bits / RATE_UNIT_BPS
        c = terms.f_bits / RATE_UNIT_BPS
        bs, bf = self.bands
        for kk, row in enumerate(self.time_rows):
            self.model.set_row(row, [bs.z[kk], bf.z[kk], self.t_col], [a, c, -1.0], upper=-float(terms.base_s[kk]))
        self.set_core_upper(core_upper)

    def set_core_upper(self, core_upper: float) -> None:
        terms = self.terms
        a = terms.s_bits / RATE_UNIT_BPS
        c = terms.f_bits / RATE_UNIT_BPS
        lo = self.core_lower(terms)
        m = self.model
        m.set_bounds(self.t_col, lo, core_upper if core_upper >= lo else lo)
        bs, bf = self.bands
        zs_lo, zf_lo = self._z_lo["s"], self._z_lo["f"]
        for kk in range(self.k):
            room = core_upper - terms.base_s[kk]
            zs_hi = (room - c * zf_lo[kk]) / a if (a > 0 and np.isfinite(core_upper)) else INF
            zf_hi = (room - a * zs_lo[kk]) / c if (c > 0 and np.isfinite(core_upper)) else INF
            m.set_bounds(bs.z[kk], zs_lo[kk], max(zs_hi, zs_lo[kk]))
            m.set_bounds(bf.z[kk], zf_lo[kk], max(zf_hi, zf_lo[kk]))

    # -- reading a point ------------------------------------------------------------------
    def assignment(self, xval) -> tuple[np.ndarray, np.ndarray]:
        """Assignments (-1 = unused) from a point: the client with x > 0.5 on each subchannel."""
        out = []
        for b in self.bands:
            X = xval[b.x]
            owner = np.argmax(X, axis=0)
            out.append(np.where(X[owner, np.arange(X.shape[1])] > 0.5, owner, -1).astype(int))
        return out[0], out[1]

    def fill_unused(self, assign_s, assign_f) -> tuple[np.ndarray, np.ndarray]:
        """Give every unused subchannel to the client with the best SNR on it (never hurts: see enumeration)."""
        out = []
        for b, a in zip(self.bands, (assign_s, assign_f)):
            a = np.asarray(a, dtype=int).copy()
            free = a < 0
            a[free] = np.argmax(b.gamma[:, free], axis=0)
            out.append(a)
        return out[0], out[1]
