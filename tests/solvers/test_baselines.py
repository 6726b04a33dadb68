"""Baselines (solvers/baselines.py) and the registry's guarantees (solvers/registry.py)."""
import numpy as np
import pytest

from fsllm_sim.errors import SolverError
from solvers import METHODS, register_method, solve
from solvers.baselines import equal_assignment, random_assignment
from solvers.instances import random_problem, synthetic_profile
from solvers.problem import check_allocation, evaluate

PROFILE = synthetic_profile(splits=[2, 10, 20], ranks=[1, 8])
BASELINES = ("equal", "random", "max-power")


def instance(seed, k=4, m=11, n=7, caps=(None, None)):
    return random_problem(np.random.default_rng(seed), k, m, n, profile=PROFILE,
                          total_cap_s_w=caps[0], total_cap_f_w=caps[1])


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("caps", [(None, None), (0.3, 0.1)])
def test_baselines_are_feasible_and_respect_caps(method, caps):
    pb = instance(0, caps=caps)
    sol = solve(pb, method)
    check_allocation(pb, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
    assert sol.method == method and sol.status == "feasible"
    for assign in (sol.assign_s, sol.assign_f):
        assert np.all(assign >= 0) and np.all(np.bincount(assign, minlength=4) >= 1)
    if caps[0] is not None:
        # The caps bind (4 x 0.2 W > 0.3 W): every client's cap is scaled by one common factor.
        assert sol.power_s_w.sum() == pytest.approx(0.3) and sol.power_f_w.sum() == pytest.approx(0.1)
    else:
        per_client = np.bincount(sol.assign_s, sol.power_s_w, 4)
        assert per_client == pytest.approx(pb.p_max_w)


@pytest.mark.parametrize("method", BASELINES)
def test_each_client_splits_its_budget_equally(method):
    pb = instance(1)
    sol = solve(pb, method)
    for assign, power in ((sol.assign_s, sol.power_s_w), (sol.assign_f, sol.power_f_w)):
        for c in range(4):
            mine = power[assign == c]
            assert mine == pytest.approx(np.full(mine.size, pb.p_max_w[c] / mine.size))


@pytest.mark.parametrize("method", BASELINES)
def test_free_pair_is_the_best_for_the_rule_and_fixed_pairs_are_respected(method):
    pb = instance(2)
    free = solve(pb, method)
    fixed = [solve(pb, method, split=s, rank=r) for s, r in pb.candidate_pairs()]
    assert all((f.split, f.rank) == p for f, p in zip(fixed, pb.candidate_pairs()))
    assert free.objective_s == pytest.approx(min(f.objective_s for f in fixed), rel=1e-12)
    assert solve(pb, method, rank=8).rank == 8 and solve(pb, method, split=20).split == 20


def test_equal_layouts():
    assert equal_assignment(3, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert equal_assignment(3, 7, "contiguous").tolist() == [0, 0, 0, 1, 1, 2, 2]
    for k, s in [(1, 1), (3, 3), (4, 11), (5, 64)]:
        for layout in ("interleaved", "contiguous"):
            counts = np.bincount(equal_assignment(k, s, layout), minlength=k)
            assert counts.max() - counts.min() <= 1 and counts.min() >= 1
    sol = solve(instance(3), "equal", layout="contiguous")
    assert np.all(np.diff(sol.assign_s) >= 0)
    with pytest.raises(SolverError, match="layout='blocks'"):
        solve(instance(3), "equal", layout="blocks")


def test_random_is_seeded():
    pb = instance(4, k=3, m=20, n=12)
    a, b, c = solve(pb, "random", seed=1), solve(pb, "random", seed=1), solve(pb, "random", seed=2)
    assert np.array_equal(a.assign_s, b.assign_s) and a.objective_s == b.objective_s
    assert not np.array_equal(a.assign_s, c.assign_s)
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert np.all(np.bincount(random_assignment(rng, 5, 6), minlength=5) >= 1)


def test_baselines_reject_unknown_options():
    with pytest.raises(SolverError, match="max-power: unknown option"):
        solve(instance(0), "max-power", seed=3)


def test_solve_refuses_a_method_that_misreports_its_objective():
    def liar(problem, split=None, rank=None, **options):
        sol = solve(problem, "equal", split=split, rank=rank)
        sol.objective_s *= 0.5
        return sol

    def boastful(problem, split=None, rank=None, **options):
        sol = solve(problem, "equal", split=split, rank=rank)
        sol.status = "optimal"
        return sol

    def wrong_split(problem, split=None, rank=None, **options):
        return solve(problem, "equal", split=2)

    register_method("test-liar", liar)
    register_method("test-boastful", boastful)
    register_method("test-wrong-split", wrong_split)
    try:
        with pytest.raises(SolverError, match="evaluates to"):
            solve(instance(0), "test-liar")
        sol = solve(instance(0), "test-boastful")
        assert sol.status == "feasible" and "not a certified method" in sol.notes[-1]
        with pytest.raises(SolverError, match="returned split=2, but split=10 was fixed"):
            solve(instance(0), "test-wrong-split", split=10)
        with pytest.raises(SolverError, match="already registered"):
            register_method("test-liar", liar)
    finally:
        for name in ("test-liar", "test-boastful", "test-wrong-split"):
            METHODS.pop(name, None)


def test_solve_rejects_non_problems():
    with pytest.raises(SolverError, match="needs a solvers.Problem"):
        solve({"gain_s": []})


def test_baseline_scores_are_evaluate_scores():
    pb = instance(5)
    for method in BASELINES:
        sol = solve(pb, method)
        ref = evaluate(pb, sol.split, sol.rank, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
        assert ref.objective_s == sol.objective_s
