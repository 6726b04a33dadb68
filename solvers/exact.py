"""Certified optimum of the joint problem (spec section 5) on small and medium instances.

``solve_exact`` picks one of two exact methods:

* **enumeration** (:mod:`solvers.enumeration`) when the number of assignment pairs per (split, rank)
  is at most ``enumeration_limit``: every surjective assignment with its optimal continuous power.
* **MILP with outer approximation** (:mod:`solvers.milp_model`) otherwise. For each (split, rank), the
  formulation of :mod:`solvers.milp_model` is solved repeatedly (Kelley / outer-approximation loop):

  1. solve the MILP (binary assignment, continuous normalised power, rate and inverse-rate
     variables, current tangent cuts). Every cut over-estimates a rate or under-estimates a time, so
     the MILP is a relaxation of the true problem and its solver's dual bound is a valid lower bound
     on the pair's optimum (the continuous-power optimum, not a discretised one);
  2. polish: fix the MILP's assignment (unused subchannels given away, which never hurts) and compute
     the optimal continuous power for it exactly (:mod:`solvers.exact_power`): a feasible solution,
     and the incumbent when it is the best so far;
  3. add tangents at the MILP point where it over-estimates (rate or inverse rate) and at the
     polished allocation (the OA "NLP" cuts: with them the MILP cannot return that assignment with a
     value below its true optimum), then repeat until the pair's bound is within ``gap_tol`` of the
     incumbent. The number of assignments is finite and each visited assignment is cut off up to
     the tolerance, so the loop ends.

  The round-time variable T is capped by the incumbent (``T <= (1 - gap_tol / 2) * incumbent``): an
  infeasible MILP then proves the pair cannot improve on the incumbent by more than that, and pairs
  whose single-client bound (every client alone on its whole bands at full power) already reaches
  the incumbent are skipped without a solve. Both prunings are valid, so the reported lower bound
  (the least, over the pairs, of what was proven for each) is certified.

Power is continuous throughout (no power levels), so the optimum is the true optimum of the problem
and the gap closes to ``gap_tol``; the status is "optimal" when it did (proven: every pair's bound is
within ``gap_tol`` of the incumbent), else "time_limit" when the time ran out first, "gap" when an
iteration limit stopped it (both with the honest bound). Compared with
a MILP over discretised power levels (spec section 5 mentions one), this has no discretisation gap
to close, needs no "charge a level, credit the next" companion model for the bound, and has
K (M + N) binaries instead of K (M + N) L.

Before the MILPs, the LP relaxation of the same model (a few outer-approximation rounds, see
:func:`solvers.relaxation.lp_bound`) bounds every pair; pairs are then solved in increasing order of
that bound, and it is the bound a pair keeps if the time runs out before its turn.

Warm start. Before any MILP, bcd and the baselines (equal, max-power, random) are run on the same
pairs and the best of their allocations (and the greedy one, and ``initial``) is the incumbent, so
the returned objective is never above bcd's: the MILP can only replace it by something better. The
incumbent enters the MILP as the cut-off on T (``T <= (1 - gap_tol / 2) x incumbent``), not as a
HiGHS/Gurobi MIP start (``setSolution``): the incumbent maps onto the model's variables (x from the
assignment, pi = p / P^max, r the true rates, which every tangent over-estimates, z = 1 / R), but the
cut-off excludes it by construction (the MILP is asked only for strictly better allocations), so as
a MIP start it would be infeasible; the cut-off gives branch and bound the same pruning a start's
objective would, and tightens the z bounds besides. Pairs also start from bcd's per-pair bound
(:func:`solvers.bcd.pair_lower_bound`), which is at least the model's single-client bound. The
notes say whose allocation is returned (``bcd``, a baseline, ``greedy``, ``initial`` or ``milp``) and
the certified gap from the MILP's dual bounds. The time limit (``time_limit_s``, default 300 s)
counts from the start, warm start included; ``progress`` shows a bar over the (split, rank) pairs.
With the enumeration, the warm start is compared after the search when the time limit stopped it
(a finished enumeration is the optimum, to its power search's 1e-10 relative tolerance).

``solve_gurobi`` (method "gurobi") is ``solve_milp`` on the Gurobi backend of :mod:`solvers.backends.gurobi`,
which falls back to HiGHS with a note when Gurobi cannot run the model.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from fsllm_sim.errors import SolverError

from .enumeration import enumeration_size, solve_enumeration
from .exact_power import AssignmentPower, greedy_assignment, pair_terms, select_pairs
from .backends import SIZE_LIMITED_LICENCE, GurobiBackend, make_backend
from .milp_model import AllocationModel
from .relaxation import lp_bound
from .problem import Solution, evaluate

# Default enumeration thresholds (assignment pairs per (split, rank)).
ENUMERATION_LIMIT = 20_000
ENUMERATION_LIMIT_TOTAL_CAPS = 1_000
# Default wall-clock limit of the exact methods (seconds; None: no limit).
DEFAULT_TIME_LIMIT_S = 300.0
# The heuristics an exact method starts from (method names of solvers.registry), in tie-break order.
WARM_START_METHODS = ("bcd", "max-power", "equal", "random")


def warm_starts(problem, split=None, rank=None) -> list[Solution]:
    """bcd's and the baselines' solutions on the same pairs (each with ``method`` naming it)."""
    from .baselines import solve_equal, solve_max_power, solve_random
    from .bcd import solve_bcd

    fns = {"bcd": solve_bcd, "max-power": solve_max_power, "equal": solve_equal, "random": solve_random}
    return [fns[name](problem, split=split, rank=rank) for name in WARM_START_METHODS]


def _best_start(candidates, rtol: float = 1e-9) -> tuple[Solution, str]:
    """The least objective among (Solution, source) candidates; a later candidate must be better by a
    relative ``rtol`` (max-power often finds bcd's allocation, equal to rounding: it stays bcd's)."""
    best = None
    for sol, source in candidates:
        if sol is not None and (best is None or sol.objective_s < best[0].objective_s * (1 - rtol)):
            best = (sol, source)
    return best


def _progress_bar(enabled: bool, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="pair", disable=not enabled, leave=False)


def solve_milp(problem, split=None, rank=None, *, backend="highs", gap_tol: float = 1e-4,
               time_limit_s: Optional[float] = DEFAULT_TIME_LIMIT_S, max_iterations: int = 200,
               mip_rel_gap: Optional[float] = None, threads: Optional[int] = None,
               initial: Optional[Solution] = None, warm_start: bool = True, lp_bounds: bool = True,
               lp_iterations: int = 8, verbose: bool = False, progress: bool = False) -> Solution:
    """Exact optimum by MILP + outer approximation (see the module docstring).

    ``backend``: "highs" or "gurobi" (size-limited licences fall back to HiGHS with a note).
    ``gap_tol``: relative gap at which a (split, rank) pair counts as solved. ``initial``: an optional
    feasible Solution to start from. ``warm_start`` (default True): start from the best of bcd and the
    baselines (the returned objective is then never above bcd's). ``time_limit_s``: wall-clock limit
    from the call, warm start included (None: none). ``progress``: a bar over the (split, rank) pairs.
    """
    t_start = time.perf_counter()
    if time_limit_s is not None and not (float(time_limit_s) > 0):
        raise SolverError(f"exact: time_limit_s={time_limit_s} must be > 0 (or None for no limit)")
    deadline = None if time_limit_s is None else t_start + float(time_limit_s)
    pairs = select_pairs(problem, split, rank)
    terms_of = {p: pair_terms(problem, *p) for p in pairs}
    if isinstance(backend, str):
        be = make_backend(backend, threads=threads) if threads is not None else make_backend(backend)
    else:
        be = backend  # an object with solve(model, ...), notes and used (e.g. a GurobiBackend)
    mip_gap = gap_tol / 4.0 if mip_rel_gap is None else float(mip_rel_gap)
    model = AllocationModel(problem, integer=True, link_power=True)
    notes = []
    # Incumbent: the best of bcd, the baselines, an initial solution and a greedy assignment with
    # optimal power over the most promising pairs (ties: in that order).
    starts = [(sol, sol.method) for sol in warm_starts(problem, split, rank)] if warm_start else []
    starts += [(initial, "initial"), (_heuristic(problem, pairs, terms_of, notes, limit=3), "greedy")]
    inc, source = _best_start(starts)
    start_objective = inc.objective_s
    bcd_objective = next((sol.objective_s for sol, name in starts if name == "bcd"), None)
    # Per pair, the larger of the model's single-client bound and bcd's pair bound (both certified;
    # bcd's is the tighter: best S - K + 1 subchannels and the total cap), in the model's core units.
    from .bcd import pair_bounds

    bcd_lb = pair_bounds(problem, pairs)
    core_lb = {p: max(model.core_lower(terms_of[p]), terms_of[p].core_for(bcd_lb[p]) * (1 - 1e-12))
               for p in pairs}
    lp_solves = 0
    if lp_bounds:
        # The LP relaxation of the same model (a few OA rounds) bounds each pair much better than the
        # single-client bound: it orders the pairs and prunes those that cannot beat the incumbent.
        bar = _progress_bar(progress, len(pairs), "exact: LP bounds")
        for p in sorted(pairs, key=lambda p: terms_of[p].objective(core_lb[p])):
            bar.update(1)
            terms = terms_of[p]
            if not np.isfinite(core_lb[p]) or terms.objective(core_lb[p]) >= inc.objective_s * (1 - gap_tol):
                continue
            if deadline is not None and time.perf_counter() >= deadline:
                break
            cutoff = terms.core_for(inc.objective_s * (1 - gap_tol / 2))
            lb, _, n = lp_bound(model, be, terms, cutoff, max_iterations=lp_iterations,
                                stop_above=cutoff, deadline=deadline, trust_infeasible=True)
            lp_solves += n
            core_lb[p] = max(core_lb[p], lb)
        bar.close()
    by_bound = sorted(pairs, key=lambda p: terms_of[p].objective(core_lb[p]))
    pair_lb = {}
    timed_out = False
    solves = 0
    bar = _progress_bar(progress, len(by_bound), "exact: MILP")
    for p in by_bound:
        bar.update(1)
        bar.set_postfix_str(f"best {inc.objective_s:.6g} s", refresh=False)
        terms = terms_of[p]
        lb_core = core_lb[p]
        if not np.isfinite(lb_core):  # some client cannot move its bits at this pair: it takes forever
            pair_lb[p] = float("inf")
            continue
        if terms.objective(lb_core) >= inc.objective_s * (1 - gap_tol):
            pair_lb[p] = terms.objective(lb_core)
            continue
        if deadline is not None and time.perf_counter() >= deadline:
            pair_lb[p] = terms.objective(lb_core)
            timed_out = True
            continue
        cutoff = terms.core_for(inc.objective_s * (1 - gap_tol / 2))
        model.set_pair(terms, cutoff)
        for it in range(max_iterations):
            remaining = None if deadline is None else deadline - time.perf_counter()
            if remaining is not None and remaining <= 0:
                timed_out = True
                break
            res = be.solve(model.model, time_limit_s=remaining, mip_rel_gap=mip_gap)
            solves += 1
            if res.status == "infeasible":
                lb_core = max(lb_core, cutoff)  # nothing below the cut-off: the pair cannot improve
                break
            if res.status == "error":
                notes.append(f"exact: {res.message} at (split={p[0]}, rank={p[1]}); pair left with its bound")
                break
            if np.isfinite(res.bound):
                lb_core = max(lb_core, min(res.bound, cutoff if np.isfinite(cutoff) else res.bound))
            if res.x is None:
                if res.status == "time_limit":
                    timed_out = True
                break
            asg_s, asg_f = model.fill_unused(*model.assignment(res.x))
            ap = AssignmentPower(problem, asg_s, asg_f)
            ps = ap.solve(terms)
            cand = evaluate(problem, p[0], p[1], asg_s, ps.power_s_w, asg_f, ps.power_f_w, check=True)
            if cand.objective_s < inc.objective_s:
                inc = cand
                source = "milp"
                cutoff = terms.core_for(inc.objective_s * (1 - gap_tol / 2))
                model.set_core_upper(max(cutoff, model.core_lower(terms)))
            added = model.add_allocation_cuts(asg_s, ps.power_s_w, asg_f, ps.power_f_w)
            added += model.separate(res.x)
            if verbose:
                print(f"  pair {p} it {it}: milp T={res.objective:.6g} bound={res.bound:.6g} "
                      f"polished={ps.core_s:.6g} lb={lb_core:.6g} cuts+={added} rows={model.model.num_rows}")
            if res.status == "time_limit":
                timed_out = True
                break
            if terms.objective(lb_core) >= inc.objective_s * (1 - gap_tol):
                break
            if added == 0:
                notes.append(f"exact: no violated cut at (split={p[0]}, rank={p[1]}) but gap not closed "
                             f"(numerical tolerance); pair left with its bound")
                break
            if cutoff < model.core_lower(terms):
                lb_core = max(lb_core, cutoff)
                break
        else:
            notes.append(f"exact: iteration limit ({max_iterations}) at (split={p[0]}, rank={p[1]})")
        pair_lb[p] = terms.objective(lb_core)
        if timed_out:
            # Pairs not reached keep their LP (or single-client) bounds.
            for q in by_bound:
                if q not in pair_lb:
                    pair_lb[q] = terms_of[q].objective(core_lb[q])
            break
    bar.close()
    lower = min(min(pair_lb.values()), inc.objective_s)
    if not np.isfinite(inc.objective_s) and not np.isfinite(lower):
        notes.append("exact: a client has no usable subchannel on a band that carries bits; "
                     "every allocation takes forever")
    sol = evaluate(problem, inc.split, inc.rank, inc.assign_s, inc.power_s_w, inc.assign_f, inc.power_f_w,
                   method="exact")
    sol.lower_bound_s = min(lower, sol.objective_s)
    gap = sol.gap or 0.0
    # "optimal" only when proven: every pair's bound is within gap_tol of the incumbent (a pair the
    # time limit left unvisited keeps its LP or single-client bound, so it counts only if that does).
    if gap <= gap_tol * (1 + 1e-9):
        sol.status = "optimal"
    elif timed_out:
        sol.status = "time_limit"
    else:
        sol.status = "gap"
    if source == "milp":
        notes.append(f"exact: started from the best heuristic ({start_objective:.6g} s); the MILP found a better "
                     f"allocation ({sol.objective_s:.6g} s)")
    else:
        if sol.status == "optimal":
            why = f"the MILP proved that none is better by more than gap_tol={gap_tol:g}"
        elif sol.status == "time_limit":
            why = ("the MILP found none better within the time limit" +
                   ("" if time_limit_s is None else f" of {float(time_limit_s):g} s"))
        else:
            why = "the MILP found none better before its iteration limit"
        notes.append(f"exact: returned {source}'s allocation ({sol.objective_s:.6g} s): {why}"
                     + ("" if bcd_objective is None or source == "bcd" else f" (bcd: {bcd_objective:.6g} s)"))
    notes.append(f"exact: certified gap {100 * gap:.3g} % (lower bound {sol.lower_bound_s:.6g} s from the MILP's "
                 f"dual bounds, and for pairs it did not reach their LP or bcd pair bounds); status {sol.status}")
    notes.append(f"exact: MILP with outer approximation on {be.used}: {lp_solves} LPs, {solves} MILP solves over "
                 f"{len(pair_lb)} (split, rank) pairs, "
                 f"{model.model.num_cols} variables, {model.model.num_rows} rows at the end, gap {gap:.2e}")
    sol.notes = list(be.notes) + notes
    sol.wall_time_s = time.perf_counter() - t_start
    return sol


def _heuristic(problem, pairs, terms_of, notes, limit: Optional[int] = None) -> Solution:
    """Greedy assignment with optimal power at the pairs of least single-client bound."""
    asg_s, asg_f = greedy_assignment(problem)
    ap = AssignmentPower(problem, asg_s, asg_f)
    ranked = sorted(pairs, key=lambda p: terms_of[p].objective(ap.uncapped_core(terms_of[p])))
    best = None
    for p in ranked[:limit] if limit else ranked:
        ps = ap.solve(terms_of[p])
        cand = evaluate(problem, p[0], p[1], asg_s, ps.power_s_w, asg_f, ps.power_f_w, method="greedy")
        if best is None or cand.objective_s < best.objective_s:
            best = cand
    return best


_MILP_OPTIONS = {"max_iterations", "mip_rel_gap", "threads", "initial", "warm_start", "lp_bounds", "lp_iterations",
                 "verbose", "progress"}


def solve_exact(problem, split=None, rank=None, *, algorithm: str = "auto",
                enumeration_limit: Optional[int] = None, backend: str = "highs", gap_tol: float = 1e-4,
                time_limit_s: Optional[float] = DEFAULT_TIME_LIMIT_S, **options) -> Solution:
    """Certified optimum (status "optimal" with ``lower_bound_s``) or an honest "time_limit"/"gap".

    ``algorithm``: "auto" (enumeration when the assignment pairs per (split, rank) are at most
    ``enumeration_limit``: default 20 000, 1 000 with total caps; else the MILP), "enumeration" or
    "milp". ``backend`` ("highs" / "gurobi") and ``gap_tol``, ``max_iterations``, ``threads``,
    ``warm_start``, ``progress``, ``verbose`` go to the MILP; ``split`` / ``rank`` restrict the candidate
    pairs; ``time_limit_s`` (default 300 s) limits either algorithm.
    """
    unknown = sorted(set(options) - _MILP_OPTIONS)
    if unknown:
        raise SolverError(f"solve_exact: unknown option(s) {', '.join(unknown)}; allowed: algorithm, "
                          f"enumeration_limit, backend, gap_tol, time_limit_s, {', '.join(sorted(_MILP_OPTIONS))}")
    if algorithm not in ("auto", "enumeration", "milp"):
        raise SolverError(f"solve_exact: algorithm={algorithm!r} is not one of auto, enumeration, milp")
    capped = problem.p_total_s_w is not None or problem.p_total_f_w is not None
    if enumeration_limit is None:
        enumeration_limit = ENUMERATION_LIMIT_TOTAL_CAPS if capped else ENUMERATION_LIMIT
    if algorithm == "auto":
        algorithm = "enumeration" if enumeration_size(problem) <= enumeration_limit else "milp"
    if algorithm == "enumeration":
        if time_limit_s is not None and not (float(time_limit_s) > 0):
            raise SolverError(f"exact: time_limit_s={time_limit_s} must be > 0 (or None for no limit)")
        sol = solve_enumeration(problem, split, rank, time_limit_s=time_limit_s)
        sol.method = "exact"
        if sol.status != "optimal" and options.get("warm_start", True):
            # Stopped by the time limit: keep the better of its incumbent and bcd's / the baselines'.
            best, source = _best_start([(s, s.method) for s in warm_starts(problem, split, rank)])
            if best.objective_s < sol.objective_s:
                bound, found, notes = sol.lower_bound_s, sol.objective_s, list(sol.notes)
                sol = evaluate(problem, best.split, best.rank, best.assign_s, best.power_s_w, best.assign_f,
                               best.power_f_w, method="exact")
                sol.lower_bound_s = min(bound, sol.objective_s)
                sol.status = "time_limit"
                sol.notes = notes + [f"enumeration: stopped by the time limit at {found:.6g} s; returned {source}'s "
                                     f"allocation ({sol.objective_s:.6g} s), certified gap "
                                     f"{100 * (sol.gap or 0.0):.3g} %"]
        return sol
    sol = solve_milp(problem, split, rank, backend=backend, gap_tol=gap_tol, time_limit_s=time_limit_s, **options)
    return sol


def solve_gurobi(problem, split=None, rank=None, **options):
    """The exact solver's MILP (outer approximation) through Gurobi; HiGHS when Gurobi cannot run it.

    Options as :func:`solve_milp` (``gap_tol``, ``time_limit_s``, ``max_iterations``, ``threads``,
    ``warm_start``, ``progress``, ``verbose``) plus ``size_limits`` (default: the size-limited licence; ``None`` for a
    full licence). The returned Solution has method "gurobi"; its notes say which solver ran.
    """
    allowed = _MILP_OPTIONS | {"gap_tol", "time_limit_s", "size_limits"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise SolverError(f"solve_gurobi: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    size_limits = options.pop("size_limits", SIZE_LIMITED_LICENCE)
    backend = GurobiBackend(threads=options.pop("threads", None), size_limits=size_limits)
    try:
        sol = solve_milp(problem, split, rank, backend=backend, **options)
    finally:
        backend.close()
    sol.method = "gurobi"
    return sol
