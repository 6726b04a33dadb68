"""What the playground shows, computed by the project's own delay model, solver and engine.

* :func:`evaluate`: the student's choice (the controls' split, rank and power cap, equal-share subchannels
  with water-filled power, spec section 4's closed form), its delay breakdown, the round's Gantt bars, and
  N(r) T_round against rank (at the chosen split) and against split (at the chosen rank), each point the
  same equal-share rule;
* :func:`optimise`: the optimiser's choice (bcd, the default method) on the same scenario, beside the
  student's, with the difference explained phase by phase in seconds;
* :func:`simulate`: the event engine (analytic backend) for a few rounds, with its round Gantt bars.

Everything returns plain JSON-able dicts; nothing is recomputed in the browser. The world (placement,
channel, devices, profile) of a scenario is cached, so moving a slider costs a closed-form evaluation.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import OrderedDict

import numpy as np

import solvers

from ...engine.allocation import EQUAL_SHARE, equal_share
from ...engine.world import build_world
from .controls import apply_controls, control_values

PHASES = ("compute", "uplink", "server", "downlink", "aggregation")
_CACHE_SIZE = 16


class WorldCache:
    """The last few worlds, keyed by the scenario's resolved mapping without the student's split and rank
    (the world covers every split and candidate rank, so moving those sliders reuses it); the model's
    architecture is loaded once per model name (the analytic profile needs only its dimensions)."""

    def __init__(self, size: int = _CACHE_SIZE):
        self.size = size
        self._worlds: OrderedDict = OrderedDict()
        self._models: dict = {}

    def get(self, scenario):
        from ...config import scenario_to_dict

        data = scenario_to_dict(scenario)
        data["split"].pop("layer")
        data["lora"].pop("rank")
        key = json.dumps(data, sort_keys=True, default=str)
        world = self._worlds.get(key)
        if world is None:
            from ...training.models import load_model

            name = scenario.model.name
            if name not in self._models:
                self._models[name] = load_model(name)
            world = build_world(scenario, profile_source="analytic", progress=False, echo=lambda *a, **k: None,
                                model=self._models[name])
            self._worlds[key] = world
            while len(self._worlds) > self.size:
                self._worlds.popitem(last=False)
        else:
            self._worlds.move_to_end(key)
        return world


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def phases_of(bd, local_iterations: int) -> dict:
    """The round of the straggler split into the five phases (s): E (forward + backward), E uplinks, E server
    computations, E downlinks, then adapter upload + aggregation + broadcast; they add up to T_round."""
    k = bd.straggler
    e = int(local_iterations)
    return {"compute": e * float(bd.client_forward_s[k] + bd.client_backward_s[k]),
            "uplink": e * float(bd.uplink_s[k]),
            "server": e * float(bd.server_compute_s[k]),
            "downlink": e * float(bd.downlink_s[k]),
            "aggregation": float(bd.adapter_upload_s[k] + bd.aggregation_s + bd.broadcast_s)}


def gantt_of(bd, local_iterations: int) -> list[dict]:
    """Bars (client, phase, start_s, end_s) of one round in the closed form, with the engine's phase names
    (trace.csv): each client's E iterations (forward, uplink, server, downlink, backward), its adapter upload,
    then the federated server's (client -1) aggregation and broadcast once the last upload is in."""
    bars = []
    e = int(local_iterations)
    for c in range(len(bd.client_round_s)):
        t = 0.0
        for _ in range(e):
            for phase, dur in (("forward", bd.client_forward_s[c]), ("uplink", bd.uplink_s[c]),
                               ("server", bd.server_compute_s[c]), ("downlink", bd.downlink_s[c]),
                               ("backward", bd.client_backward_s[c])):
                bars.append({"client": c, "phase": phase, "start_s": t, "end_s": t + float(dur)})
                t += float(dur)
        bars.append({"client": c, "phase": "adapter_upload", "start_s": t,
                     "end_s": t + float(bd.adapter_upload_s[c])})
    last = float(np.max(bd.client_round_s)) if len(bd.client_round_s) else 0.0  # the last adapter is in
    bars.append({"client": -1, "phase": "aggregation", "start_s": last, "end_s": last + float(bd.aggregation_s)})
    last += float(bd.aggregation_s)
    bars.append({"client": -1, "phase": "broadcast", "start_s": last, "end_s": last + float(bd.broadcast_s)})
    return bars


def _summary(sol, problem) -> dict:
    bd = sol.breakdown
    return {"split": int(sol.split), "rank": int(sol.rank), "round_s": float(sol.round_time_s),
            "rounds": float(sol.rounds), "total_s": _finite(sol.objective_s), "straggler": int(bd.straggler),
            "phases_s": phases_of(bd, problem.local_iterations), "method": sol.method,
            "subchannels_s": np.bincount(sol.assign_s[sol.assign_s >= 0], minlength=problem.num_clients).tolist(),
            "subchannels_f": np.bincount(sol.assign_f[sol.assign_f >= 0], minlength=problem.num_clients).tolist(),
            "power_s_dbm": _dbm_per_client(sol.assign_s, sol.power_s_w, problem.num_clients),
            "client_round_s": [float(x) for x in bd.client_round_s]}


def _dbm_per_client(assign, power_w, k: int) -> list:
    total = np.zeros(k)
    a = np.asarray(assign)
    np.add.at(total, a[a >= 0], np.asarray(power_w)[a >= 0])
    with np.errstate(divide="ignore"):
        return [(_finite(10 * np.log10(p * 1e3)) if p > 0 else None) for p in total]


def _curve(problem, alloc, fixed_split: int | None, fixed_rank: int | None) -> list[dict]:
    """Total delay of the equal-share allocation ``alloc`` at every allowed pair with the split (or the rank)
    fixed: subchannels and water-filled powers do not depend on the pair, only the costs do."""
    pairs = [(s, r) for s, r in problem.candidate_pairs()
             if (fixed_split is None or s == fixed_split) and (fixed_rank is None or r == fixed_rank)]
    out = []
    for s, r in pairs:
        sol = dataclasses.replace(alloc, split=int(s), rank=int(r)).evaluate(problem)
        out.append({"split": int(s), "rank": int(r), "round_s": float(sol.round_time_s),
                    "rounds": float(sol.rounds), "total_s": _finite(sol.objective_s)})
    return out


def evaluate(base, values: dict, cache: WorldCache) -> dict:
    """The student's choice on the scenario the controls describe (see the module docstring)."""
    start = time.perf_counter()
    scenario = apply_controls(base, values)
    world = cache.get(scenario)
    problem = world.problem
    split, rank = scenario.split.layer, scenario.lora.rank
    if (split, rank) not in problem.candidate_pairs():
        allowed = sorted({s for s, _ in problem.candidate_pairs()})
        from ...errors import ConfigError

        raise ConfigError(f"split.layer: {split} is not allowed here (allowed splits: {allowed[0]}..{allowed[-1]}; "
                          f"memory and split.min_layer limit them)")
    alloc = equal_share(problem, split, rank)
    sol = alloc.evaluate(problem)
    out = {"controls": control_values(scenario), "student": _summary(sol, problem),
           "gantt": gantt_of(sol.breakdown, problem.local_iterations),
           "against_rank": _curve(problem, alloc, split, None), "against_split": _curve(problem, alloc, None, rank),
           "splits": sorted({int(s) for s, _ in problem.candidate_pairs()}),
           "warnings": list(world.warnings), "num_clients": problem.num_clients,
           "local_iterations": int(problem.local_iterations)}
    out["wall_ms"] = 1e3 * (time.perf_counter() - start)
    return out


def _explain(student: dict, best: dict) -> list[str]:
    """One line per fact: what the optimiser changed and what each phase gains or loses (s)."""
    lines = []
    if (student["split"], student["rank"]) != (best["split"], best["rank"]):
        lines.append(f"it picks split {best['split']} and rank {best['rank']} (yours: {student['split']}, "
                     f"{student['rank']})")
    lines.append(f"round {best['round_s']:.3f} s against your {student['round_s']:.3f} s "
                 f"({best['round_s'] - student['round_s']:+.3f} s); rounds to the target N(r) {best['rounds']:.2f} "
                 f"against {student['rounds']:.2f}")
    for phase in PHASES:
        d = best["phases_s"][phase] - student["phases_s"][phase]
        if abs(d) >= 5e-4:
            lines.append(f"{phase}: {best['phases_s'][phase]:.3f} s against {student['phases_s'][phase]:.3f} s "
                         f"({d:+.3f} s, straggler's round)")
    moved = sum(abs(a - b) for a, b in zip(best["subchannels_s"], student["subchannels_s"])) // 2
    if moved:
        lines.append(f"it moves {moved} s-band subchannels between clients (equal share gives each "
                     f"{min(student['subchannels_s'])}-{max(student['subchannels_s'])}; it gives "
                     f"{min(best['subchannels_s'])}-{max(best['subchannels_s'])})")
    if student["total_s"] and best["total_s"]:
        lines.append(f"total training delay N(r) T_round {best['total_s']:.2f} s against {student['total_s']:.2f} s "
                     f"({100 * (best['total_s'] / student['total_s'] - 1):+.1f} %)")
    return lines


def optimise(base, values: dict, cache: WorldCache, method: str = solvers.DEFAULT_METHOD) -> dict:
    """The optimiser's choice beside the student's (see the module docstring)."""
    start = time.perf_counter()
    scenario = apply_controls(base, values)
    world = cache.get(scenario)
    problem = world.problem
    student = _summary(equal_share(problem, scenario.split.layer, scenario.lora.rank).evaluate(problem), problem)
    sol = solvers.solve(problem, method)
    best = _summary(sol, problem)
    return {"student": student, "optimiser": best, "method": method, "status": sol.status,
            "explanation": _explain(student, best), "gantt": gantt_of(sol.breakdown, problem.local_iterations),
            "wall_ms": 1e3 * (time.perf_counter() - start)}


def simulate(base, values: dict, cache: WorldCache, rounds: int = 3) -> dict:
    """The event engine (analytic backend) on the student's choice for a few rounds: its trace as Gantt
    bars, and the simulated round times beside the closed form."""
    from ...engine import simulate as run_engine
    from dataclasses import replace

    start = time.perf_counter()
    scenario = apply_controls(base, values)
    scenario = replace(scenario, simulation=replace(scenario.simulation, training="analytic", rounds=int(rounds),
                                                    allocation=EQUAL_SHARE, policy="static", record_channel=False))
    world = cache.get(scenario)
    res = run_engine(scenario, profile_source="analytic", allocation=EQUAL_SHARE, world=world, progress=False,
                     echo=lambda *a, **k: None)
    bars = [{"client": int(r["client"]), "phase": str(r["phase"]), "start_s": float(r["start_s"]),
             "end_s": float(r["end_s"]), "round": int(r["round"])} for r in res.trace.as_dicts()]
    return {"rounds": [{"round": r.round, "start_s": r.start_s, "end_s": r.end_s,
                        "duration_s": r.end_s - r.start_s, "closed_form_s": r.analytic_round_s}
                       for r in res.rounds],
            "gantt": bars, "events": res.events, "wall_ms": 1e3 * (time.perf_counter() - start)}
