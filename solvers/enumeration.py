"""Exhaustive enumeration: the exact optimum of tiny instances, by brute force.

Every assignment in which each subchannel serves some client and every client has at least one
subchannel on each band is tried, for every candidate (split, rank), with the optimal continuous
power of :mod:`solvers.exact_power` for that assignment.

Why assignments that leave a subchannel unused can be skipped: giving an unused subchannel to any
client never hurts, since the client may put zero power on it (with total caps) or water-fill its
unchanged cap over a superset of subchannels (per-client caps): its rate cannot fall. So an optimum
exists among the surjective assignments, and there are ``surj(M, K) * surj(N, K)`` of them.

Per-client caps only: water-filling is optimal for every assignment, the rates do not depend on
(split, rank), and the whole search is one vectorised minimum per (split, rank).

Total caps: the uncapped time of an assignment is a lower bound on its capped time (dropping a
constraint), and so is the time with only one of the two total caps. Assignments are visited in
increasing order of the uncapped bound and skipped as soon as a bound reaches the incumbent; the
others get the exact total-cap power control. The lower bound reported is the least of the
certified lower ends of those power searches and the incumbent (every skipped assignment's bound is
at least the incumbent), so it is exact to the search tolerance (relative 1e-10 by default).
"""
from __future__ import annotations

import itertools
import math
import time

import numpy as np

from channel_models.ofdma import subchannel_rate_bps, water_filling_power_w_batched
from fsllm_sim.errors import SolverError

from .exact_power import AssignmentPower, pair_terms, select_pairs
from .problem import Solution, evaluate

# Assignments per band above which the enumeration refuses (memory: the list is materialised).
MAX_ASSIGNMENTS_PER_BAND = 2_000_000


def count_surjections(num_items: int, num_clients: int) -> int:
    """Number of maps of ``num_items`` subchannels onto ``num_clients`` clients using every client."""
    n, k = int(num_items), int(num_clients)
    return sum((-1) ** j * math.comb(k, j) * (k - j) ** n for j in range(k + 1))


def enumeration_size(problem) -> int:
    """Assignment pairs (s-band x f-band) the enumeration visits per (split, rank)."""
    k = problem.num_clients
    return count_surjections(problem.num_subchannels_s, k) * count_surjections(problem.num_subchannels_f, k)


def surjections(num_items: int, num_clients: int) -> np.ndarray:
    """All assignments (rows) of ``num_items`` subchannels in which every client appears."""
    n, k = int(num_items), int(num_clients)
    if k ** n > MAX_ASSIGNMENTS_PER_BAND * 8:
        raise SolverError(f"enumeration: {k}^{n} assignments of {n} subchannels to {k} clients are too many; "
                          f"use solve_exact(..., algorithm='milp')")
    grid = np.array(list(itertools.product(range(k), repeat=n)), dtype=np.int64).reshape(-1, n)
    present = np.zeros((grid.shape[0], k), dtype=bool)
    rows = np.arange(grid.shape[0])[:, None]
    present[rows, grid] = True
    return grid[present.all(axis=1)]


def _water_filled_rates(gain, bandwidth_hz, noise_psd, p_max_w, assignments):
    """Rates (n, K) and powers (n, S) of water-filling every client's cap for each assignment."""
    n, s = assignments.shape
    k = gain.shape[0]
    mask = assignments[:, None, :] == np.arange(k)[None, :, None]  # (n, K, S)
    g = np.broadcast_to(gain[None], (n, k, s)).reshape(n * k, s)
    bw = np.broadcast_to(np.asarray(bandwidth_hz, dtype=float)[None, None, :], (n, k, s)).reshape(n * k, s)
    pmax = np.broadcast_to(np.asarray(p_max_w, dtype=float)[None], (n, k)).reshape(n * k)
    powers = water_filling_power_w_batched(g, bw, noise_psd, pmax, mask.reshape(n * k, s))
    rates = np.where(mask.reshape(n * k, s), subchannel_rate_bps(bw, powers, g, noise_psd), 0.0).sum(axis=1)
    return rates.reshape(n, k), powers.reshape(n, k, s).sum(axis=1)


def _core_matrix(terms, rates_s, rates_f, chunk_elems: int = 4_000_000):
    """max_k T_k for every (s-assignment, f-assignment) pair: (n_s, n_f)."""
    with np.errstate(divide="ignore"):
        ts = terms.base_s[None, :] + (terms.s_bits / rates_s if terms.s_bits > 0 else 0.0 * rates_s)
        tf = terms.f_bits / rates_f if terms.f_bits > 0 else 0.0 * rates_f
    ns, k = ts.shape
    nf = tf.shape[0]
    out = np.empty((ns, nf))
    step = max(1, chunk_elems // max(1, nf * k))
    for a in range(0, ns, step):
        out[a:a + step] = np.max(ts[a:a + step, None, :] + tf[None, :, :], axis=2)
    return out


def solve_enumeration(problem, split=None, rank=None, *, rtol: float = 1e-10,
                      time_limit_s: float | None = None) -> Solution:
    """Exact optimum by exhaustive enumeration (see the module docstring).

    ``split`` / ``rank`` restrict the candidate pairs; ``time_limit_s`` stops the total-cap search
    early (status "time_limit", with the certified bound so far).
    """
    t_start = time.perf_counter()
    k = problem.num_clients
    pairs = select_pairs(problem, split, rank)
    n0 = problem.noise_psd_w_per_hz
    asg_s = surjections(problem.num_subchannels_s, k)
    asg_f = surjections(problem.num_subchannels_f, k)
    rates_s, pw_s = _water_filled_rates(problem.gain_s, problem.bandwidth_s_hz, n0, problem.p_max_w, asg_s)
    rates_f, pw_f = _water_filled_rates(problem.gain_f, problem.bandwidth_f_hz, n0, problem.p_max_w, asg_f)
    capped = problem.p_total_s_w is not None or problem.p_total_f_w is not None
    # Lower bounds per (split, rank) and assignment pair; exact when there is no total cap.
    bounds = []
    for split_, rank_ in pairs:
        terms = pair_terms(problem, split_, rank_)
        core = _core_matrix(terms, rates_s, rates_f)
        bounds.append((terms, core))
    notes = [f"enumeration: {len(asg_s)} x {len(asg_f)} assignments, {len(pairs)} (split, rank) pairs"]
    status = "optimal"
    if not capped:
        best = None
        for terms, core in bounds:
            idx = np.unravel_index(int(np.argmin(core)), core.shape)
            obj = terms.objective(float(core[idx]))
            if best is None or obj < best[0]:
                best = (obj, terms, idx)
        _, terms, (i, j) = best
        sol = evaluate(problem, terms.split, terms.rank, asg_s[i], pw_s[i], asg_f[j], pw_f[j],
                       method="enumeration")
        sol.lower_bound_s = sol.objective_s
    else:
        cache = {}
        inc = [np.inf, None]  # objective, (terms, i, j, power_s, power_f)
        lower_candidates = []
        # Visit (split, rank) pairs by their best bound, assignments by theirs.
        order_pairs = sorted(range(len(bounds)), key=lambda p: bounds[p][0].objective(float(bounds[p][1].min())))
        stopped = False
        for p in order_pairs:
            terms, core = bounds[p]
            flat = np.argsort(core, axis=None, kind="stable")
            for f in flat:
                i, j = divmod(int(f), core.shape[1])
                lb_obj = terms.objective(float(core[i, j]))
                if lb_obj >= inc[0]:
                    break
                if time_limit_s is not None and time.perf_counter() - t_start > time_limit_s:
                    lower_candidates.append(lb_obj)  # this and every later one: bounded by lb_obj
                    stopped = True
                    break
                ap = cache.get((i, j))
                if ap is None:
                    ap = cache[(i, j)] = AssignmentPower(problem, asg_s[i], asg_f[j])
                if problem.p_total_s_w is not None and problem.p_total_f_w is not None:
                    # Cheaper relaxations first: one total cap at a time.
                    one = max(ap.solve(terms, rtol=1e-6, which="s").core_lower_s,
                              ap.solve(terms, rtol=1e-6, which="f").core_lower_s)
                    if terms.objective(one) >= inc[0]:
                        continue
                ps = ap.solve(terms, rtol=rtol)
                lower_candidates.append(terms.objective(ps.core_lower_s))
                obj = terms.objective(ps.core_s)
                if obj < inc[0]:
                    inc[:] = [obj, (terms, i, j, ps.power_s_w, ps.power_f_w)]
            if stopped:
                break
        if inc[1] is None:  # every allocation takes forever (a client has no usable subchannel)
            inc[1] = (bounds[0][0], 0, 0, np.zeros(asg_s.shape[1]), np.zeros(asg_f.shape[1]))
        terms, i, j, p_s, p_f = inc[1]
        sol = evaluate(problem, terms.split, terms.rank, asg_s[i], p_s, asg_f[j], p_f, method="enumeration")
        lb = min([sol.objective_s] + [c for c in lower_candidates])
        sol.lower_bound_s = min(lb, sol.objective_s)
        notes.append(f"enumeration: exact total-cap power control on {len(cache)} assignment pairs")
        if stopped:
            status = "time_limit"
            # Unvisited pairs are bounded below by their own uncapped bounds only.
            rest = min(terms_.objective(float(c.min())) for terms_, c in bounds)
            sol.lower_bound_s = min(sol.lower_bound_s, rest)
    sol.status = status
    sol.notes = notes
    sol.wall_time_s = time.perf_counter() - t_start
    return sol
