"""Run directories: every run records its resolved config, seeds and versions, and writes results atomically.

Completion
    :func:`create_run_dir` writes ``status.json`` with ``"status": "running"`` (and the writer's host and pid)
    before anything else; the job calls :func:`mark_complete` as its very last step, which rewrites it with
    ``"status": "complete"``. A run directory is complete only when ``status.json`` says so:
    ``"running"`` means still running, or, when its process is gone (:func:`run_status` says
    ``"interrupted"``), killed part-way; a directory without ``status.json`` was written by an older version
    and its state is unknown. Folders that jobs resume (a sweep's ``--out``) carry the same file.

Files
    Every result file is written by :func:`atomic_write_text`: into a temporary file in the same folder,
    named ``.<NAME>.tmp-<pid>-<random>``, synced, made readable by everyone (mode 0644; ``mkstemp`` alone
    gives 0600) and renamed over ``NAME``, so a reader never sees a half-written file. A temporary file that
    survives a SIGKILL cannot be removed by its own process; :func:`remove_stale_temp_files` removes those
    whose process is gone; :func:`create_run_dir` clears those of the finished or interrupted run directories
    beside the new one, and a sweep's resume those of its own folders.

Output folders named by the user (``--runs-dir``, ``--out``) are made by :func:`ensure_output_dir`, which turns
a file in the way, or a folder that cannot be made, into a one-line error.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import re
import socket
import stat
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .config import dump_scenario
from .errors import ConfigError
from .seeding import describe

VERSIONED_PACKAGES = ("fsllm-sim", "torch", "transformers", "peft", "numpy", "numba", "scipy", "simpy", "highspy",
                      "gurobipy", "gguf", "PyYAML")
FILE_MODE = 0o644  # owner read/write, group and others read
STATUS_FILE = "status.json"
TEMP_MARK = ".tmp-"  # temporary files are ``.<name>.tmp-<pid>-<random>`` (plots.io names figures the same way)
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>[0-9]+)-[A-Za-z0-9_]+")
_LEGACY_TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # mkstemp(prefix=".NAME.", suffix=".tmp") before


def temp_prefix(path: str | os.PathLike) -> str:
    """The prefix of ``path``'s temporary files, for ``tempfile.mkstemp(prefix=...)``."""
    return f".{Path(path).name}{TEMP_MARK}{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or unknowable: leave its files alone
    return True


def remove_stale_temp_files(folder: str | os.PathLike, *, check_pid: bool = True) -> list[str]:
    """Remove the temporary files in ``folder`` (not below it) that no writer will rename any more: those named
    ``.<name>.tmp-<pid>-<random>`` whose process no longer runs on this host (every one with
    ``check_pid=False``, for a folder whose job is known to be over), and the pid-less
    ``.<name>.<8 characters>.tmp`` of earlier versions. Returns the names removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_NAME.fullmatch(entry.name)
        if m is not None:
            stale = not check_pid or not _pid_alive(int(m["pid"]))
        else:
            stale = _LEGACY_TEMP_NAME.fullmatch(entry.name) is not None
        try:
            if stale and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            pass
    return removed


def _display(path) -> str:
    from .config.loader import _display_path

    return repr(_display_path(path))


def _is_non_folder(p: Path) -> bool:
    try:
        return not stat.S_ISDIR(p.stat().st_mode)
    except OSError:
        return False


def ensure_output_dir(path: str | os.PathLike, what: str) -> Path:
    """Make the output folder ``path`` (and its parents) and return it; ``what`` names where the path came from
    in messages (``--out``, ``--runs-dir``, ``output.runs_dir``). A file where a folder is expected, or a folder
    that cannot be made, is a one-line ConfigError."""
    p = Path(path)
    shown = f"{what} {_display(p)}"
    allowed = "allowed: a folder, or a path where one can be created"
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((a for a in (p, *p.parents) if _is_non_folder(a)), None)
        if blocker is None or blocker == p:
            raise ConfigError(f"{shown}: is a file, not a folder ({allowed})") from None
        raise ConfigError(f"{shown}: {_display(blocker)} is a file, not a folder ({allowed})") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot create the folder ({exc.strerror or type(exc).__name__}; "
                          f"{allowed})") from None
    return p


def check_output_dir(path: str | os.PathLike, what: str) -> None:
    """What :func:`ensure_output_dir` would refuse, checked without creating anything: a job calls it before
    long work, so a bad ``--runs-dir`` fails at once and a failed job leaves no folder behind."""
    p = Path(path)
    blocker = next((a for a in (p, *p.parents) if _is_non_folder(a)), None)
    if blocker is not None:
        shown = f"{what} {_display(p)}"
        where = "is a file" if blocker == p else f"{_display(blocker)} is a file"
        raise ConfigError(f"{shown}: {where}, not a folder (allowed: a folder, or a path where one can be created)")


def atomic_write(path: str | os.PathLike, write, *, make_parent: bool = True) -> Path:
    """The one atomic writer: ``write(fh)`` fills a temporary binary file in the same folder, which is synced,
    made 0644 (readable by group and others) and renamed onto ``path``; readers never see a half-written file,
    and on any failure the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fchmod(fh.fileno(), FILE_MODE)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write` of UTF-8 text."""
    data = text.encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data))


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


def _now_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def mark_running(folder: str | os.PathLike, command: str, started_utc: str | None = None) -> None:
    """Write ``status.json`` saying the job writing ``folder`` is running (see the module docstring)."""
    atomic_write_json(Path(folder) / STATUS_FILE, {"status": "running", "command": command,
                                                   "started_utc": started_utc or _now_stamp(),
                                                   "host": socket.gethostname(), "pid": os.getpid()})


def mark_complete(run_dir: str | os.PathLike, stopped: str | None = None) -> None:
    """The last step of a job: ``status.json`` says ``complete``; every output of the folder is in place.
    ``stopped``: the run ended before its rounds (every client gone for good): said under ``stopped``."""
    path = Path(run_dir) / STATUS_FILE
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}
    before = before if isinstance(before, dict) else {}
    atomic_write_json(path, {"status": "complete", "command": before.get("command"),
                             "started_utc": before.get("started_utc"), "finished_utc": _now_stamp(),
                             **({"stopped": stopped} if stopped else {})})


def run_status(run_dir: str | os.PathLike) -> str:
    """``complete``, ``running``, ``interrupted`` (status running but its process on this host is gone) or
    ``unknown`` (no readable status.json: an older version, or not a run directory)."""
    try:
        doc = json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unknown"
    status = doc.get("status") if isinstance(doc, dict) else None
    if status == "complete":
        return "complete"
    if status != "running":
        return "unknown"
    pid = doc.get("pid")
    if doc.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid):
        return "interrupted"
    return "running"


def create_run_dir(scenario, command: str, runs_dir: str | os.PathLike | None = None) -> Path:
    """Make ``<runs_dir>/<name>-<command>-<timestamp>``, mark it running and record config, seeds, versions and
    the command line. Stale temporary files of killed runs in the sibling run directories are removed."""
    from .config.loader import name_problem

    problem = name_problem(scenario.name)  # also checked on loading; here for scenarios built in code
    if problem:
        raise ConfigError(f"name: {problem}")
    base = ensure_output_dir(runs_dir if runs_dir is not None else scenario.output.runs_dir,
                             "--runs-dir" if runs_dir is not None else "output.runs_dir")
    _remove_stale_in_runs(base)
    stamp = _now_stamp()
    run = base / f"{scenario.name}-{command}-{stamp}"
    try:
        run.mkdir(exist_ok=False)
    except OSError as exc:
        raise ConfigError(f"cannot create the run directory {_display(run)} "
                          f"({exc.strerror or type(exc).__name__})") from None
    mark_running(run, command, stamp)
    atomic_write_text(run / "config.resolved.yaml", dump_scenario(scenario))
    atomic_write_json(run / "seeds.json", describe(scenario.seed))
    atomic_write_json(run / "versions.json", package_versions())
    atomic_write_json(run / "command.json", {"command": command, "argv": sys.argv, "cwd": os.getcwd(),
                                             "started_utc": stamp})
    return run


def _remove_stale_in_runs(base: Path) -> None:
    """Temporary files left in the run directories under ``base`` (and their sub-folders, compare's per-method
    ones) whose job is over: complete, or interrupted (its process on this host is gone). Run directories of
    other hosts still running, or of older versions, are left alone."""
    try:
        runs = [e.path for e in os.scandir(base) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for run in runs:
        if run_status(run) not in ("complete", "interrupted"):
            continue
        remove_stale_temp_files(run, check_pid=False)
        try:
            subs = [e.path for e in os.scandir(run) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        for sub in subs:
            remove_stale_temp_files(sub, check_pid=False)
