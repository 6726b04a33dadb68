"""The default scenario is one where learning matters: read against the shipped calibration (not a fixture)."""
from pathlib import Path

import numpy as np

from fsllm_sim.config import load_scenario, scenario_from_dict
from fsllm_sim.convergence import load_convergence

DEFAULT = Path(__file__).resolve().parents[1] / "scenarios" / "default.yaml"


def test_the_default_needs_at_least_ten_rounds_at_every_rank_without_a_warning():
    scenario = load_scenario(DEFAULT)
    model = load_convergence(scenario)
    ranks = np.array(sorted(scenario.lora.ranks))
    rounds = model.rounds(ranks)
    assert np.all(rounds >= 10), dict(zip(ranks.tolist(), rounds.tolist()))
    assert np.all(np.diff(rounds) < 0)  # more rank, fewer rounds: the rank is a decision
    assert model.regime_warnings(scenario) == []
    # measured at the default's own settings: no tokens-per-step correction, no floor
    assert model.batch_factor == 1.0 and model.tokens_per_round == 1024
    assert model.measured_at["num_clients"] == scenario.clients.count
    assert model.measured_at["local_iterations"] == scenario.training.local_iterations


def test_a_rank_outside_the_measured_ones_warns_in_one_line():
    scenario = scenario_from_dict({"lora": {"rank": 32, "ranks": [8, 32]}})
    lines = [w for w in load_convergence(scenario).regime_warnings(scenario) if "extrapolation of the fit" in w]
    assert len(lines) == 1 and "rank(s) 32" in lines[0] and "\n" not in lines[0]
