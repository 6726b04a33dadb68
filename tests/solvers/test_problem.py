"""The problem's arrays, constraints and objective (solvers/problem.py, fsllm_sim/delay.py)."""
import json

import numpy as np
import pytest

from fsllm_sim.errors import SolverError
from solvers.instances import random_problem, synthetic_profile
from solvers.power import RoundTerms
from solvers.problem import Problem, SplitRankProfile, check_allocation, evaluate

from solver_helpers import N0, tiny_problem


def shannon(b, p, g):
    return b * np.log2(1 + p * g / (N0 * b))


def test_evaluate_matches_a_hand_computation():
    pb = tiny_problem()
    a_s, p_s = np.array([0, 1, 0]), np.array([0.05, 0.1, 0.05])
    a_f, p_f = np.array([0, 1]), np.array([0.1, 0.1])
    sol = evaluate(pb, 2, 4, a_s, p_s, a_f, p_f)
    r_s = np.array([shannon(1e6, 0.05, 1e-10) + shannon(1e6, 0.05, 1e-12), shannon(1e6, 0.1, 1e-10)])
    r_f = np.array([shannon(1e6, 0.1, 1e-10), shannon(2e6, 0.1, 1e-10)])
    dev = np.array([1e9, 2e9])
    tau = 2e9 / dev + 8e6 / r_s + 3e9 / 3e9 + 8e6 / np.array([16e6, 8e6]) + 4e9 / dev
    client_round = 3 * tau + 8e6 / r_f
    round_s = client_round.max() + 0.25 + 8e6 / 4e6
    assert sol.breakdown.client_round_s == pytest.approx(client_round, rel=1e-12)
    assert sol.round_time_s == pytest.approx(round_s, rel=1e-12)
    assert sol.rounds == pytest.approx(10 + 20 / 4)
    assert sol.objective_s == pytest.approx((10 + 20 / 4) * round_s, rel=1e-12)


def test_round_terms_reproduce_evaluate():
    pb = random_problem(np.random.default_rng(3), 4, 9, 6)
    rng = np.random.default_rng(0)
    a_s = np.concatenate([np.arange(4), rng.integers(0, 4, 5)])
    a_f = np.concatenate([np.arange(4), rng.integers(0, 4, 2)])
    p_s, p_f = rng.uniform(0.001, 0.03, 9), rng.uniform(0.001, 0.05, 6)
    for split, rank in [(1, 1), (14, 4), (29, 16)]:
        sol = evaluate(pb, split, rank, a_s, p_s, a_f, p_f)
        terms = RoundTerms.from_problem(pb, split, rank)
        r_s, r_f = pb.rates(a_s, p_s, a_f, p_f)
        assert terms.objective(r_s, r_f) == pytest.approx(sol.objective_s, rel=1e-12)
        assert terms.client_times(r_s, r_f) == pytest.approx(sol.breakdown.client_round_s, rel=1e-12)


def test_more_clients_than_subchannels_is_a_clear_error():
    with pytest.raises(SolverError, match="K=3 clients but only M=2"):
        random_problem(np.random.default_rng(0), 3, 2, 5)
    with pytest.raises(SolverError, match="K=3 clients but only N=2"):
        random_problem(np.random.default_rng(0), 3, 5, 2)


@pytest.mark.parametrize("field,value,match", [
    ("gain_s", [[1e-10, -1.0, 1e-10], [1e-10, 1e-10, 1e-10]], "gains must be finite"),
    ("p_max_w", [0.1, 0.0], "p_max_w"),
    ("bandwidth_f_hz", [1e6, 1e6, 1e6], "bandwidth_f_hz has shape"),
    ("local_iterations", 0, "local_iterations"),
    ("p_total_s_w", -1.0, "p_total_s_w"),
    ("min_split", 5, "no \\(split, rank\\) pair"),
])
def test_problem_rejects_bad_fields(field, value, match):
    with pytest.raises(SolverError, match=match):
        tiny_problem(**{field: value})


def test_candidate_pairs_respect_min_split_and_memory():
    prof = synthetic_profile(num_blocks=4, ranks=(1, 8))
    mem = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])
    prof = SplitRankProfile(**{**prof.__dict__, "client_memory_bytes": mem})
    pb = random_problem(np.random.default_rng(0), 2, 3, 3, profile=prof, min_split=2)
    pb = Problem(**{**pb.__dict__, "client_memory_limit_bytes": np.array([6.5, 10.0])})
    assert pb.candidate_pairs() == [(2, 1), (2, 8), (3, 1)]
    with pytest.raises(SolverError, match="not an allowed pair"):
        evaluate(pb, 1, 1, [0, 1, 0], [0.1] * 3, [0, 1, 0], [0.1] * 3)


def test_check_allocation_catches_every_violation():
    pb = tiny_problem(p_total_s_w=0.12)
    ok = ([0, 1, 0], [0.05, 0.05, 0.01], [0, 1], [0.1, 0.1])
    check_allocation(pb, *ok)
    bad = {
        "no subchannel": ([0, 0, 0], [0.01] * 3, [0, 1], [0.1, 0.1]),
        "above its cap": ([0, 1, 0], [0.02, 0.02, 0.02], [0, 1], [0.1, 0.2]),
        "above the cap": ([0, 1, 0], [0.05, 0.05, 0.05], [0, 1], [0.1, 0.1]),
        "outside": ([0, 2, 0], [0.01] * 3, [0, 1], [0.1, 0.1]),
        "length": ([0, 1], [0.01] * 2, [0, 1], [0.1, 0.1]),
        ">= 0": ([0, 1, 0], [0.01, -0.01, 0.01], [0, 1], [0.1, 0.1]),
    }
    for match, alloc in bad.items():
        with pytest.raises(SolverError, match=match):
            check_allocation(pb, *alloc)
    # Power on an unused subchannel does not count against any cap.
    check_allocation(pb, [0, 1, -1], [0.05, 0.05, 5.0], [0, 1], [0.1, 0.1])


def test_zero_rate_gives_infinite_time_not_an_error():
    pb = tiny_problem()
    sol = evaluate(pb, 1, 1, [0, 1, 0], [0.0, 0.1, 0.0], [0, 1], [0.1, 0.1])
    assert np.isinf(sol.objective_s) and sol.breakdown.straggler == 0


def test_solution_serialises_to_json():
    pb = tiny_problem()
    sol = evaluate(pb, 1, 4, [0, 1, 0], [0.05, 0.1, 0.05], [0, 1], [0.1, 0.1], method="hand")
    sol.lower_bound_s = sol.objective_s * 0.5
    data = json.loads(sol.to_json())
    assert data["method"] == "hand" and data["split"] == 1 and data["rank"] == 4
    assert data["gap"] == pytest.approx(0.5)
    assert data["breakdown"]["round_s"] == pytest.approx(sol.round_time_s)
