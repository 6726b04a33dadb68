"""Baselines the optimiser is judged against (spec section 5): equal, random and max-power allocation.

Each rule fixes how subchannels and power are allocated; the (split, rank) pair is either the one the
caller fixes (``solve(problem, "equal", split=..., rank=...)``: the fixed-split / fixed-rank baselines)
or, when left free, the best pair *for that allocation rule* (every allowed pair is scored with the
rule's allocation and the smallest objective wins; ties: the earlier pair in
``problem.candidate_pairs()`` order). So a baseline differs from bcd only in its allocation rule.

Power: every client spreads its budget equally over its subchannels on each band. The budget is the
client's cap, scaled down by one common factor on a band whose total cap would otherwise be exceeded
(``BandSpec.initial_budgets_w``), so baselines always respect total caps.

* ``equal``: equal subchannel counts (differing by at most one). ``layout="interleaved"`` (default):
  subchannel i goes to client i mod K, which spreads each client over the band (frequency diversity);
  ``layout="contiguous"``: client k gets one block of adjacent subchannels (localized allocation).
* ``random``: a random permutation gives each client one subchannel, every other subchannel goes to
  a uniformly random client; option ``seed`` (default 0) makes it reproducible.
* ``max-power``: bcd's greedy allocation (bottleneck matching + hand-out to the bottleneck, scored with
  water-filling rates, no local search) but no power optimisation: the full budget split equally.
  It isolates what bcd's power control and local search add.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from fsllm_sim.errors import SolverError

from .allocation import greedy_allocation
from .bcd import full_band_rates, pair_lower_bound, select_pairs
from .power import BandSpec, RoundTerms, bands_of
from .problem import Problem, Solution, evaluate

EQUAL_LAYOUTS = ("interleaved", "contiguous")


def equal_assignment(num_clients: int, num_subchannels: int, layout: str = "interleaved") -> np.ndarray:
    """Equal counts (+-1): client i mod K (interleaved) or consecutive blocks (contiguous)."""
    if layout not in EQUAL_LAYOUTS:
        raise SolverError(f"equal: layout={layout!r} is not one of {', '.join(EQUAL_LAYOUTS)}")
    i = np.arange(num_subchannels)
    if layout == "interleaved":
        return i % num_clients
    return (i * num_clients) // num_subchannels


def random_assignment(rng: np.random.Generator, num_clients: int, num_subchannels: int) -> np.ndarray:
    """Every client gets >= 1 subchannel; the rest go to uniformly random clients."""
    perm = rng.permutation(num_subchannels)
    assign = np.empty(num_subchannels, dtype=int)
    assign[perm[:num_clients]] = np.arange(num_clients)
    assign[perm[num_clients:]] = rng.integers(0, num_clients, num_subchannels - num_clients)
    return assign


def equal_power(band: BandSpec, assign) -> np.ndarray:
    """Each client's (total-cap-scaled) budget split equally over its subchannels."""
    assign = np.asarray(assign, dtype=int)
    budget = band.initial_budgets_w()
    used = assign >= 0
    counts = np.bincount(assign[used], minlength=band.num_clients)
    power = np.zeros(assign.size)
    power[used] = budget[assign[used]] / counts[assign[used]]
    return power


def _score_all(problem: Problem, pairs, allocate: Callable[[RoundTerms], tuple], method: str,
               per_pair: bool) -> Solution:
    """Best pair for an allocation rule; ``allocate(terms) -> (assign_s, power_s, assign_f, power_f)``."""
    terms = [RoundTerms.from_problem(problem, s, r) for s, r in pairs]
    if not per_pair:
        alloc = allocate(terms[0])
        rate_s, rate_f = problem.rates(alloc[0], alloc[1], alloc[2], alloc[3])
        values = [t.objective(rate_s, rate_f) for t in terms]
        best = int(np.argmin(values))  # first minimum = earlier pair on ties
    else:
        # The allocation depends on the pair: same bound-and-prune scheme as bcd (same answer as scoring all).
        bands = bands_of(problem)
        r_all = (full_band_rates(bands[0]), full_band_rates(bands[1]))
        bounds = [pair_lower_bound(t, *r_all) for t in terms]
        best, best_value, cache = None, np.inf, {}
        allocs = {}
        for i in sorted(range(len(pairs)), key=lambda i: (bounds[i], i)):
            if best is not None and bounds[i] > best_value * (1 + 1e-9):
                continue
            key = terms[i].key()
            if key not in cache:
                cache[key] = allocate(terms[i])
            alloc = cache[key]
            value = terms[i].objective(*problem.rates(alloc[0], alloc[1], alloc[2], alloc[3]))
            allocs[i] = alloc
            if best is None or (value, i) < (best_value, best):
                best, best_value = i, value
        alloc = allocs[best]
    split, rank = pairs[best]
    sol = evaluate(problem, split, rank, alloc[0], alloc[1], alloc[2], alloc[3], method=method)
    sol.status = "feasible"
    return sol


def _no_options(method: str, options: dict, allowed=()):
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SolverError(f"{method}: unknown option(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(allowed) if allowed else 'none'}")


def solve_equal(problem: Problem, split: Optional[int] = None, rank: Optional[int] = None, **options) -> Solution:
    """Equal subchannel counts, equal power; option ``layout`` ("interleaved" default, or "contiguous")."""
    _no_options("equal", options, ("layout",))
    layout = options.get("layout", "interleaved")
    band_s, band_f = bands_of(problem)
    k = problem.num_clients
    a_s = equal_assignment(k, band_s.num_subchannels, layout)
    a_f = equal_assignment(k, band_f.num_subchannels, layout)
    alloc = (a_s, equal_power(band_s, a_s), a_f, equal_power(band_f, a_f))
    sol = _score_all(problem, select_pairs(problem, split, rank), lambda t: alloc, "equal", per_pair=False)
    sol.notes.append(f"equal counts, {layout} layout, equal power per client")
    return sol


def solve_random(problem: Problem, split: Optional[int] = None, rank: Optional[int] = None, **options) -> Solution:
    """Random subchannels (>= 1 per client), equal power; option ``seed`` (default 0)."""
    _no_options("random", options, ("seed",))
    seed = options.get("seed", 0)
    rng = np.random.default_rng(seed)
    band_s, band_f = bands_of(problem)
    k = problem.num_clients
    a_s = random_assignment(rng, k, band_s.num_subchannels)
    a_f = random_assignment(rng, k, band_f.num_subchannels)
    alloc = (a_s, equal_power(band_s, a_s), a_f, equal_power(band_f, a_f))
    sol = _score_all(problem, select_pairs(problem, split, rank), lambda t: alloc, "random", per_pair=False)
    sol.notes.append(f"random assignment with seed={seed}, equal power per client")
    return sol


def solve_max_power(problem: Problem, split: Optional[int] = None, rank: Optional[int] = None,
                    **options) -> Solution:
    """bcd's greedy allocation, every client's full budget split equally (no power control, no local search)."""
    _no_options("max-power", options)
    band_s, band_f = bands_of(problem)
    b_s, b_f = band_s.initial_budgets_w(), band_f.initial_budgets_w()

    def allocate(terms):
        a_s, a_f = greedy_allocation(band_s, band_f, terms, b_s, b_f)
        return a_s, equal_power(band_s, a_s), a_f, equal_power(band_f, a_f)

    sol = _score_all(problem, select_pairs(problem, split, rank), allocate, "max-power", per_pair=True)
    sol.notes.append("greedy allocation, full budget split equally over each client's subchannels")
    return sol
