"""A changing world in the engine: the large-scale gain follows a moving client, a client that leaves drops
(its transfer aborted, its work lost), and a world where every client is gone for good stops cleanly."""
import json
import math

import numpy as np
import pytest
import torch

import channel_models as cm
from fsllm_sim.engine import build_world, simulate
from fsllm_sim.engine.mobility import LargeScaleTimeline
from fsllm_sim.jobs.run import run_simulation
from fsllm_sim.training.system import SplitFedSystem

from engine_helpers import make_scenario


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_a_client_moving_at_constant_speed_has_the_38901_gain_at_each_position(tmp_path):
    """Rule: LOS forced and shadowing off, the large-scale gain at every update is 10^(-PL/10) of TR 38.901
    UMa at the client's distance then (to 1e-9 dB), the position moving at 2 m/s along the trace."""
    trace = write(tmp_path, "walk.csv", "client,t_s,x_m,y_m\n1,0,40,0\n1,100,240,0\n")
    scenario = make_scenario(mobility={"model": "trace", "trace_path": trace, "update_s": 0.5},
                             channel={"path_loss": {"los": "always", "shadowing": False}})
    world = build_world(scenario, profile_source="analytic", progress=False)
    assert world.env.positions_m[1].tolist() == [40.0, 0.0]  # the trace sets where it starts
    tl = LargeScaleTimeline(scenario, world.env, traces={1: (np.array([0.0, 100.0]),
                                                             np.array([[40.0, 0.0], [240.0, 0.0]]))})
    steps = np.arange(0, 201)
    gain = tl.gain_of_steps(1, 0, steps.size)
    d = 40.0 + 2.0 * steps * tl.step_s
    pl = cm.path_loss_db("uma", d, 3.5, 25.0, 1.5, np.ones(d.size, dtype=bool))
    np.testing.assert_allclose(-10 * np.log10(gain), pl, rtol=0, atol=1e-9)
    assert tl.speed_at_step(1, 10) == pytest.approx(2.0)
    # a client that does not move keeps its t = 0 gain
    assert np.all(tl.gain_of_steps(0, 0, 50) == world.env.large_scale_gain[0])


def test_moving_clients_write_positions_and_their_shadowing_evolves_without_redraws():
    """Rule: positions.csv rows (every mobility.record_every_s) for each moving client, inside the cell;
    consecutive gains of a pedestrian differ by far less than independent shadowing redraws would (6 dB sigma)."""
    scenario = make_scenario(mobility={"model": "random-waypoint", "speed_min_mps": 1.0, "speed_max_mps": 1.5,
                                       "update_s": 0.01}, simulation={"rounds": 2})
    res = simulate(scenario, profile_source="analytic")
    rows = res.positions
    assert rows and {r[0] for r in rows} == {0, 1, 2}
    r = np.hypot([x[2] for x in rows], [x[3] for x in rows])
    assert r.min() >= 35.0 - 1e-9 and r.max() <= 300.0 + 1e-9
    world = build_world(scenario, profile_source="analytic", progress=False)
    tl = LargeScaleTimeline(scenario, world.env)
    g_db = 10 * np.log10(tl.gain_of_steps(0, 0, 2000))
    assert np.std(np.diff(g_db)) < 0.5  # 1.5 cm steps against d_corr of tens of metres


def test_positions_are_recorded_every_record_interval_and_the_past_is_forgotten_only_when_told():
    """Rule: record_every_s = 0.5 s on 0.1 s updates gives rows at multiples of 0.5 s, the same positions
    as a timeline recording every step; gains stay exact across buffer growth, and a step before
    forget_before() is refused rather than answered wrongly."""
    every = make_scenario(mobility={"model": "random-waypoint", "update_s": 0.1, "record_every_s": None})
    half = make_scenario(mobility={"model": "random-waypoint", "update_s": 0.1, "record_every_s": 0.5})
    world = build_world(every, profile_source="analytic", progress=False)
    a, b = LargeScaleTimeline(every, world.env), LargeScaleTimeline(half, world.env)
    rows_a, rows_b = list(a.position_rows(30.0)), list(b.position_rows(30.0))
    assert len(rows_a) == 301 * 3 and len(rows_b) == 61 * 3
    assert rows_b == [r for r in rows_a if round(r[1] / 0.1) % 5 == 0]
    whole = a.gain_of_steps(0, 0, 20000)  # grows the buffers many chunks at once
    np.testing.assert_array_equal(whole[:301], b.gain_of_steps(0, 0, 301))
    b.forget_before(50.0)
    np.testing.assert_array_equal(b.gain_of_steps(0, 500, 19500), whole[500:])
    with pytest.raises(IndexError, match="forgotten"):
        b.gain_of_steps(0, 100, 10)


def test_a_client_that_leaves_mid_round_drops_and_is_not_aggregated(tmp_path):
    """Rule: client 1 unavailable from t_off: a drop mark at t_off, its phase in flight cut there (a transfer:
    the bits that had arrived, marked abort), no later row of that round, not aggregated; it comes back
    for a later round, first downloading the global adapter it missed."""
    base = make_scenario(simulation={"rounds": 3})
    ref = simulate(base, profile_source="analytic")
    up = [r for r in ref.trace.rows if r[0] == 1 and r[2] == 1 and r[3] == "uplink"][1]
    t_off = (up[4] + up[5]) / 2  # in the middle of its second uplink
    gone = write(tmp_path, "gone.csv", f"client,start_s,end_s\n1,0,{t_off!r}\n")
    first = simulate(make_scenario(simulation={"rounds": 1}, availability={"model": "trace", "trace_path": gone}),
                     profile_source="analytic")
    (bcast,) = [r for r in first.trace.rows if r[3] == "broadcast"]
    back = (bcast[4] + bcast[5]) / 2  # back during round 1's broadcast: available for round 2, but missed it
    trace = write(tmp_path, "av.csv", f"client,start_s,end_s\n1,0,{t_off!r}\n1,{back!r},1000000\n")
    res = simulate(make_scenario(simulation={"rounds": 3}, availability={"model": "trace", "trace_path": trace}),
                   profile_source="analytic")
    rec = res.rounds[0]
    assert rec.dropped == [1] and 1 not in rec.aggregated and rec.aggregated == [0, 2]
    rows1 = [r for r in res.trace.rows if r[0] == 1 and r[2] == 1]
    assert max(r[5] for r in rows1 if r[3] not in ("server", "server_wait")) == t_off
    (drop,) = [r for r in rows1 if r[3] == "drop"]
    (abort,) = [r for r in rows1 if r[3] == "abort"]
    (cut,) = [r for r in rows1 if r[3] == "uplink" and r[5] == t_off]
    assert drop[4] == t_off and abort[6] == cut[6] and 0 < cut[6] < up[6]
    assert not any(r[3] == "adapter_upload" for r in rows1)
    # it is back for round 2 (or 3) and starts with the global adapter it missed
    back_in = res.rounds[1]
    later = sorted((r for r in res.trace.rows if r[0] == 2 and r[2] == 1), key=lambda r: r[4])
    assert 1 in back_in.selected and 1 in back_in.aggregated
    assert later[0][3] == "adapter_download" and later[0][4] == back_in.start_s
    # clients that received the broadcast start with their forward at once
    assert [r[3] for r in sorted(res.trace.rows, key=lambda r: r[4]) if r[0] == 2 and r[2] == 0][0] == "forward"
    assert not any(r[3] == "adapter_download" for r in res.trace.rows if r[0] == 3)


def test_v2_keeps_the_server_updates_served_for_a_client_that_dropped(tmp_path, text_corpus, monkeypatch):
    """Rule (docs/dynamics.md): in SplitFed-V2 the shared server adapter keeps the updates it made from the
    iterations of a client that later dropped; they are not undone. A hand replay of every served request in
    service order (the dropped client's included) gives the engine's server adapter; without them, not."""
    seen = {}
    original = SplitFedSystem.finish_round

    def spy(self, participants=None):
        msg = original(self, participants)
        seen.setdefault("server", self.global_server_state())
        return msg

    monkeypatch.setattr(SplitFedSystem, "finish_round", spy)
    common = dict(data={"source": text_corpus, "partition": "iid"}, training={"server_mode": "v2"},
                  simulation={"rounds": 1, "training": "real"}, server={"discipline": "fifo", "flops_per_s": 2e9})
    ref = simulate(make_scenario(**common), profile_source="analytic")
    first = min(r[5] for r in ref.trace.rows if r[2] == 1 and r[3] == "server")
    seen.clear()
    trace = write(tmp_path, "av.csv", f"client,start_s,end_s\n1,0,{first + 1e-7!r}\n")
    res = simulate(make_scenario(**common, availability={"model": "trace", "trace_path": trace}),
                   profile_source="analytic")
    assert res.rounds[0].dropped == [1]
    served = [r for r in res.trace.rows if r[3] == "server"]
    order = [r[2] for r in sorted(served, key=lambda r: (r[4], r[5]))]
    assert order.count(1) == 1  # one iteration of client 1 was served before it left

    from fsllm_sim.training.federated_training import prepare_model_and_data
    from fsllm_sim.training.from_scenario import training_config

    def replay(sequence):
        cfg = training_config(make_scenario(**common))
        model, data = prepare_model_and_data(cfg)
        torch.manual_seed(cfg.seed)
        system = SplitFedSystem(model, cfg.system_config(), data=data, batch_size=cfg.batch_size)
        for k in sequence:
            system.iteration(k)
        return system.main_server.global_state()

    engine = seen["server"]
    with_drop = replay(order)
    without = replay([k for k in order if k != 1])
    for key in engine:
        torch.testing.assert_close(engine[key], with_drop[key], rtol=0, atol=1e-7)
    assert any(not torch.allclose(engine[key], without[key]) for key in engine)


def test_every_client_gone_for_good_stops_with_a_complete_marked_run_directory(tmp_path):
    """Rule: no endless wait: the run stops with a one-line reason, and the run directory is complete (status
    says so, with the reason) and holds what was computed."""
    trace = write(tmp_path, "av.csv", "client,start_s,end_s\n0,0,0.001\n1,0,0.001\n2,0,0.001\n")
    scenario = make_scenario(availability={"model": "trace", "trace_path": trace})
    lines = []
    run_dir = run_simulation(scenario, runs_dir=str(tmp_path / "runs"), progress=False, profile_source="analytic",
                             echo=lines.append)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "complete" and "none will become available again" in status["stopped"]
    for name in ("trace.csv", "rounds.csv", "results.json", "config.resolved.yaml", "seeds.json"):
        assert (run_dir / name).is_file(), name
    assert any(line.startswith("stopped: ") for line in lines)
    drops = [r for r in (run_dir / "trace.csv").read_text().splitlines() if ",drop," in r]
    assert len(drops) == 3
