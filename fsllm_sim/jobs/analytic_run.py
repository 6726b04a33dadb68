"""`fsllm-sim run`: place clients, draw channels and devices, and evaluate the analytic delay of an allocation.

Until the event engine lands this is the main job: it evaluates spec section 4 for the equal-share
allocation (equal subchannel counts, water-filled power, the scenario's split and rank) or for a
solution saved by `fsllm-sim optimize`, and also measures the fading-averaged (ergodic) rate of each
client over the blocks of one round, which the average-gain analysis cannot see.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from channel_models import client_rates_bps, gains_from_fading
from plots import plot_delay_breakdown, plot_layout
from solvers.problem import evaluate
from solvers.scenario import build_problem

from ..convergence import load_convergence
from ..devices import make_fleet
from ..network import build_environment
from ..profiles import scenario_profile
from ..report import format_table
from ..rundir import atomic_write_csv, atomic_write_json, create_run_dir
from ..seeding import stream
from .allocation import equal_share_allocation, load_solution_allocation

# Bound on the blocks simulated for the ergodic rate: enough for a stable mean at any realistic T_c.
MAX_FADING_BLOCKS = 2000


def ergodic_rates_bps(env, alloc: dict, num_blocks: int, seed: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean client rate on each band over ``num_blocks`` fading blocks, powers held fixed."""
    k = env.num_clients
    if not env.fading_enabled or num_blocks == 0:
        return (client_rates_bps(alloc["assign_s"], alloc["power_s_w"], env.average_gains("s"), env.s_band.bandwidth_hz,
                                 env.noise_psd_w_per_hz, k),
                client_rates_bps(alloc["assign_f"], alloc["power_f_w"], env.average_gains("f"), env.f_band.bandwidth_hz,
                                 env.noise_psd_w_per_hz, k))
    rng = stream(seed, "fading")
    fad_s, fad_f = env.fading("s", rng), env.fading("f", rng)
    acc_s, acc_f = np.zeros(k), np.zeros(k)
    for _ in tqdm(range(num_blocks), desc="fading blocks", unit="block", disable=not progress, leave=False):
        g_s = gains_from_fading(env.large_scale_gain, fad_s.next_block())
        g_f = gains_from_fading(env.large_scale_gain, fad_f.next_block())
        acc_s += client_rates_bps(alloc["assign_s"], alloc["power_s_w"], g_s, env.s_band.bandwidth_hz,
                                  env.noise_psd_w_per_hz, k)
        acc_f += client_rates_bps(alloc["assign_f"], alloc["power_f_w"], g_f, env.f_band.bandwidth_hz,
                                  env.noise_psd_w_per_hz, k)
    return acc_s / num_blocks, acc_f / num_blocks


def run_analytic(scenario, *, allocation_path: str | None = None, runs_dir: str | None = None,
                 progress: bool = True, profile_source: str = "counted", echo=print) -> Path:
    """Run the analytic job and write its run directory; returns the directory."""
    # Everything that can fail on bad input happens before the run directory exists.
    env = build_environment(scenario)
    fleet = make_fleet(scenario.devices, env.num_clients, stream(scenario.seed, "devices"))
    convergence = load_convergence(scenario)
    profile, profile_meta = scenario_profile(scenario, source=profile_source, progress=progress)
    problem = build_problem(scenario, env, fleet, profile, convergence)
    if allocation_path is None:
        alloc, split, rank, label = (equal_share_allocation(problem), scenario.split.layer, scenario.lora.rank,
                                     "equal-share (equal subchannels, water-filled power)")
    else:
        alloc, split, rank = load_solution_allocation(allocation_path, problem)
        label = f"from {allocation_path}"
    sol = evaluate(problem, split, rank, alloc["assign_s"], alloc["power_s_w"], alloc["assign_f"], alloc["power_f_w"],
                   method="equal-share" if allocation_path is None else "saved")
    run_dir = create_run_dir(scenario, "run", runs_dir)
    bd = sol.breakdown
    blocks = int(min(MAX_FADING_BLOCKS, max(1, np.ceil(bd.round_s / env.block_s))))
    erg_s, erg_f = ergodic_rates_bps(env, alloc, blocks, scenario.seed, progress)
    rate_s, rate_f = problem.rates(alloc["assign_s"], alloc["power_s_w"], alloc["assign_f"], alloc["power_f_w"])

    rows = []
    for k in range(env.num_clients):
        rows.append({
            "client": k,
            "distance_m": float(env.distance_2d_m[k]),
            "los": bool(env.los[k]),
            "path_loss_db": float(env.path_loss_db[k]),
            "shadowing_db": float(env.shadowing_db[k]),
            "mean_snr_db": float(env.mean_snr_db("s")[k]),
            "subchannels_s": int(np.sum(alloc["assign_s"] == k)),
            "subchannels_f": int(np.sum(alloc["assign_f"] == k)),
            "rate_s_mbps": float(rate_s[k] / 1e6),
            "ergodic_rate_s_mbps": float(erg_s[k] / 1e6),
            "rate_f_mbps": float(rate_f[k] / 1e6),
            "ergodic_rate_f_mbps": float(erg_f[k] / 1e6),
            "downlink_mbps": float(problem.downlink_rate_bps[k] / 1e6),
            "device_tflops": float(fleet.flops_per_s[k] / 1e12),
            "client_compute_s": float(bd.client_forward_s[k] + bd.client_backward_s[k]),
            "uplink_s": float(bd.uplink_s[k]),
            "server_compute_s": float(bd.server_compute_s[k]),
            "downlink_s": float(bd.downlink_s[k]),
            "tau_s": float(bd.iteration_s[k]),
            "adapter_upload_s": float(bd.adapter_upload_s[k]),
            "client_round_s": float(bd.client_round_s[k]),
        })
    summary = {
        "allocation": label,
        "split": split,
        "rank": rank,
        "profile": profile_meta,
        "convergence": {"a": convergence.a, "b": convergence.b, "c": convergence.c, "source": convergence.source},
        "rounds_to_target": sol.rounds,
        "round_time_s": bd.round_s,
        "total_time_s": sol.objective_s,
        "aggregation_s": bd.aggregation_s,
        "broadcast_s": bd.broadcast_s,
        "straggler": bd.straggler,
        "fading_blocks_averaged": blocks,
        "solution": sol.to_dict(),
    }
    plot_delay_breakdown(bd, scenario.training.local_iterations, run_dir / "delay_breakdown.png",
                         title=f"{scenario.name}: l={split}, r={rank}, {label.split(' (')[0]}")
    plot_layout(env.positions_m, env.los, env.mean_snr_db("s"), scenario.clients.layout.radius_m,
                run_dir / "layout.png", title=f"{scenario.name}: K={env.num_clients}")
    atomic_write_csv(run_dir / "clients.csv", rows)
    atomic_write_json(run_dir / "results.json", {"summary": summary, "clients": rows})

    headers = ["k", "dist m", "LOS", "SNR dB", "#s", "#f", "R_s Mb/s", "erg R_s", "R_f Mb/s", "R_dl Mb/s",
               "TFLOP/s", "t_comp s", "t_up s", "t_srv s", "t_dn s", "tau_k s", "t_adapt s", "round s"]
    table = [[r["client"], r["distance_m"], r["los"], r["mean_snr_db"], r["subchannels_s"], r["subchannels_f"],
              r["rate_s_mbps"], r["ergodic_rate_s_mbps"], r["rate_f_mbps"], r["downlink_mbps"], r["device_tflops"],
              r["client_compute_s"], r["uplink_s"], r["server_compute_s"], r["downlink_s"], r["tau_s"],
              r["adapter_upload_s"], r["client_round_s"]] for r in rows]
    echo(f"scenario {scenario.name!r}: K={env.num_clients}, split l={split}, rank r={rank}, allocation: {label}")
    echo(format_table(headers, table, digits=3))
    echo(f"round time {bd.round_s:.4g} s (straggler: client {bd.straggler}; aggregation {bd.aggregation_s:.3g} s, "
         f"broadcast {bd.broadcast_s:.3g} s), N(r={rank}) = {sol.rounds:.4g} rounds, "
         f"total {sol.objective_s:.4g} s")
    echo(f"run directory: {run_dir}")
    return run_dir
