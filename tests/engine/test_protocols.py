"""The baseline protocols in the event engine (docs/protocols.md).

On a static channel with a dedicated or partitioned server, the engine's round equals the closed form of the
protocol (sl: the sum of the turns; fl: sfl's round with the unsplit model and nothing on the s-band) to 1e-9;
sl never runs two clients at once; fl leaves out the devices that cannot hold the whole model and says so;
and the default protocol, sfl, gives what it gave before the protocols existed.
"""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from fsllm_sim.config import problem_fingerprint
from fsllm_sim.engine import build_world, simulate
from fsllm_sim.engine.trace import FS_CLIENT
from fsllm_sim.engine.world import print_warnings
from fsllm_sim.errors import ConfigError
from fsllm_sim.jobs.optimize import run_optimize
from fsllm_sim.training.federated_training import prepare_model_and_data, validation_set
from fsllm_sim.training.from_scenario import training_config
from fsllm_sim.training.messages import BroadcastMessage
from fsllm_sim.training.system import SplitFedSystem

from engine_helpers import make_scenario
from test_closed_form import random_static_scenario

# the tiny Llama at b = 2, L = 16 needs 1 398 784 bytes for the whole model at rank 1 (memory.unsplit_memory_bytes)
FL_NEEDS_BYTES = 1_398_784


@pytest.mark.parametrize("protocol", ["sl", "fl"])
def test_static_channel_round_time_equals_the_protocols_closed_form_on_random_scenarios(protocol):
    rng = np.random.default_rng({"sl": 7, "fl": 11}[protocol])
    worst, sizes = 0.0, []
    for i in range(24):
        scenario = random_static_scenario(rng, i, protocol=protocol)
        allocation = ["equal-share", "random", "bcd"][i % 3]
        res = simulate(scenario, allocation=allocation, profile_source="analytic")
        closed = res.rounds[0].allocation.evaluate(res.world.problem)
        for r in res.rounds:
            simulated = r.end_s - r.start_s
            assert simulated == pytest.approx(r.analytic_round_s, rel=1e-9, abs=0), (i, allocation)
            assert r.analytic_round_s == closed.round_time_s
            worst = max(worst, abs(simulated / r.analytic_round_s - 1))
        # every client's part of the round as the closed form has it: sl's turns, fl's client rounds
        first = res.rounds[0]
        for k in range(res.world.problem.num_clients):
            rows = [row for row in res.trace.rows if row[0] == 1 and row[2] == k]
            if protocol == "sl":
                span = max(row[5] for row in rows) - min(row[4] for row in rows)
            else:
                span = max(row[5] for row in rows) - first.start_s
            assert span == pytest.approx(closed.breakdown.client_round_s[k], rel=1e-9)
        sizes.append(res.world.problem.num_clients)
    assert worst < 1e-9
    assert max(sizes) >= 10  # the draw covers large rounds too


def test_sl_serves_one_client_at_a_time_in_order_with_the_hand_off_counted():
    """No two clients' phases overlap; the turns go 0, 1, ..., K-1 and each starts with the adapter relayed to it
    on the downlink (S_c bits) and ends with its upload on the f-band (S_c bits); no aggregation, no broadcast."""
    res = simulate(make_scenario(protocol="sl", clients={"count": 4}, simulation={"rounds": 2}),
                   profile_source="analytic")  # with fading: the order does not depend on a static channel
    rows = res.trace.rows
    assert not [row for row in rows if row[2] == FS_CLIENT]
    s_c = res.world.problem.costs(res.rounds[0].allocation.split, res.rounds[0].allocation.rank)["adapter_bits"]
    for t in (1, 2):
        spans = []
        for k in range(4):
            mine = sorted((row for row in rows if row[0] == t and row[2] == k), key=lambda row: row[4])
            assert mine[0][3] == "adapter_download" and mine[0][6] == s_c
            assert mine[-1][3] == "adapter_upload" and mine[-1][6] == s_c
            assert [row[3] for row in mine].count("forward") == 2  # E = 2 iterations
            spans.append((mine[0][4], mine[-1][5]))
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start == end  # the next turn starts when the previous one ends, never before
    intervals = sorted((row[4], row[5], row[2]) for row in rows)
    for (s0, e0, c0), (s1, e1, c1) in zip(intervals, intervals[1:]):
        assert c0 == c1 or s1 >= e0


def test_sl_server_is_the_whole_server_for_the_active_client():
    res = simulate(make_scenario(protocol="sl", channel={"fading": {"model": "none"}},
                                 server={"discipline": "partitioned", "flops_per_s": 1e12}), profile_source="analytic")
    work = [(row[5] - row[4], row[7]) for row in res.trace.rows if row[3] == "server"]
    assert work and all(d == pytest.approx(w / 1e12, rel=1e-12) for d, w in work)


def _memory_trace(tmp_path, memory_bytes):
    path = tmp_path / "devices.csv"
    path.write_text("client_id,flops_per_s,memory_bytes\n"
                    + "".join(f"{k},{1e11 * (k + 1):g},{m}\n" for k, m in enumerate(memory_bytes)))
    return {"speed": {"distribution": "trace", "trace_path": str(path)}}


def test_fl_leaves_out_a_device_that_cannot_hold_the_model_and_says_so(tmp_path, capsys):
    devices = _memory_trace(tmp_path, [4 * FL_NEEDS_BYTES, FL_NEEDS_BYTES - 1, 4 * FL_NEEDS_BYTES])
    scenario = make_scenario(protocol="fl", devices=devices, channel={"fading": {"model": "none"}})
    world = build_world(scenario, profile_source="analytic", progress=False)
    assert world.problem.client_ids.tolist() == [0, 2]
    lines = [w for w in world.warnings if w.startswith("protocol fl")]
    assert lines == ["protocol fl: 1 of 3 clients cannot hold the whole model (0.0013 GiB at the smallest rank, "
                     "devices.memory_bytes) and take no part: client(s) 1"]
    print_warnings(world)
    assert f"warning: {lines[0]}\n" in capsys.readouterr().err
    res = simulate(scenario, world=world, allocation="bcd", profile_source="analytic")
    assert lines[0] in res.summary()["notes"]
    assert {row[2] for row in res.trace.rows} == {0, 2, FS_CLIENT}  # client 1 never appears
    assert all(row[3] in ("forward", "backward", "adapter_upload", "aggregation", "broadcast") for row in res.trace.rows)
    for r in res.rounds:
        assert r.end_s - r.start_s == pytest.approx(r.analytic_round_s, rel=1e-9)
        assert set(r.upload_end_s) == {0, 2}
    # the device speeds are the participants' own: client 2 (3e11 FLOP/s) computes 3x as fast as client 0
    fwd = {row[2]: row[5] - row[4] for row in res.trace.rows if row[3] == "forward"}
    assert fwd[0] == pytest.approx(3 * fwd[2], rel=1e-12)
    # a convergence model in tokens counts the participants' tokens per round: 2 of 3 clients
    tokens = {p: build_world(make_scenario(protocol=p, devices=devices, convergence={"calibration": "builtin"}),
                             profile_source="analytic", progress=False).convergence for p in ("sfl", "fl")}
    assert tokens["sfl"].unit == "tokens"
    assert tokens["fl"].tokens_per_round == pytest.approx(tokens["sfl"].tokens_per_round * 2 / 3)


def test_fl_with_no_device_able_to_hold_the_model_is_a_one_line_error(tmp_path):
    devices = _memory_trace(tmp_path, [FL_NEEDS_BYTES - 1] * 3)
    with pytest.raises(ConfigError, match=r"^protocol: fl: no client can hold the whole model") as err:
        build_world(make_scenario(protocol="fl", devices=devices), profile_source="analytic", progress=False)
    assert "\n" not in str(err.value)


def test_real_fl_training_is_federated_lora_of_the_participants_by_hand(tmp_path, text_corpus):
    """The engine's real fl run equals a replay: each participant (client 1 cannot hold the model) trains E
    iterations of the whole model, then FedAvg over the participants; the validation losses are identical."""
    from fsllm_sim.training.federated_lora import FederatedLoraSystem

    devices = _memory_trace(tmp_path, [4 * FL_NEEDS_BYTES, FL_NEEDS_BYTES - 1, 4 * FL_NEEDS_BYTES])
    scenario = make_scenario(protocol="fl", devices=devices, data={"source": text_corpus, "partition": "iid"},
                             training={"batch_size": 2, "seq_len": 16, "local_iterations": 2},
                             simulation={"rounds": 2, "training": "real"})
    res = simulate(scenario, profile_source="analytic")
    engine = [r.metrics["val_loss"] for r in res.rounds]
    assert all(math.isfinite(x) for x in engine) and engine[-1] < res.initial_val_loss

    cfg = training_config(scenario, split=4)
    model, data = prepare_model_and_data(cfg)
    val = validation_set(data)
    torch.manual_seed(cfg.seed)
    system = FederatedLoraSystem(model, cfg.system_config(), data=data, batch_size=cfg.batch_size)
    ev, replay = scenario.evaluation, []
    for _ in range(2):
        for k in (0, 2):
            for _ in range(scenario.training.local_iterations):
                system.iteration(k)
        system.finish_round([0, 2])
        replay.append(system.evaluate(val, batch_size=ev.batch_size, max_batches=ev.max_batches).loss)
    assert replay == engine
    assert {row[2] for row in res.trace.rows if row[3] == "forward"} == {0, 2}


def _replay_sl(scenario, rounds: int, hand_on: bool):
    """sl by hand on a fresh system: client k loads the adapter client k-1 uploaded (``hand_on``), trains E
    iterations with the one (v2) server adapter, uploads; the last upload is the round's global adapter."""
    cfg = training_config(scenario)
    model, data = prepare_model_and_data(cfg)
    val = validation_set(data)
    torch.manual_seed(cfg.seed)
    system = SplitFedSystem(model, dataclasses.replace(cfg.system_config(), server_mode="v2"), data=data,
                            batch_size=cfg.batch_size)
    ev, losses, handed = scenario.evaluation, [], None
    for _ in range(rounds):
        for k in range(system.num_clients):
            if hand_on and handed is not None:
                system.clients[k].receive_broadcast(handed)
            for _ in range(scenario.training.local_iterations):
                system.iteration(k)
            up = system.clients[k].adapter_upload()
            handed = BroadcastMessage(round=system.round, state=up.state, precision=up.precision,
                                      payload_bits=up.payload_bits, contributors=[k])
        system.fed_server.receive(up)
        system.aggregate()
        losses.append(system.evaluate(val, batch_size=ev.batch_size, max_batches=ev.max_batches).loss)
    return losses


def test_real_sl_training_hands_the_adapter_on_in_turn_order(text_corpus):
    scenario = make_scenario(protocol="sl", data={"source": text_corpus, "partition": "iid"},
                             training={"batch_size": 2, "seq_len": 16, "local_iterations": 2},
                             simulation={"rounds": 2, "training": "real"})
    res = simulate(scenario, profile_source="analytic")
    engine = [r.metrics["val_loss"] for r in res.rounds]
    assert all(math.isfinite(x) for x in engine)
    assert _replay_sl(scenario, 2, hand_on=True) == engine
    assert _replay_sl(scenario, 2, hand_on=False) != engine  # the hand-off changes what is learnt
    assert any("protocol sl: one server-side adapter" in n for n in res.summary()["notes"])


def test_sfl_is_unchanged():
    """Numbers recorded with the code before the protocol field existed (same scenarios, same seeds); the fading
    run's re-recorded when the compiled fading kernel changed the order of the draws (CHANGELOG.md, "The fading kernel")."""
    static = simulate(make_scenario(channel={"fading": {"model": "none"}}, server={"discipline": "partitioned"}),
                      allocation="equal-share", profile_source="analytic")
    assert [repr(r.end_s) for r in static.rounds] == ["0.01985875927145266", "0.03971751854290532"]
    fading = simulate(make_scenario(), allocation="bcd", profile_source="analytic")
    assert [repr(r.end_s) for r in fading.rounds] == ["0.016054266694674742", "0.0321402125460394"]
    assert len(fading.trace.rows) == 70 and repr(sum(r[5] for r in fading.trace.rows)) == "1.045689216214223"
    assert "protocol" not in fading.summary()
    assert problem_fingerprint(make_scenario()) == "3ecb9478249f4e35"
    assert problem_fingerprint(make_scenario(protocol="sl")) != "3ecb9478249f4e35"


@pytest.mark.parametrize("protocol", ["sl", "fl"])
def test_an_optimised_solution_runs_under_its_protocol_only(protocol, tmp_path):
    """`optimize` writes the protocol with the solution (sl: K x M power matrices); `run --allocation` reproduces
    its closed form and refuses it under another protocol."""
    scenario = make_scenario(protocol=protocol, channel={"fading": {"model": "none"}})
    run_dir = run_optimize(scenario, runs_dir=str(tmp_path), progress=False, profile_source="analytic",
                           echo=lambda *a: None)
    path = run_dir / "solution.json"
    saved = json.loads(path.read_text())
    assert saved["protocol"] == protocol
    if protocol == "sl":
        assert np.asarray(saved["power_s_w"]).shape == (3, 6) and set(saved["assign_s"]) == {-2}
    else:
        assert set(saved["assign_s"]) == {-1} and saved["split"] == 4
    res = simulate(scenario, allocation=str(path), profile_source="analytic")
    assert res.rounds[0].end_s - res.rounds[0].start_s == pytest.approx(saved["round_time_s"], rel=1e-9)
    with pytest.raises(ConfigError, match=f"made for protocol {protocol}, the scenario has protocol sfl"):
        simulate(make_scenario(channel={"fading": {"model": "none"}}), allocation=str(path), profile_source="analytic")
