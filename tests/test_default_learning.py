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


def _bcd_choices(tmp_path, name, grid):
    """bcd's (split, rank) per point of a sweep of the default, seed 1 (the shipped sweeps' first seed)."""
    import csv

    import yaml

    from fsllm_sim.jobs.sweep import run_sweep_file

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"base": str(DEFAULT), **grid, "methods": ["bcd"], "seeds": 1,
                                    "evaluator": "analytic", "profile": "counted"}))
    out = run_sweep_file(str(path), out_dir=str(tmp_path / name), workers=1, progress=False, echo=lambda *a: None)
    rows = list(csv.DictReader((out / "results.csv").open()))
    return [(int(r["split"]), int(r["rank"])) for r in rows]


def test_the_optimisers_rank_moves_with_bandwidth_and_heterogeneity_at_the_default(tmp_path):
    # The points of scenarios/sweeps/bandwidth.yaml and heterogeneity.yaml where bcd's rank changes (seed 1):
    # scarce spectrum makes the adapter upload dear, so a lower rank wins; a wide device spread makes the
    # slow devices' compute dominate, and more rank (fewer rounds) wins.
    bandwidth = _bcd_choices(tmp_path, "bandwidth", {"zip": {"channel.s_band.subchannels": [16, 128],
                                                              "channel.f_band.subchannels": [8, 64]}})
    assert bandwidth == [(1, 4), (1, 8)]
    spread = _bcd_choices(tmp_path, "heterogeneity", {"axes": {"devices.speed.sigma": [0.0, 1.5]}})
    assert spread == [(1, 4), (1, 8)]
