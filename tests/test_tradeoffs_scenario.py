"""scenarios/tradeoffs.yaml: a scenario where the split, the rank and the allocation each change the optimum.

Solved with the counted profile (FLOPs of the real SmolLM2 operations) and bcd, as `fsllm-sim optimize` does.
The optimum must be interior (l_min < l* < J - 1, r* strictly inside the rank set) and fixing any one decision
must cost at least MARGIN, measured against this run's own optimum (docs/tradeoffs.md lists the numbers: about
12 % for the split and the largest rank, 145 % for the smallest rank, 14-20 % for equal subchannels and power).
"""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import solvers
from fsllm_sim.cli import main
from fsllm_sim.config import load_scenario
from fsllm_sim.config.loader import deep_checks
from fsllm_sim.engine import build_world

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "tradeoffs.yaml"
MARGIN = 0.05  # fixing one decision costs at least 5 % of the optimised total delay (docs/tradeoffs.md)


@pytest.fixture(scope="module")
def solved(smollm2_ready):
    scenario = load_scenario(SCENARIO)
    world = build_world(scenario, profile_source="counted", progress=False, echo=lambda *a: None)
    best = solvers.solve(world.problem, "bcd")
    return scenario, world, best


def _cost(problem, best, method="bcd", **fixed) -> float:
    sol = solvers.solve(problem, method, **fixed)
    for name, value in fixed.items():
        assert getattr(sol, name) == value
    return sol.objective_s / best.objective_s - 1


def test_the_shipped_scenario_validates(smollm2_ready):
    scenario = load_scenario(SCENARIO)  # schema, ranges, cross-field checks and the device trace's values
    info = deep_checks(scenario)  # against the model's configuration: split and sequence length fit SmolLM2
    assert info
    assert main(["validate", str(SCENARIO), "--deep"]) == 0
    assert scenario.devices.speed.distribution == "trace" and scenario.solver.rates == "ergodic"


def test_the_optimum_is_interior(solved):
    scenario, world, best = solved
    problem = world.problem
    ranks = sorted(int(r) for r in scenario.lora.ranks)
    last_split = int(problem.profile.splits.max())  # J - 1
    assert scenario.split.min_layer < best.split < last_split
    assert ranks[0] < best.rank < ranks[-1]
    assert np.isfinite(best.objective_s) and best.objective_s > 0


def test_fixing_the_split_costs_delay(solved):
    scenario, world, best = solved
    for split in (scenario.split.layer, scenario.split.min_layer):  # the scenario's split, the privacy floor
        assert split != best.split
        assert _cost(world.problem, best, split=split) >= MARGIN, split


def test_fixing_the_rank_costs_delay(solved):
    scenario, world, best = solved
    for rank in (min(scenario.lora.ranks), max(scenario.lora.ranks)):
        assert _cost(world.problem, best, rank=rank) >= MARGIN, rank


def test_equal_subchannels_and_power_cost_delay(solved):
    _, world, best = solved
    assert _cost(world.problem, best, "equal") >= MARGIN  # the best (split, rank) for equal allocation
    assert _cost(world.problem, best, "equal", split=best.split, rank=best.rank) >= MARGIN  # at the optimum's pair


def test_each_ingredient_moves_the_optimum(solved):
    """The mechanisms docs/tradeoffs.md describes: memory stops the split, the loaded server pulls it deep,
    and channel diversity is what makes the allocation matter."""
    scenario, world, best = solved
    problem = world.problem
    no_memory = solvers.solve(dataclasses.replace(problem, client_memory_limit_bytes=None), "bcd")
    assert no_memory.split > best.split
    fast_server = dataclasses.replace(problem, server_flops_per_s=problem.server_flops_per_s * 50e12
                                      / scenario.server.flops_per_s)  # the default scenario's 50 TFLOP/s
    assert solvers.solve(fast_server, "bcd").split == scenario.split.min_layer
    mean_gain = lambda g: np.full_like(g, np.exp(np.mean(np.log(g))))  # noqa: E731
    alike = dataclasses.replace(problem, gain_s=mean_gain(problem.gain_s), gain_f=mean_gain(problem.gain_f))
    assert _cost(alike, solvers.solve(alike, "bcd"), "equal") < _cost(problem, best, "equal")


def test_run_with_analytic_training(smollm2_ready, tmp_path):
    assert main(["run", str(SCENARIO), "--training", "analytic", "--rounds", "2", "--runs-dir",
                 str(tmp_path / "runs"), "--no-progress"]) == 0
