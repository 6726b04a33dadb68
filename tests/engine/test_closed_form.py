"""On a static channel with a dedicated or partitioned server the engine IS the closed form (spec section 4).

Every simulated round time must equal the analytic T_round of the allocation in force to 1e-9 relative,
whatever the clients, bands, speeds, split, rank and allocation; with fading the simulation differs.
"""
import numpy as np
import pytest

from fsllm_sim.engine import simulate

from engine_helpers import make_scenario


def random_static_scenario(rng: np.random.Generator, i: int, **extra):
    """A random small scenario on a static channel; ``extra``: further top-level fields (e.g. protocol)."""
    k = int(rng.integers(1, 21))
    m = int(rng.integers(k, 3 * k + 2))
    n = int(rng.integers(k, 2 * k + 2))
    return make_scenario(
        seed=int(rng.integers(0, 2**31)),
        clients={"count": k},
        channel={"fading": {"model": "none"},
                 "s_band": {"subchannels": m, "subchannel_bandwidth_hz": float(rng.choice([180e3, 360e3, 720e3]))},
                 "f_band": {"subchannels": n, "subchannel_bandwidth_hz": float(rng.uniform(100e3, 1e6))},
                 "power": {"client_max_dbm": float(rng.uniform(10, 26))}},
        devices={"speed": {"sigma": float(rng.uniform(0, 1.5)), "median_flops_per_s": float(10 ** rng.uniform(10, 13))}},
        server={"discipline": ["dedicated", "partitioned"][i % 2], "flops_per_s": float(10 ** rng.uniform(11, 14))},
        split={"layer": int(rng.integers(1, 4))},
        lora={"rank": int(rng.choice([1, 2, 4]))},
        training={"local_iterations": int(rng.integers(1, 6))},
        simulation={"rounds": 2, "training": "analytic", "record_channel": False},
        **extra,
    )


def test_static_channel_round_time_equals_the_closed_form_on_60_random_scenarios():
    rng = np.random.default_rng(2024)
    worst = 0.0
    for i in range(60):
        scenario = random_static_scenario(rng, i)
        allocation = ["equal-share", "random", "bcd"][i % 3]
        res = simulate(scenario, allocation=allocation, profile_source="analytic")
        assert len(res.rounds) == 2
        for r in res.rounds:
            simulated = r.end_s - r.start_s
            assert simulated == pytest.approx(r.analytic_round_s, rel=1e-9, abs=0), (i, allocation)
            worst = max(worst, abs(simulated / r.analytic_round_s - 1))
        # the closed form's straggler is the client whose upload ends last in the simulation
        closed = res.rounds[0].allocation.evaluate(res.world.problem)
        assert closed.breakdown.client_round_s[res.rounds[0].straggler] == pytest.approx(
            closed.breakdown.client_round_s.max(), rel=1e-12)
    assert worst < 1e-9


def test_fading_changes_the_round_time_and_jensen_makes_it_slower_on_average():
    res = simulate(make_scenario(simulation={"rounds": 6}), profile_source="analytic")
    durations = np.array([r.end_s - r.start_s for r in res.rounds])
    analytic = res.rounds[0].analytic_round_s
    assert np.all(durations != analytic)
    assert durations.mean() > analytic  # log is concave: fading lowers the mean rate of a fixed power
