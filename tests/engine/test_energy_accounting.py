"""The engine accounts for the clients' energy (docs/energy.md): per trace row, per round, per client and against
each client's battery; DVFS clocks and per-client splits change what each client's phases cost.

On a static channel every number is a hand formula: compute kappa (Phi / phi) f^2, transmit p S / R, receive
p_rx S / R, idle p_idle times the time the client waits; a round's total is the closed form's ``Solution.energy``.
"""
import csv
import dataclasses
import json

import numpy as np
import pytest

from fsllm_sim.engine import build_world, simulate
from fsllm_sim.engine.allocation import equal_share
from fsllm_sim.errors import ConfigError
from fsllm_sim.jobs.run import run_simulation

from engine_helpers import make_scenario

RX_W, IDLE_W = 0.3, 0.05
STATIC = dict(channel={"fading": {"model": "none"}}, server={"discipline": "partitioned"})


def scenario(battery_j=None, **override):
    cfg = {**STATIC, "devices": {"energy": {"rx_power_w": RX_W, "idle_power_w": IDLE_W, "kappa": 2e-27,
                                            "battery_j": battery_j}}}
    cfg.update(override)
    return make_scenario(**cfg)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def band_power(assign, power, k):
    return float(np.sum(np.asarray(power)[np.asarray(assign) == k]))


def hand_phase_energy(row, problem, alloc, costs, rates):
    """The energy of one trace row from the formulas alone (row: a trace.csv row as a dict)."""
    k, phase = int(row["client"]), row["phase"]
    en = problem.energy
    if k < 0:
        return 0.0
    r_s, r_f = rates
    if phase in ("forward", "backward"):
        flops = costs["client_forward_flops" if phase == "forward" else "client_backward_flops"]
        flops = flops[k] if np.ndim(flops) else flops
        return float(en.kappa[k] * (flops / en.flops_per_cycle[k]) * en.f_max_hz[k] ** 2)
    if phase == "uplink":
        return band_power(alloc.assign_s, alloc.power_s_w, k) * costs["activation_bits"] / r_s[k]
    if phase == "downlink":
        return RX_W * costs["activation_bits"] / problem.downlink_rate_bps[k]
    if phase == "adapter_upload":
        return band_power(alloc.assign_f, alloc.power_f_w, k) * costs["adapter_bits"] / r_f[k]
    if phase in ("server_wait", "server"):
        return IDLE_W * (float(row["end_s"]) - float(row["start_s"]))
    raise AssertionError(f"unexpected phase {phase}")


@pytest.mark.parametrize("discipline", ["partitioned", "fifo"])
def test_every_phase_costs_its_hand_formula_and_a_round_the_closed_form(tmp_path, discipline):
    """Rule: static channel, rx and idle powers on: each trace.csv row's energy_j is its hand formula (1e-9); under a
    partitioned server every rounds.csv energy_j (idle included) is Solution.energy's total and its
    worst_client_energy_j the worst client's; results.json's energy adds them up per client."""
    sc = scenario(server={"discipline": discipline, "workers": 1, "flops_per_s": 1e9}, simulation={"rounds": 2})
    run = run_simulation(sc, runs_dir=str(tmp_path / "runs"), progress=False, profile_source="analytic",
                         echo=lambda *_: None)
    world = build_world(sc, profile_source="analytic", progress=False)
    problem = world.problem
    alloc = equal_share(problem, sc.split.layer, sc.lora.rank)
    costs = problem.costs(alloc.split, alloc.rank)
    rates = problem.rates(alloc.assign_s, alloc.power_s_w, alloc.assign_f, alloc.power_f_w)
    trace = read_csv(run / "trace.csv")
    assert list(trace[0])[-1] == "energy_j"
    phases = set()
    for row in trace:
        e = float(row["energy_j"])
        phases.add(row["phase"])
        if row["phase"] in ("aggregation", "broadcast"):
            assert e == 0.0
            continue
        assert e == pytest.approx(hand_phase_energy(row, problem, alloc, costs, rates), rel=1e-9, abs=1e-300), row
    assert {"forward", "backward", "uplink", "downlink", "server", "adapter_upload"} <= phases
    if discipline == "fifo":
        assert "server_wait" in phases  # queueing costs idle power too

    closed = alloc.evaluate(problem).energy
    assert closed.idle_j.min() > 0 and closed.downlink_rx_j.min() > 0 and closed.broadcast_rx_j.min() > 0
    rounds = read_csv(run / "rounds.csv")
    assert list(rounds[0])[-2:] == ["energy_j", "worst_client_energy_j"]
    results = json.loads((run / "results.json").read_text())
    energy = results["energy"]
    total = sum(float(r["energy_j"]) for r in rounds)
    assert energy["total_j"] == pytest.approx(total, rel=1e-12)
    assert sum(energy["per_client_j"].values()) == pytest.approx(total, rel=1e-12)
    assert all(b == {"battery_j": None, "used_fraction": None, "ran_out": False, "ran_out_s": None}
               for b in energy["battery"].values())
    if discipline == "partitioned":
        for r in rounds:
            assert float(r["energy_j"]) == pytest.approx(closed.total_j, rel=1e-9)
            assert float(r["worst_client_energy_j"]) == pytest.approx(closed.worst_client_j, rel=1e-9)
        for c, e in energy["per_client_j"].items():
            assert e == pytest.approx(2 * closed.client_j[int(c)], rel=1e-9)
        assert energy["mean_analytic_round_j"] == pytest.approx(closed.total_j, rel=1e-12)
        assert energy["round_gap_vs_analytic"] == pytest.approx(0.0, abs=1e-9)
        assert energy["analytic_round"]["idle_j"] == pytest.approx(closed.idle_j.tolist(), rel=1e-12)
        assert energy["worst_client"] == int(np.argmax(closed.client_j))


def test_the_default_scenario_without_batteries_runs_the_static_mode():
    """Rule: no battery (battery_j null): nothing of the battery check runs (the static mode, its events)."""
    res = simulate(scenario(), profile_source="analytic")
    assert not res.dynamic and res.battery_out_s == {}
    assert res.summary()["events"] == res.events


def dvfs_runs(frequency_scale):
    sc = scenario(simulation={"rounds": 1})
    world = build_world(sc, profile_source="analytic", progress=False)
    problem = world.problem
    base = equal_share(problem, sc.split.layer, sc.lora.rank)
    out = {}
    for name, scale in frequency_scale.items():
        alloc = base if scale is None else dataclasses.replace(base, frequency_hz=problem.energy.f_max_hz * scale)
        out[name] = (simulate(sc, allocation=alloc, world=world), alloc)
    return problem, out


def compute_rows(res):
    """(round, iteration, client, phase) -> (row, energy_j) of every compute row (phases may end in another order)."""
    return {r[:4]: (r, e) for r, e in zip(res.trace.rows, res.energy.row_j) if r[3] in ("forward", "backward")}


def test_half_the_clock_doubles_compute_time_and_quarters_compute_energy_exactly():
    """Rule: frequency_hz = f_max / 2 runs each compute phase at phi f / 2: twice as long (exactly for the phases
    that start at t = 0, 1e-12 for the others) at an eighth of the power kappa f^3: a quarter of the energy; f_max
    given explicitly is the run without clocks; the round is solvers.evaluate's with those clocks."""
    problem, runs = dvfs_runs({"none": None, "max": 1.0, "half": 0.5})
    full, half, none = compute_rows(runs["max"][0]), compute_rows(runs["half"][0]), compute_rows(runs["none"][0])
    assert full.keys() == half.keys() == none.keys() and full
    exact = 0
    for key, (rf, ef) in full.items():
        (rh, eh), (rn, en) = half[key], none[key]
        assert rf[7] == rh[7] == rn[7]  # the same FLOPs
        if rf[4] == rh[4] == 0.0:
            assert rh[5] == 2 * rf[5] and eh == ef / 4
            exact += 1
        assert rh[5] - rh[4] == pytest.approx(2 * (rf[5] - rf[4]), rel=1e-12)
        assert eh == pytest.approx(ef / 4, rel=1e-12)
        assert en == pytest.approx(ef, rel=1e-12) and rn[5] - rn[4] == pytest.approx(rf[5] - rf[4], rel=1e-12)
    assert exact == problem.num_clients  # every client's first forward starts at 0
    res, alloc = runs["half"]
    closed = alloc.evaluate(problem)
    assert closed.frequency_hz is not None
    rec = res.rounds[0]
    assert rec.end_s - rec.start_s == pytest.approx(closed.round_time_s, rel=1e-9)
    assert res.energy.round_j(rec) == pytest.approx(closed.energy.total_j, rel=1e-9)
    assert json.loads(json.dumps(alloc.to_dict()))["frequency_hz"] == (problem.energy.f_max_hz / 2).tolist()


def test_per_client_splits_cost_each_client_its_own_split_and_the_round_is_the_closed_form():
    """Rule: splits = [1, 2, 3] (analytic backend): client k's forward, backward and server FLOPs, its activations
    and its adapter upload are problem.client_costs' for its split; the broadcast carries the largest adapter; the
    simulated round is solvers.evaluate(..., splits=...)'s to 1e-9 and so is its energy."""
    sc = scenario(simulation={"rounds": 2})
    world = build_world(sc, profile_source="analytic", progress=False)
    problem = world.problem
    splits = np.array([1, 2, 3])
    alloc = dataclasses.replace(equal_share(problem, 1, sc.lora.rank), splits=splits)
    res = simulate(sc, allocation=alloc, world=world)
    costs = problem.client_costs(splits, sc.lora.rank)
    assert len(set(costs["adapter_bits"])) == 3  # the splits differ in what they cost
    field = {"forward": (7, "client_forward_flops"), "backward": (7, "client_backward_flops"),
             "server": (7, "server_flops"), "uplink": (6, "activation_bits"), "downlink": (6, "activation_bits"),
             "adapter_upload": (6, "adapter_bits")}
    seen = set()
    for row in res.trace.rows:
        if row[3] in field:
            at, name = field[row[3]]
            assert row[at] == costs[name][row[2]], row
            seen.add(row[3])
        elif row[3] == "broadcast":
            assert row[6] == max(costs["adapter_bits"])
    assert seen == set(field)
    closed = alloc.evaluate(problem)
    assert closed.splits.tolist() == splits.tolist()
    for rec in res.rounds:
        assert rec.end_s - rec.start_s == pytest.approx(closed.round_time_s, rel=1e-9)
        assert rec.analytic_round_s == closed.round_time_s
        assert res.energy.round_j(rec) == pytest.approx(closed.energy.total_j, rel=1e-9)
    # the hand formula of a client's compute at its own split
    en = problem.energy
    for row, e in zip(res.trace.rows, res.energy.row_j):
        if row[3] == "forward":
            k = row[2]
            assert e == pytest.approx(en.kappa[k] * costs["client_forward_flops"][k] / en.flops_per_cycle[k]
                                      * en.f_max_hz[k] ** 2, rel=1e-9)


def device_trace(tmp_path, batteries):
    """A device trace: three devices, client k's battery batteries[k] (None: an empty cell, no battery)."""
    lines = ["client_id,flops_per_s,memory_bytes,battery_j"]
    for k, (speed, b) in enumerate(zip((4e11, 2e11, 3e11), batteries)):
        lines.append(f"{k},{speed!r},{4 * 2 ** 30},{'' if b is None else repr(b)}")
    path = tmp_path / f"devices-{len(list(tmp_path.iterdir()))}.csv"
    path.write_text("\n".join(lines) + "\n")
    return {"speed": {"distribution": "trace", "trace_path": str(path)},
            "energy": {"rx_power_w": RX_W, "idle_power_w": IDLE_W, "kappa": 2e-27}}


def power_timeline(res, client, round_index):
    """Client ``client``'s power in round ``round_index`` as [(start, end, watts)], by hand: the rows' phase
    powers, p_rx for the broadcast and p_idle in every gap of the round."""
    problem = res.world.problem
    rec = res.rounds[round_index - 1]
    alloc, en = rec.allocation, problem.energy
    power = {"forward": en.kappa[client] * en.f_max_hz[client] ** 3,
             "backward": en.kappa[client] * en.f_max_hz[client] ** 3,
             "uplink": band_power(alloc.assign_s, alloc.power_s_w, client),
             "adapter_upload": band_power(alloc.assign_f, alloc.power_f_w, client),
             "downlink": RX_W, "server": IDLE_W, "server_wait": IDLE_W}
    spans = sorted((r[4], r[5], power[r[3]]) for r in res.trace.rows
                   if r[0] == round_index and r[2] == client and r[3] in power)
    (bcast,) = [r for r in res.trace.rows if r[0] == round_index and r[3] == "broadcast"]
    spans.append((bcast[4], bcast[5], RX_W))
    out, t = [], rec.start_s
    for s, e, p in spans:
        if s > t:
            out.append((t, s, IDLE_W))
        out.append((s, e, p))
        t = max(t, e)
    return out


def test_a_client_whose_battery_runs_out_leaves_for_good_at_that_instant(tmp_path):
    """Rule: client 1's battery holds 45 % of its first round's energy: it drops at t0 + R / p of the phase in
    which its energy reaches battery_j (1e-9; a ``battery`` mark there), its energy over the run is battery_j, it
    is never selected again and the other clients finish every round."""
    ref = simulate(make_scenario(**STATIC, devices=device_trace(tmp_path, [None, None, None]),
                                 simulation={"rounds": 3}), profile_source="analytic")
    timeline = power_timeline(ref, 1, 1)
    spent = sum((e - s) * p for s, e, p in timeline)
    assert spent == pytest.approx(ref.energy.round_client_j[0][1], rel=1e-9)  # the hand timeline is the account
    battery = float(0.45 * spent)
    acc, predicted = 0.0, None
    for s, e, p in timeline:
        if acc + (e - s) * p >= battery:
            predicted = s + (battery - acc) / p
            break
        acc += (e - s) * p
    sc = make_scenario(**STATIC, devices=device_trace(tmp_path, [None, battery, None]), simulation={"rounds": 3})
    run = run_simulation(sc, runs_dir=str(tmp_path / "runs"), progress=False, profile_source="analytic",
                         echo=lambda *_: None)
    res = simulate(sc, profile_source="analytic")
    assert res.dynamic and res.stopped is None and len(res.rounds) == 3
    (mark,) = [r for r in res.trace.rows if r[3] == "battery"]
    assert mark[0] == 1 and mark[2] == 1 and mark[4] == mark[5]
    assert mark[4] == pytest.approx(predicted, rel=1e-9)
    assert res.battery_out_s == {1: mark[4]}
    assert res.rounds[0].dropped == [1] and res.rounds[0].aggregated == [0, 2]
    for rec in res.rounds[1:]:
        assert 1 not in rec.selected and rec.aggregated == [0, 2]
    assert all(e == 0 for r, e in zip(res.trace.rows, res.energy.row_j) if r[2] == 1 and r[5] > mark[4])
    # the run directory says the same
    results = json.loads((run / "results.json").read_text())
    check = results["energy"]["battery"]["1"]
    assert check["ran_out"] and check["ran_out_s"] == mark[4] and check["battery_j"] == battery
    assert check["used_fraction"] == pytest.approx(1.0, rel=1e-9)
    assert results["energy"]["per_client_j"]["1"] == pytest.approx(battery, rel=1e-9)
    assert not results["energy"]["battery"]["0"]["ran_out"] and results["energy"]["battery"]["0"]["battery_j"] is None
    rounds = read_csv(run / "rounds.csv")
    assert [int(r["dropped"]) for r in rounds] == [1, 0, 0]
    assert [r["aggregated_clients"] for r in rounds] == ["0;2"] * 3
    assert sum(1 for r in read_csv(run / "trace.csv") if r["phase"] == "battery") == 1


def test_every_battery_empty_stops_the_run_with_a_complete_run_directory(tmp_path):
    """Rule: every client's battery runs out in round 1: the run stops with the clear message of a world whose
    clients are gone for good, and its run directory is complete and holds what was computed."""
    sc = scenario(battery_j=1e-6)
    lines = []
    run = run_simulation(sc, runs_dir=str(tmp_path / "runs"), progress=False, profile_source="analytic",
                         echo=lines.append)
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "complete"
    assert "none will become available again" in status["stopped"] and "out of battery" in status["stopped"]
    for name in ("trace.csv", "rounds.csv", "results.json", "config.resolved.yaml", "seeds.json"):
        assert (run / name).is_file(), name
    assert any(line.startswith("stopped: ") for line in lines)
    trace = read_csv(run / "trace.csv")
    assert sorted(int(r["client"]) for r in trace if r["phase"] == "battery") == [0, 1, 2]
    energy = json.loads((run / "results.json").read_text())["energy"]
    assert all(b["ran_out"] and b["used_fraction"] == pytest.approx(1.0, rel=1e-9)
               for b in energy["battery"].values())
    assert energy["total_j"] == pytest.approx(3e-6, rel=1e-9)
    (attempt,) = read_csv(run / "rounds.csv")
    assert int(attempt["dropped"]) == 3 and float(attempt["energy_j"]) == pytest.approx(3e-6, rel=1e-9)


def test_batteries_under_sl_are_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"devices\.energy\.battery_j: batteries need a protocol whose clients can "
                                          r"drop mid-round"):
        scenario(battery_j=1.0, protocol="sl")  # at load, from the scenario's field
    traced = make_scenario(**STATIC, devices=device_trace(tmp_path, [1.0, None, None]), protocol="sl")
    with pytest.raises(ConfigError, match="battery_j under protocol sl"):  # at simulate, from a trace's column
        simulate(traced, profile_source="analytic")


@pytest.mark.parametrize("world", [
    dict(availability={"model": "markov", "mean_on_s": 0.05, "mean_off_s": 0.02},
         round={"policy": "deadline", "deadline_s": 0.02, "min_clients": 2, "below_min": "repeat"}),
    dict(round={"policy": "over-selection", "clients_per_round": 4, "over_selection": 1.5}),
    dict(mobility={"model": "random-waypoint", "speed_min_mps": 1.0, "speed_max_mps": 1.5, "update_s": 0.01},
         channel={"downlink": {"fading": "fading"}}),
    dict(protocol="fl"),
], ids=["deadline-markov", "over-selection", "moving-dl-fading", "fl"])
def test_a_battery_runs_out_when_the_written_energy_reaches_it_in_a_changing_world(world):
    """Rule: the online battery check and the energy written agree: with fading, moving clients, drops, cancels
    and repeated attempts, every client whose battery ran out spent exactly battery_j over the run (1e-9), the
    others less; no row costs a negative energy."""
    battery = 0.02
    cfg = dict(clients={"count": 8}, simulation={"rounds": 12},
               devices={"energy": {"rx_power_w": RX_W, "idle_power_w": IDLE_W, "battery_j": battery}})
    cfg.update(world)
    cfg["channel"] = {"s_band": {"subchannels": 12}, "f_band": {"subchannels": 8}, **cfg.get("channel", {})}
    res = simulate(make_scenario(**cfg), profile_source="analytic")
    acc = res.energy
    assert res.battery_out_s and np.all(acc.row_j >= 0)
    for c, e in zip(acc.client_ids, acc.client_j):
        if int(c) in res.battery_out_s:
            assert e == pytest.approx(battery, rel=1e-9), c
        else:
            assert e < battery
    marks = {r[2]: r[4] for r in res.trace.rows if r[3] == "battery"}
    assert marks == res.battery_out_s
    for rec in res.rounds + res.discarded:  # never selected once out of battery
        assert not any(c in res.battery_out_s and res.battery_out_s[c] <= rec.start_s for c in rec.selected)


def test_budget_check_counts_the_rounds_fading_pushes_over_the_budget():
    """Under delay-under-energy the optimiser meets every budget in its model; results.json says how often the
    simulated rounds (with fading) did not."""
    sc = scenario()
    world = build_world(sc, profile_source="analytic", progress=False)
    base = simulate(sc, profile_source="analytic", world=world, allocation="bcd")
    closed = base.rounds[0].allocation.evaluate(world.problem).energy.client_j
    tight = dataclasses.replace(sc, objective=dataclasses.replace(sc.objective, kind="delay-under-energy",
                                                                 budget_j=float(np.min(closed))))
    res = simulate(tight, profile_source="analytic", allocation="bcd")
    check = res.energy_summary()["budget"]
    # a static world is the optimiser's model: no round goes over
    assert check["rounds"] == len(res.rounds) and check["rounds_over"] == 0
    assert check["worst_ratio_to_budget"] <= 1 + 1e-9
    # equal-share at f_max ignores the budget: the clients that spend more than the tightest client go over
    eq = simulate(tight, profile_source="analytic", allocation="equal-share").energy_summary()["budget"]
    assert eq["rounds_over"] == eq["rounds"] and eq["worst_ratio_to_budget"] > 1
    assert base.energy_summary()["budget"] is None


def test_an_error_inside_a_changing_world_is_raised_as_itself(tmp_path, monkeypatch):
    """A battery runs the dynamic loop: an allocation the problem refuses at a round's start surfaces as its own
    one-line error, not as a failure of the bookkeeping after the loop."""
    import fsllm_sim.engine.simulation as sim
    from fsllm_sim.engine.allocation import StaticPolicy
    from fsllm_sim.errors import SolverError

    sc = make_scenario(**STATIC, devices=device_trace(tmp_path, [1.0, None, None]))
    world = build_world(sc, profile_source="analytic", progress=False)
    refused = dataclasses.replace(equal_share(world.problem, sc.split.layer, sc.lora.rank), rank=999)
    monkeypatch.setattr(sim, "make_policy", lambda *args, **kwargs: StaticPolicy(refused, world.problem))
    with pytest.raises(SolverError, match="rank=999"):
        simulate(sc, world=world)
