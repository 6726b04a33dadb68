"""Round rules in the engine: deadline, over-selection, aborted transfers, stalls, and what FedAvg sees.

Each test states its rule; timelines are read back from the trace (the same rows trace.csv holds).
"""
import math

import numpy as np
import pytest
import torch

from fsllm_sim.engine import simulate
from fsllm_sim.errors import ConfigError
from fsllm_sim.training.fed_server import fedavg
from fsllm_sim.training.system import SplitFedSystem

from engine_helpers import make_scenario

CLIENT_PHASES = ("forward", "uplink", "server_wait", "server", "downlink", "backward", "adapter_upload",
                 "adapter_download")


def rows_of(res, round_index, phase=None):
    return [r for r in res.trace.rows if r[0] == round_index and (phase is None or r[3] == phase)]


def test_deadline_rounds_never_run_past_the_deadline_and_aggregate_the_listed_clients():
    """Rule: no client phase of a deadline round ends after start + deadline_s; the clients whose upload
    arrived by then are exactly those aggregated (rounds.csv); the late ones are cancelled at the deadline."""
    deadline = 0.016
    res = simulate(make_scenario(round={"policy": "deadline", "deadline_s": deadline},
                                 devices={"speed": {"sigma": 1.0}}, simulation={"rounds": 4}),
                   profile_source="analytic")
    hits = 0
    for row, rec in zip(res.round_rows(), res.rounds):
        limit = rec.start_s + deadline
        client_rows = [r for r in rows_of(res, rec.round) if r[3] in CLIENT_PHASES and r[2] >= 0]
        # a request already at the main server is served on (its own process): not the client's round
        assert all(r[5] <= limit + 1e-12 for r in client_rows if r[3] not in ("server", "server_wait"))
        uploaded = sorted({r[2] for r in rows_of(res, rec.round, "adapter_upload")
                           if r[2] not in rec.cancelled and r[5] <= limit + 1e-12})
        assert row["aggregated_clients"] == ";".join(str(c) for c in uploaded)
        assert row["participants"] == len(uploaded) and row["selected"] == 3
        cancels = rows_of(res, rec.round, "cancel")
        assert sorted(r[2] for r in cancels) == sorted(rec.cancelled)
        assert all(r[4] == pytest.approx(limit, abs=1e-12) for r in cancels)
        hits += row["deadline_hit"]
    assert hits >= 1 and any(rec.cancelled for rec in res.rounds), "the deadline should bite in this scenario"


def test_a_deadline_no_client_can_meet_is_refused_up_front_with_the_fastest_round():
    """Rule: one line, naming the field and the fastest possible client round, before anything runs."""
    with pytest.raises(ConfigError) as info:
        simulate(make_scenario(round={"policy": "deadline", "deadline_s": 1e-4}), profile_source="analytic")
    text = str(info.value)
    assert "\n" not in text and text.startswith("round.deadline_s=0.0001 s") and "fastest possible" in text


def test_below_min_repeat_stops_after_max_repeats_with_every_attempt_recorded():
    """Rule: an attempt with fewer than min_clients finishers is discarded and the round started again; after
    max_repeats attempts the run stops with a message (no endless loop), every attempt in rounds.csv."""
    res = simulate(make_scenario(round={"policy": "deadline", "deadline_s": 0.016, "min_clients": 3,
                                        "below_min": "repeat", "max_repeats": 3},
                                 devices={"speed": {"sigma": 1.0}}), profile_source="analytic")
    assert res.rounds == [] and "max_repeats" in res.stopped
    rows = res.round_rows()
    assert [r["attempt"] for r in rows] == [1, 2, 3] and all(r["participants"] == 0 for r in rows)
    assert [r["start_s"] for r in rows[1:]] == [r["end_s"] for r in rows[:-1]]


def test_below_min_extend_lifts_the_deadline_until_min_clients_finish():
    """Rule: with extend, the round waits past the deadline until min_clients uploads have arrived."""
    res = simulate(make_scenario(round={"policy": "deadline", "deadline_s": 0.016, "min_clients": 3},
                                 devices={"speed": {"sigma": 1.0}}), profile_source="analytic")
    for row in res.round_rows():
        assert row["participants"] == 3 and row["cancelled"] == 0
    assert any(r["deadline_hit"] for r in res.round_rows())


def test_over_selection_keeps_the_first_k_by_finish_time_and_cancels_the_rest():
    """Rule: K' = ceil(1.5 * 2) = 3 clients selected; the first K = 2 uploads (by arrival) are aggregated, the
    third client is cancelled at the second arrival and its transfer in flight is aborted."""
    res = simulate(make_scenario(round={"policy": "over-selection", "clients_per_round": 2, "over_selection": 1.5},
                                 devices={"speed": {"sigma": 1.0}}, simulation={"rounds": 3}),
                   profile_source="analytic")
    for rec in res.rounds:
        ends = {r[2]: r[5] for r in rows_of(res, rec.round, "adapter_upload") if r[2] not in rec.cancelled}
        first_two = sorted(ends, key=lambda c: ends[c])[:2]
        assert sorted(rec.aggregated) == sorted(first_two) and len(rec.selected) == 3
        assert len(rec.cancelled) == 1
        (cancel,) = rows_of(res, rec.round, "cancel")
        assert cancel[4] == max(ends[c] for c in first_two)


def test_an_aborted_transfer_records_the_integral_of_its_rates_up_to_the_abort():
    """Rule: the bits of an abort mark (and of the cut phase row) equal the integral of the rate the radio
    recorded for that transfer up to the abort instant, and are fewer than the payload."""
    scenario = make_scenario(round={"policy": "over-selection", "clients_per_round": 2, "over_selection": 1.5},
                             devices={"speed": {"sigma": 1.0}}, simulation={"rounds": 3})
    res = simulate(scenario, profile_source="analytic", channel_log="full")
    summary = {(r[0], r[1], r[2]): r for r in simulate(scenario, profile_source="analytic").channel_summary()}
    channel = res.channel_rows()
    aborts = [r for r in res.trace.rows if r[3] == "abort"]
    assert aborts
    for t, e, c, _, at, _, bits, _ in aborts:
        (cut,) = [r for r in res.trace.rows if r[0] == t and r[1] == e and r[2] == c and r[5] == at
                  and r[3] in ("uplink", "adapter_upload")]
        band = "s" if cut[3] == "uplink" else "f"
        integral = sum(rate * (end - start) for cl, b, start, end, rate in channel
                       if cl == c and b == band and start >= cut[4] and end <= at)
        assert integral == pytest.approx(bits, rel=1e-9) and cut[6] == bits
        row = summary[c, band, cut[4]]  # the summary log: the transfer ends at the abort with the bits sent
        assert row[3] == at and row[4] == pytest.approx(bits, rel=1e-9)
        full = res.rounds[0].allocation and next(r[6] for r in res.trace.rows if r[3] == cut[3] and r[2] != c)
        assert bits < full


def test_a_stalled_block_makes_no_progress_and_the_stall_is_marked():
    """Rule: with an outage threshold above some blocks' rate, the blocks in which every subchannel of a
    transfer is in outage carry rate 0 in channel.csv, lie inside a ``stall`` row of the trace, and the
    transfer still delivers exactly its bits over its other blocks."""
    scenario = make_scenario(radio={"outage_rate_bps": 3.7e6}, channel={"fading": {"block_s": 0.001}},
                             simulation={"rounds": 2})
    res = simulate(scenario, profile_source="analytic", channel_log="full")
    summary = simulate(scenario, profile_source="analytic").channel_summary()
    stall_rows = [r for r in res.trace.rows if r[3] == "stall"]
    assert sum(r[-1] for r in summary) == pytest.approx(sum(r[5] - r[4] for r in stall_rows), rel=1e-9)
    channel = res.channel_rows()
    assert all(len(r) == 6 for r in channel)
    cl = np.array([r[0] for r in channel])
    band = np.array([r[1] for r in channel])
    start, end, rate, dead = (np.array([r[i] for r in channel]) for i in (2, 3, 4, 5))
    stalls = np.array([(r[2], r[4], r[5]) for r in res.trace.rows if r[3] == "stall"])
    zero = np.flatnonzero(rate == 0.0)
    assert zero.size and stalls.size
    assert np.all(dead[zero] >= 1)
    for i in zero:
        assert np.any((stalls[:, 0] == cl[i]) & (stalls[:, 1] <= start[i]) & (end[i] <= stalls[:, 2]))
    for r in res.trace.rows:
        if r[3] == "uplink":
            seg = (cl == r[2]) & (band == "s") & (start >= r[4]) & (end <= r[5])
            assert np.sum(rate[seg] * (end[seg] - start[seg])) == pytest.approx(r[6], rel=1e-9)


def test_only_the_aggregated_clients_enter_fedavg_with_real_training(text_corpus, monkeypatch):
    """Rule: with real training, the global client adapter after a deadline round equals a hand FedAvg (weights
    n_k renormalised) over the adapters of the clients rounds.csv lists, and not the FedAvg over all clients."""
    seen = {}
    original = SplitFedSystem.finish_round

    def spy(self, participants=None):
        seen["all"] = {k: self.clients[k].adapter_upload() for k in range(self.num_clients)}
        seen["participants"] = None if participants is None else list(participants)
        msg = original(self, participants)
        seen.setdefault("global", []).append(self.global_client_state())
        return msg

    monkeypatch.setattr(SplitFedSystem, "finish_round", spy)
    scenario = make_scenario(data={"source": text_corpus, "partition": "iid"},
                             simulation={"rounds": 1, "training": "real"}, devices={"speed": {"sigma": 1.0}},
                             round={"policy": "deadline", "deadline_s": 0.016})
    res = simulate(scenario, profile_source="analytic")
    rec = res.rounds[0]
    assert rec.cancelled, "one client should miss the deadline"
    members = seen["participants"]
    assert [int(res.world.problem.client_ids[k]) for k in members] == rec.aggregated
    ups = seen["all"]
    hand = fedavg([ups[k].state for k in members], [ups[k].num_samples for k in members])
    everyone = fedavg([u.state for u in ups.values()], [u.num_samples for u in ups.values()])
    got = seen["global"][0]
    for key in hand:
        torch.testing.assert_close(got[key], hand[key], rtol=0, atol=1e-7)
    assert any(not torch.allclose(got[key], everyone[key]) for key in hand)
