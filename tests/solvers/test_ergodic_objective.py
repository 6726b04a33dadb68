"""The fading-aware objective: Problem(rate_model="ergodic") in evaluate, bcd's final choice and the bound."""
from dataclasses import replace

from pathlib import Path

import numpy as np
import pytest

import solvers
from channel_models import ergodic_spectral_efficiency_rician
from fsllm_sim.errors import SolverError
from solvers.instances import random_problem, synthetic_profile
from solvers.problem import Problem, evaluate

from solver_helpers import N0, tiny_problem


ALLOC = (np.array([0, 1, 0]), np.array([0.05, 0.1, 0.05]), np.array([0, 1]), np.array([0.1, 0.1]))


def test_ergodic_rates_are_per_subchannel_rician_means_by_hand():
    k_fac = np.array([0.0, 8.0])
    pb = tiny_problem(rate_model="ergodic", rician_k_linear=k_fac)
    r_s, r_f = pb.rates(*ALLOC)
    g = pb.gain_s
    se = ergodic_spectral_efficiency_rician
    exp_s0 = 1e6 * (se(0.05 * g[0, 0] / (N0 * 1e6), 0.0) + se(0.05 * g[0, 2] / (N0 * 1e6), 0.0))
    exp_s1 = 1e6 * se(0.1 * g[1, 1] / (N0 * 1e6), 8.0)
    np.testing.assert_allclose(r_s, [exp_s0, exp_s1], rtol=1e-12)
    gf = pb.gain_f
    np.testing.assert_allclose(r_f, [1e6 * se(0.1 * gf[0, 0] / (N0 * 1e6), 0.0),
                                     2e6 * se(0.1 * gf[1, 1] / (N0 * 2e6), 8.0)], rtol=1e-12)


def test_ergodic_objective_is_slower_than_mean_gain_and_meets_it_without_fading():
    mean = evaluate(tiny_problem(), 2, 4, *ALLOC)
    erg = evaluate(tiny_problem(rate_model="ergodic"), 2, 4, *ALLOC)  # None: every client Rayleigh
    assert erg.objective_s > mean.objective_s
    nearly_static = evaluate(tiny_problem(rate_model="ergodic", rician_k_linear=[1e9, 1e9]), 2, 4, *ALLOC)
    assert nearly_static.objective_s == pytest.approx(mean.objective_s, rel=1e-6)
    rician = evaluate(tiny_problem(rate_model="ergodic", rician_k_linear=[10.0, 10.0]), 2, 4, *ALLOC)
    assert mean.objective_s < rician.objective_s < erg.objective_s


def test_invalid_rate_model_and_k_factors_are_refused():
    with pytest.raises(SolverError, match="rate_model"):
        tiny_problem(rate_model="average")
    with pytest.raises(SolverError, match="rician_k_linear"):
        tiny_problem(rate_model="ergodic", rician_k_linear=[-1.0, 0.0])
    with pytest.raises(SolverError, match="rician_k_linear"):
        tiny_problem(rate_model="ergodic", rician_k_linear=[1.0])


def _small_random(seed=7):
    rng = np.random.default_rng(seed)
    prof = synthetic_profile(num_blocks=6, ranks=(1, 4, 16))
    return random_problem(rng, num_clients=3, num_subchannels_s=6, num_subchannels_f=4, profile=prof)


def test_bcd_picks_its_candidate_on_the_ergodic_objective():
    base = _small_random()
    # large-scale gains only (what build_problem gives with average gains)
    base = replace(base, gain_s=np.repeat(base.gain_s.mean(axis=1, keepdims=True), 6, axis=1),
                   gain_f=np.repeat(base.gain_f.mean(axis=1, keepdims=True), 4, axis=1))
    ergodic = replace(base, rate_model="ergodic", rician_k_linear=np.array([0.0, 7.9, 0.0]))
    sol_mean = solvers.solve(base, "bcd")
    sol_erg = solvers.solve(ergodic, "bcd")
    # its objective is the ergodic score of its own allocation
    rescored = evaluate(ergodic, sol_erg.split, sol_erg.rank, sol_erg.assign_s, sol_erg.power_s_w,
                        sol_erg.assign_f, sol_erg.power_f_w)
    assert sol_erg.objective_s == pytest.approx(rescored.objective_s, rel=1e-12)
    # no worse, ergodically, than the mean-gain choice scored ergodically (it is among the candidates)
    mean_rescored = evaluate(ergodic, sol_mean.split, sol_mean.rank, sol_mean.assign_s, sol_mean.power_s_w,
                             sol_mean.assign_f, sol_mean.power_f_w)
    assert sol_erg.objective_s <= mean_rescored.objective_s * (1 + 1e-12)
    assert sol_erg.objective_s > sol_mean.objective_s  # Jensen
    # the mean-gain bounds stay valid lower bounds of the ergodic objective
    assert sol_erg.lower_bound_s <= sol_erg.objective_s
    bound = solvers.solve(ergodic, "relaxation")
    assert bound.lower_bound_s <= sol_erg.objective_s * (1 + 1e-9)
    assert any("ergodic" in n for n in sol_erg.notes)


def test_bcd_is_never_worse_than_the_greedy_it_starts_from_under_ergodic_rates():
    """Regression: on this small scenario (K = 4, M = 16, N = 8, b = 4, L = 128, E = 5, seed 1) the mean-gain
    search chose rank 8 at 14.08 s while max-power's greedy at rank 16 scores 13.71 s ergodically; bcd now
    answers with the better of the two, and says so."""
    import yaml

    from fsllm_sim.config.loader import scenario_from_dict
    from fsllm_sim.engine import build_world

    d = yaml.safe_load(open("scenarios/default.yaml"))
    d["seed"] = 1
    d["clients"]["count"] = 4
    d["channel"]["s_band"]["subchannels"], d["channel"]["f_band"]["subchannels"] = 16, 8
    d["training"].update(batch_size=4, seq_len=128, local_iterations=5, learning_rate=3e-3)
    # the instance as it was found: the calibration shipped then (the default changed since, see the README)
    d["convergence"] = {"calibration": str(Path(__file__).parent / "data" / "calibration-smollm2-135m-2026-11-27.json")}
    problem = build_world(scenario_from_dict(d), profile_source="analytic", progress=False).problem
    assert problem.rate_model == "ergodic"
    bcd, start = solvers.solve(problem, "bcd"), solvers.solve(problem, "max-power")
    assert bcd.objective_s <= start.objective_s * (1 + 1e-12)
    assert bcd.objective_s == pytest.approx(13.7145, rel=1e-4) and bcd.rank == 16
    assert any("max-power" in n for n in bcd.notes) and bcd.lower_bound_s <= bcd.objective_s
    for seed in range(6):  # and on random ergodic instances
        pb = replace(random_problem(np.random.default_rng(seed), num_clients=3), rate_model="ergodic")
        assert solvers.solve(pb, "bcd").objective_s <= solvers.solve(pb, "max-power").objective_s * (1 + 1e-12)
