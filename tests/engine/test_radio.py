"""The radio under fading: every transfer's bits are the integral of the rate it was given, a transfer costs
one event whatever the number of blocks it spans, and the files say the same as the simulation."""
import csv
from collections import defaultdict

import numpy as np
import pytest

from fsllm_sim.cli import main
from fsllm_sim.engine import simulate
from fsllm_sim.engine.channel_log import read_blocks

from engine_helpers import BASE, make_scenario


def test_every_transfer_delivers_exactly_its_bits_per_the_channel_log(tmp_path):
    import yaml

    f = tmp_path / "s.yaml"
    channel = dict(BASE["channel"], fading={"block_s": 0.001})  # tiny payloads: short blocks so transfers span many
    f.write_text(yaml.safe_dump(dict(BASE, channel=channel, simulation={"rounds": 2, "training": "analytic",
                                                                        "channel_log": "full"})))
    assert main(["run", str(f), "--runs-dir", str(tmp_path / "runs"), "--no-progress", "--profile", "analytic"]) == 0
    run = next((tmp_path / "runs").iterdir())
    trace = list(csv.DictReader((run / "trace.csv").open()))
    segments = defaultdict(list)
    for client, band, start, end, rate in read_blocks(run / "channel_blocks.parquet"):
        segments[client, band].append((start, end, rate))
    transfers = [r for r in trace if r["phase"] in ("uplink", "adapter_upload")]
    assert len(transfers) == 3 * 2 * (2 + 1)
    # the summary: one row per transfer, the trace's start, end and bits
    summary = list(csv.DictReader((run / "channel.csv").open()))
    assert len(summary) == len(transfers)
    by_start = {(int(r["client"]), r["band"], float(r["start_s"])): r for r in summary}
    for r in transfers:
        row = by_start[int(r["client"]), "s" if r["phase"] == "uplink" else "f", float(r["start_s"])]
        assert float(row["end_s"]) == float(r["end_s"])
        assert float(row["bits"]) == pytest.approx(float(r["bits"]), rel=1e-9)
        assert float(row["mean_rate_bps"]) == pytest.approx(
            float(r["bits"]) / (float(r["end_s"]) - float(r["start_s"])), rel=1e-9)
    multi_block = 0
    for r in transfers:
        band = "s" if r["phase"] == "uplink" else "f"
        start, end, bits = float(r["start_s"]), float(r["end_s"]), float(r["bits"])
        mine = [(s, e, rate) for s, e, rate in segments[int(r["client"]), band] if s >= start and e <= end]
        multi_block += len(mine) > 1
        # the segments tile the transfer without gaps
        assert mine[0][0] == start and mine[-1][1] == end
        assert all(a[1] == b[0] for a, b in zip(mine, mine[1:]))
        delivered = sum(rate * (e - s) for s, e, rate in mine)
        assert delivered == pytest.approx(bits, rel=1e-9)
    assert multi_block > 0.5 * len(transfers)  # most transfers really span several fading blocks


def test_a_transfer_costs_one_event_however_many_blocks_it_spans():
    coarse = simulate(make_scenario(channel={"fading": {"block_s": 0.5}}), profile_source="analytic",
                      channel_log="full")
    fine = simulate(make_scenario(channel={"fading": {"block_s": 0.00001}}), profile_source="analytic",
                    channel_log="full")
    assert sum(len(r[2]) for r in fine.radio_rows) > 100 * sum(len(r[2]) for r in coarse.radio_rows)
    assert fine.events == coarse.events


def test_the_channel_a_client_sees_does_not_depend_on_the_others_allocation():
    """Each client draws its fading from its own stream: its first uplink is the same whatever others do."""
    a = simulate(make_scenario(server={"discipline": "dedicated"}), profile_source="analytic", rounds=1,
                 channel_log="full")
    b = simulate(make_scenario(server={"discipline": "dedicated"}, devices={"speed": {"sigma": 1.5}}),
                 profile_source="analytic", rounds=1, channel_log="full")
    first = {}
    for res, key in ((a, "a"), (b, "b")):
        for client, band, starts, ends, rates in res.radio_rows:
            first.setdefault((key, client, band), (starts[0], rates))
    # different device speeds shift when each client transmits, yet the block grid and draws are per client:
    # a client starting in the same block sees the same first rate
    for k in range(3):
        sa, ra = first["a", k, "s"]
        sb, rb = first["b", k, "s"]
        if int(sa / 0.01) == int(sb / 0.01):
            assert ra[0] == rb[0]


def test_online_policy_resolves_each_round_on_measured_gains_and_keeps_split_and_rank():
    res = simulate(make_scenario(clients={"count": 4}, channel={"s_band": {"subchannels": 12},
                                                                "f_band": {"subchannels": 8}}),
                   profile_source="analytic", policy="online", allocation="bcd", rounds=3)
    allocs = [r.allocation for r in res.rounds]
    assert len({(a.split, a.rank) for a in allocs}) == 1
    assert any(not np.array_equal(allocs[0].assign_s, a.assign_s) or not np.allclose(allocs[0].power_s_w, a.power_s_w)
               for a in allocs[1:])
    assert all(a.label == "online bcd" for a in allocs)


def test_optimising_on_current_gains_sees_the_block_the_engine_starts_in():
    from fsllm_sim.engine.radio import Radio
    from fsllm_sim.jobs.optimize import scenario_problem

    scenario = make_scenario()
    problem, env, _ = scenario_problem(scenario, profile_source="analytic", progress=False, gains="current")
    mean, _, _ = scenario_problem(scenario, profile_source="analytic", progress=False, gains="average")
    radio = Radio(env, root_seed=scenario.seed, downlink_rate_bps=problem.downlink_rate_bps,
                  broadcast_rate_bps=problem.broadcast_rate_bps, record=False)
    gain_s, gain_f = radio.gains_at(0.0)
    assert np.array_equal(problem.gain_s, gain_s) and np.array_equal(problem.gain_f, gain_f)
    assert not np.array_equal(problem.gain_s, mean.gain_s)
