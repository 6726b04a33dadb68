"""`fsllm-sim optimize`: solve the scenario's allocation problem and compare with baselines and a lower bound.

The chosen solution is saved as ``solution.json`` in the run directory; ``fsllm-sim run --allocation``
evaluates it end to end. ``solution.json``, ``results.json`` and ``comparison.csv`` hold no host
wall-clock time (those go to ``timing.json``), so the same scenario and seed give the same bytes.

The lower bound (``--bound``) is bcd's pair bound by default (:func:`solvers.bcd.bcd_lower_bound`:
certified, and cheap at any size), or the larger certified bound of the chosen method when it has one
(exact, gurobi); ``--bound relaxation`` computes the LP relaxation instead, which is tighter where
clients share bands but slow, so it is refused above K*M = ``MAX_RELAXATION_SIZE``. A method that
computes a bound (``--method relaxation``) is reported as a bound: no ``solution.json`` is written
and the bound goes to ``results.json`` under ``lower_bound`` only.

The ``random`` baseline draws from the scenario's ``solver`` random stream, so its assignment changes
with the scenario's seed (and only with it).

Energy (docs/energy.md): beside each allocation's total delay N(r) T_round the report gives its training energy
N(r) E_round (the clients' energy of one round, times the rounds) whenever the problem has the devices' energy
parameters (protocol sfl), and, for the objectives ``weighted`` and ``delay-under-energy``, the objective itself
with its lambda or budget. The per-client table adds each client's energy of a round, its DVFS clock (``f GHz``) when
the allocation sets clocks, and its split (``l``) when it sets per-client splits; ``solution.json`` carries
``frequency_hz`` and ``splits``, which ``fsllm-sim run --allocation`` applies. In ``comparison.csv``
``total_s`` is the delay, ``objective_s`` what was minimised (equal to it under the delay objective).
``--pareto`` sweeps the energy weight or budget instead: :mod:`fsllm_sim.jobs.pareto`.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from plots import plot_delay_breakdown

from ..engine import build_world
from ..engine.world import print_warnings
from ..engine.allocation import TIME_LIMITED_METHODS, load_scenario_plugins, protocol_split, solver_options
from ..engine.radio import Radio
from ..config import problem_fingerprint
from ..privacy import privacy_record, scenario_privacy_floor
from ..errors import ConfigError
from ..report import format_table
from ..rundir import atomic_write_csv, atomic_write_json, create_run_dir, mark_complete

# (label, method, fix split to the scenario's, fix rank to the scenario's, extra options)
COMPARISONS = (
    ("equal subchannels, equal power", "equal", False, False, {}),
    ("random subchannels, equal power", "random", False, False, {}),
    ("greedy subchannels, max power", "max-power", False, False, {}),
    ("bcd, fixed split (scenario's)", "bcd", True, False, {}),
    ("bcd, fixed rank (scenario's)", "bcd", False, True, {}),
    ("equal, fixed split and rank", "equal", True, True, {}),
)
BOUNDS = ("bcd", "relaxation")


def scenario_problem(scenario, *, profile_source: str = "counted", progress: bool = True, gains: str | None = None,
                     warn: bool = True):
    """The scenario's Problem on mean gains, or with ``gains: current`` on the gains of the fading block the
    engine's radio sees at t = 0 (same seed, same block)."""
    world = build_world(scenario, profile_source=profile_source, progress=progress)
    if warn:
        print_warnings(world)
    problem = world.problem
    if (gains or scenario.solver.gains) == "current" and world.env.fading_enabled:
        radio = Radio(world.env, root_seed=scenario.seed, downlink_rate_bps=problem.downlink_rate_bps,
                      broadcast_rate_bps=problem.broadcast_rate_bps, record=False)
        gain_s, gain_f = radio.gains_at(0.0)
        problem = dataclasses.replace(problem, gain_s=gain_s, gain_f=gain_f)
    return problem, world.env, world.profile_meta


def _bound_record(source: str, value: float, sol=None, best=None) -> dict:
    """The ``lower_bound`` entry of results.json (no wall-clock time in it)."""
    rec = {"source": source, "lower_bound_s": value}
    if sol is not None:
        rec.update({"method": sol.method, "split": sol.split, "rank": sol.rank, "status": sol.status,
                    "notes": list(sol.notes)})
    if best is not None:
        rec["gap_to_optimised"] = (1.0 - value / best.objective_s) if np.isfinite(best.objective_s) else None
    return rec


def run_optimize(scenario, *, method: str | None = None, runs_dir: str | None = None, progress: bool = True,
                 profile_source: str = "counted", baselines: bool = True, bound: str = "bcd",
                 time_limit_s: float | None = None, echo=print) -> Path:
    import solvers
    from solvers.bcd import bcd_lower_bound
    from solvers.registry import BOUND_METHODS, CERTIFIED_METHODS
    from solvers.relaxation import MAX_RELAXATION_SIZE, relaxation_size_error

    load_scenario_plugins(scenario)
    flag = "--method" if method else "solver.method"
    method = method or scenario.solver.method
    if not solvers.is_method(method):
        raise ConfigError(f"{flag} {method!r} is not one of {', '.join(solvers.method_names())}")
    if bound not in BOUNDS:
        raise ConfigError(f"--bound {bound!r} is not one of {', '.join(BOUNDS)}")
    if time_limit_s is not None and not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise ConfigError(f"--time-limit {time_limit_s!r} must be a number of seconds > 0")
    problem, env, meta = scenario_problem(scenario, profile_source=profile_source, progress=progress)
    is_bound = method in BOUND_METHODS
    if bound == "relaxation" or (is_bound and method == "relaxation"):
        too_big = relaxation_size_error(problem)
        if too_big:
            flag = "--method relaxation" if is_bound else "--bound relaxation"
            raise ConfigError(f"{flag}: {too_big}")
    if time_limit_s is not None and method not in TIME_LIMITED_METHODS:
        echo(f"note: --time-limit applies to {', '.join(TIME_LIMITED_METHODS)}; {method} runs without one")
    run_dir = create_run_dir(scenario, "optimize", runs_dir)
    timing: dict = {"solver_wall_s": {}}
    echo(f"scenario {scenario.name!r}: K={problem.num_clients}, M={problem.num_subchannels_s}, "
         f"N={problem.num_subchannels_f}, {len(problem.candidate_pairs())} (split, rank) pairs, method {method}")
    floor = scenario_privacy_floor(scenario)
    if floor is not None:
        echo(floor.description)
    best = solvers.solve(problem, method=method,
                         **solver_options(scenario, method, progress=progress, time_limit_s=time_limit_s))
    timing["solver_wall_s"][method] = best.wall_time_s
    for note in best.notes:
        echo(f"note: {note}")

    rows = [] if is_bound else [("optimised", best)]
    scenario_split = protocol_split(problem, scenario.split.layer)  # fl: the whole model, J
    if baselines:
        for label, m, fix_split, fix_rank, opts in COMPARISONS:
            sol = solvers.solve(problem, method=m, split=scenario_split if fix_split else None,
                                rank=scenario.lora.rank if fix_rank else None,
                                **{**solver_options(scenario, m), **opts})
            timing["solver_wall_s"][label] = sol.wall_time_s
            rows.append((label, sol))

    if is_bound:
        return _report_bound(scenario, problem, method, best, rows, run_dir, meta, timing, echo)

    # The lower bound: bcd's pair bound (or the method's own certified bound when larger), or the relaxation.
    if problem.per_client_split:
        # every bound here is over pairs of one common split: none holds for a mix of splits (docs/energy.md)
        lower = {"source": None, "lower_bound_s": None, "gap_to_optimised": None,
                 "why": "no lower bound applies with per-client splits (the bounds are over common splits)"}
        label = "lower bound"
    elif bound == "relaxation":
        relax = solvers.solve(problem, method="relaxation",
                              **solver_options(scenario, "relaxation", time_limit_s=time_limit_s))
        timing["bound_wall_s"] = relax.wall_time_s
        lower = _bound_record("relaxation", relax.objective_s, relax, best)
        label = "lower bound (relaxation)"
    else:
        value = bcd_lower_bound(problem)
        source, label = "bcd", "lower bound (bcd pair bound)"
        own = best.lower_bound_s
        if own is not None and (method in CERTIFIED_METHODS or method == "bcd") and own > value:
            value, source, label = float(own), method, f"lower bound ({method}, certified)"
        lower = _bound_record(source, value, best=best)

    echo(chosen_line(best))
    objective = objective_line(problem, best)
    if objective:
        echo(objective)
    echo(client_table(problem, best))
    comparison = [comparison_row(problem, row_label, sol, best, "vs_optimised") for row_label, sol in rows]
    # The bound is shown with the allocations but is not one: it stays out of comparison.csv.
    shown_bound = None if lower["lower_bound_s"] is None else \
        (label, lower["lower_bound_s"], lower["lower_bound_s"] / best.objective_s)
    echo(comparison_table(problem, comparison, "vs_optimised", "x optimised", bound=shown_bound))
    energy_objective = problem.objective != "delay"
    gap = lower["gap_to_optimised"]
    what = "objective" if energy_objective else "total"
    if lower["lower_bound_s"] is None:
        echo(f"{label}: none: {lower['why']}")
    else:
        echo(f"{label}: {lower['lower_bound_s']:.6g} s; the optimised {what} is within "
             f"{100 * gap if gap is not None else float('nan'):.3g} % of it")
    if bound != "relaxation" and lower["lower_bound_s"] is not None:
        echo("lower bound (relaxation): not computed; ask for it with --bound relaxation "
             f"(slow on large problems, refused above K*M = {MAX_RELAXATION_SIZE})")

    # K and the problem's fingerprint travel with the allocation, so `run --allocation` can check them
    protocol = {} if problem.protocol == "sfl" else {"protocol": problem.protocol}
    privacy = {} if floor is None else {"privacy_floor": privacy_record(floor)}
    atomic_write_json(run_dir / "solution.json", {**best.to_dict(timing=False), "num_clients": problem.num_clients,
                                                  "problem_fingerprint": problem_fingerprint(scenario), **protocol,
                                                  **privacy})
    atomic_write_csv(run_dir / "comparison.csv", comparison)
    atomic_write_json(run_dir / "results.json", {"profile": meta, "objective": objective_record(problem),
                                                 "solution": best.to_dict(timing=False),
                                                 "lower_bound_s": lower["lower_bound_s"], "lower_bound": lower,
                                                 "comparison": comparison, **privacy})
    atomic_write_json(run_dir / "timing.json", timing)
    plot_delay_breakdown(best.breakdown, scenario.training.local_iterations, run_dir / "delay_breakdown.png",
                         title=f"{scenario.name}: optimised ({method}), l={best.split}, r={best.rank}")
    echo(f"solution saved: {run_dir / 'solution.json'} (evaluate it with `fsllm-sim run SCENARIO "
         f"--allocation {run_dir / 'solution.json'}`)")
    mark_complete(run_dir)
    return run_dir


def objective_record(problem) -> dict:
    """results.json's ``objective``: what the solver minimised (docs/energy.md)."""
    budget = None if problem.budget_j is None else np.asarray(problem.budget_j, dtype=float).tolist()
    return {"kind": problem.objective,
            "weight_s_per_j": float(problem.weight_s_per_j) if problem.objective == "weighted" else None,
            "budget_j": budget if problem.objective == "delay-under-energy" else None,
            "per_client_split": bool(problem.per_client_split)}


def _budget_text(budget_j) -> str:
    b = np.asarray(budget_j, dtype=float)
    return f"{b[0]:.4g} J" if np.all(b == b[0]) else "[" + ", ".join(f"{v:.4g}" for v in b) + "] J"


def objective_text(problem) -> str:
    """``weighted, λ = 0.01 s/J``, ``delay-under-energy, budget 0.2 J per client a round`` or ``delay``."""
    if problem.objective == "weighted":
        return f"weighted, λ = {problem.weight_s_per_j:.4g} s/J"
    if problem.objective == "delay-under-energy":
        return f"delay-under-energy, budget {_budget_text(problem.budget_j)} per client a round"
    return "delay"


def chosen_line(best) -> str:
    """The chosen allocation in one line: split and rank, N(r) x T_round, and N(r) x the energy of a round."""
    splits = "" if best.splits is None else f" (per client {'/'.join(str(int(x)) for x in best.splits)})"
    energy = "" if best.energy is None else (f"; energy N(r) x {best.energy.total_j:.4g} J = "
                                             f"{best.training_energy_j:.4g} J")
    return (f"chosen: split l={best.split}{splits}, rank r={best.rank}, round {best.round_time_s:.4g} s x "
            f"N(r)={best.rounds:.4g} = {best.training_delay_s:.4g} s{energy} ({best.status}, "
            f"{best.wall_time_s:.2f} s)")


def objective_line(problem, best) -> str | None:
    """The objective minimised, when it is not the delay: which, its λ or budget, and its value."""
    if problem.objective == "weighted":
        return (f"objective {objective_text(problem)}: N(r) (T_round + λ E_round) = {best.objective_s:.4g} s")
    if problem.objective == "delay-under-energy":
        worst = "" if best.energy is None else f"; worst client {best.energy.worst_client_j:.4g} J a round"
        return f"objective {objective_text(problem)}: N(r) T_round = {best.objective_s:.4g} s{worst}"
    return None


def client_table(problem, best) -> str:
    """Per client: subchannels and power on both bands, the round's times, and (when set) its split l, its DVFS
    clock and its energy of a round."""
    bd = best.breakdown
    own_split, clock, energy = best.splits is not None, best.frequency_hz is not None, best.energy is not None
    rows = []
    for k in range(problem.num_clients):
        n_s, p_s = _band_use(best.assign_s, best.power_s_w, k)
        n_f, p_f = _band_use(best.assign_f, best.power_f_w, k)
        row = [int(problem.client_ids[k])] + ([int(best.splits[k])] if own_split else []) + [n_s, p_s, n_f, p_f]
        row += [float(best.frequency_hz[k]) / 1e9] if clock else []
        row += [float(bd.client_forward_s[k] + bd.client_backward_s[k]), float(bd.uplink_s[k]),
                float(bd.server_compute_s[k]), float(bd.downlink_s[k]), float(bd.adapter_upload_s[k]),
                float(bd.client_round_s[k])]
        row += [float(best.energy.client_j[k])] if energy else []
        rows.append(row)
    headers = (["k"] + (["l"] if own_split else []) + ["#s", "P_s W", "#f", "P_f W"] + (["f GHz"] if clock else [])
               + ["t_comp s", "t_up s", "t_srv s", "t_dn s", "t_adapt s", "round s"]
               + (["E_round J"] if energy else []))
    return format_table(headers, rows, digits=3)


def comparison_row(problem, label: str, sol, reference, ratio_key: str) -> dict:
    """One allocation of comparison.csv: its delay N(r) T_round (``total_s``), its training energy N(r) E_round,
    its worst client's energy of a round, the objective and its ratio to ``reference``'s."""
    return {"allocation": label, "method": sol.method, "split": sol.split, "rank": sol.rank,
            "round_time_s": sol.round_time_s, "rounds": sol.rounds,
            "total_s": sol.objective_s if problem.objective == "delay" else sol.training_delay_s,
            "training_energy_j": sol.training_energy_j,
            "worst_client_round_j": None if sol.energy is None else sol.energy.worst_client_j,
            "objective_s": sol.objective_s, ratio_key: sol.objective_s / reference.objective_s, "status": sol.status}


def comparison_table(problem, comparison: list[dict], ratio_key: str, ratio_header: str, bound=None) -> str:
    """The allocations side by side: split, rank, N(r) x T_round, the training energy (when the problem has energy
    parameters), the objective (when it is not the delay) and its ratio to the reference; ``bound``: a (label,
    value, ratio) row of the lower bound, shown in the objective's column."""
    with_energy = any(c["training_energy_j"] is not None for c in comparison)
    with_objective = problem.objective != "delay"
    headers = (["allocation", "split", "rank", "round s", "N(r)", "total s"] + (["energy J"] if with_energy else [])
               + (["objective s"] if with_objective else []) + [ratio_header])
    rows = []
    for c in comparison:
        row = [c["allocation"], c["split"], c["rank"], c["round_time_s"], c["rounds"], c["total_s"]]
        row += ["" if c["training_energy_j"] is None else c["training_energy_j"]] if with_energy else []
        rows.append(row + ([c["objective_s"]] if with_objective else []) + [c[ratio_key]])
    if bound is not None:
        label, value, ratio = bound  # in the total's column (delay) or the objective's
        cells = ["", "", "", "", "" if with_objective else value] + ([""] if with_energy else [])
        rows.append([label] + cells + ([value] if with_objective else []) + [ratio])
    return format_table(headers, rows)


def _band_use(assign, power_w, k: int) -> tuple[int, float]:
    """(subchannels, total power [W]) of client k on one band; sl: its row of the power matrix."""
    power = np.asarray(power_w, dtype=float)
    if power.ndim == 2:
        return int(np.sum(power[k] > 0)), float(power[k].sum())
    on = np.asarray(assign) == k
    return int(on.sum()), float(power[on].sum())


def _report_bound(scenario, problem, method, bound, rows, run_dir: Path, meta, timing, echo) -> Path:
    """``--method`` computed a lower bound: report it as one, write no solution.json."""
    echo(f"{method}: lower bound {bound.objective_s:.6g} s on the total training time of any allocation "
         f"(least at split l={bound.split}, rank r={bound.rank}; {bound.status})")
    echo(f"this is a bound, not an allocation: no solution.json is written (for an allocation to run, use "
         f"--method bcd, exact or a baseline)")
    comparison = [comparison_row(problem, label, sol, bound, "vs_bound") for label, sol in rows]
    if comparison:
        echo(comparison_table(problem, comparison, "vs_bound", "x bound"))
        atomic_write_csv(run_dir / "comparison.csv", comparison)
    results = {"profile": meta, "objective": objective_record(problem),
               "lower_bound": _bound_record(method, bound.objective_s, bound)}
    if comparison:
        results["comparison"] = comparison
    atomic_write_json(run_dir / "results.json", results)
    atomic_write_json(run_dir / "timing.json", timing)
    echo(f"bound saved: {run_dir / 'results.json'} (key lower_bound)")
    mark_complete(run_dir)
    return run_dir
