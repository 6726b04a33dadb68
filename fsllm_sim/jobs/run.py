"""`fsllm-sim run`: the end-to-end simulation of a scenario, written to a run directory.

Everything that can fail on bad input (scenario, allocation file or method, model, profile) fails
before the run directory exists. The directory then holds, besides the resolved configuration, seeds
and versions: ``trace.csv`` (one row per phase, with its energy), ``channel.csv`` (one row per uplink transfer; with
``simulation.channel_log: full`` also ``channel_blocks.parquet``, every segment's rate), ``rounds.csv``,
``allocations.json`` (the allocation in force each round), ``clients.csv``, ``results.json`` (with the
clients' ``energy``: per client, total, battery check, closed form), ``timing.json`` (host wall-clock times,
kept apart so results compare byte for byte) and the figures: a Gantt chart of the first round, the
closed-form delay breakdown, the cell layout and, with real training, validation loss against simulated time.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from plots import plot_delay_breakdown, plot_layout, plot_loss_vs_time, plot_participation, plot_round_gantt

from ..engine import SimulationResult, build_world, simulate
from ..engine.world import print_warnings
from ..engine.channel_log import BLOCK_FILE, SUMMARY_COLUMNS, summary_columns, write_blocks_parquet
from ..engine.trace import POSITION_COLUMNS, ROUND_COLUMNS, TRACE_COLUMNS, csv_text
from ..report import format_table
from ..rundir import (atomic_write_csv, atomic_write_json, atomic_write_text, check_output_dir, create_run_dir,
                      mark_complete)


def client_rows(result: SimulationResult) -> list[dict]:
    """Per-client facts and what the simulation measured for each client (means over all rounds)."""
    world = result.world
    env, fleet = world.env, world.fleet
    alloc = result.rounds[0].allocation
    served, closed = alloc.evaluate_members(world.problem)  # round 1's clients (all, in a static world)
    k = world.num_clients
    bits = {ph: np.zeros(k) for ph in ("uplink", "adapter_upload")}
    busy = {ph: np.zeros(k) for ph in ("forward", "backward", "uplink", "server_wait", "server", "downlink",
                                       "adapter_upload", "adapter_download")}
    for _, _, client, phase, start, end, b, _ in result.trace.rows:
        if client >= 0 and phase in busy:  # marks (drop, abort, cancel, stall) are not busy time
            busy[phase][client] += end - start
            if phase in bits:
                bits[phase][client] += b
    r_s, r_f = world.problem.rates(alloc.assign_s, alloc.power_s_w, alloc.assign_f, alloc.power_f_w)
    # the problem's index of each scenario client (protocol fl leaves out devices without the memory)
    index = {int(c): i for i, c in enumerate(world.problem.client_ids)}
    in_closed = {int(c): j for j, c in enumerate(served)}
    n_rounds = len(result.rounds)
    rows = []
    for c in range(k):
        up, upload = busy["uplink"][c], busy["adapter_upload"][c]
        i = index.get(c)
        rows.append({
            "client": c,
            "distance_m": float(env.distance_2d_m[c]),
            "los": bool(env.los[c]),
            "mean_snr_db": float(env.mean_snr_db("s")[c]),
            "subchannels_s": _subchannels(alloc.assign_s, alloc.power_s_w, i),
            "subchannels_f": _subchannels(alloc.assign_f, alloc.power_f_w, i),
            "device_tflops": float(fleet.flops_per_s[c] / 1e12),
            "mean_gain_rate_s_mbps": float(r_s[i] / 1e6) if i is not None else math.nan,
            "simulated_rate_s_mbps": float(bits["uplink"][c] / up / 1e6) if up > 0 else math.nan,
            "mean_gain_rate_f_mbps": float(r_f[i] / 1e6) if i is not None else math.nan,
            "simulated_rate_f_mbps": float(bits["adapter_upload"][c] / upload / 1e6) if upload > 0 else math.nan,
            "compute_s_per_round": float((busy["forward"][c] + busy["backward"][c]) / n_rounds),
            "uplink_s_per_round": float(up / n_rounds),
            "server_wait_s_per_round": float(busy["server_wait"][c] / n_rounds),
            "server_s_per_round": float(busy["server"][c] / n_rounds),
            "downlink_s_per_round": float(busy["downlink"][c] / n_rounds),
            "adapter_upload_s_per_round": float(upload / n_rounds),
            "analytic_client_round_s": float(closed.breakdown.client_round_s[in_closed[i]])
            if i is not None and i in in_closed else math.nan,
        })
        if world.problem.protocol == "sl":  # the hand-off: the client adapter relayed to this client
            rows[-1]["adapter_download_s_per_round"] = float(busy["adapter_download"][c] / n_rounds)
    return rows


def _subchannels(assign, power_w, i) -> int:
    """Subchannels problem client ``i`` transmits on (sl: those with power in its row; None: it takes no part)."""
    if i is None:
        return 0
    power = np.asarray(power_w)
    if power.ndim == 2:
        return int(np.sum(power[i] > 0))
    return int(np.sum(np.asarray(assign) == i))


def write_simulation(result: SimulationResult, run_dir: Path, *, label: str = "") -> dict:
    """Write every output of one simulation into ``run_dir``; returns the summary."""
    scenario = result.world.scenario
    real = result.real
    atomic_write_text(run_dir / "trace.csv", csv_text(TRACE_COLUMNS, result.trace_table()))
    transfers = result.channel_summary()
    if transfers:
        outage = len(transfers[0]) == len(SUMMARY_COLUMNS) + 1
        atomic_write_text(run_dir / "channel.csv", csv_text(summary_columns(outage), transfers))
    if result.channel_log == "full" and result.radio_rows:
        write_blocks_parquet(run_dir / BLOCK_FILE, result.radio_rows)
    if result.positions:
        atomic_write_text(run_dir / "positions.csv", csv_text(POSITION_COLUMNS, result.positions))
    rounds = result.round_rows()
    columns = list(ROUND_COLUMNS) + (["train_loss", "val_loss"] if real else [])
    atomic_write_text(run_dir / "rounds.csv", csv_text(columns, [[r[c] for c in columns] for r in rounds]))
    atomic_write_json(run_dir / "allocations.json",
                      [{"round": r.round, **r.allocation.to_dict()} for r in result.rounds])
    if not result.rounds:  # stopped before its first round: what was computed, and why
        summary = result.summary()
        atomic_write_json(run_dir / "results.json", {"summary": summary, "rounds": rounds,
                                                     "energy": result.energy_summary(),
                                                     "profile": result.world.profile_meta})
        atomic_write_json(run_dir / "timing.json", {"wall_s": summary.pop("wall_s"), "events": result.events})
        return summary
    clients = client_rows(result)
    atomic_write_csv(run_dir / "clients.csv", clients)
    summary = result.summary()
    timing = {"wall_s": summary.pop("wall_s"), "host_op_share": summary.pop("host_op_share", None),
              "events": result.events}
    atomic_write_json(run_dir / "results.json", {"summary": summary, "rounds": rounds, "clients": clients,
                                                 "energy": result.energy_summary(),
                                                 "profile": result.world.profile_meta})
    atomic_write_json(run_dir / "timing.json", timing)
    alloc = result.rounds[0].allocation
    name = label or alloc.label
    plot_round_gantt(result.trace.as_dicts(), 1, run_dir / "gantt_round1.png",
                     title=f"{scenario.name}: round 1, {name}, l={alloc.split}, r={alloc.rank}")
    plot_delay_breakdown(alloc.evaluate_members(result.world.problem)[1].breakdown, scenario.training.local_iterations,
                         run_dir / "delay_breakdown.png", title=f"{scenario.name}: closed form, {name}")
    env = result.world.env
    paths = {}
    for c, _, x, y, _ in result.positions:
        paths.setdefault(c, ([], []))
        paths[c][0].append(x)
        paths[c][1].append(y)
    plot_layout(env.positions_m, env.los, env.mean_snr_db("s"), scenario.clients.layout.radius_m,
                run_dir / "layout.png", title=f"{scenario.name}: K={env.num_clients}", trajectories=paths)
    if "round_policy" in result.settings:  # a changing world: who took part in each round
        plot_participation(rounds, run_dir / "participation.png", title=f"{scenario.name}: participation, {name}")
    if real:
        times, losses = result.loss_curve()
        plot_loss_vs_time({name: {"time_s": times, "value": losses}}, run_dir / "loss_vs_time.png",
                          title=f"{scenario.name}: validation loss", target=result.target_val_loss)
    return summary


def run_simulation(scenario, *, allocation: str | None = None, training: str | None = None, rounds: int | None = None,
                   policy: str | None = None, timing: str | None = None, runs_dir: str | None = None,
                   progress: bool = True, profile_source: str = "counted", echo=print) -> Path:
    """`fsllm-sim run`: simulate and write the run directory; returns it."""
    check_output_dir(runs_dir or scenario.output.runs_dir, "--runs-dir" if runs_dir else "output.runs_dir")
    world = build_world(scenario, profile_source=profile_source, progress=progress, echo=echo)
    print_warnings(world)
    result = simulate(scenario, allocation=allocation, training=training, rounds=rounds, policy=policy,
                      timing=timing, progress=progress, echo=echo, world=world)
    run_dir = create_run_dir(scenario, "run", runs_dir)
    summary = write_simulation(result, run_dir)
    if not result.rounds:
        mark_complete(run_dir, stopped=result.stopped)
        echo(f"stopped: {result.stopped}")
        echo(f"run directory: {run_dir}")
        return run_dir
    rows = client_rows(result)
    echo(f"scenario {scenario.name!r}: K={world.num_clients}, split l={summary['split']}, rank r={summary['rank']}, "
         f"allocation {summary['allocation']}, {summary['training']} training, server {summary['server_discipline']}"
         f", fading {'on' if summary['fading'] else 'off'}")
    echo(format_table(["k", "dist m", "LOS", "#s", "#f", "TFLOP/s", "R_s mean-gain", "R_s sim", "t_comp s",
                       "t_up s", "t_wait s", "t_srv s", "t_dn s", "t_adapt s"],
                      [[r["client"], r["distance_m"], r["los"], r["subchannels_s"], r["subchannels_f"],
                        r["device_tflops"], r["mean_gain_rate_s_mbps"], r["simulated_rate_s_mbps"],
                        r["compute_s_per_round"], r["uplink_s_per_round"], r["server_wait_s_per_round"],
                        r["server_s_per_round"], r["downlink_s_per_round"], r["adapter_upload_s_per_round"]]
                       for r in rows], digits=3))
    dyn = "round_policy" in result.settings
    round_table = [[r["round"], r["duration_s"], r["analytic_round_s"], r["straggler"]]
                   + ([r["participants"], r["dropped"], r["cancelled"], r["deadline_hit"]] if dyn else [])
                   + ([r["train_loss"], r["val_loss"]] if result.real else []) for r in result.round_rows()]
    echo(format_table(["round", "simulated s", "closed form s", "straggler"]
                      + (["aggregated", "dropped", "cancelled", "deadline hit"] if dyn else [])
                      + (["train loss", "val loss"] if result.real else []), round_table))
    if result.stopped:
        echo(f"stopped: {result.stopped}")
    echo(f"mean round {summary['mean_round_s']:.4g} s simulated vs {summary['mean_analytic_round_s']:.4g} s closed form "
         f"with {summary['analytic_rates']} rates ({100 * summary['round_gap_vs_analytic']:+.1f} %) and "
         f"{summary['mean_mean_gain_round_s']:.4g} s with mean-gain rates ({100 * summary['round_gap_vs_mean_gain']:+.1f} %)"
         f"; N(r={summary['rank']}) = "
         f"{summary['rounds_to_target_model']:.4g} rounds -> predicted {summary['analytic_time_to_target_s']:.4g} s")
    if result.real:
        reached = summary["simulated_time_to_target_s"]
        target = summary["target_val_loss"]
        echo(f"validation loss {summary['initial_val_loss']:.4f} -> {summary['final_val_loss']:.4f}; "
             + ("no target loss (set simulation.target_val_loss)" if target is None else
                f"target {target:.4f} " + (f"reached at {reached:.4g} s simulated" if reached is not None else
                                           f"not reached in {len(result.rounds)} rounds")))
    mark_complete(run_dir, stopped=result.stopped)  # the last step: complete only once everything is written
    for note in summary["notes"]:
        if note not in world.warnings:  # those were printed before the run
            echo(f"note: {note}")
    echo(f"run directory: {run_dir}")
    return run_dir
