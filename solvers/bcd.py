"""Block coordinate descent over (allocation, power), exhaustive over (split, rank): the published structure.

For every allowed (split, rank) pair:

1. allocation with per-client budgets fixed (:mod:`solvers.allocation`): bottleneck matching so every
   client has a subchannel on each band, greedy hand-out of the rest to the bottleneck client over
   both bands, then a local search of moves / swaps / set exchanges around the bottleneck, each
   accepted only when the round time drops;
2. power for that allocation (:func:`solvers.power.optimal_power`): water-filling per client when
   only per-client caps exist (then optimal, and it is what step 1 scored with, so the alternation is
   at a fixed point after one pass), else the epigraph search on tau over the clients' least powers;
3. under binding total caps, alternate: at the power step's round time, moves and swaps on either
   band that cut the least total power the capped band needs (``power_local_search``; exact in sign),
   optionally followed by the bottleneck local search at the power step's budgets; re-run the power
   step and keep the result only when the objective drops; stop when it drops by less than ``tol``
   (relative) or after ``max_iter`` rounds. When both total caps bind, the alternation is followed
   by the priced search (``price_local_search``): at the power step's round time and price lambda
   (the Pareto point of the two power sums that meets both caps), moves and swaps on either band are
   screened by how much they lower P^s / P^s_total + lambda P^f / P^f_total, each affected client
   re-splitting its time between the bands, and the best few are verified exactly (feasibility
   margin, then the power step); the alternation resumes after an accepted move. The per-band
   search alone keeps every client's time split fixed, so it misses trades that pay only once a
   client shifts time between the bands (a strong client taking the other's good f-band subchannel
   so that the weak one can spend the freed power on the s-band).

Then, on the pairs whose value is within ``refine_rtol`` (5 %) of the best, an iterated local search:
``kicks`` seeded random perturbations (1-3 moves/swaps) of the pair's allocation, each followed by
steps 1-3, kept when the round time drops. It escapes the local optima that single moves cannot leave
(on 100 random 2-3 client instances bcd then matches the enumeration optimum on 98 and is within 1.6 %
on the others). The number of kicks shrinks with the instance (about 2000 / (K (M + N)), between 2 and
40): large instances rarely stall, and each kick costs more there. With two binding caps a kicked
allocation is first improved by the priced descent at the incumbent's round time and price (no power
step), and checked exactly only when its priced sum drops below the incumbent's, which is necessary
for it to be better (weak duality), so the screen never discards an improvement.

Two binding total caps, measured on the 40 instances of ``tests/solvers/test_quality.py``
(``gaps(7, 40, [(0.25, 0.25), (0.15, 0.35)])``, against the enumeration optimum): without the priced
search and descent, mean gap 0.56 %, worst 6.9 %, optimal on 25, bcd 43 s in all; with them, mean
0.012 %, worst 0.47 %, optimal on 39, bcd 32 s in all (the power step's least-power evaluations now
reuse their sort per assignment, which pays for the extra search).

The best pair wins (ties: the earlier pair in ``problem.candidate_pairs()`` order).

Pruning never changes the answer: every pair has the lower bound N(r) (max_k [base_k + s_bits/R^s_all_k
+ f_bits/R^f_all_k] + tail), with R^beta_all_k client k's water-filling rate at its cap over the best
S - K + 1 subchannels of the band (the most it can hold while every other client keeps one; see
``full_band_rates``), which no allocation can beat. Pairs are visited in increasing bound order and a
pair is skipped only when its bound exceeds (1 + refine_rtol) x the incumbent (times 1 + 1e-9, above
rounding): its own value, which is at least the bound, could neither have won nor been refined. In
the refinement, a pair is skipped when its bound exceeds the refined incumbent, for the same reason. The minimum of the bounds over all
allowed pairs is returned as ``lower_bound_s`` (a valid, usually loose, bound on the optimum).

The allocation of a pair depends on the pair only through ``RoundTerms`` (base times, E S_a, S_c,
tail); pairs with identical terms share one computation (a cache keyed on those exact numbers, so the
answer is the same as recomputing).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from fsllm_sim.errors import SolverError

from .allocation import (greedy_allocation, local_search, power_local_search, price_at, price_local_search,
                         priced_descent, priced_sum)
from .power import BandSpec, PowerResult, RoundTerms, _transfer, bands_of, optimal_power
from .problem import Problem, Solution, evaluate, select_pairs  # select_pairs: re-exported

BCD_OPTIONS = ("tol", "max_iter", "prune", "local_search", "max_local_moves", "init", "cache", "refine_rtol",
               "kicks", "seed")


def full_band_rates(band: BandSpec) -> np.ndarray:
    """Upper bound on each client's rate under any allocation: water-filling at min(cap, total cap)
    over the most it can hold. Every other client keeps >= 1 subchannel, so client k holds at most
    S - K + 1; with equal bandwidths the rate is increasing in every gain, so its best S - K + 1 gains
    bound it (with unequal bandwidths all S subchannels are used, still a valid bound)."""
    from channel_models.ofdma import subchannel_rate_bps, water_filling_power_w_batched

    budget = band.p_max_w if band.total_cap_w is None else np.minimum(band.p_max_w, band.total_cap_w)
    gain = band.gain
    bw = np.broadcast_to(band.bandwidth_hz, gain.shape)
    if np.all(band.bandwidth_hz == band.bandwidth_hz[0]):
        keep = band.num_subchannels - band.num_clients + 1
        gain = -np.sort(-gain, axis=1)[:, :keep]
        bw = bw[:, :keep]
    p = water_filling_power_w_batched(gain, bw, band.noise_psd_w_per_hz, budget)
    return subchannel_rate_bps(bw, p, gain, band.noise_psd_w_per_hz).sum(axis=1)


def pair_lower_bound(terms: RoundTerms, rate_s_all, rate_f_all) -> float:
    """A certified lower bound on the objective of every allocation at one (split, rank).

    Why it is valid: under any feasible allocation client k holds at most S - K + 1 subchannels of a
    band (every other client keeps one) and spends at most min(P^max_k, P_total) on it, so its rate is
    at most ``full_band_rates`` (water-filling that budget over its best S - K + 1 subchannels: water-
    filling over a set is the best rate over it, and a larger set or stronger gains never lower it).
    T_k = base_k + s_bits / R^s_k + f_bits / R^f_k is decreasing in both rates and the objective
    N(r) (max_k T_k + tail) is increasing in every T_k, so no allocation at this pair beats the value
    at those rates."""
    return terms.objective(rate_s_all, rate_f_all)


def pair_bounds(problem: Problem, pairs) -> dict:
    """``pair_lower_bound`` of each (split, rank) in ``pairs`` (a dict); cheap: two water-fillings."""
    band_s, band_f = bands_of(problem)
    rate_s_all, rate_f_all = full_band_rates(band_s), full_band_rates(band_f)
    return {p: pair_lower_bound(RoundTerms.from_problem(problem, *p), rate_s_all, rate_f_all) for p in pairs}


def bcd_lower_bound(problem: Problem, split: Optional[int] = None, rank: Optional[int] = None) -> float:
    """The certified lower bound bcd reports (``Solution.lower_bound_s``), without running bcd: the least
    ``pair_lower_bound`` over the allowed pairs. The optimum is attained at some allowed pair, and at
    that pair it is at least the pair's bound, hence at least the least of them. It costs two
    water-fillings, against minutes for the LP relaxation at K = 100; it is looser where the
    bottleneck client shares its band (few subchannels per client), tight where it does not.
    Under ``protocol: sl`` it is :func:`solvers.protocols.sl_lower_bound` (the round is a sum of turns)."""
    if problem.protocol == "sl":
        from .protocols import sl_lower_bound

        return sl_lower_bound(problem, split, rank)
    return float(min(pair_bounds(problem, select_pairs(problem, split, rank)).values()))


@dataclass
class PairResult:
    assign_s: np.ndarray
    assign_f: np.ndarray
    power: PowerResult
    iterations: int
    converged: bool
    notes: list = field(default_factory=list)

    def value(self, terms: RoundTerms) -> float:
        return terms.rounds * (self.power.max_time_s + terms.tail_s)


def _complete(assign, num_clients) -> bool:
    a = np.asarray(assign)
    return a.ndim == 1 and np.all(np.bincount(a[a >= 0], minlength=num_clients)[:num_clients] > 0) \
        and np.all(a < num_clients)


def solve_pair(problem: Problem, terms: RoundTerms, bands=None, tol: float = 1e-4, max_iter: int = 20,
               use_local_search: bool = True, max_local_moves: Optional[int] = None, init=None) -> PairResult:
    """BCD for one (split, rank): allocation <-> power until the relative improvement is below ``tol``."""
    band_s, band_f = bands if bands is not None else bands_of(problem)
    k = problem.num_clients
    if max_local_moves is None:
        max_local_moves = default_local_moves(band_s, band_f)
    budget_s, budget_f = band_s.initial_budgets_w(), band_f.initial_budgets_w()

    starts = [greedy_allocation(band_s, band_f, terms, budget_s, budget_f)]
    notes = []
    if init is not None:
        a_s, a_f = (np.asarray(init[0], dtype=int), np.asarray(init[1], dtype=int))
        if (a_s.shape == (band_s.num_subchannels,) and a_f.shape == (band_f.num_subchannels,)
                and _complete(a_s, k) and _complete(a_f, k)):
            starts.append(greedy_allocation(band_s, band_f, terms, budget_s, budget_f, start=(a_s, a_f)))
        else:
            notes.append("warm start ignored: it does not give every client a subchannel on both bands")
    best = None
    for a_s, a_f in starts:
        if use_local_search:
            a_s, a_f, _, _ = local_search(band_s, band_f, terms, budget_s, budget_f, a_s, a_f, max_local_moves)
        pr = optimal_power(band_s, band_f, terms, a_s, a_f)
        if best is None or pr.max_time_s < best.power.max_time_s:
            best = PairResult(a_s, a_f, pr, 1, True, notes)
    return _alternate(problem, terms, band_s, band_f, best, tol, max_iter, use_local_search, max_local_moves)


def _binding(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms) -> bool:
    return (band_s.total_cap_binds() and terms.s_bits > 0) or (band_f.total_cap_binds() and terms.f_bits > 0)


def _cap_search(terms: RoundTerms, band_s: BandSpec, band_f: BandSpec, power: PowerResult, a_s, a_f,
                max_moves: int):
    """Allocation step under binding total caps, at the power step's round time (see
    ``power_local_search``). Returns (assign_s, assign_f, value): value is the least total power the
    capped band needs (normalised by its cap, summed over both bands when both caps bind)."""
    tau = power.max_time_s
    if not np.isfinite(tau):  # some client cannot transmit at all: no power to save
        return a_s, a_f, np.inf
    slack = tau - terms.base_s
    bind_s = band_s.total_cap_binds() and terms.s_bits > 0
    bind_f = band_f.total_cap_binds() and terms.f_bits > 0
    if bind_s and not bind_f:
        a_s, a_f, _, total = power_local_search(band_s, terms.s_bits, slack, a_s, band_f, terms.f_bits,
                                                band_f.p_max_w, a_f, max_moves)
        return a_s, a_f, total / band_s.total_cap_w
    if bind_f and not bind_s:
        a_f, a_s, _, total = power_local_search(band_f, terms.f_bits, slack, a_f, band_s, terms.s_bits,
                                                band_s.p_max_w, a_s, max_moves)
        return a_s, a_f, total / band_f.total_cap_w
    # Both bind: keep each client's split of its time between the bands (the power step re-optimises it).
    t_s = _transfer(terms.s_bits, power.rate_s_bps)
    t_f = _transfer(terms.f_bits, power.rate_f_bps)
    a_s, _, _, tot_s = power_local_search(band_s, terms.s_bits, t_s, a_s, max_moves=max_moves)
    a_f, _, _, tot_f = power_local_search(band_f, terms.f_bits, t_f, a_f, max_moves=max_moves)
    return a_s, a_f, tot_s / band_s.total_cap_w + tot_f / band_f.total_cap_w


def _both_bind(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms) -> bool:
    return (band_s.total_cap_binds() and terms.s_bits > 0) and (band_f.total_cap_binds() and terms.f_bits > 0)


# Rounds of (price search, alternation) under two binding caps.
PRICE_ROUNDS = 4


def _alternate(problem, terms, band_s, band_f, best: PairResult, tol, max_iter, use_local_search,
               max_local_moves) -> PairResult:
    """Steps 1 <-> 2 under binding total caps (without them the first pass is already a fixed point:
    power control returns water-filling at the caps, which is what the allocation was scored with).

    Each round offers the power step two allocations: the power-saving search at the current round
    time (``_cap_search``), and that followed by the bottleneck local search at the power step's
    budgets; the better is kept if it shortens the round. With two binding caps, once that stalls,
    the priced search (``price_local_search``: moves and swaps verified exactly, each client
    re-splitting its time between the bands) continues, and the alternation resumes after it."""
    best = _alternate_once(problem, terms, band_s, band_f, best, tol, max_iter, use_local_search, max_local_moves)
    if not (use_local_search and _both_bind(band_s, band_f, terms)) or not np.isfinite(best.power.max_time_s):
        return best
    if max_local_moves is None:
        max_local_moves = default_local_moves(band_s, band_f)
    for _ in range(PRICE_ROUNDS):
        a_s, a_f, pr, steps = price_local_search(band_s, band_f, terms, best.assign_s, best.assign_f, best.power,
                                                 max_local_moves)
        if steps == 0:
            break
        best = PairResult(a_s, a_f, pr, best.iterations + 1, True, best.notes)
        again = _alternate_once(problem, terms, band_s, band_f, best, tol, max_iter, use_local_search,
                                max_local_moves)
        if not again.power.max_time_s < best.power.max_time_s:
            break
        best = again
    return best


def _alternate_once(problem, terms, band_s, band_f, best: PairResult, tol, max_iter, use_local_search,
                    max_local_moves) -> PairResult:
    if not _binding(band_s, band_f, terms) or not np.isfinite(best.power.max_time_s):
        best.converged = True
        return best
    converged = False
    for it in range(best.iterations + 1, best.iterations + max_iter):
        pr = best.power
        a_s, a_f, _ = _cap_search(terms, band_s, band_f, pr, best.assign_s, best.assign_f, max_local_moves)
        candidates = [(a_s, a_f)]
        if use_local_search:
            l_s, l_f, _, _ = local_search(band_s, band_f, terms, pr.budget_s_w, pr.budget_f_w, a_s, a_f,
                                          max_local_moves)
            candidates.append((l_s, l_f))
        new = None
        for c_s, c_f in candidates:
            res = optimal_power(band_s, band_f, terms, c_s, c_f)
            if new is None or res.max_time_s < new[2].max_time_s:
                new = (c_s, c_f, res)
        old_value = best.value(terms)
        new_value = terms.rounds * (new[2].max_time_s + terms.tail_s)
        if not new_value < old_value:
            converged = True
            best.iterations = it
            break
        best = PairResult(new[0], new[1], new[2], it, False, best.notes)
        if (old_value - new_value) <= tol * old_value:
            converged = True
            break
    best.converged = converged
    return best


def default_local_moves(band_s: BandSpec, band_f: BandSpec) -> int:
    return 4 * (band_s.num_subchannels + band_f.num_subchannels)


def default_kicks(num_clients: int, num_s: int, num_f: int) -> int:
    """Perturbation rounds for a refined pair: many on small instances (where a local optimum is a real
    risk and a round is cheap), few on large ones (where the bottleneck holds many subchannels and
    moves rarely get stuck): about 2000 / (K (M + N)), between 2 and 40."""
    return int(max(2, min(40, 2000 // max(1, num_clients * (num_s + num_f)))))


def refine_pair(problem, terms, bands, res: PairResult, kicks: int, seed: int, tol, max_iter,
                max_local_moves: Optional[int] = None) -> PairResult:
    """Iterated local search: perturb the best allocation (1-3 random moves/swaps), re-run the local
    search, keep it when the round time drops, then the power alternation. Seeded: deterministic."""
    band_s, band_f = bands
    if max_local_moves is None:
        max_local_moves = default_local_moves(band_s, band_f)
    rng = np.random.default_rng(seed)
    k = problem.num_clients
    binding = _binding(band_s, band_f, terms)
    budget_s, budget_f = band_s.initial_budgets_w(), band_f.initial_budgets_w()
    best = res
    single_cap = binding and not _both_bind(band_s, band_f, terms)
    priced = None
    if binding and not single_cap:
        # Two binding caps make the power step costly: a kicked allocation is improved by the priced
        # descent at the incumbent's round time and price, and only one whose priced sum drops below
        # the incumbent's (necessary to beat it, see priced_descent) is checked exactly.
        priced = _price_reference(band_s, band_f, terms, best)
        if priced is None:
            # No price (a client cannot transmit): fall back to the local search's value at the start
            # budgets as a proxy, against the incumbent's value under the same budgets.
            best_proxy = local_search(band_s, band_f, terms, budget_s, budget_f, best.assign_s, best.assign_f,
                                      0)[3]
    improved = False
    for _ in range(kicks):
        assigns = [best.assign_s.copy(), best.assign_f.copy()]
        for _ in range(int(rng.integers(1, 4))):
            bi = int(rng.integers(2))
            a = assigns[bi]
            i, j = rng.integers(0, a.size, size=2)
            counts = np.bincount(a[a >= 0], minlength=k)
            if rng.random() < 0.5 and counts[a[i]] >= 2:
                a[i] = int(rng.integers(k))  # move
            else:
                a[i], a[j] = a[j], a[i]  # swap (keeps every count)
        if single_cap:
            # One binding cap: the power step is cheap, so score the kicked allocation exactly, improve
            # it by the power-saving search at its own round time, and score that exactly too.
            pr = optimal_power(band_s, band_f, terms, assigns[0], assigns[1])
            a_s, a_f, _ = _cap_search(terms, band_s, band_f, pr, assigns[0], assigns[1], max_local_moves)
            pr2 = optimal_power(band_s, band_f, terms, a_s, a_f)
            if pr2.max_time_s >= pr.max_time_s:
                a_s, a_f, pr2 = assigns[0], assigns[1], pr
            pr = pr2
        elif priced is not None:
            tau, price, reference = priced
            a_s, a_f, value = priced_descent(band_s, band_f, terms, assigns[0], assigns[1], tau, price,
                                             max_local_moves)
            if not value < reference - 1e-9 * abs(reference):
                continue
            if not price_at(band_s, band_f, terms, a_s, a_f, tau)[1] < -1e-10:
                continue
            pr = optimal_power(band_s, band_f, terms, a_s, a_f)
        else:
            a_s, a_f, _, proxy = local_search(band_s, band_f, terms, budget_s, budget_f, assigns[0],
                                              assigns[1], max_local_moves)
            if not proxy < (best_proxy if binding else best.power.max_time_s) * (1 - 1e-12):
                continue  # without binding total caps this is the power step's exact value
            pr = optimal_power(band_s, band_f, terms, a_s, a_f)
        if pr.max_time_s < best.power.max_time_s * (1 - 1e-12):
            best = PairResult(a_s, a_f, pr, best.iterations, True, best.notes)
            improved = True
            if priced is not None:
                priced = _price_reference(band_s, band_f, terms, best) or priced
            elif binding and not single_cap:
                best_proxy = proxy
    if improved:
        best = _alternate(problem, terms, band_s, band_f, best, tol, max_iter, True, max_local_moves)
    return best


def _price_reference(band_s, band_f, terms, res: PairResult):
    """(tau, price, priced sum) of an allocation at its own optimal round time, or None without a price."""
    tau = res.power.max_time_s
    if not np.isfinite(tau):
        return None
    price, margin = price_at(band_s, band_f, terms, res.assign_s, res.assign_f, tau)
    if price is None or not np.isfinite(margin):
        return None
    return tau, price, priced_sum(band_s, band_f, terms, res.assign_s, res.assign_f, tau, price)


def solve_bcd(problem: Problem, split: Optional[int] = None, rank: Optional[int] = None, **options) -> Solution:
    """Block coordinate descent (the default method). Options:

    tol (1e-4): relative improvement that ends the allocation/power alternation;
    max_iter (20): most alternation rounds per pair;
    prune (True): skip pairs whose lower bound exceeds the incumbent (same answer, less work);
    local_search (True): moves/swaps after the greedy; max_local_moves (4 (M + N));
    init: optional (assign_s, assign_f) warm start (e.g. the previous round's), tried besides the greedy;
    cache (True): share the work of pairs with identical per-client terms;
    refine_rtol (0.05): pairs within this relative distance of the best get iterated local search;
    kicks (about 2000 / (K (M + N)), 2..40): its perturbation rounds per refined pair (0: none);
    seed (0): their random generator (the answer is deterministic for a given seed).

    With ``problem.rate_model == "ergodic"`` the greedy, local search and power control still plan on
    mean-gain rates; the final choice among the solved (split, rank) candidates (and the reported objective)
    uses the ergodic rates, and ``lower_bound_s`` (on mean-gain rates) stays a valid, looser, lower bound.
    """
    unknown = sorted(set(options) - set(BCD_OPTIONS))
    if unknown:
        raise SolverError(f"bcd: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(BCD_OPTIONS)}")
    tol = float(options.get("tol", 1e-4))
    max_iter = int(options.get("max_iter", 20))
    if not (tol >= 0 and max_iter >= 1):
        raise SolverError(f"bcd: tol={tol} must be >= 0 and max_iter={max_iter} >= 1")
    prune = bool(options.get("prune", True))
    use_ls = bool(options.get("local_search", True))
    max_moves = options.get("max_local_moves")
    init = options.get("init")
    use_cache = bool(options.get("cache", True))
    refine_rtol = float(options.get("refine_rtol", 0.05))
    seed = int(options.get("seed", 0))
    kicks = options.get("kicks")
    if kicks is None:
        kicks = default_kicks(problem.num_clients, problem.num_subchannels_s, problem.num_subchannels_f)
    kicks = int(kicks) if use_ls else 0
    if refine_rtol < 0 or kicks < 0:
        raise SolverError(f"bcd: refine_rtol={refine_rtol} and kicks={kicks} must be >= 0")

    pairs = select_pairs(problem, split, rank)
    bands = bands_of(problem)
    rate_s_all, rate_f_all = full_band_rates(bands[0]), full_band_rates(bands[1])
    terms = [RoundTerms.from_problem(problem, s, r) for s, r in pairs]
    bounds = [pair_lower_bound(t, rate_s_all, rate_f_all) for t in terms]
    order = sorted(range(len(pairs)), key=lambda i: (bounds[i], i))
    slack = (1 + refine_rtol) * (1 + 1e-9)

    # Phase 1: greedy + local search + power for every pair that could come within refine_rtol of the best.
    cache: dict = {}
    results: dict = {}
    incumbent = np.inf
    solved = pruned = 0
    for i in order:
        if prune and bounds[i] > incumbent * slack:
            pruned += 1
            continue
        key = terms[i].key()
        res = cache.get(key) if use_cache else None
        if res is None:
            res = solve_pair(problem, terms[i], bands, tol, max_iter, use_ls, max_moves, init)
            solved += 1
            if use_cache:
                cache[key] = res
        results[i] = res
        incumbent = min(incumbent, res.value(terms[i]))

    # Phase 2: iterated local search on the pairs within refine_rtol of the best (best first); a pair
    # whose bound exceeds the refined incumbent cannot win and is skipped (same answer as refining it).
    refined = 0
    if kicks > 0:
        near = sorted((i for i in results if results[i].value(terms[i]) <= incumbent * (1 + refine_rtol)),
                      key=lambda i: (results[i].value(terms[i]), i))
        best_value = min(results[i].value(terms[i]) for i in results)
        done: dict = {}
        for i in near:
            if prune and bounds[i] > best_value * (1 + 1e-9):
                continue
            key = terms[i].key()
            if use_cache and key in done:
                results[i] = done[key]
            else:
                results[i] = refine_pair(problem, terms[i], bands, results[i], kicks, seed, tol, max_iter, max_moves)
                refined += 1
                if use_cache:
                    done[key] = results[i]
            best_value = min(best_value, results[i].value(terms[i]))

    if problem.rate_model == "ergodic":
        # The search above plans on mean-gain rates; under the ergodic objective every solved (split, rank)
        # candidate's allocation is re-scored with the fading-averaged rates and the best of those is kept.
        scored = {i: evaluate(problem, pairs[i][0], pairs[i][1], results[i].assign_s, results[i].power.power_s_w,
                              results[i].assign_f, results[i].power.power_f_w, method="bcd") for i in results}
        best_i = min(scored, key=lambda i: (scored[i].objective_s, i))
        best_res = results[best_i]
        sol = scored[best_i]
    else:
        best_i = min(results, key=lambda i: (results[i].value(terms[i]), i))
        best_res = results[best_i]
        split_, rank_ = pairs[best_i]
        sol = evaluate(problem, split_, rank_, best_res.assign_s, best_res.power.power_s_w,
                       best_res.assign_f, best_res.power.power_f_w, method="bcd")
    sol.status = "converged" if best_res.converged else "feasible"
    lb = float(min(bounds))
    sol.lower_bound_s = lb if np.isfinite(lb) else None
    sol.notes = list(best_res.notes) + [
        f"pairs: {len(pairs)} allowed, {solved} solved, {pruned} pruned by bound, "
        f"{len(pairs) - solved - pruned} shared with an identical pair; {refined} refined with {kicks} kicks",
        f"alternation: {best_res.iterations} iteration(s), power step: {best_res.power.method}",
        "lower_bound_s: min over pairs of N(r) x round time with each client's best S-K+1 subchannels per band",
    ]
    if problem.rate_model == "ergodic":
        sol.notes.append("rates: ergodic; allocations planned on mean-gain rates, candidates chosen and scored "
                         "on ergodic rates")
    return sol
