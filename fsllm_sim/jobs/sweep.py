"""`fsllm-sim sweep`: evaluate a grid of scenario variants (e.g. bandwidth × client count), resumably.

Each grid point is one scenario (the base file with ``--set`` overrides), optimised with the chosen method
and compared with the equal-share baseline. Every point's result is written atomically to
``points/<key>.json`` as soon as it is done, keyed by a hash of the point's resolved configuration and the
method; rerunning the same command with the same ``--out`` skips finished points, so an interrupted sweep
resumes where it stopped. The collected table (``sweep.csv``) and figure are rewritten at the end.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import yaml
from tqdm import tqdm

from ..config import dump_scenario, scenario_from_dict, scenario_to_dict
from ..errors import ConfigError
from ..report import format_table
from ..rundir import atomic_write_csv, atomic_write_json, atomic_write_text, package_versions


def parse_assignment(text: str) -> tuple[str, list]:
    """``a.b.c=v1,v2`` → ("a.b.c", [v1, v2]); values are parsed as YAML scalars (numbers, null, true)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected FIELD=VALUE[,VALUE...], e.g. channel.s_band.subchannels=16,32")
    path, values = text.split("=", 1)
    items = [yaml.safe_load(v) for v in values.split(",") if v.strip() != ""]
    if not path or not items:
        raise ConfigError(f"--set {text!r}: expected FIELD=VALUE[,VALUE...]")
    return path.strip(), items


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
    for combo in itertools.product(*[vals for _, vals in assignments]):
        data = base_data
        for path, value in zip(paths, combo):
            data = _with_override(data, path, value)
        overrides = dict(zip(paths, combo))
        yield overrides, scenario_from_dict(data, source=f"{source} with {overrides}")


def point_key(scenario, method: str, profile_source: str) -> str:
    text = dump_scenario(scenario) + f"\nmethod={method}\nprofile={profile_source}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_sweep(base_path: str, assignments: list[tuple[str, list]], *, out_dir: str, method: str = "bcd",
              profile_source: str = "counted", progress: bool = True, echo=print) -> Path:
    import solvers

    from ..config.loader import load_scenario
    from .optimize import scenario_problem

    base = load_scenario(base_path)  # validates the base file first, with its own one-line errors
    if method not in solvers.METHODS:
        raise ConfigError(f"--method {method!r} is not one of {', '.join(solvers.METHODS)}")
    base_data = scenario_to_dict(base)
    points = list(grid_points(base_data, assignments, str(base_path)))  # all validated before any work
    out = Path(out_dir)
    (out / "points").mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweep.json", {"base": str(base_path), "assignments": assignments, "method": method,
                                           "profile": profile_source, "versions": package_versions()})
    results, done = [], 0
    for overrides, scenario in tqdm(points, desc="sweep", unit="point", disable=not progress):
        key = point_key(scenario, method, profile_source)
        path = out / "points" / f"{key}.json"
        if path.is_file():
            results.append(json.loads(path.read_text()))
            done += 1
            continue
        problem, _, _ = scenario_problem(scenario, profile_source=profile_source, progress=False)
        best = solvers.solve(problem, method=method)
        equal = solvers.solve(problem, method="equal", split=scenario.split.layer, rank=scenario.lora.rank)
        record = {"key": key, **{f"set:{k}": v for k, v in overrides.items()}, "method": method,
                  "split": best.split, "rank": best.rank, "round_time_s": best.round_time_s, "rounds": best.rounds,
                  "total_s": best.objective_s, "equal_total_s": equal.objective_s,
                  "speedup_vs_equal": equal.objective_s / best.objective_s, "solver_wall_s": best.wall_time_s}
        atomic_write_json(path, record)
        atomic_write_text(out / "points" / f"{key}.yaml", dump_scenario(scenario))
        results.append(record)
    if done:
        echo(f"resumed: {done} of {len(points)} points were already done")
    atomic_write_csv(out / "sweep.csv", results)
    cols = [c for c in results[0] if c.startswith("set:")]
    echo(format_table([c[4:] for c in cols] + ["split", "rank", "round s", "total s", "equal total s", "speed-up"],
                      [[r[c] for c in cols] + [r["split"], r["rank"], r["round_time_s"], r["total_s"],
                                               r["equal_total_s"], r["speedup_vs_equal"]] for r in results]))
    from plots.sweep import plot_sweep

    plot_sweep(results, cols, out / "sweep.png")
    echo(f"sweep results: {out / 'sweep.csv'} and {out / 'sweep.png'}")
    return out
