"""Run directories: every run records its resolved config, seeds and versions, and writes results atomically."""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .config import dump_scenario
from .seeding import describe

VERSIONED_PACKAGES = ("fsllm-sim", "torch", "transformers", "peft", "numpy", "scipy", "simpy", "highspy", "gurobipy",
                      "gguf", "PyYAML")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_write_csv(path, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def package_versions() -> dict:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def create_run_dir(scenario, command: str, runs_dir: str | os.PathLike | None = None) -> Path:
    """Make ``<runs_dir>/<name>-<timestamp>`` and record config, seeds, versions and the command line."""
    from .config.loader import name_problem
    from .errors import ConfigError

    problem = name_problem(scenario.name)  # also checked on loading; here for scenarios built in code
    if problem:
        raise ConfigError(f"name: {problem}")
    base = Path(runs_dir if runs_dir is not None else scenario.output.runs_dir)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    run = base / f"{scenario.name}-{command}-{stamp}"
    run.mkdir(parents=True, exist_ok=False)
    atomic_write_text(run / "config.resolved.yaml", dump_scenario(scenario))
    atomic_write_json(run / "seeds.json", describe(scenario.seed))
    atomic_write_json(run / "versions.json", package_versions())
    atomic_write_json(run / "command.json", {"command": command, "argv": sys.argv, "cwd": os.getcwd(),
                                             "started_utc": stamp})
    return run
