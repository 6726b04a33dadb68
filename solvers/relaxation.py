"""Certified lower bound from the continuous relaxation (fractional subchannel sharing).

The relaxation lets clients share a subchannel: ``x[k,i] in [0, 1]`` with ``sum_k x[k,i] <= 1`` and
``sum_i x[k,i] >= 1``, power ``p[k,i]`` with the per-client and total caps, and rate
``x B log2(1 + p g / (N0 x B))`` (the perspective of the Shannon rate: client k holds a fraction x of
the band and spreads p over it). Any real allocation is a point of it, so its optimum is a lower bound.

How the bound is certified (never a local optimum): the relaxation is solved by an outer
approximation. The LP of :class:`solvers.milp_model.AllocationModel` with x continuous replaces the concave
perspective by tangent planes (each is >= the perspective everywhere, because the perspective is
jointly concave and positively homogeneous) and the convex 1/R by tangents (each <= 1/R). So every
LP of the sequence is itself a relaxation of the relaxation, and its optimum is <= the relaxation's
optimum <= the true optimum. Cuts at the LP's point where it over-estimates are added and the LP
is solved again, which raises the bound towards the relaxation's optimum. The value taken is not
the LP solver's objective but a Lagrangian bound recomputed from its duals with the column box
(:func:`solvers.milp_model.safe_lp_bound`): it is valid for any multipliers, so the solver's tolerances
cannot make it too high. T is capped by the value of a feasible allocation of the pair (a greedy
assignment with scaled water-filling powers), which does not cut off the relaxation's optimum and
makes every column bounded.

Over (split, rank): the bound is the least of the pairs' bounds; a pair whose single-client bound
(each client alone on its whole bands) is already above the least bound so far is skipped (valid:
that bound is below the pair's relaxation bound).

The returned :class:`Solution` has ``objective_s = lower_bound_s = bound``, ``method = "relaxation"``,
``status = "lower_bound"``, the (split, rank) attaining the least bound, empty assignment and power
arrays (a fractional sharing is not an allocation), and a breakdown computed from the relaxed
client rates at the last LP point (informative only).
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from channel_models.ofdma import subchannel_rate_bps, water_filling_power_w_batched

from .exact_power import assignment_mask, greedy_assignment, pair_terms, select_pairs
from .backends import make_backend
from .milp_model import RATE_UNIT_BPS, AllocationModel, safe_lp_bound
from .problem import Solution

# Largest K * M (clients x s-band subchannels) for which `fsllm-sim optimize` computes the LP relaxation:
# its LPs grow with K (M + N) columns and their cuts; at K = 100 it took 200-300 s, against well under
# a second for bcd's pair bound (solvers.bcd.bcd_lower_bound).
MAX_RELAXATION_SIZE = 4096


def relaxation_size_error(problem, limit: int = MAX_RELAXATION_SIZE) -> Optional[str]:
    """One line saying why the relaxation is refused for ``problem`` (None when K * M <= ``limit``)."""
    size = problem.num_clients * problem.num_subchannels_s
    if size <= limit:
        return None
    return (f"the LP relaxation bound is limited to K*M <= {limit} (clients x s-band subchannels); this problem "
            f"has K*M = {problem.num_clients}*{problem.num_subchannels_s} = {size} (use the default bound, bcd's)")


def feasible_core_upper(problem, terms, assign_s, assign_f) -> float:
    """max_k T_k of an easy feasible allocation: water-filling, scaled onto the total caps."""
    n0 = problem.noise_psd_w_per_hz
    rates = []
    for gain, bw, assign, cap in ((problem.gain_s, problem.bandwidth_s_hz, assign_s, problem.p_total_s_w),
                                  (problem.gain_f, problem.bandwidth_f_hz, assign_f, problem.p_total_f_w)):
        mask = assignment_mask(assign, problem.num_clients)
        p = water_filling_power_w_batched(np.where(mask, gain, 0.0), bw[None, :], n0, problem.p_max_w)
        if cap is not None and p.sum() > cap:
            p = p * (cap / p.sum())
        rates.append(np.where(mask, subchannel_rate_bps(bw[None, :], p, gain, n0), 0.0).sum(axis=1))
    return float(np.max(terms.client_times(rates[0], rates[1])))


def lp_bound(model: AllocationModel, backend, terms, core_upper: float, *, max_iterations: int = 50,
             rtol: float = 1e-6, stop_above: float = np.inf, deadline: Optional[float] = None,
             trust_infeasible: bool = False):
    """Outer-approximation LP loop for one (split, rank): (certified bound on max_k T_k, last point, LPs).

    Stops when no cut is violated, when the bound moved by less than ``rtol`` over three LPs, when the
    bound exceeds ``stop_above`` (the pair cannot matter), at the deadline or after ``max_iterations``.
    ``trust_infeasible``: an LP the solver declares infeasible proves the bound ``core_upper`` (used
    by the exact solver with an incumbent cut-off; the relaxation itself never needs it, since its
    cap comes from a feasible allocation).
    """
    model.set_pair(terms, core_upper)
    best = model.core_lower(terms)
    history = []
    x = None
    solves = 0
    for _ in range(max_iterations):
        remaining = None if deadline is None else deadline - time.perf_counter()
        if remaining is not None and remaining <= 0:
            break
        res = backend.solve(model.model, time_limit_s=remaining, relax=True)
        solves += 1
        if res.status == "infeasible" and trust_infeasible:
            best = max(best, core_upper)  # nothing at or below core_upper (the solver's verdict)
            break
        if res.status != "optimal" or res.row_dual is None:
            break
        x = res.x
        bound = safe_lp_bound(model.model, res.row_dual)
        best = max(best, bound)
        history.append(best)
        if best >= stop_above:
            break
        if model.separate(x, rtol=rtol * 0.1) == 0:
            break
        if len(history) >= 4 and history[-1] - history[-4] <= rtol * abs(history[-1]):
            break
    return best, x, solves


def solve_relaxation(problem, split=None, rank=None, *, backend: str = "highs", rtol: float = 1e-6,
                     max_iterations: int = 50, time_limit_s: Optional[float] = None,
                     link_power: bool = False) -> Solution:
    """Lower bound on the optimum from fractional subchannel sharing (see the module docstring).

    ``link_power=True`` adds ``p <= P^max x`` (power only on the share one holds), which is valid for
    the real problem and tightens the bound, but is not part of the plain fractional relaxation.
    """
    t_start = time.perf_counter()
    deadline = None if time_limit_s is None else t_start + float(time_limit_s)
    pairs = select_pairs(problem, split, rank)
    be = make_backend(backend)
    model = AllocationModel(problem, integer=False, link_power=link_power,
                            extra_power_points=(2.0, 4.0, 8.0, 16.0))
    terms_of = {p: pair_terms(problem, *p) for p in pairs}
    notes = []
    asg_s, asg_f = greedy_assignment(problem)
    order = sorted(pairs, key=lambda p: terms_of[p].objective(model.core_lower(terms_of[p])))
    best = (np.inf, None, None)  # objective bound, pair, point
    solves = 0
    timed_out = False
    for p in order:
        terms = terms_of[p]
        if best[1] is None and not np.isfinite(model.core_lower(terms)):
            best = (np.inf, p, None)  # a client cannot move its bits at this pair: infinite
        if terms.objective(model.core_lower(terms)) >= best[0]:
            continue
        if deadline is not None and time.perf_counter() >= deadline:
            timed_out = True
            # Unvisited pairs: only their single-client bound is known.
            lb = terms.objective(model.core_lower(terms))
            if lb < best[0]:
                best = (lb, p, None)
            continue
        upper = feasible_core_upper(problem, terms, asg_s, asg_f)
        stop = terms.core_for(best[0]) if np.isfinite(best[0]) else np.inf
        core_lb, x, n = lp_bound(model, be, terms, upper, max_iterations=max_iterations, rtol=rtol,
                                 stop_above=stop, deadline=deadline)
        solves += n
        obj = terms.objective(core_lb)
        if obj < best[0]:
            best = (obj, p, x)
    notes.append(f"relaxation: {solves} LPs, {model.model.num_rows} rows at the end"
                 + ("; time limit reached, unvisited pairs bounded by their single-client bound" if timed_out else ""))
    terms = terms_of[best[1]]
    return _bound_solution(problem, terms, best[0], best[2], model, notes, t_start, be)


def _bound_solution(problem, terms, bound, x, model, notes, t_start, be) -> Solution:
    k = problem.num_clients
    if x is not None:
        rates = []
        for b in model.bands:
            X, P = x[b.x], np.maximum(x[b.pi], 0.0)
            kk, ii = np.arange(k)[:, None], np.arange(X.shape[1])[None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                q = np.where(X > 1e-12, P / np.maximum(X, 1e-12), 0.0)
            rates.append(np.where(X > 1e-12, X * model.rate(b, kk, ii, q), 0.0).sum(axis=1) * RATE_UNIT_BPS)
        bd = problem.breakdown(terms.split, terms.rank, rates[0], rates[1])
    else:
        inf = np.full(k, np.inf)
        bd = problem.breakdown(terms.split, terms.rank, inf, inf)
    empty_i = np.zeros(0, dtype=int)
    empty_f = np.zeros(0)
    return Solution(objective_s=float(bound), round_time_s=float(bound / terms.rounds), rounds=terms.rounds,
                    split=terms.split, rank=terms.rank, assign_s=empty_i, assign_f=empty_i.copy(),
                    power_s_w=empty_f, power_f_w=empty_f.copy(), breakdown=bd, method="relaxation",
                    status="lower_bound", lower_bound_s=float(bound),
                    wall_time_s=time.perf_counter() - t_start, notes=list(be.notes) + notes)
