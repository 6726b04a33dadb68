"""A sweep's folder: one file per finished run, the tables rebuilt from them, and summaries across seeds.

Layout of ``--out``::

    status.json            running / complete (fsllm_sim.rundir)
    sweep.json             the sweep file as read, the backend, the package versions
    configs/<config>.json  each resolved scenario (methods share it), written before any result that uses it
    timing/<key>.json      the run's host wall time (kept apart: results compare byte for byte)
    points/<key>.json      the run's row: written last and atomically, so its presence means "finished"
    results.csv/.json      every finished row, in the sweep's order (point, method, seed); no wall-clock time
    summary.csv/.json      per point and method: the number of seeds, mean and 95 % t interval of each metric
    timing.csv             key, point, method, seed, wall_s

A rerun reads ``points/`` for the keys of its own runs only (results of another base scenario have other
keys and are left alone, never used) and runs the rest. The tables hold no host time, so the same sweep
gives the same bytes whatever the backend, the number of workers or the interruptions.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ... import rundir
from ...config import scenario_to_dict
from .points import PHASE_COLUMNS, Outcome, Run

SUMMARY_METRICS = ("total_s", "round_time_s", "rounds", "closed_form_round_s", *PHASE_COLUMNS, "split", "rank",
                   "gap_to_bound")
CONFIDENCE = 0.95
FOLDERS = ("points", "timing", "configs")


class ResultStore:
    """The files of one sweep folder (see the module docstring). Only the sweep's parent process writes."""

    def __init__(self, out: str | os.PathLike):
        self.out = rundir.ensure_output_dir(out, "--out")
        for sub in FOLDERS:
            rundir.ensure_output_dir(self.out / sub, "--out")
        for folder in (self.out, *(self.out / sub for sub in FOLDERS)):  # left by a killed earlier run
            rundir.remove_stale_temp_files(folder)
        self._configs_written: set[str] = set()

    def finished(self, runs: list[Run]) -> dict[str, dict]:
        """The rows already written for these runs, by key (an unreadable or foreign file is run again)."""
        try:
            names = {e.name for e in os.scandir(self.out / "points")}
        except OSError:
            names = set()
        rows = {}
        for run in runs:
            if f"{run.key}.json" not in names:
                continue
            try:
                row = json.loads((self.out / "points" / f"{run.key}.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(row, dict) and row.get("key") == run.key and "total_s" in row:
                rows[run.key] = row
        return rows

    def timing(self, key: str) -> float | None:
        try:
            return json.loads((self.out / "timing" / f"{key}.json").read_text(encoding="utf-8")).get("wall_s")
        except (OSError, ValueError, AttributeError):
            return None

    def save(self, run: Run, outcome: Outcome) -> None:
        """Configuration, then wall time, then the row: a row on disk always has the other two."""
        if run.config_key not in self._configs_written:
            path = self.out / "configs" / f"{run.config_key}.json"
            if not path.exists():
                rundir.atomic_write_json(path, scenario_to_dict(run.scenario))
            self._configs_written.add(run.config_key)
        rundir.atomic_write_json(self.out / "timing" / f"{run.key}.json", {"key": run.key, "wall_s": outcome.wall_s})
        rundir.atomic_write_json(self.out / "points" / f"{run.key}.json", outcome.row)

    def write_tables(self, runs: list[Run], rows: dict[str, dict], walls: dict[str, float | None]) -> list[dict]:
        """results, summary and timing tables of the finished rows, in the sweep's order."""
        ordered = [rows[r.key] for r in runs if r.key in rows]
        if not ordered:
            return []
        rundir.atomic_write_csv(self.out / "results.csv", ordered)
        rundir.atomic_write_json(self.out / "results.json", ordered)
        summary = summarise(ordered)
        rundir.atomic_write_csv(self.out / "summary.csv", summary)
        rundir.atomic_write_json(self.out / "summary.json", summary)
        timing = [{"key": r["key"], "point": r["point"], "method": r["method"], "seed": r["seed"],
                   "wall_s": walls.get(r["key"])} for r in ordered]
        rundir.atomic_write_csv(self.out / "timing.csv", timing)
        return summary


def t_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float | None, float | None]:
    """(mean, low, high) of the Student-t interval of the mean; no interval from fewer than two values."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if x.size < 2:
        return mean, None, None
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def summarise(rows: list[dict]) -> list[dict]:
    """One row per point and method: ``seeds`` (rows with a result), ``failed`` (error rows), and for each metric
    ``<metric>_mean``, ``<metric>_ci95_low``, ``<metric>_ci95_high`` over the seeds (empty when undefined)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["point"], row["method"]), []).append(row)
    out = []
    for members in groups.values():
        first = members[0]
        good = [r for r in members if r["status"] != "error"]
        entry = {"point": first["point"], **{c: v for c, v in first.items() if c.startswith("axis:")},
                 "method": first["method"], "evaluator": first["evaluator"], "seeds": len(good),
                 "failed": len(members) - len(good)}
        for metric in SUMMARY_METRICS:
            values = [r[metric] for r in good if _finite(r.get(metric))]
            mean, low, high = t_interval(values) if values else (None, None, None)
            entry.update({f"{metric}_mean": mean, f"{metric}_ci95_low": low, f"{metric}_ci95_high": high})
        out.append(entry)
    return out


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a sweep folder's results.json."""
    return json.loads((Path(path) / "results.json").read_text(encoding="utf-8"))
