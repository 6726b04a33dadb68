"""The default optimiser (solvers/bcd.py, solvers/allocation.py) and the dispatcher around it."""
import itertools

import numpy as np
import pytest

from channel_models.ofdma import subchannel_rate_bps, water_filling_power_w_batched
from fsllm_sim.errors import SolverError
from solvers import METHODS, solve
from solvers.allocation import bottleneck_matching, greedy_allocation, local_search
from solvers.bcd import solve_bcd
from solvers.instances import random_problem, synthetic_profile
from solvers.power import RoundTerms, bands_of
from solvers.problem import check_allocation, evaluate

PROFILE = synthetic_profile(splits=[1, 6, 12, 24], ranks=[1, 4, 16])


def instance(seed, k=3, m=5, n=4, caps=(None, None), profile=PROFILE):
    return random_problem(np.random.default_rng(seed), k, m, n, profile=profile,
                          total_cap_s_w=caps[0], total_cap_f_w=caps[1])


def surjections(items, clients):
    return np.array([a for a in itertools.product(range(clients), repeat=items) if len(set(a)) == clients])


def brute_force(pb):
    """Exact optimum with per-client caps only: every surjective assignment on each band, water-filling.

    Per-client times split into an s-band part and an f-band part, so the two bands are enumerated
    separately and combined with a max over clients.
    """
    k = pb.num_clients
    n0 = pb.noise_psd_w_per_hz

    def rates(gain, bw, rows):
        out = np.zeros((rows.shape[0], k))
        b = np.broadcast_to(bw, rows.shape)
        for c in range(k):
            g = np.where(rows == c, gain[c][None, :], 0.0)
            p = water_filling_power_w_batched(g, b, n0, np.full(rows.shape[0], pb.p_max_w[c]))
            out[:, c] = subchannel_rate_bps(b, p, g, n0).sum(axis=1)
        return out

    r_s = rates(pb.gain_s, pb.bandwidth_s_hz, surjections(pb.num_subchannels_s, k))
    r_f = rates(pb.gain_f, pb.bandwidth_f_hz, surjections(pb.num_subchannels_f, k))
    best = np.inf
    for split, rank in pb.candidate_pairs():
        t = RoundTerms.from_problem(pb, split, rank)
        times = t.base_s + (t.s_bits / r_s)[:, None, :] + (t.f_bits / r_f)[None, :, :]
        best = min(best, t.rounds * (times.max(axis=2).min() + t.tail_s))
    return best


def test_bcd_is_near_the_exact_optimum_on_small_instances():
    gaps = []
    for seed in range(12):
        pb = instance(seed, k=3, m=5, n=4)
        gaps.append(solve_bcd(pb).objective_s / brute_force(pb) - 1)
    gaps = np.array(gaps)
    assert gaps.min() >= -1e-9  # never below the optimum: the brute force is right
    assert gaps.mean() <= 0.01 and gaps.max() <= 0.05


@pytest.mark.parametrize("seed,caps", [(0, (None, None)), (1, (0.2, None)), (2, (0.2, 0.1))])
def test_solution_is_feasible_and_scored_by_evaluate(seed, caps):
    pb = instance(seed, k=4, m=10, n=6, caps=caps)
    sol = solve(pb)
    check_allocation(pb, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
    again = evaluate(pb, sol.split, sol.rank, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
    assert again.objective_s == pytest.approx(sol.objective_s, rel=1e-12)
    assert sol.method == "bcd" and sol.status in ("converged", "feasible") and sol.wall_time_s > 0
    # Every subchannel is used and every client has at least one on each band.
    for assign in (sol.assign_s, sol.assign_f):
        assert np.all(assign >= 0)
        assert np.all(np.bincount(assign, minlength=4) >= 1)
    assert sol.lower_bound_s <= sol.objective_s


@pytest.mark.parametrize("seed,caps", [(3, (None, None)), (4, (0.25, None))])
def test_pruning_and_caching_never_change_the_answer(seed, caps):
    pb = instance(seed, k=3, m=6, n=4, caps=caps, profile=synthetic_profile(splits=[1, 3, 8, 20, 29]))
    ref = solve_bcd(pb, prune=False, cache=False)
    for opts in ({}, {"cache": False}, {"prune": False}):
        sol = solve_bcd(pb, **opts)
        assert (sol.split, sol.rank) == (ref.split, ref.rank)
        assert sol.objective_s == ref.objective_s
        assert np.array_equal(sol.assign_s, ref.assign_s) and np.array_equal(sol.assign_f, ref.assign_f)
    assert "pruned" in solve_bcd(pb).notes[0]


def test_fixed_split_and_rank_are_respected():
    pb = instance(5, k=3, m=6, n=5)
    assert solve(pb, split=12).split == 12
    assert solve(pb, rank=4).rank == 4
    sol = solve(pb, split=24, rank=1)
    assert (sol.split, sol.rank) == (24, 1)
    free = solve(pb)
    assert free.objective_s <= sol.objective_s * (1 + 1e-12)
    with pytest.raises(SolverError, match="split=13 is not allowed"):
        solve(pb, split=13)
    with pytest.raises(SolverError, match="rank=3 is not allowed"):
        solve(pb, rank=3)


@pytest.mark.parametrize("seed,caps", [(6, (None, None)), (7, (None, None)), (8, (0.3, 0.2))])
def test_bcd_is_never_worse_than_the_baselines(seed, caps):
    pb = instance(seed, k=5, m=16, n=8, caps=caps)
    best = solve(pb).objective_s
    for method in ("equal", "random", "max-power"):
        assert best <= solve(pb, method).objective_s * (1 + 1e-9), method


def test_bcd_is_deterministic_and_takes_a_warm_start():
    pb = instance(9, k=4, m=12, n=6)
    a, b = solve(pb), solve(pb)
    assert a.objective_s == b.objective_s and np.array_equal(a.assign_s, b.assign_s)
    warm = solve(pb, init=(a.assign_s, a.assign_f), split=a.split, rank=a.rank)
    assert warm.objective_s <= a.objective_s * (1 + 1e-12)
    bad = solve(pb, init=(np.zeros(12, dtype=int), a.assign_f))
    assert any("warm start ignored" in n for n in bad.notes)


def test_more_clients_than_subchannels_is_a_clear_error():
    with pytest.raises(SolverError, match="K=5 clients but only M=4"):
        instance(0, k=5, m=4, n=8)


def test_unknown_method_and_option_are_clear_errors():
    pb = instance(0)
    with pytest.raises(SolverError, match="unknown solver method 'bdc'; allowed: bcd, exact"):
        solve(pb, "bdc")
    with pytest.raises(SolverError, match="bcd: unknown option\\(s\\) tolerance"):
        solve(pb, tolerance=1e-3)
    assert list(METHODS)[:1] == ["bcd"] and {"exact", "gurobi", "relaxation", "equal", "random",
                                            "max-power"} <= set(METHODS)


def test_bottleneck_matching_minimises_the_largest_cost():
    rng = np.random.default_rng(0)
    for _ in range(20):
        cost = rng.exponential(1.0, size=(3, 5))
        cols = bottleneck_matching(cost)
        assert len(set(cols.tolist())) == 3
        best = min(max(cost[r, c] for r, c in enumerate(p)) for p in itertools.permutations(range(5), 3))
        assert cost[np.arange(3), cols].max() == pytest.approx(best)


def test_greedy_then_local_search_only_improve():
    pb = instance(10, k=6, m=24, n=12)
    band_s, band_f = bands_of(pb)
    terms = RoundTerms.from_problem(pb, 6, 4)
    b_s, b_f = band_s.initial_budgets_w(), band_f.initial_budgets_w()
    a_s, a_f = greedy_allocation(band_s, band_f, terms, b_s, b_f)
    assert np.all(a_s >= 0) and np.all(np.bincount(a_s, minlength=6) >= 1)
    _, _, _, before = local_search(band_s, band_f, terms, b_s, b_f, a_s, a_f, 0)
    l_s, l_f, moves, after = local_search(band_s, band_f, terms, b_s, b_f, a_s, a_f)
    assert after <= before and np.all(np.bincount(l_s, minlength=6) >= 1)
    assert np.all(np.bincount(l_f, minlength=6) >= 1)


def test_total_caps_are_respected_by_bcd():
    pb = instance(11, k=3, m=6, n=4, caps=(0.1, 0.05))
    sol = solve(pb, split=6, rank=4)
    assert sol.power_s_w.sum() <= 0.1 * (1 + 1e-9) and sol.power_f_w.sum() <= 0.05 * (1 + 1e-9)
    assert sol.objective_s <= solve(pb, "max-power", split=6, rank=4).objective_s * (1 + 1e-9)


# -- two binding total caps: the priced search -----------------------------------------------

QUALITY_PROFILE = synthetic_profile(splits=[2, 10, 24], ranks=[1, 4, 16])


def two_cap_instance(index):
    """Instance ``index`` of the two-total-cap family of tests/solvers/test_quality.py (gaps(7, 40, ...))."""
    rng = np.random.default_rng(7)
    caps_cycle = [(0.25, 0.25), (0.15, 0.35)]
    for t in range(index + 1):
        k, m, n = int(rng.integers(2, 4)), int(rng.integers(4, 6)), int(rng.integers(3, 5))
        caps = caps_cycle[t % 2]
        pb = random_problem(rng, k, m, n, profile=QUALITY_PROFILE, total_cap_s_w=caps[0], total_cap_f_w=caps[1])
    return pb


@pytest.mark.parametrize("index", [1, 37, 38])
def test_bcd_with_two_binding_caps_is_within_3_percent(index):
    """The worst instances of the family before the priced search (3.2 %, 6.9 % and 3.8 % above the optimum)."""
    from solvers.enumeration import solve_enumeration

    pb = two_cap_instance(index)
    opt = solve_enumeration(pb)
    sol = solve_bcd(pb)
    check_allocation(pb, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
    assert opt.objective_s * (1 - 1e-9) <= sol.objective_s <= opt.objective_s * 1.03


def test_price_local_search_finds_the_trade_the_per_band_search_misses():
    """Instance 37: from the allocation bcd used to stop at, one f-band swap (the strong client takes the
    weak one's good subchannel) reaches the optimum; it pays only once both clients re-split their time."""
    from solvers.allocation import price_local_search
    from solvers.enumeration import solve_enumeration
    from solvers.power import optimal_power

    pb = two_cap_instance(37)
    band_s, band_f = bands_of(pb)
    terms = RoundTerms.from_problem(pb, 2, 16)
    a_s, a_f = np.array([1, 1, 0, 1, 0]), np.array([1, 0, 1])
    start = optimal_power(band_s, band_f, terms, a_s, a_f)
    n_s, n_f, pr, steps = price_local_search(band_s, band_f, terms, a_s, a_f, start)
    assert steps >= 1 and pr.max_time_s < start.max_time_s
    sol = evaluate(pb, 2, 16, n_s, pr.power_s_w, n_f, pr.power_f_w)
    assert sol.objective_s == pytest.approx(solve_enumeration(pb, split=2, rank=16).objective_s, rel=1e-8)


@pytest.mark.parametrize("seed,caps", [(0, (None, None)), (1, (0.2, None)), (2, (0.25, 0.25))])
def test_bcd_lower_bound_is_bcds_reported_bound_and_below_the_optimum(seed, caps):
    from solvers.bcd import bcd_lower_bound
    from solvers.enumeration import solve_enumeration

    pb = instance(seed, k=3, m=5, n=4, caps=caps)
    bound = bcd_lower_bound(pb)
    assert bound == solve_bcd(pb).lower_bound_s
    assert bound <= solve_enumeration(pb).objective_s * (1 + 1e-12)
    assert bcd_lower_bound(pb, split=12) >= bound
