"""The work of one sweep run (point x method x seed): choose the allocation, evaluate it, return one row.

:func:`run_point` is a top-level function of a picklable :class:`Run`, so a process pool or a Ray worker can
call it; it reads nothing but its argument (the profiles it needs come from the parent, see
:func:`fsllm_sim.profiles.adopt_profiles`) and returns plain values, so the same run gives the same row on
every backend.

Evaluators
    ``analytic``: the closed form of spec section 4 for the chosen allocation (what ``solvers.evaluate``
    scores). ``simulate``: the event engine with ``training: analytic`` and ``timing: flops``, the scenario's
    fading and main-server discipline, for ``simulation.rounds`` rounds; the total is N(r) x the mean
    simulated round (as `fsllm-sim compare` reports it).

Per-phase columns (seconds): per local iteration and client, ``client_compute_s`` (forward + backward),
``uplink_s`` (activations), ``server_compute_s``, ``server_wait_s`` (queueing at the main server: 0 in the
closed form) and ``downlink_s`` (gradients); per round and client ``adapter_upload_s``; per round
``aggregation_broadcast_s``. Means over clients (and, simulated, over iterations and rounds).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

import solvers

from ...engine import build_world, simulate
from ...engine.allocation import EQUAL_SHARE, Allocation, equal_share, load_scenario_plugins, solver_options
from ...errors import USER_ERRORS

# Columns of a result row after the ``axis:`` ones, in order (results.csv's schema; see the sweep job's docstring).
PHASE_COLUMNS = ("client_compute_s", "uplink_s", "server_compute_s", "server_wait_s", "downlink_s",
                 "adapter_upload_s", "aggregation_broadcast_s")
ROW_COLUMNS = ("method", "seed", "evaluator", "status", "split", "rank", "rounds", "round_time_s", "total_s",
               "closed_form_round_s", *PHASE_COLUMNS, "lower_bound_s", "gap_to_bound", "note")
ERROR_STATUS = "error"


@dataclass(frozen=True)
class Run:
    """One unit of work. ``index`` is its place in the sweep's order (rows are written in that order)."""

    index: int
    point: int
    key: str
    config_key: str
    scenario: object  # fsllm_sim.config.Scenario, seed already set
    method: str
    evaluator: str
    profile: str
    axes: tuple  # ((field path, value), ...)


@dataclass(frozen=True)
class Outcome:
    index: int
    key: str
    row: dict
    wall_s: float


def split_method(method: str) -> tuple[str, bool, bool]:
    """``bcd/fixed-split`` -> ("bcd", True, False): the solver and whether split and rank are the point's own."""
    name, _, variant = method.partition("/")
    return name, variant in ("fixed-split", "fixed-split-rank"), variant in ("fixed-rank", "fixed-split-rank")


def choose_allocation(problem, scenario, method: str):
    """(Allocation, Solution) of ``method`` on ``problem``; the Solution carries status and lower bound."""
    if method == EQUAL_SHARE:
        alloc = equal_share(problem, scenario.split.layer, scenario.lora.rank)
        return alloc, alloc.evaluate(problem)
    load_scenario_plugins(scenario)  # a worker process imports the scenario's plug-ins itself
    name, fix_split, fix_rank = split_method(method)
    sol = solvers.solve(problem, name, split=scenario.split.layer if fix_split else None,
                        rank=scenario.lora.rank if fix_rank else None, **solver_options(scenario, name))
    return Allocation.from_solution(sol, method), sol


def breakdown_phases(bd) -> dict:
    """Per-phase means of the closed form's delay breakdown (see the module docstring)."""
    return {"client_compute_s": float(np.mean(bd.client_forward_s + bd.client_backward_s)),
            "uplink_s": float(np.mean(bd.uplink_s)), "server_compute_s": float(np.mean(bd.server_compute_s)),
            "server_wait_s": 0.0, "downlink_s": float(np.mean(bd.downlink_s)),
            "adapter_upload_s": float(np.mean(bd.adapter_upload_s)),
            "aggregation_broadcast_s": float(bd.aggregation_s + bd.broadcast_s)}


def trace_phases(rows, num_clients: int, local_iterations: int, num_rounds: int) -> dict:
    """Per-phase means of a simulation trace: summed durations over the nominal number of iterations, client
    rounds and rounds (a phase that did not happen, e.g. no wait at the server, counts as 0)."""
    total: dict[str, float] = {}
    for row in rows:  # (round, iteration, client, phase, start_s, end_s, bits, flops)
        total[row[3]] = total.get(row[3], 0.0) + (row[5] - row[4])
    iterations = num_rounds * num_clients * local_iterations
    per = {phase: total.get(phase, 0.0) for phase in ("forward", "backward", "uplink", "server", "server_wait",
                                                      "downlink", "adapter_upload", "aggregation", "broadcast")}
    return {"client_compute_s": (per["forward"] + per["backward"]) / iterations,
            "uplink_s": per["uplink"] / iterations, "server_compute_s": per["server"] / iterations,
            "server_wait_s": per["server_wait"] / iterations, "downlink_s": per["downlink"] / iterations,
            "adapter_upload_s": per["adapter_upload"] / (num_rounds * num_clients),
            "aggregation_broadcast_s": (per["aggregation"] + per["broadcast"]) / num_rounds}


def _solution_columns(sol) -> dict:
    bound = sol.lower_bound_s
    return {"status": sol.status, "split": int(sol.split), "rank": int(sol.rank), "rounds": float(sol.rounds),
            "lower_bound_s": None if bound is None else float(bound),
            "gap_to_bound": None if sol.gap is None else float(sol.gap)}


def evaluate_analytic(run: Run) -> dict:
    world = build_world(run.scenario, profile_source=run.profile, progress=False)
    _, sol = choose_allocation(world.problem, run.scenario, run.method)
    return {**_solution_columns(sol), "round_time_s": float(sol.round_time_s), "total_s": float(sol.objective_s),
            "closed_form_round_s": float(sol.round_time_s), **breakdown_phases(sol.breakdown)}


def evaluate_simulated(run: Run) -> dict:
    scenario = run.scenario
    world = build_world(scenario, profile_source=run.profile, progress=False)
    alloc, sol = choose_allocation(world.problem, scenario, run.method)
    res = simulate(scenario, allocation=alloc, training="analytic", timing="flops", policy="static",
                   record_channel=False, progress=False, world=world)
    durations = [r.end_s - r.start_s for r in res.rounds]
    mean_round = float(np.mean(durations))
    return {**_solution_columns(sol), "round_time_s": mean_round, "total_s": float(sol.rounds) * mean_round,
            "closed_form_round_s": float(np.mean([r.analytic_round_s for r in res.rounds])),
            **trace_phases(res.trace.rows, world.num_clients, scenario.training.local_iterations, len(res.rounds))}


EVALUATE = {"analytic": evaluate_analytic, "simulate": evaluate_simulated}


def _failed(message: str) -> dict:
    """A run the scenario makes impossible (e.g. no split fits the devices' memory): a row that says why."""
    return {"status": ERROR_STATUS, "note": message}


def run_point(run: Run) -> Outcome:
    """Evaluate one run; a problem the user can fix becomes an ``error`` row (it would fail again on a rerun)."""
    start = time.perf_counter()
    try:
        values = EVALUATE[run.evaluator](run)
        if not (math.isfinite(values["total_s"]) and values["total_s"] > 0):
            values = {**values, **_failed(f"the total delay is {values['total_s']:g} s, not a finite positive time "
                                          f"(check the device, server and channel settings)")}
    except USER_ERRORS as exc:
        values = _failed(str(exc))
    row = {"key": run.key, "point": run.point, **{f"axis:{p}": v for p, v in run.axes}}
    fixed = {"method": run.method, "seed": int(run.scenario.seed), "evaluator": run.evaluator}
    row.update({c: fixed.get(c, values.get(c)) for c in ROW_COLUMNS})
    row["note"] = values.get("note", "")
    return Outcome(run.index, run.key, row, time.perf_counter() - start)
