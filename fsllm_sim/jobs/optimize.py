"""`fsllm-sim optimize`: solve the scenario's allocation problem and compare with baselines and the lower bound.

The chosen solution is saved as ``solution.json`` in the run directory; ``fsllm-sim run --allocation``
evaluates it end to end.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from plots import plot_delay_breakdown

from ..convergence import load_convergence
from ..devices import make_fleet
from ..network import build_environment
from ..profiles import scenario_profile
from ..report import format_table
from ..rundir import atomic_write_csv, atomic_write_json, atomic_write_text, create_run_dir
from ..seeding import stream

# (label, method, fix split to the scenario's, fix rank to the scenario's, extra options)
COMPARISONS = (
    ("equal subchannels, equal power", "equal", False, False, {}),
    ("random subchannels, equal power", "random", False, False, {"seed": 0}),
    ("greedy subchannels, max power", "max-power", False, False, {}),
    ("bcd, fixed split (scenario's)", "bcd", True, False, {}),
    ("bcd, fixed rank (scenario's)", "bcd", False, True, {}),
    ("equal, fixed split and rank", "equal", True, True, {}),
)


def scenario_problem(scenario, *, profile_source: str = "counted", progress: bool = True, gains: str | None = None):
    """The scenario's Problem (average gains, or the first fading block's gains for ``current``)."""
    env = build_environment(scenario)
    fleet = make_fleet(scenario.devices, env.num_clients, stream(scenario.seed, "devices"))
    convergence = load_convergence(scenario)
    profile, meta = scenario_profile(scenario, source=profile_source, progress=progress)
    from solvers.scenario import build_problem

    mode = gains or scenario.optimizer.gains
    gain_s = gain_f = None
    if mode == "current" and env.fading_enabled:
        from channel_models import gains_from_fading

        rng = stream(scenario.seed, "fading")
        gain_s = gains_from_fading(env.large_scale_gain, env.fading("s", rng).next_block())
        gain_f = gains_from_fading(env.large_scale_gain, env.fading("f", rng).next_block())
    problem = build_problem(scenario, env, fleet, profile, convergence, gain_s=gain_s, gain_f=gain_f)
    return problem, env, meta


def run_optimize(scenario, *, method: str | None = None, runs_dir: str | None = None, progress: bool = True,
                 profile_source: str = "counted", baselines: bool = True, echo=print) -> Path:
    import solvers

    method = method or scenario.optimizer.method
    if method not in solvers.METHODS:
        from ..errors import ConfigError

        raise ConfigError(f"--method {method!r} is not one of {', '.join(solvers.METHODS)}")
    problem, env, meta = scenario_problem(scenario, profile_source=profile_source, progress=progress)
    run_dir = create_run_dir(scenario, "optimize", runs_dir)
    best = solvers.solve(problem, method=method)
    for note in best.notes:
        echo(f"note: {note}")

    rows = [("optimised", best)]
    if baselines:
        for label, m, fix_split, fix_rank, opts in COMPARISONS:
            sol = solvers.solve(problem, method=m, split=scenario.split.layer if fix_split else None,
                                rank=scenario.lora.rank if fix_rank else None, **opts)
            rows.append((label, sol))
    bound = solvers.solve(problem, method="relaxation")

    echo(f"scenario {scenario.name!r}: K={problem.num_clients}, M={problem.num_subchannels_s}, "
         f"N={problem.num_subchannels_f}, {len(problem.candidate_pairs())} (split, rank) pairs, method {method}")
    echo(f"chosen: split l={best.split}, rank r={best.rank}, round {best.round_time_s:.4g} s x N(r)={best.rounds:.4g} "
         f"= {best.objective_s:.4g} s ({best.status}, {best.wall_time_s:.2f} s)")
    bd = best.breakdown
    client_rows = []
    for k in range(problem.num_clients):
        on_s, on_f = best.assign_s == k, best.assign_f == k
        client_rows.append([k, int(on_s.sum()), float(best.power_s_w[on_s].sum()), int(on_f.sum()),
                            float(best.power_f_w[on_f].sum()), float(bd.client_forward_s[k] + bd.client_backward_s[k]),
                            float(bd.uplink_s[k]), float(bd.server_compute_s[k]), float(bd.downlink_s[k]),
                            float(bd.adapter_upload_s[k]), float(bd.client_round_s[k])])
    echo(format_table(["k", "#s", "P_s W", "#f", "P_f W", "t_comp s", "t_up s", "t_srv s", "t_dn s", "t_adapt s",
                       "round s"], client_rows, digits=3))
    comparison = []
    for label, sol in rows:
        comparison.append({"allocation": label, "method": sol.method, "split": sol.split, "rank": sol.rank,
                           "round_time_s": sol.round_time_s, "rounds": sol.rounds, "total_s": sol.objective_s,
                           "vs_optimised": sol.objective_s / best.objective_s, "status": sol.status})
    comparison.append({"allocation": "lower bound (relaxation)", "method": "relaxation", "split": bound.split,
                       "rank": bound.rank, "round_time_s": bound.round_time_s, "rounds": bound.rounds,
                       "total_s": bound.objective_s, "vs_optimised": bound.objective_s / best.objective_s,
                       "status": bound.status})
    echo(format_table(["allocation", "split", "rank", "round s", "N(r)", "total s", "x optimised"],
                      [[c["allocation"], c["split"], c["rank"], c["round_time_s"], c["rounds"], c["total_s"],
                        c["vs_optimised"]] for c in comparison]))
    gap = 1.0 - bound.objective_s / best.objective_s if np.isfinite(best.objective_s) else float("nan")
    echo(f"optimised total is within {100 * gap:.2f} % of the relaxation's lower bound")

    atomic_write_text(run_dir / "solution.json", best.to_json() + "\n")
    atomic_write_csv(run_dir / "comparison.csv", comparison)
    atomic_write_json(run_dir / "results.json", {"profile": meta, "solution": best.to_dict(),
                                                 "lower_bound_s": bound.objective_s, "comparison": comparison})
    plot_delay_breakdown(bd, scenario.training.local_iterations, run_dir / "delay_breakdown.png",
                         title=f"{scenario.name}: optimised ({method}), l={best.split}, r={best.rank}")
    echo(f"solution saved: {run_dir / 'solution.json'} (evaluate it with `fsllm-sim run SCENARIO "
         f"--allocation {run_dir / 'solution.json'}`)")
    return run_dir
