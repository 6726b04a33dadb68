"""Exact solvers: enumeration, MILP with outer approximation, and the exact power control they share."""
import dataclasses
import itertools

import numpy as np
import pytest

from channel_models.ofdma import water_filling_power_w_batched
from solvers import power
from solvers.enumeration import count_surjections, enumeration_size, solve_enumeration, surjections
from solvers.exact import greedy_assignment, solve_exact, solve_milp
from solvers.exact_power import AssignmentPower, pair_terms
from solvers.instances import random_problem, synthetic_profile
from solvers.milp import LinearModel, safe_lp_bound, solve_highs
from solvers.problem import check_allocation, evaluate

PROFILE = synthetic_profile(splits=[2, 12, 24], ranks=[1, 4, 16])


def instance(seed, k=3, m=5, n=4, caps=(None, None)):
    return random_problem(np.random.default_rng(seed), k, m, n, profile=PROFILE,
                          total_cap_s_w=caps[0], total_cap_f_w=caps[1])


# -- enumeration ---------------------------------------------------------------------------

@pytest.mark.parametrize("items,clients", [(4, 2), (5, 3), (4, 4), (6, 3), (3, 1)])
def test_surjection_count_matches_the_list(items, clients):
    rows = surjections(items, clients)
    assert len(rows) == count_surjections(items, clients)
    assert len({tuple(r) for r in rows}) == len(rows)
    assert all(set(r) == set(range(clients)) for r in rows)


def _brute_force(problem, split, rank):
    """Every assignment, unused subchannels included, with water-filling (per-client caps only)."""
    k = problem.num_clients
    best = np.inf
    n0 = problem.noise_psd_w_per_hz
    for a_s in itertools.product(range(-1, k), repeat=problem.num_subchannels_s):
        a_s = np.array(a_s)
        if len(set(a_s[a_s >= 0])) < k:
            continue
        mask = a_s[None, :] == np.arange(k)[:, None]
        p_s = water_filling_power_w_batched(problem.gain_s, problem.bandwidth_s_hz[None, :], n0,
                                            problem.p_max_w, mask).sum(axis=0)
        for a_f in itertools.product(range(-1, k), repeat=problem.num_subchannels_f):
            a_f = np.array(a_f)
            if len(set(a_f[a_f >= 0])) < k:
                continue
            mask_f = a_f[None, :] == np.arange(k)[:, None]
            p_f = water_filling_power_w_batched(problem.gain_f, problem.bandwidth_f_hz[None, :], n0,
                                                problem.p_max_w, mask_f).sum(axis=0)
            best = min(best, evaluate(problem, split, rank, a_s, p_s, a_f, p_f).objective_s)
    return best


@pytest.mark.parametrize("seed", range(3))
def test_enumeration_skipping_unused_subchannels_loses_nothing(seed):
    """Surjective assignments suffice: brute force over every assignment (with -1) agrees."""
    pb = instance(seed, k=2, m=4, n=3)
    sol = solve_enumeration(pb, split=12, rank=4)
    assert sol.objective_s == pytest.approx(_brute_force(pb, 12, 4), rel=1e-12)
    assert sol.status == "optimal" and sol.lower_bound_s == sol.objective_s


def test_enumeration_returns_a_feasible_scored_solution():
    pb = instance(4, caps=(0.2, 0.25))
    sol = solve_enumeration(pb)
    check_allocation(pb, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
    again = evaluate(pb, sol.split, sol.rank, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
    assert again.objective_s == sol.objective_s
    assert 0 <= sol.objective_s - sol.lower_bound_s <= 1e-8 * sol.objective_s


# -- exact power for a fixed assignment ------------------------------------------------------

@pytest.mark.parametrize("caps", [(0.15, None), (None, 0.15), (0.2, 0.2), (0.1, 0.3)])
def test_exact_power_beats_every_point_of_a_grid(caps):
    """Two clients on fixed subchannels: a dense grid over how each splits its power never wins."""
    pb = instance(11, k=2, m=2, n=2, caps=caps)
    a_s, a_f = np.array([0, 1]), np.array([1, 0])
    terms = pair_terms(pb, 12, 4)
    sol = AssignmentPower(pb, a_s, a_f).solve(terms)
    check_allocation(pb, a_s, sol.power_s_w, a_f, sol.power_f_w)
    ours = evaluate(pb, 12, 4, a_s, sol.power_s_w, a_f, sol.power_f_w).objective_s
    cap_s = pb.p_total_s_w or np.inf
    cap_f = pb.p_total_f_w or np.inf
    pm = pb.p_max_w[0]
    grid = np.linspace(0.0, 1.0, 61)
    best = np.inf
    for u, v in itertools.product(grid, grid):  # client 0's share of each band's budget
        ps = np.array([u, 1 - u]) * min(2 * pm, cap_s)
        pf = np.array([1 - v, v]) * min(2 * pm, cap_f)  # subchannel 0 is client 1's on the f-band
        if ps.max() > pm or pf.max() > pm:
            continue
        best = min(best, evaluate(pb, 12, 4, a_s, ps, a_f, pf).objective_s)
    assert ours <= best * (1 + 1e-9)
    assert terms.objective(sol.core_lower_s) <= ours * (1 + 1e-12)
    assert ours <= best * (1 + 1e-9) and ours >= best * (1 - 0.02)  # the grid is fine enough to be close


@pytest.mark.parametrize("seed,caps", [(0, (0.2, None)), (1, (None, 0.15)), (2, (0.2, 0.2)), (3, (0.1, 0.3))])
def test_exact_power_agrees_with_the_heuristics_power_step(seed, caps):
    """Two independent implementations (solvers.exact_power and solvers.power) find the same optimum."""
    pb = instance(seed, k=3, m=6, n=4, caps=caps)
    rng = np.random.default_rng(seed)
    a_s = np.concatenate([np.arange(3), rng.integers(0, 3, 3)])
    a_f = np.concatenate([np.arange(3), rng.integers(0, 3, 1)])
    ours = AssignmentPower(pb, a_s, a_f).solve(pair_terms(pb, 12, 4))
    theirs = power.optimal_power(*power.bands_of(pb), power.RoundTerms.from_problem(pb, 12, 4), a_s, a_f)
    a = evaluate(pb, 12, 4, a_s, ours.power_s_w, a_f, ours.power_f_w).objective_s
    b = evaluate(pb, 12, 4, a_s, theirs.power_s_w, a_f, theirs.power_f_w).objective_s
    assert a == pytest.approx(b, rel=1e-8)
    assert a <= b * (1 + 1e-9)


# -- MILP with outer approximation ----------------------------------------------------------

CASES = [(0, (None, None)), (1, (None, None)), (2, (0.2, None)), (3, (None, 0.2)), (4, (0.25, 0.25)),
         (5, (0.15, 0.3))]


@pytest.mark.parametrize("seed,caps", CASES)
def test_milp_matches_enumeration(seed, caps):
    pb = instance(seed, caps=caps)
    enum = solve_enumeration(pb, rank=4)
    milp = solve_milp(pb, rank=4, gap_tol=1e-4)
    assert milp.status == "optimal"
    check_allocation(pb, milp.assign_s, milp.power_s_w, milp.assign_f, milp.power_f_w)
    # bound <= true optimum <= polished MILP solution, and the gap is the reported one
    assert milp.lower_bound_s <= enum.objective_s * (1 + 1e-9)
    assert enum.objective_s <= milp.objective_s * (1 + 1e-9)
    assert milp.objective_s <= enum.objective_s * (1 + milp.gap + 1e-9)
    assert milp.gap <= 1e-4


def test_solve_exact_auto_picks_by_size():
    small = instance(0, k=2, m=4, n=3)
    sol = solve_exact(small, split=12)
    assert sol.method == "exact" and "enumeration" in sol.notes[0]
    sol2 = solve_exact(small, split=12, enumeration_limit=0)
    assert "outer approximation" in sol2.notes[-1]
    assert sol2.objective_s == pytest.approx(sol.objective_s, rel=1e-4)
    assert enumeration_size(small) == count_surjections(4, 2) * count_surjections(3, 2)


def test_exact_through_the_registry_is_consistent():
    from solvers import solve

    pb = instance(6)
    for algorithm in ("enumeration", "milp"):
        sol = solve(pb, "exact", split=2, algorithm=algorithm)
        assert sol.split == 2 and sol.status == "optimal"
        assert sol.lower_bound_s <= sol.objective_s


def test_milp_reports_time_limit_honestly():
    pb = random_problem(np.random.default_rng(9), 6, 16, 10, profile=PROFILE)
    sol = solve_milp(pb, split=12, rank=4, time_limit_s=1.0)
    assert sol.status in ("time_limit", "optimal")
    assert sol.lower_bound_s <= sol.objective_s
    check_allocation(pb, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
    if sol.status == "time_limit":
        assert sol.gap > 0


def test_exact_with_a_client_that_cannot_transmit():
    pb = instance(3, k=2, m=4, n=3)
    gain = pb.gain_s.copy()
    gain[0] = 0.0
    dead = dataclasses.replace(pb, gain_s=gain)
    for algorithm in ("enumeration", "milp"):
        sol = solve_exact(dead, algorithm=algorithm)
        assert sol.objective_s == np.inf and sol.lower_bound_s == np.inf


def test_greedy_assignment_gives_everyone_a_subchannel():
    pb = instance(2, k=3, m=4, n=3)
    a_s, a_f = greedy_assignment(pb)
    assert set(a_s) == {0, 1, 2} and set(a_f) == {0, 1, 2}


# -- the LP machinery ------------------------------------------------------------------------

def test_safe_lp_bound_is_valid_for_any_multipliers():
    rng = np.random.default_rng(0)
    m = LinearModel()
    cols = m.add_cols(6, cost=rng.uniform(-1, 1, 6), lower=0.0, upper=2.0)
    for _ in range(5):
        m.add_row(cols, rng.uniform(-1, 1, 6), lower=-1.0, upper=1.0)
    m.add_row(cols, np.ones(6), lower=1.0)
    res = solve_highs(m)
    assert res.status == "optimal"
    assert safe_lp_bound(m, res.row_dual) == pytest.approx(res.objective, abs=1e-9)
    for _ in range(20):
        assert safe_lp_bound(m, rng.normal(size=m.num_rows)) <= res.objective + 1e-12


# -- warm start, time limit, progress ----------------------------------------------------------

def test_milp_under_a_tiny_time_limit_returns_no_worse_than_bcd():
    """Without the warm start a MILP stopped after 0.01 s returned a greedy allocation 2.6x bcd's."""
    from solvers import solve

    pb = random_problem(np.random.default_rng(9), 6, 16, 10, profile=PROFILE)
    bcd = solve(pb, "bcd")
    sol = solve(pb, "exact", algorithm="milp", time_limit_s=0.01)
    check_allocation(pb, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
    assert sol.objective_s <= bcd.objective_s
    assert sol.lower_bound_s <= sol.objective_s and sol.gap is not None
    assert sol.status in ("time_limit", "optimal")
    if sol.status == "optimal":
        assert sol.gap <= 1e-4
    else:
        assert sol.gap > 1e-4
    assert any("returned bcd's allocation" in n or "the MILP found a better" in n for n in sol.notes), sol.notes
    assert any(n.startswith("exact: certified gap") for n in sol.notes)


@pytest.mark.parametrize("caps", [(None, None), (0.25, 0.25)])
def test_milp_status_optimal_only_when_proven(caps):
    pb = instance(1, caps=caps)
    sol = solve_milp(pb, rank=4)
    assert sol.status == "optimal" and sol.gap <= 1e-4
    cold = solve_milp(pb, rank=4, warm_start=False)
    assert cold.status == "optimal"
    assert sol.objective_s == pytest.approx(cold.objective_s, rel=2e-4)


def test_enumeration_stopped_by_the_time_limit_keeps_bcds_allocation():
    from solvers.bcd import solve_bcd

    pb = instance(4, caps=(0.25, 0.25))
    sol = solve_exact(pb, algorithm="enumeration", time_limit_s=1e-9)
    assert sol.status == "time_limit" and sol.method == "exact"
    assert sol.objective_s <= solve_bcd(pb).objective_s
    assert sol.lower_bound_s <= sol.objective_s
    check_allocation(pb, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)


def test_exact_progress_bar_and_time_limit_validation(capsys):
    from fsllm_sim.errors import SolverError

    pb = instance(2)
    quiet = solve_milp(pb, rank=4)
    shown = solve_milp(pb, rank=4, progress=True)
    assert "exact: MILP" in capsys.readouterr().err
    assert shown.objective_s == quiet.objective_s
    for algorithm in ("milp", "enumeration"):
        with pytest.raises(SolverError, match="time_limit_s"):
            solve_exact(pb, algorithm=algorithm, time_limit_s=0)
