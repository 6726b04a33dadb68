"""`fsllm-sim optimize SCENARIO --pareto`: the delay-energy front of the allocation problem (docs/energy.md).

Two sweeps, each point solved with bcd (or ``--method exact`` on tiny problems):

* **weight** (default): the weighted objective N(r) (T_round + lambda E_round) at lambda = 0 and at ``points - 1``
  values spaced logarithmically from lambda_ref 10^-2 to lambda_ref 10^2, lambda_ref = T_round / E_round of the
  delay optimum (the weight at which one round's time and the clients' energy of a round count the same). Below
  that range the front is the delay optimum with its clocks barely lowered; above it each further decade buys a
  few per cent of energy at a large cost in delay.
* **budget** (``--budgets``): the delay under a per-client energy budget of a round (objective
  delay-under-energy), from the delay optimum's worst client energy (where the delay optimum itself fits) down
  to just above the least any client can spend, the floor f_min and vanishing rates give
  (:class:`solvers.energy.ClientFloor`): budgets b_floor + (b_max - b_floor) x geomspace(1, 0.01, points).

Each solve is a heuristic, so the points are then made consistent: every allocation found at any point is a
feasible allocation at every other point (its time and energy do not depend on lambda or the budget), and each point
keeps the best of them under its own objective (``from_point`` says which solve it came from). For the weights
this makes the delay non-decreasing and the energy non-increasing along lambda by construction (the argmin of
D + lambda E over a fixed set moves along its lower convex hull); for the budgets, the delay non-decreasing as the
budget shrinks. A budget no allocation found meets is written with its status ``refused`` and no numbers.

The scenario's ``split.per_client`` is kept; with it on, the same sweep with one common split is added as a second
front (``bcd-common-split``). Baselines, one point each, every device at f_max: ``bcd-delay`` (bcd with the delay
objective: the delay optimum, lambda = 0 with one split) and ``equal`` (equal share of subchannels and power).

Outputs in the optimize run directory, each written atomically: ``pareto.csv`` (a row per point and per baseline;
a baseline's ``point`` is empty), ``results.json`` (the sweep, the rows, the delay optimum), ``pareto.png`` /
``pareto.pdf`` (energy against delay), ``solutions/point_NN.json`` (each front point's allocation: evaluate one with
``fsllm-sim run SCENARIO --allocation``) and ``timing.json`` (host wall-clock times, kept out of the rest so the same
scenario gives the same bytes). ``fsllm-sim plot DIR`` redraws the figure from ``pareto.csv``.

Refused in one line: protocol sl or fl and total power caps per band (the energy objectives are defined for sfl
without them), ``--points`` outside 2..64, a method without the energy step.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError, SolverError
from ..report import format_table
from ..rundir import atomic_write_csv, atomic_write_json, create_run_dir, mark_complete

DEFAULT_POINTS = 9
MIN_POINTS, MAX_POINTS = 2, 64
DECADES = 2.0  # lambda from lambda_ref 10^-DECADES to lambda_ref 10^DECADES
BUDGET_GAP_END = 0.01  # the smallest budget: the floor plus this fraction of (largest budget - floor)
PARETO_METHODS = ("bcd", "exact")  # the methods with the energy step (solvers.registry.ENERGY_METHODS)
# pareto.csv's method of a row: the front's is the method's name (bcd), the common-split front's and the delay
# optimum's add these suffixes (bcd-common-split, bcd-delay); the equal-share baseline is equal.
COMMON_SPLIT = "-common-split"
DELAY_BASELINE = "-delay"
EQUAL_BASELINE = "equal"
COLUMNS = ("point", "method", "split", "rank", "round_s", "rounds", "training_delay_s", "training_energy_j",
           "worst_client_round_j", "mean_frequency_ghz", "objective_s", "status", "client_splits", "from_point")
SWEEP_KEYS = {"weight": "weight_s_per_j", "budget": "budget_j"}
FIGURE_STEM = "pareto"


def check_points(points) -> int:
    """The number of sweep points (default :data:`DEFAULT_POINTS`), or a one-line ConfigError."""
    if points is None:
        return DEFAULT_POINTS
    if isinstance(points, bool) or int(points) != points or not MIN_POINTS <= points <= MAX_POINTS:
        raise ConfigError(f"--points {points!r}: give an integer from {MIN_POINTS} to {MAX_POINTS}")
    return int(points)


def weights_for(reference_s_per_j: float, points: int) -> np.ndarray:
    """lambda = 0, then ``points - 1`` values log-spaced over lambda_ref 10^[-DECADES, DECADES] (s/J)."""
    if points < 2:
        raise ValueError("a weight sweep needs at least 2 points")
    return np.concatenate([[0.0], reference_s_per_j * np.logspace(-DECADES, DECADES, points - 1)])


def budgets_for(largest_j: float, floor_j: float, points: int) -> np.ndarray:
    """Per-client budgets of a round from ``largest_j`` down to just above ``floor_j`` (J), ever closer to it."""
    if not floor_j < largest_j:
        return np.full(points, float(largest_j))
    return floor_j + (largest_j - floor_j) * np.geomspace(1.0, BUDGET_GAP_END, points)


def sweep_problem(problem, sweep: str, value: float):
    """The problem with the sweep's objective at ``value`` (lambda in s/J, or a budget in J for every client); the
    Problem's own refusal (protocol sl/fl, total power caps, no energy parameters) as a ConfigError naming
    --pareto."""
    try:
        if sweep == "weight":
            return dataclasses.replace(problem, objective="weighted", weight_s_per_j=float(value), budget_j=None)
        return dataclasses.replace(problem, objective="delay-under-energy", weight_s_per_j=0.0,
                                   budget_j=np.full(problem.num_clients, float(value)))
    except SolverError as exc:
        raise ConfigError(f"--pareto{' --budgets' if sweep == 'budget' else ''}: {exc} (protocol "
                          f"{problem.protocol}); the delay-energy front needs protocol sfl without total power caps"
                          ) from None


def delay_problem(problem):
    """The delay objective with one common split: the problem of the delay optimum."""
    return dataclasses.replace(problem, objective="delay", weight_s_per_j=0.0, budget_j=None, per_client_split=False)


def energy_floor_j(problem) -> float:
    """The least per-client budget any allocation could meet: over the allowed (split, rank) pairs (per-client
    splits: each client at its own best split), the smallest worst-client floor (f_min, vanishing rates)."""
    from solvers.energy import ClientFloor
    from solvers.problem import select_pairs

    pairs = select_pairs(problem)
    floors = {(s, r): ClientFloor(problem, r, s).floor for s, r in pairs}
    if not problem.per_client_split:
        return float(min(np.max(f) for f in floors.values()))
    best = math.inf
    for r in sorted({r for _, r in pairs}):
        per_client = np.min([f for (s, rr), f in floors.items() if rr == r], axis=0)
        best = min(best, float(np.max(per_client)))
    return best


# ------------------------------------------------------------------------------------------- the consistent front

def _energy(sol) -> float:
    return math.inf if sol.energy is None else float(sol.training_energy_j)


def select_weighted(candidates: list, weights) -> list[int]:
    """For each lambda, the index of the candidate (a Solution) with the least N(r) (T + lambda E); ties: the lower
    energy, then the earlier candidate. The delays of the choices are non-decreasing and the energies
    non-increasing in lambda."""
    out = []
    for lam in weights:
        scores = [(c.training_delay_s + lam * _energy(c), _energy(c), i) for i, c in enumerate(candidates)]
        out.append(min(scores)[2])
    return out


def select_budgeted(candidates: list, budgets) -> list[int | None]:
    """For each budget, the index of the fastest candidate whose every client spends at most the budget in a round
    (None: none does); ties: the lower energy, then the earlier candidate."""
    from solvers.problem import ENERGY_TOLERANCE

    out = []
    for b in budgets:
        fits = [(c.training_delay_s, _energy(c), i) for i, c in enumerate(candidates)
                if c.energy is not None and np.all(c.energy.client_j <= b * (1 + ENERGY_TOLERANCE))]
        out.append(min(fits)[2] if fits else None)
    return out


def _row(point, sweep_key: str, value, method: str, sol, objective, from_point) -> dict:
    row = {"point": point, sweep_key: value}
    row.update({c: None for c in COLUMNS if c not in ("point",)})
    row["method"] = method
    if sol is None:
        row["status"] = "refused"
        return row
    freq = None if sol.energy is None else float(np.mean(sol.energy.frequency_hz)) / 1e9
    row.update({"split": sol.split, "rank": sol.rank, "round_s": sol.round_time_s, "rounds": sol.rounds,
                "training_delay_s": sol.training_delay_s, "training_energy_j": sol.training_energy_j,
                "worst_client_round_j": None if sol.energy is None else sol.energy.worst_client_j,
                "mean_frequency_ghz": freq, "objective_s": objective,
                "status": sol.status, "client_splits": "" if sol.splits is None else
                ";".join(str(int(s)) for s in sol.splits), "from_point": from_point})
    return row


# ------------------------------------------------------------------------------------------------ the job

def run_pareto(scenario, *, points: int | None = None, budgets: bool = False, method: str | None = None,
               runs_dir: str | None = None, progress: bool = True, profile_source: str = "counted",
               baselines: bool = True, time_limit_s: float | None = None, echo=print) -> Path:
    """Sweep the energy weight (or with ``budgets`` the per-client budget) and write the front into an optimize run
    directory; returns its path."""
    import solvers
    from solvers.problem import evaluate

    from ..config import problem_fingerprint
    from ..engine.allocation import load_scenario_plugins, solver_options
    from .optimize import scenario_problem

    n = check_points(points)
    method = method or "bcd"
    if method not in PARETO_METHODS:
        raise ConfigError(f"--pareto --method {method!r}: the front needs a method with the energy step, one of "
                          f"{', '.join(PARETO_METHODS)}")
    if time_limit_s is not None and not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise ConfigError(f"--time-limit {time_limit_s!r} must be a number of seconds > 0")
    sweep = "budget" if budgets else "weight"
    key = SWEEP_KEYS[sweep]
    load_scenario_plugins(scenario)
    problem, _env, meta = scenario_problem(scenario, profile_source=profile_source, progress=progress)
    sweep_problem(problem, sweep, 1.0)  # refused here (sl, fl, total caps) before anything is written
    if problem.objective != "delay":
        echo(f"note: --pareto sweeps the {'budget' if budgets else 'weight λ'}; the scenario's objective "
             f"({problem.objective}) is not used")
    options = solver_options(scenario, method, progress=False, time_limit_s=time_limit_s)
    timing: dict = {"solver_wall_s": {}}

    def solve(p, label, with_method=method, with_options=options):
        start = time.perf_counter()
        try:
            return solvers.solve(p, method=with_method, **with_options)
        finally:
            timing["solver_wall_s"][label] = time.perf_counter() - start

    echo(f"scenario {scenario.name!r}: K={problem.num_clients}, M={problem.num_subchannels_s}, "
         f"N={problem.num_subchannels_f}, {len(problem.candidate_pairs())} (split, rank) pairs; pareto front over "
         f"{'the per-client energy budget' if budgets else 'the energy weight λ'}, {n} points, method {method}")
    base = solve(delay_problem(problem), method + DELAY_BASELINE)
    if base.energy is None or not base.energy.total_j > 0:
        raise ConfigError("--pareto: the delay optimum has no energy (the devices' energy parameters are missing)")
    if sweep == "weight":
        reference = base.round_time_s / base.energy.total_j
        values = weights_for(reference, n)
        sweep_note = {"lambda_ref_s_per_j": reference, "decades": DECADES}
        echo(f"delay optimum: {base.training_delay_s:.4g} s, {base.training_energy_j:.4g} J; λ_ref = T_round / "
             f"E_round = {reference:.4g} s/J; λ = 0 and λ_ref x 10^[-{DECADES:g}, {DECADES:g}]")
    else:
        largest, floor_j = base.energy.worst_client_j, energy_floor_j(problem)
        values = budgets_for(largest, floor_j, n)
        sweep_note = {"largest_budget_j": largest, "floor_j": floor_j}
        echo(f"delay optimum: {base.training_delay_s:.4g} s, {base.training_energy_j:.4g} J, worst client "
             f"{largest:.4g} J a round; budgets from it down to just above the floor {floor_j:.4g} J")

    fronts = [(method, problem)]
    if problem.per_client_split:
        fronts.append((method + COMMON_SPLIT, dataclasses.replace(problem, per_client_split=False)))
    rows, solutions = [], {}
    for label, front_problem in fronts:
        found, origin = [base], [None]  # every allocation solved on this front, and the point that found it
        for i, value in enumerate(values):
            q = sweep_problem(front_problem, sweep, value)
            start = time.perf_counter()
            try:
                sol = solve(q, f"{label} point {i}")
                found.append(sol)
                origin.append(i)
                what = f"{sol.training_delay_s:.4g} s, {sol.training_energy_j:.4g} J (l={sol.split}, r={sol.rank})"
            except SolverError as exc:
                what = f"refused ({exc})"
            if progress:
                shown = f"λ = {value:.4g} s/J" if sweep == "weight" else f"budget {value:.4g} J"
                echo(f"{label} point {i + 1}/{n}: {shown}: {what} [{time.perf_counter() - start:.2f} s]")
        picks = select_weighted(found, values) if sweep == "weight" else select_budgeted(found, values)
        for i, (value, pick) in enumerate(zip(values, picks)):
            if pick is None:
                rows.append(_row(i, key, float(value), label, None, None, None))
                continue
            q = sweep_problem(front_problem, sweep, value)
            c = found[pick]
            scored = evaluate(q, c.split, c.rank, c.assign_s, c.power_s_w, c.assign_f, c.power_f_w, method=c.method,
                              frequency_hz=c.frequency_hz, splits=c.splits, check=False)
            src = origin[pick]
            rows.append(_row(i, key, float(value), label, scored, scored.objective_s,
                             "delay optimum" if src is None else src))
            if label == method:
                solutions[i] = scored
    if baselines:
        rows.append(_row(None, key, None, method + DELAY_BASELINE, base, base.objective_s, None))
        equal = solve(delay_problem(problem), EQUAL_BASELINE, "equal", solver_options(scenario, "equal"))
        rows.append(_row(None, key, None, EQUAL_BASELINE, equal, equal.objective_s, None))

    run_dir = create_run_dir(scenario, "optimize", runs_dir)
    columns = ["point", key] + [c for c in COLUMNS if c != "point"]
    rows = [{c: r.get(c) for c in columns} for r in rows]
    atomic_write_csv(run_dir / "pareto.csv", rows)
    fingerprint = problem_fingerprint(scenario)
    for i, sol in solutions.items():
        atomic_write_json(run_dir / "solutions" / f"point_{i:02d}.json",
                          {**sol.to_dict(timing=False), "num_clients": problem.num_clients,
                           "problem_fingerprint": fingerprint, key: float(values[i])})
    atomic_write_json(run_dir / "results.json", {
        "profile": meta, "pareto": {"sweep": sweep, "points": n, "method": method, key: [float(v) for v in values],
                                    **sweep_note, "per_client_split": bool(problem.per_client_split),
                                    "rows": rows},
        "delay_optimum": base.to_dict(timing=False)})
    atomic_write_json(run_dir / "timing.json", timing)
    draw_pareto(rows, run_dir / FIGURE_STEM, title=f"{scenario.name}: delay-energy front",
                note=f"{'budget' if budgets else 'weight λ'} sweep, {method}")
    _report(rows, key, sweep, method, echo)
    echo(f"pareto front saved: {run_dir / 'pareto.csv'}, {run_dir / 'pareto.png'} (each point's allocation in "
         f"{run_dir / 'solutions'}; redraw with `fsllm-sim plot {run_dir}`)")
    mark_complete(run_dir)
    return run_dir


def _report(rows: list[dict], key: str, sweep: str, method: str, echo) -> None:
    def show(v):
        return "" if v is None else v

    headers = ["point", "λ s/J" if sweep == "weight" else "budget J", "method", "split", "rank", "round s", "N(r)",
               "delay s", "energy J", "worst J/round", "f GHz", "status"]
    table = [[show(r["point"]), show(r[key]), r["method"], show(r["split"]), show(r["rank"]), show(r["round_s"]),
              show(r["rounds"]), show(r["training_delay_s"]), show(r["training_energy_j"]),
              show(r["worst_client_round_j"]), show(r["mean_frequency_ghz"]), r["status"]] for r in rows]
    echo(format_table(headers, table))
    front = [r for r in rows if r["method"] == method and r["training_delay_s"] is not None]
    if len(front) >= 2:
        d0, d1 = front[0]["training_delay_s"], front[-1]["training_delay_s"]
        e0, e1 = front[0]["training_energy_j"], front[-1]["training_energy_j"]
        echo(f"front: delay {d0:.4g} -> {d1:.4g} s ({100 * (d1 / d0 - 1):+.3g} %), energy {e0:.4g} -> {e1:.4g} J "
             f"({100 * (e1 / e0 - 1):+.3g} %)")
    refused = [r for r in rows if r["status"] == "refused"]
    if refused:
        echo(f"note: {len(refused)} budget(s) met by no allocation found: status refused in pareto.csv")


# ------------------------------------------------------------------------------------------------ the figure

def _float(v):
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def figure_series(rows: list[dict]) -> tuple[dict, dict]:
    """({front label: {"delay_s", "energy_j"}}, {baseline label: (delay_s, energy_j)}) from pareto.csv rows (or the
    rows the job wrote): a row with a point is on its method's front, one without is a baseline."""
    fronts: dict = {}
    points: dict = {}
    for r in rows:
        d, e = _float(r.get("training_delay_s")), _float(r.get("training_energy_j"))
        if r.get("point") in (None, ""):
            points[str(r["method"])] = (d, e)
        else:
            f = fronts.setdefault(str(r["method"]), {"delay_s": [], "energy_j": []})
            f["delay_s"].append(d)
            f["energy_j"].append(e)
    return ({legend_label(k, True): v for k, v in fronts.items()},
            {legend_label(k, False): v for k, v in points.items()})


def legend_label(method: str, front: bool) -> str:
    """The legend entry of a pareto.csv method; the part before the comma picks its colour (plots.style)."""
    if method == EQUAL_BASELINE:
        return "equal, f_max"
    if method.endswith(COMMON_SPLIT):
        return f"{method[:-len(COMMON_SPLIT)]}, one common split"
    if method.endswith(DELAY_BASELINE):
        return f"{method[:-len(DELAY_BASELINE)]}, delay optimum (f_max)"
    return f"{method}, front" if front else method


def draw_pareto(rows: list[dict], stem: Path, *, title: str | None = None, note: str | None = None):
    """pareto.png and pareto.pdf at ``stem`` from the rows of pareto.csv; returns the Figure."""
    from plots.pareto import pareto_figure

    fronts, points = figure_series(rows)
    return pareto_figure(fronts, points, stem, title=title, note=note)
