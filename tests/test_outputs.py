"""Outputs that never lie, and output paths that fail in one line.

* ``--runs-dir``, ``--out`` and ``reference --write`` pointing at a file where a folder is expected (or the
  reverse) give ``error: ...`` with exit status 2, never a traceback;
* a run directory says ``running`` in ``status.json`` from its creation and ``complete`` only after the
  job's last write; one whose process is gone is recognised as ``interrupted``;
* result files are readable by group and others (0644), whatever the umask;
* temporary files are named ``.NAME.tmp-<pid>-<random>``; one left by a SIGKILL is removed by the next
  ``create_run_dir`` (in finished or interrupted run directories) or by a sweep's resume.
"""
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fsllm_sim.cli import main
from fsllm_sim.config import scenario_from_dict
from fsllm_sim.errors import ConfigError
from fsllm_sim.rundir import (STATUS_FILE, atomic_write_json, atomic_write_text, create_run_dir, ensure_output_dir,
                              mark_complete, remove_stale_temp_files, run_status, temp_prefix)

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = {
    "name": "tiny",
    "model": {"name": "tiny-llama"},
    "split": {"layer": 2},
    "clients": {"count": 2},
    "channel": {"s_band": {"subchannels": 4}, "f_band": {"subchannels": 2}},
    "lora": {"rank": 2, "ranks": [1, 2]},
    "convergence": {"calibration": None, "a": 5.0, "b": 10.0, "c": 0.5},
    "simulation": {"training": "analytic", "rounds": 1, "record_channel": False},
}
ALLOWED = "(allowed: a folder, or a path where one can be created)"


@pytest.fixture
def scenario_file(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(SCENARIO))
    return f


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    return err.strip()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------------------------ output paths


def test_ensure_output_dir_makes_folders_and_refuses_files(tmp_path):
    assert ensure_output_dir(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    assert ensure_output_dir(tmp_path / "a" / "b", "--out").is_dir()  # existing: fine
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError) as info:
        ensure_output_dir(tmp_path / "f", "--out")
    assert str(info.value) == f"--out {str(tmp_path / 'f')!r}: is a file, not a folder {ALLOWED}"
    with pytest.raises(ConfigError) as info:
        ensure_output_dir(tmp_path / "f" / "x" / "y", "--runs-dir")
    assert str(info.value) == (f"--runs-dir {str(tmp_path / 'f' / 'x' / 'y')!r}: {str(tmp_path / 'f')!r} is a file, "
                               f"not a folder {ALLOWED}")
    with pytest.raises(ConfigError, match=r"cannot create the folder \(File name too long"):
        ensure_output_dir(tmp_path / ("n" * 300), "--out")


@pytest.mark.parametrize("command", ["run", "compare"])
def test_runs_dir_that_is_a_file_is_one_line(tmp_path, capsys, scenario_file, command):
    (tmp_path / "runs").write_text("not a folder")
    extra = ["--methods", "equal"] if command == "compare" else []
    err = one_line_error(capsys, [command, str(scenario_file), "--runs-dir", str(tmp_path / "runs"), "--no-progress",
                                  "--profile", "analytic", *extra])
    assert err == f"error: --runs-dir {str(tmp_path / 'runs')!r}: is a file, not a folder {ALLOWED}"


def test_output_runs_dir_of_the_scenario_is_named_when_it_is_a_file(tmp_path):
    (tmp_path / "runs").write_text("x")
    s = scenario_from_dict({**SCENARIO, "output": {"runs_dir": str(tmp_path / "runs" / "sub")}})
    with pytest.raises(ConfigError) as info:
        create_run_dir(s, "run")
    assert str(info.value).startswith(f"output.runs_dir {str(tmp_path / 'runs' / 'sub')!r}: "
                                      f"{str(tmp_path / 'runs')!r} is a file")


def test_sweep_out_that_is_a_file_is_one_line(tmp_path, capsys, scenario_file):
    (tmp_path / "out").write_text("x")
    err = one_line_error(capsys, ["sweep", str(scenario_file), "--set", "clients.count=1", "--out",
                                  str(tmp_path / "out"), "--no-progress", "--profile", "analytic"])
    assert err == f"error: --out {str(tmp_path / 'out')!r}: is a file, not a folder {ALLOWED}"


def test_reference_write_to_a_folder_or_below_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    err = one_line_error(capsys, ["reference", "--write", str(tmp_path / "dir")])
    assert err == (f"error: --write {str(tmp_path / 'dir')!r}: is a folder, not a file (allowed: the path of a file "
                   f"to write)")
    err = one_line_error(capsys, ["reference", "--write", str(tmp_path / "file" / "ref.md")])
    assert err == (f"error: --write {str(tmp_path / 'file' / 'ref.md')!r}: its folder {str(tmp_path / 'file')!r}: "
                   f"is a file, not a folder {ALLOWED}")
    assert main(["reference", "--write", str(tmp_path / "new" / "ref.md")]) == 0
    assert (tmp_path / "new" / "ref.md").read_text().startswith("# Scenario reference")


# ------------------------------------------------------------------------------------------ completion


def test_a_run_directory_is_running_until_marked_complete(tmp_path):
    run = create_run_dir(scenario_from_dict(SCENARIO), "run", tmp_path)
    status = json.loads((run / STATUS_FILE).read_text())
    assert status["status"] == "running" and status["pid"] == os.getpid() and status["command"] == "run"
    assert run_status(run) == "running"
    mark_complete(run)
    status = json.loads((run / STATUS_FILE).read_text())
    assert status["status"] == "complete" and status["finished_utc"] >= status["started_utc"]
    assert run_status(run) == "complete"


def test_a_run_whose_process_is_gone_is_interrupted(tmp_path):
    run = create_run_dir(scenario_from_dict(SCENARIO), "run", tmp_path)
    status = json.loads((run / STATUS_FILE).read_text())
    atomic_write_json(run / STATUS_FILE, {**status, "pid": dead_pid()})
    assert run_status(run) == "interrupted"
    (run / STATUS_FILE).unlink()
    assert run_status(run) == "unknown"


def test_status_is_the_first_file_of_a_run_directory(tmp_path, monkeypatch):
    import fsllm_sim.rundir as rundir

    written = []
    real = rundir.atomic_write_text
    monkeypatch.setattr(rundir, "atomic_write_text", lambda p, t: (written.append(Path(p).name), real(p, t)))
    create_run_dir(scenario_from_dict(SCENARIO), "run", tmp_path)
    assert written[0] == STATUS_FILE and "config.resolved.yaml" in written


@pytest.mark.parametrize("command", ["run", "compare"])
def test_jobs_mark_their_run_directory_complete_last(tmp_path, capsys, scenario_file, monkeypatch, command):
    import fsllm_sim.jobs.compare
    import fsllm_sim.jobs.run
    import fsllm_sim.rundir as rundir

    order = []
    real = rundir.atomic_write_text
    for module in (rundir, fsllm_sim.jobs.run, fsllm_sim.jobs.compare):
        if hasattr(module, "atomic_write_text"):
            monkeypatch.setattr(module, "atomic_write_text", lambda p, t: (order.append(Path(p)), real(p, t)))
    extra = ["--methods", "equal,bcd"] if command == "compare" else []
    assert main([command, str(scenario_file), "--runs-dir", str(tmp_path / "runs"), "--no-progress", "--profile",
                 "analytic", *extra]) == 0
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / STATUS_FILE).read_text())["status"] == "complete"
    assert order[-1] == run / STATUS_FILE and order[0] == run / STATUS_FILE
    assert [p for p in order if p.name == STATUS_FILE] == [run / STATUS_FILE] * 2
    figures = [p for p in run.rglob("*.png")]
    assert figures and all(f.stat().st_mtime <= (run / STATUS_FILE).stat().st_mtime for f in figures)


# ------------------------------------------------------------------------------------------ permissions


def test_result_files_are_readable_by_group_and_others_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "r.txt", "x")
        atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("r.txt", "r.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_a_run_directory_is_readable_by_everyone(tmp_path):
    run = create_run_dir(scenario_from_dict(SCENARIO), "run", tmp_path)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes


# ------------------------------------------------------------------------------------------ temporary files


def _killed_writer(target: Path) -> Path:
    """Start a process that writes ``target`` atomically, SIGKILL it mid-write, return the temp file it left."""
    code = ("import os, sys, time\n"
            "from fsllm_sim import rundir\n"
            "os.fsync = lambda fd: (print('ready', flush=True), time.sleep(60))\n"
            "rundir.atomic_write_text(sys.argv[1], 'half')\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    assert len(left) == 1 and not target.exists()
    assert left[0].name.startswith(f".{target.name}.tmp-{proc.pid}-")
    return left[0]


def test_temp_files_are_named_recognisably(tmp_path):
    assert temp_prefix(tmp_path / "results.json") == f".results.json.tmp-{os.getpid()}-"


def test_a_temp_file_left_by_sigkill_is_removed_and_live_ones_are_kept(tmp_path):
    stale = _killed_writer(tmp_path / "results.json")
    live = tmp_path / f".other.json.tmp-{os.getpid()}-abcd1234"
    live.write_text("being written")
    legacy = tmp_path / ".old.json.k3j4h5g6.tmp"  # what mkstemp(prefix=".NAME.", suffix=".tmp") used to leave
    legacy.write_text("x")
    keep = tmp_path / ".hidden"
    keep.write_text("not ours")
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted([stale.name, legacy.name])
    assert live.exists() and keep.exists() and not stale.exists() and not legacy.exists()


def test_create_run_dir_cleans_finished_and_interrupted_runs_but_not_running_ones(tmp_path):
    s = scenario_from_dict(SCENARIO)
    killed = create_run_dir(s, "run", tmp_path)
    stale = _killed_writer(killed / "trace.csv")
    status = json.loads((killed / STATUS_FILE).read_text())
    atomic_write_json(killed / STATUS_FILE, {**status, "pid": dead_pid()})
    (killed / "sub").mkdir()
    stale_sub = killed / "sub" / f".rounds.csv.tmp-{dead_pid()}-zzzz9999"
    stale_sub.write_text("x")
    running = create_run_dir(s, "run", tmp_path)  # this process: alive
    in_flight = running / f".trace.csv.tmp-{os.getpid()}-abcd1234"
    in_flight.write_text("x")
    create_run_dir(s, "run", tmp_path)
    assert not stale.exists() and not stale_sub.exists()
    assert in_flight.exists()


def test_figures_use_the_same_temp_names(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from plots.io import save_figure

    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(Path(a).name), real(a, b)))
    fig, ax = plt.subplots()
    save_figure(fig, tmp_path / "fig.png")
    assert seen and seen[0].startswith(f".fig.png.tmp-{os.getpid()}-")


def test_run_refuses_a_file_as_runs_dir_before_any_work(tmp_path, capsys):
    import yaml

    from fsllm_sim.cli import main

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"name": "t", "model": {"name": "tiny-llama"}, "split": {"layer": 2},
                                 "clients": {"count": 2}, "lora": {"rank": 2, "ranks": [2]},
                                 "convergence": {"calibration": None},
                                 "simulation": {"training": "analytic", "rounds": 1}}))
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for runs_dir in (blocker, blocker / "sub"):
        assert main(["run", str(f), "--runs-dir", str(runs_dir), "--no-progress", "--profile", "analytic"]) == 2
        err = capsys.readouterr().err
        assert "is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    assert main(["calibrate", str(f), "--out", str(blocker), "--no-progress"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
