"""Real PyTorch training driven by the engine: deterministic, and in the simulated order.

In SplitFed-V2 one server adapter is shared, so the order in which requests are served changes what is
learnt. The engine must serve them in simulated order: replaying the trace's service order by hand on a
fresh system reproduces the engine's losses exactly, while the index order (what a naive loop would do)
does not.
"""
import math

import pytest
import torch

from fsllm_sim.engine import simulate

from engine_helpers import make_scenario, replay_training


def real_scenario(corpus, **extra):
    base = dict(data={"source": corpus, "partition": "iid"},
                simulation={"rounds": 2, "training": "real"},
                devices={"speed": {"sigma": 1.2}},  # clearly different speeds: service order != index order
                server={"discipline": "fifo", "flops_per_s": 2e9})
    base.update(extra)
    return make_scenario(**base)


def replay(scenario, order_per_round):
    """Run the phases by hand in the given order: [[(client, ...) per served request] per round]."""
    return [loss for _, loss in replay_training(scenario, order_per_round)[1]]


def service_order(result, round_index):
    rows = [r for r in result.trace.rows if r[0] == round_index and r[3] == "server"]
    return [r[2] for r in sorted(rows, key=lambda r: (r[4], r[5]))]


def test_v2_server_updates_follow_the_simulated_service_order(text_corpus):
    scenario = real_scenario(text_corpus, training={"server_mode": "v2", "batch_size": 2, "seq_len": 16,
                                                    "local_iterations": 2})
    res = simulate(scenario, profile_source="analytic")
    orders = [service_order(res, t) for t in (1, 2)]
    index_order = [k for _ in range(2) for k in range(3)]
    assert orders[0] != index_order, "speeds should make the service order differ from the index order"
    engine_losses = [r.metrics["val_loss"] for r in res.rounds]
    assert replay(scenario, orders) == engine_losses
    assert replay(scenario, [index_order, index_order]) != engine_losses


def test_real_training_is_deterministic_and_its_loss_falls(text_corpus):
    torch.use_deterministic_algorithms(True)
    try:
        scenario = real_scenario(text_corpus, simulation={"rounds": 3, "training": "real"},
                                 training={"learning_rate": 5e-3, "batch_size": 2, "seq_len": 16,
                                           "local_iterations": 2})
        a = simulate(scenario, profile_source="analytic")
        b = simulate(scenario, profile_source="analytic")
    finally:
        torch.use_deterministic_algorithms(False)
    assert [r.metrics for r in a.rounds] == [r.metrics for r in b.rounds]
    assert a.trace.rows == b.trace.rows
    times, losses = a.loss_curve()
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    assert times == [0.0] + [r.end_s for r in a.rounds]


def test_real_payloads_are_the_profiles_and_timing_is_the_counted_flops(text_corpus):
    scenario = real_scenario(text_corpus, simulation={"rounds": 1, "training": "real"})
    res = simulate(scenario, profile_source="counted")
    real = {(r[3]): r for r in res.trace.rows}
    analytic = simulate(scenario, profile_source="counted", training="analytic")
    # the real messages have the profile's sizes and the phases the profile's durations: same timeline
    assert [r[:8] for r in res.trace.rows] == [r[:8] for r in analytic.trace.rows]
    assert real["uplink"][6] == res.world.problem.costs(2, 2)["activation_bits"]


def test_measured_timing_scales_host_times_to_each_device(text_corpus):
    scenario = real_scenario(text_corpus, simulation={"rounds": 1, "training": "real", "timing": "measured",
                                                      "host_flops_per_s": 1e11})
    res = simulate(scenario, profile_source="analytic")
    assert res.settings["host_flops_per_s"] == 1e11
    speeds = res.world.fleet.flops_per_s
    forward = [r for r in res.trace.rows if r[3] == "forward"]
    assert forward and all(r[5] > r[4] for r in forward)
    # a measured duration is host wall time x host speed / device speed: well below a second on tiny ops,
    # and slower devices take longer for ops of the same size on average
    slow, fast = int(speeds.argmin()), int(speeds.argmax())
    mean = lambda k: sum(r[5] - r[4] for r in forward if r[2] == k) / sum(1 for r in forward if r[2] == k)
    assert mean(slow) > mean(fast)
    assert any("timing measured" in n for n in res.notes)


def test_bad_simulation_options_are_one_line_errors(tmp_path, capsys):
    import yaml

    from fsllm_sim.cli import main

    from engine_helpers import BASE

    cases = [
        ({"simulation": {"training": "both"}}, [], "simulation.training"),
        ({"simulation": {"timing": "measured", "training": "analytic"}}, [], "timing=measured needs training: real"),
        ({"server": {"discipline": "round-robin"}}, [], "server.discipline"),
        ({"server": {"workers": 0}}, [], "server.workers"),
        ({}, ["--rounds", "0"], "--rounds"),
        ({}, ["--allocation", str(tmp_path / "missing.json")], "no such file"),
        ({}, ["--allocation", "relaxation"], "lower bound, not an allocation"),
        ({}, ["--policy", "online", "--allocation", str(tmp_path / "x.json")], "must be a solver method"),
    ]
    for i, (override, args, expected) in enumerate(cases):
        f = tmp_path / f"s{i}.yaml"
        data = {**BASE, **override} if "server" in override else {
            **BASE, "simulation": {**BASE["simulation"], **override.get("simulation", {})}}
        f.write_text(yaml.safe_dump(data))
        with pytest.raises(SystemExit) if expected == "--rounds" else _no_exit():
            code = main(["run", str(f), "--runs-dir", str(tmp_path / "runs"), "--no-progress", "--profile",
                         "analytic", *args])
            assert code == 2, expected
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, (expected, err)
    assert not (tmp_path / "runs").exists()


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_online_policy_with_real_training_keeps_the_model_shape(text_corpus):
    scenario = real_scenario(text_corpus, simulation={"rounds": 2, "training": "real", "policy": "online",
                                                      "allocation": "bcd"})
    res = simulate(scenario, profile_source="analytic")
    shapes = {(r.allocation.split, r.allocation.rank) for r in res.rounds}
    assert len(shapes) == 1
    assert all(math.isfinite(r.metrics["val_loss"]) for r in res.rounds)


def test_measured_timing_uses_a_host_profile(text_corpus, tmp_path):
    from fsllm_sim.jobs.profile_device import run_profile_device

    path = tmp_path / "host.csv"
    run_profile_device(out=str(path), model="tiny-llama", batch_size=2, seq_len=16, rank=2, reps=3,
                       echo=lambda *_: None)
    import csv

    speed = float(next(csv.DictReader(path.open()))["flops_per_s"])
    scenario = real_scenario(text_corpus, simulation={"rounds": 1, "training": "real", "timing": "measured",
                                                      "host_profile": str(path)})
    res = simulate(scenario, profile_source="analytic")
    assert res.settings["host_flops_per_s"] == speed


def test_stop_at_target_ends_the_run_at_the_first_round_that_meets_it(text_corpus):
    full = simulate(real_scenario(text_corpus, simulation={"rounds": 4, "training": "real"}),
                    profile_source="analytic")
    losses = [r.metrics["val_loss"] for r in full.rounds]
    target = losses[1]  # met at round 2 (or earlier: the first crossing decides)
    first = next(i for i, x in enumerate(losses) if x <= target) + 1
    short = simulate(real_scenario(text_corpus, simulation={"rounds": 4, "training": "real", "stop_at_target": True,
                                                            "target_val_loss": target}), profile_source="analytic")
    assert len(short.rounds) == first < 4
    assert [r.metrics["val_loss"] for r in short.rounds] == losses[:first]
    assert short.time_to_target_s() == full.rounds[first - 1].end_s
    assert any("simulation.stop_at_target" in n for n in short.summary()["notes"])
    never = simulate(real_scenario(text_corpus, simulation={"rounds": 2, "training": "real", "stop_at_target": True,
                                                            "target_val_loss": 1e-3}), profile_source="analytic")
    assert len(never.rounds) == 2  # not met: every round of simulation.rounds
