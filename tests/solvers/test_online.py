"""The per-round online policy (solvers/online.py)."""
import numpy as np
import pytest

from fsllm_sim.errors import SolverError
from solvers import OnlinePolicy
from solvers.instances import random_problem, synthetic_profile
from solvers.problem import check_allocation

PROFILE = synthetic_profile(splits=[1, 8, 20], ranks=[1, 4, 16])


def template(seed=0, k=4, m=12, n=8):
    return random_problem(np.random.default_rng(seed), k, m, n, profile=PROFILE)


def fading_rounds(pb, rounds, seed=0, rho=0.9):
    """Gains under first-order Gauss-Markov Rayleigh fading around the template's large-scale gain."""
    rng = np.random.default_rng(seed)
    large_s = pb.gain_s.mean(axis=1, keepdims=True)
    large_f = pb.gain_f.mean(axis=1, keepdims=True)

    def cn(shape):
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2)

    h_s, h_f = cn(pb.gain_s.shape), cn(pb.gain_f.shape)
    out = []
    for _ in range(rounds):
        out.append((large_s * np.abs(h_s) ** 2, large_f * np.abs(h_f) ** 2))
        h_s = rho * h_s + np.sqrt(1 - rho ** 2) * cn(h_s.shape)
        h_f = rho * h_f + np.sqrt(1 - rho ** 2) * cn(h_f.shape)
    return out


def test_decisions_are_feasible_and_keep_split_and_rank():
    pb = template()
    policy = OnlinePolicy(pb)
    sols = [policy.decide(g_s, g_f, t) for t, (g_s, g_f) in enumerate(fading_rounds(pb, 5))]
    for t, (sol, (g_s, g_f)) in enumerate(zip(sols, fading_rounds(pb, 5))):
        round_problem = policy.problem_for(g_s, g_f, t)
        check_allocation(round_problem, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
        assert np.isfinite(sol.objective_s)
    assert len({(s.split, s.rank) for s in sols}) == 1
    assert "chosen this round" in sols[0].notes[-1] and "warm-started" in sols[1].notes[-1]
    assert len(policy.history) == 5 and policy.last is sols[-1]


def test_policy_is_deterministic():
    pb = template(1)
    rounds = fading_rounds(pb, 4, seed=3)
    runs = []
    for _ in range(2):
        policy = OnlinePolicy(pb)
        runs.append([policy.decide(g_s, g_f, t) for t, (g_s, g_f) in enumerate(rounds)])
    for a, b in zip(*runs):
        assert a.objective_s == b.objective_s
        assert np.array_equal(a.assign_s, b.assign_s) and np.array_equal(a.assign_f, b.assign_f)


def test_warm_start_is_as_good_as_a_cold_start():
    pb = template(2)
    rounds = fading_rounds(pb, 4, seed=5)
    warm, cold = OnlinePolicy(pb), OnlinePolicy(pb, warm_start=False)
    plain = dict(kicks=0)  # without perturbations the warm start is one more start: never worse
    warm0, cold0 = OnlinePolicy(pb, **plain), OnlinePolicy(pb, warm_start=False, **plain)
    for t, (g_s, g_f) in enumerate(rounds):
        w, c = warm.decide(g_s, g_f, t), cold.decide(g_s, g_f, t)
        assert (w.split, w.rank) == (c.split, c.rank)
        assert w.objective_s <= c.objective_s * 1.01
        w0, c0 = warm0.decide(g_s, g_f, t), cold0.decide(g_s, g_f, t)
        assert w0.objective_s <= c0.objective_s * (1 + 1e-12)


def test_reoptimising_split_rank_matches_a_fresh_solve():
    from solvers import solve

    pb = template(3)
    policy = OnlinePolicy(pb, reoptimise_split_rank=True, warm_start=False)
    for t, (g_s, g_f) in enumerate(fading_rounds(pb, 3, seed=7)):
        sol = policy.decide(g_s, g_f, t)
        fresh = solve(policy.problem_for(g_s, g_f, t))
        assert (sol.split, sol.rank) == (fresh.split, fresh.rank)
        assert sol.objective_s == fresh.objective_s


def test_factory_template_and_other_methods():
    pb = template(4)
    calls = []

    def factory(g_s, g_f, t):
        calls.append(t)
        return template(4).__class__(**{**pb.__dict__, "gain_s": g_s, "gain_f": g_f})

    policy = OnlinePolicy(factory, method="equal")
    for t, (g_s, g_f) in enumerate(fading_rounds(pb, 2)):
        assert policy.decide(g_s, g_f, t).method == "equal"
    assert calls == [0, 1]
    policy.reset()
    assert policy.last is None and policy.history == []


def test_bad_inputs_are_clear_errors():
    with pytest.raises(SolverError, match="unknown solver method"):
        OnlinePolicy(template(), method="nope")
    with pytest.raises(SolverError, match="needs a solvers.Problem"):
        OnlinePolicy(42)
    policy = OnlinePolicy(lambda g_s, g_f, t: "not a problem")
    with pytest.raises(SolverError, match="returned str"):
        policy.decide(np.ones((2, 3)), np.ones((2, 3)), 0)
    with pytest.raises(SolverError, match="must be K×M and K×N"):
        OnlinePolicy(template()).decide(np.ones((4, 12)), np.ones((3, 8)), 0)
