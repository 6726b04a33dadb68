"""`fsllm-sim sweep`: evaluate a grid of scenario variants (e.g. bandwidth × client count), resumably.

Two forms. A **sweep file** (``fsllm-sim sweep SWEEP.yaml --out DIR``, :func:`run_sweep_file`; the file format
is :mod:`fsllm_sim.config.sweep_file`) compares several methods over seeds with the analytic or the simulated
evaluator, in parallel on local processes or Ray (:mod:`fsllm_sim.jobs.sweeps`). A **--set grid** of a scenario
file (``fsllm-sim sweep SCENARIO.yaml --set FIELD=V1,V2 --out DIR``, :func:`run_sweep`) is the quick form,
described below.

Each grid point is one scenario (the base file with ``--set`` overrides), optimised with the chosen method
and compared with the equal-share baseline. Every point is written as soon as it is done, keyed by a hash
of the point's resolved configuration and the method: first its configuration (``points/<key>.yaml``), then
its solver wall times (``timing/<key>.json``), last its result (``points/<key>.json``, the mark of a
finished point), each atomically, so a kill never leaves a result without its configuration. Rerunning the
same command with the same ``--out`` skips finished points (and removes the temporary files a killed run
left), so an interrupted sweep resumes where it stopped. The collected table (``sweep.csv``) and figure are
rewritten at the end; ``sweep.csv`` holds no wall-clock time (those are in ``timing.csv``), so the same
scenario and seed give a byte-identical ``sweep.csv``. ``status.json`` says ``complete`` once all is written
(see :mod:`fsllm_sim.rundir`).

``--set FIELD=V1,V2,...``: the values are read as one YAML flow list, so a value may be a number, null,
true/false, a string (quoted when it holds a comma) or a list in brackets: ``lora.ranks=[4,8],[8,16]``
sweeps two lists; ``lora.ranks=[4,8]`` is a single list value.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..config import dump_scenario, scenario_from_dict, scenario_to_dict
from ..config.loader import parse_yaml_text, shorten
from ..errors import ConfigError
from ..report import format_table
from ..rundir import (atomic_write_csv, atomic_write_json, atomic_write_text, ensure_output_dir, mark_complete,
                      mark_running, package_versions, remove_stale_temp_files)

SET_SYNTAX = "FIELD=VALUE[,VALUE...], e.g. channel.s_band.subchannels=16,32 or lora.ranks=[4,8],[8,16]"
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
MAX_SET_CHARS = 10_000


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


def parse_assignment(text: str) -> tuple[str, list]:
    """``a.b.c=v1,v2`` → ("a.b.c", [v1, v2]). The values are one YAML flow list without its brackets
    (numbers, null, true, quoted strings, and lists in brackets: ``lora.ranks=[4,8],[8,16]``). A malformed
    assignment or a value given twice is a one-line ConfigError."""
    shown = shorten(text, 80)
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"--set {shown}: expected {SET_SYNTAX}")
    if len(text) > MAX_SET_CHARS:
        raise ConfigError(f"--set {shown}: longer than {MAX_SET_CHARS} characters")
    path, values = text.split("=", 1)
    path = path.strip()
    if not path:
        raise ConfigError(f"--set {shown}: no field before '=' (expected {SET_SYNTAX})")
    if not _FIELD_PATH.fullmatch(path):
        raise ConfigError(f"--set {shown}: {shorten(path)} is not a field path (allowed: names of letters, digits "
                          f"and _ joined by dots, e.g. channel.s_band.subchannels)")
    if not values.strip():
        raise ConfigError(f"--set {shown}: no value after '=' (expected {SET_SYNTAX})")
    try:
        items = parse_yaml_text(f"[{values}]")
    except ConfigError as exc:
        problem = re.sub(r" at line \d+, column \d+", "", str(exc))  # positions in our bracketed copy
        raise ConfigError(f"--set {shown}: the values are not a list of YAML values ({problem}; expected "
                          f"{SET_SYNTAX}; quote a string that holds a comma)") from None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"--set {shown}: no value after '=' (expected {SET_SYNTAX})")
    seen = set()
    for item in items:
        key = _canonical(item)
        if key in seen:
            raise ConfigError(f"--set {shown}: the value {shorten(item)} is given twice (allowed: each value once)")
        seen.add(key)
    return path, items


def _with_override(data: dict, path: str, value) -> dict:
    out = json.loads(json.dumps(data))
    node = out
    keys = path.split(".")
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value
    return out


def grid_points(base_data: dict, assignments: list[tuple[str, list]], source: str):
    """Yield (overrides, scenario) for the Cartesian product of the assignments, each validated."""
    paths = [p for p, _ in assignments]
    for i, path in enumerate(paths):
        for other in paths[:i]:
            if path == other or path.startswith(other + ".") or other.startswith(path + "."):
                raise ConfigError(f"--set {path} and --set {other} set the same field (allowed: each field in one "
                                  f"--set)")
    for combo in itertools.product(*[vals for _, vals in assignments]):
        data = base_data
        for path, value in zip(paths, combo):
            data = _with_override(data, path, value)
        overrides = dict(zip(paths, combo))
        yield overrides, scenario_from_dict(data, source=f"{source} with {overrides}")


def point_key(scenario, method: str, profile_source: str) -> str:
    text = dump_scenario(scenario) + f"\nmethod={method}\nprofile={profile_source}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_point(path: Path):
    """A finished point's record, or None when it is missing or unreadable (then it is recomputed)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "total_s" in record else None


def run_sweep(base_path: str, assignments: list[tuple[str, list]], *, out_dir: str, method: str = "bcd",
              profile_source: str = "counted", progress: bool = True, echo=print) -> Path:
    import solvers

    from ..config.loader import load_scenario
    from ..engine.allocation import load_scenario_plugins
    from .optimize import scenario_problem

    base = load_scenario(base_path)  # validates the base file first, with its own one-line errors
    load_scenario_plugins(base)
    if not solvers.is_method(method):
        raise ConfigError(f"--method {method!r} is not one of {', '.join(solvers.method_names())}")
    base_data = scenario_to_dict(base)
    points = list(grid_points(base_data, assignments, str(base_path)))  # all validated before any work
    keys: dict[str, dict] = {}
    for overrides, scenario in points:
        key = point_key(scenario, method, profile_source)
        if key in keys:
            raise ConfigError(f"--set: {shorten(keys[key], 80)} and {shorten(overrides, 80)} give the same scenario "
                              f"(allowed: values that differ once read, e.g. not both 4 and 4.0)")
        keys[key] = overrides
    out = ensure_output_dir(out_dir, "--out")
    for sub in ("points", "timing"):
        ensure_output_dir(out / sub, "--out")
    for folder in (out, out / "points", out / "timing"):  # the temporary files of a killed earlier run
        remove_stale_temp_files(folder)
    mark_running(out, "sweep")
    atomic_write_json(out / "sweep.json", {"base": str(base_path), "assignments": assignments, "method": method,
                                           "profile": profile_source, "versions": package_versions()})
    results, timings, done = [], [], 0
    for overrides, scenario in tqdm(points, desc="sweep", unit="point", disable=not progress):
        key = point_key(scenario, method, profile_source)
        path = out / "points" / f"{key}.json"
        timing_path = out / "timing" / f"{key}.json"
        record = _read_point(path)
        if record is not None:
            results.append(record)
            try:
                timings.append(json.loads(timing_path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                timings.append({"key": key, **{f"set:{k}": v for k, v in overrides.items()}, "solver_wall_s": None,
                                "equal_wall_s": None})
            done += 1
            continue
        problem, _, _ = scenario_problem(scenario, profile_source=profile_source, progress=False,
                                         warn=False)
        best = solvers.solve(problem, method=method)
        equal = solvers.solve(problem, method="equal", split=scenario.split.layer, rank=scenario.lora.rank)
        for what, value in (("optimised", best.objective_s), ("equal-share", equal.objective_s)):
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"sweep point {shorten(overrides, 80)}: the {what} total delay is {value:g} s, not "
                                  f"a finite positive time (check the device, server and channel settings)")
        sets = {f"set:{k}": v for k, v in overrides.items()}
        record = {"key": key, **sets, "method": method,
                  "split": best.split, "rank": best.rank, "round_time_s": best.round_time_s, "rounds": best.rounds,
                  "total_s": best.objective_s, "equal_total_s": equal.objective_s,
                  "speedup_vs_equal": equal.objective_s / best.objective_s}
        timing = {"key": key, **sets, "solver_wall_s": best.wall_time_s, "equal_wall_s": equal.wall_time_s}
        # configuration first, result last: a point with a result always has its configuration
        atomic_write_text(out / "points" / f"{key}.yaml", dump_scenario(scenario))
        atomic_write_json(timing_path, timing)
        atomic_write_json(path, record)
        results.append(record)
        timings.append(timing)
    if done:
        echo(f"resumed: {done} of {len(points)} points were already done")
    atomic_write_csv(out / "sweep.csv", results)
    atomic_write_csv(out / "timing.csv", timings)
    cols = [c for c in results[0] if c.startswith("set:")]
    echo(format_table([c[4:] for c in cols] + ["split", "rank", "round s", "total s", "equal total s", "speed-up"],
                      [[_cell(r[c]) for c in cols] + [r["split"], r["rank"], r["round_time_s"], r["total_s"],
                                                      r["equal_total_s"], r["speedup_vs_equal"]] for r in results]))
    from plots.sweep import plot_sweep

    plot_sweep(results, cols, out / "sweep.png")
    mark_complete(out)
    echo(f"sweep results: {out / 'sweep.csv'} and {out / 'sweep.png'}")
    return out


def _cell(value):
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else json.dumps(value)


# ------------------------------------------------------------------------------------------ sweep files

TABLE_EVERY_S = 5.0  # rewrite the tables at most this often while runs finish (and always at the end)
SHOWN_ROWS = 40  # summary rows printed at the end; the rest are in summary.csv


def run_sweep_file(path: str, *, out_dir: str, backend: str = "local", workers: int | None = None,
                   address: str | None = None, progress: bool = True, echo=print) -> Path:
    """Run a sweep file (see :mod:`fsllm_sim.config.sweep_file`): every point x method x seed not already in
    ``out_dir``, on the chosen backend, writing each row as it finishes; then the tables and summaries.

    Rows (``results.csv``): ``key, point, axis:<field path>..., method, seed, evaluator, status, split, rank,
    rounds, round_time_s, total_s, closed_form_round_s, client_compute_s, uplink_s, server_compute_s,
    server_wait_s, downlink_s, adapter_upload_s, aggregation_broadcast_s, lower_bound_s, gap_to_bound, note``
    (see :mod:`.sweeps.points`); ``summary.csv`` per point and method, see :func:`.sweeps.results.summarise`.
    """
    from ..config.sweep_file import load_sweep_file
    from .sweeps.executors import check_backend, default_workers, make_executor
    from .sweeps.plan import build_plan
    from .sweeps.results import ResultStore

    sweep = load_sweep_file(path)
    workers = default_workers() if workers is None else workers
    check_backend(backend, workers, address)  # before any work: Ray installed, its address answering
    plan = build_plan(sweep, progress=progress, echo=echo)  # every point validated before any work
    if sweep.evaluator == "analytic":
        from ..engine.rounds import is_static_world

        if any(not is_static_world(scenario) for _, scenario in plan.points):
            print("warning: sweep: evaluator analytic scores the closed form at t = 0, which does not see "
                  "mobility, availability, round rules, outage or downlink fading; use evaluator: simulate",
                  file=sys.stderr)
    store = ResultStore(out_dir)
    rows = store.finished(plan.runs)
    walls = {key: store.timing(key) for key in rows}
    todo = [r for r in plan.runs if r.key not in rows]
    executor = make_executor(backend, workers, plan.profiles, address, num_tasks=len(todo)) if todo else None
    mark_running(store.out, "sweep")
    atomic_write_json(store.out / "sweep.json", {
        "sweep_file": str(path), "base": sweep.base, "axes": sweep.axes, "zip": sweep.zipped, "set": sweep.fixed,
        "methods": sweep.methods, "seeds": sweep.seeds, "evaluator": sweep.evaluator, "profile": sweep.profile,
        "points": len(plan.points), "runs": len(plan.runs), "versions": package_versions(),
        "backend": executor.name if executor else None, "workers": executor.workers if executor else None})
    if rows:
        echo(f"resumed: {len(rows)} of {len(plan.runs)} runs were already done")
    if executor:
        _collect(executor, todo, plan.runs, store, rows, walls, progress)
    summary = store.write_tables(plan.runs, rows, walls)
    _report(summary, sweep, echo)
    mark_complete(store.out)
    echo(f"sweep results: {store.out / 'results.csv'} and {store.out / 'summary.csv'}")
    return store.out


def _collect(executor, todo, runs, store, rows: dict, walls: dict, progress: bool) -> None:
    """Run ``todo`` on ``executor``, saving each outcome as it arrives (rows and walls are filled in place).
    On any interruption the pool is stopped and the tables of what finished are written."""
    from .sweeps import points as point_work

    by_index = {r.index: r for r in todo}
    every_s, last_write = TABLE_EVERY_S, time.monotonic()
    # no bar object at all without progress: even a disabled tqdm starts a monitor thread, and a process with
    # threads no longer forks its next pool (see .sweeps.executors)
    bar = (tqdm(total=len(runs), initial=len(runs) - len(todo), desc="sweep", unit="run", dynamic_ncols=True)
           if progress else _NoBar())
    try:
        for outcome in executor.run(point_work.run_point, todo):
            store.save(by_index[outcome.index], outcome)
            rows[outcome.key], walls[outcome.key] = outcome.row, outcome.wall_s
            bar.update(1)
            if time.monotonic() - last_write > every_s:
                started = time.monotonic()
                store.write_tables(runs, rows, walls)
                # a large sweep's tables take a while to write: never spend more than a tenth of the time on them
                last_write, every_s = time.monotonic(), max(TABLE_EVERY_S, 10 * (time.monotonic() - started))
    except BaseException:
        executor.close(cancel=True)
        store.write_tables(runs, rows, walls)  # what finished is kept; status.json stays "running"
        raise
    finally:
        bar.close()
    executor.close()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _report(summary: list[dict], sweep, echo) -> None:
    """The summary table on the console (mean and 95 % interval of the total delay per point and method)."""
    fields = sweep.varied_fields()
    failed = sum(s["failed"] for s in summary)
    table = []
    for s in summary[:SHOWN_ROWS]:
        low, high = s["total_s_ci95_low"], s["total_s_ci95_high"]
        ci = "" if low is None else f"[{low:.4g}, {high:.4g}]"
        mean = "-" if s["total_s_mean"] is None else s["total_s_mean"]
        table.append([_cell(s[f"axis:{f}"]) for f in fields] + [s["method"], s["seeds"], mean, ci])
    echo(format_table(fields + ["method", "seeds", "total s (mean)", "95 % interval s"], table))
    if len(summary) > SHOWN_ROWS:
        echo(f"... {len(summary) - SHOWN_ROWS} more rows in summary.csv")
    if failed:
        echo(f"note: {failed} runs failed (status error; the reason is in results.csv's note column)")
