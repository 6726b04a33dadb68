"""The energy objectives, DVFS and per-client splits of the optimiser (docs/energy.md), against an exhaustive
oracle, the delay objective and hand formulas."""
import numpy as np
import pytest

import solvers
from fsllm_sim.convergence import ConvergenceModel
from fsllm_sim.energy import DeviceEnergy, compute_energy_j
from fsllm_sim.errors import SolverError
from solvers.energy import ClientEnergyModel
from solvers.problem import Problem, SplitRankProfile


def _energy(k, rng=None, rx=0.1, idle=0.05):
    rng = rng or np.random.default_rng(0)
    return dict(kappa=rng.uniform(1e-27, 1e-26, k), f_min_hz=np.full(k, 0.2e9), f_max_hz=np.full(k, 1e9),
                battery_j=np.full(k, np.inf), rx_power_w=np.full(k, rx), idle_power_w=np.full(k, idle))


def instance(seed, *, objective="weighted", per_client=False, k=2, m=2, n=2, weight=None, budget_scale=None):
    """A small random instance: 2 splits whose client/server FLOPs trade off, 2 ranks, random gains and devices."""
    rng = np.random.default_rng(seed)
    splits, ranks = [1, 2], [1, 4]
    base = rng.uniform(0.5, 2.0)
    fwd = np.array([[base * s * 1e9] * 2 for s in splits])
    prof = SplitRankProfile(splits=splits, ranks=ranks, client_forward_flops=fwd, client_backward_flops=2 * fwd,
                            server_flops=np.array([[(3 - s) * 3e9] * 2 for s in splits]),
                            activation_bits=np.full((2, 2), 4e6),
                            adapter_bits=np.array([[s * r * 0.5e6 for r in ranks] for s in splits]))
    speed = rng.uniform(0.5e9, 3e9, k)
    en = _energy(k, rng, rx=rng.uniform(0, 0.2), idle=rng.uniform(0, 0.1))
    en = DeviceEnergy(flops_per_cycle=speed / en["f_max_hz"], **en)
    args = dict(gain_s=10 ** rng.uniform(-12, -10, (k, m)), gain_f=10 ** rng.uniform(-12, -10, (k, n)),
                bandwidth_s_hz=1e6, bandwidth_f_hz=1e6, noise_psd_w_per_hz=1e-20, p_max_w=0.2, local_iterations=2,
                device_flops_per_s=speed, server_flops_per_s=4e9, downlink_rate_bps=rng.uniform(8e6, 16e6, k),
                broadcast_rate_bps=4e6, aggregation_time_s=0.1, profile=prof,
                convergence=ConvergenceModel(a=10.0, b=20.0, c=1.0, source="test"), energy=en,
                per_client_split=per_client)
    if objective == "weighted":
        args.update(objective="weighted", weight_s_per_j=10 ** rng.uniform(-2, 1) if weight is None else weight)
    elif objective == "delay-under-energy":
        fastest = solvers.solve(Problem(**args), "bcd", kicks=0).energy.client_j  # what a delay optimum spends
        scale = rng.uniform(0.4, 1.0, k) if budget_scale is None else budget_scale
        args.update(objective="delay-under-energy", budget_j=fastest * scale)
    return Problem(**args)


def test_weighted_with_zero_weight_is_the_delay_optimum_exactly():
    for seed in range(5):
        delay = instance(seed, objective="delay")
        zero = instance(seed, objective="weighted", weight=0.0)
        a = solvers.solve(delay, "bcd")
        b = solvers.solve(zero, "bcd")
        assert b.objective_s == a.objective_s
        assert (b.split, b.rank) == (a.split, a.rank)
        exact = solvers.solve(zero, "exact")
        assert exact.objective_s == pytest.approx(solvers.solve(delay, "exact").objective_s, rel=1e-12)


@pytest.mark.parametrize("part", range(2))
def test_bcd_is_within_one_percent_of_the_exhaustive_optimum_on_100_instances(part):
    """100 random instances, weighted and budgeted, with and without per-client splits, in two parts of 50
    (each part within one percent on average, so the whole set too) that make test's two workers share."""
    gaps = []
    for seed in range(50 * part, 50 * (part + 1)):
        objective = ("weighted", "delay-under-energy")[seed % 2]
        p = instance(1000 + seed, objective=objective, per_client=(seed // 2) % 2 == 1)
        bcd = solvers.solve(p, "bcd")
        exact = solvers.solve(p, "exact")
        assert bcd.objective_s >= exact.objective_s * (1 - 1e-9)  # the oracle is never beaten
        gaps.append(bcd.objective_s / exact.objective_s - 1)
    assert len(gaps) == 50
    assert np.mean(gaps) <= 0.01, (np.mean(gaps), np.max(gaps))


def test_budgets_are_never_exceeded_in_the_optimisers_model():
    for seed in range(3):
        p = instance(2000 + seed, objective="delay-under-energy", per_client=seed % 2 == 1)
        for method in ("bcd", "exact"):
            sol = solvers.solve(p, method)
            assert np.all(sol.energy.client_j <= p.budget_j * (1 + 1e-9))
            assert np.isfinite(sol.objective_s)
            # a tighter budget can only lengthen the round
        tight = instance(2000 + seed, objective="delay-under-energy", per_client=seed % 2 == 1, budget_scale=0.3)
        assert solvers.solve(tight, "exact").objective_s >= solvers.solve(p, "exact").objective_s * (1 - 1e-9) \
            or np.any(tight.budget_j > p.budget_j)


def test_dvfs_clocks_stay_in_range_and_lower_energy_as_the_weight_grows():
    energies, delays = [], []
    for weight in (0.0, 0.1, 1.0, 10.0):
        p = instance(7, objective="weighted", weight=weight)
        sol = solvers.solve(p, "bcd")
        f = sol.frequency_hz if sol.frequency_hz is not None else p.energy.f_max_hz
        assert np.all(f >= p.energy.f_min_hz * (1 - 1e-12)) and np.all(f <= p.energy.f_max_hz * (1 + 1e-12))
        energies.append(sol.energy.total_j)
        delays.append(sol.round_time_s)
    assert all(a >= b * (1 - 1e-9) for a, b in zip(energies, energies[1:]))  # a costlier joule: fewer joules
    assert all(a <= b * (1 + 1e-9) for a, b in zip(delays, delays[1:]))  # ... and a longer round
    assert energies[-1] < 0.8 * energies[0]


def test_energy_step_client_energy_matches_the_hand_formula():
    """The energy the step reports for its clocks and powers is kappa C f^2 + p t per band + rx + idle."""
    p = instance(11, objective="weighted", weight=1.0)
    sol = solvers.solve(p, "bcd")
    bd, en = sol.breakdown, p.energy
    c = p.costs(sol.split, sol.rank)
    e = p.local_iterations
    f = sol.frequency_hz
    flops = c["client_forward_flops"] + c["client_backward_flops"]
    comp = e * compute_energy_j(flops, en.flops_per_cycle, en.kappa, f)
    ps = np.bincount(sol.assign_s, weights=sol.power_s_w, minlength=2)
    pf = np.bincount(sol.assign_f, weights=sol.power_f_w, minlength=2)
    hand = (comp + e * ps * bd.uplink_s + pf * bd.adapter_upload_s
            + en.rx_power_w * (e * bd.downlink_s + bd.broadcast_s)
            + en.idle_power_w * (bd.round_s - e * (bd.client_forward_s + bd.client_backward_s + bd.uplink_s
                                                    + bd.downlink_s) - bd.adapter_upload_s - bd.broadcast_s))
    np.testing.assert_allclose(sol.energy.client_j, hand, rtol=1e-12)
    assert sol.objective_s == pytest.approx(sol.rounds * (bd.round_s + 1.0 * sol.energy.total_j), rel=1e-12)


def test_a_budget_below_the_least_energy_is_refused_naming_the_client_and_the_minimum():
    p = instance(3, objective="delay-under-energy", budget_scale=np.array([1e-6, 1.0]))
    with pytest.raises(SolverError, match=r"client 0 needs at least [0-9.e+-]+ J a round"):
        solvers.solve(p, "bcd")


def test_per_client_splits_choose_each_clients_fastest_split_and_never_lose():
    """With the delay objective, per-client splits are never worse than the common split, and the oracle
    enumerates every combination."""
    for seed in range(8):
        common = instance(3000 + seed, objective="delay")
        own = instance(3000 + seed, objective="delay", per_client=True)
        a = solvers.solve(common, "exact")
        b = solvers.solve(own, "exact")
        c = solvers.solve(own, "bcd")
        assert b.objective_s <= a.objective_s * (1 + 1e-12)
        assert c.objective_s <= solvers.solve(common, "bcd").objective_s * (1 + 1e-12)
        assert c.objective_s >= b.objective_s * (1 - 1e-9)


def test_per_client_split_respects_each_devices_memory():
    p = instance(5, objective="delay", per_client=True)
    prof = p.profile
    prof = SplitRankProfile(splits=prof.splits, ranks=prof.ranks, client_forward_flops=prof.client_forward_flops,
                            client_backward_flops=prof.client_backward_flops, server_flops=prof.server_flops,
                            activation_bits=prof.activation_bits, adapter_bits=prof.adapter_bits,
                            client_memory_bytes=np.array([[1.0, 1.0], [3.0, 3.0]]))
    import dataclasses
    p = dataclasses.replace(p, profile=prof, client_memory_limit_bytes=np.array([2.0, 4.0]))
    assert [a.tolist() for a in p.client_splits_allowed(1)] == [[1], [1, 2]]
    sol = solvers.solve(p, "exact")
    assert sol.splits is None or sol.splits[0] == 1
    with pytest.raises(SolverError, match="client 0: split 2 is not allowed"):
        solvers.evaluate(p, 1, 1, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w, splits=np.array([2, 2]))


def test_the_model_bisection_meets_each_deadline():
    p = instance(13, objective="weighted", weight=1.0)
    model = ClientEnergyModel(p, 1, np.array([1, 1]), np.array([0, 1]), np.array([1, 0]))
    deadline = model.t_min * np.array([1.5, 3.0])
    energy, nu = model.least_energy_j(deadline)
    t, _, _ = model._components(nu)
    assert np.all(t <= deadline * (1 + 1e-12)) and np.all(t >= deadline * (1 - 1e-10))
    # a longer deadline costs less energy
    energy2, _ = model.least_energy_j(deadline * 2)
    assert np.all(energy2 < energy)
