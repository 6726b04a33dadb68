"""End-to-end jobs on a tiny model: run, optimize, and run with the optimised allocation."""
import csv
import json

import numpy as np
import pytest
import yaml

from fsllm_sim.cli import main
from fsllm_sim.convergence import builtin_calibration_path, load_calibration_fit

SCENARIO = {
    "name": "tiny",
    "model": {"name": "tiny-llama"},
    "split": {"layer": 2},
    "clients": {"count": 3},
    "channel": {"s_band": {"subchannels": 6}, "f_band": {"subchannels": 4}},
    "lora": {"rank": 2, "ranks": [1, 2, 4]},
    "convergence": {"calibration": None, "a": 5.0, "b": 10.0, "c": 0.5},
}


@pytest.fixture
def scenario_file(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(SCENARIO))
    return f


def only_run_dir(path, command):
    dirs = [d for d in path.iterdir() if f"-{command}-" in d.name]
    assert len(dirs) == 1
    return dirs[0]


def test_run_writes_a_complete_run_directory(scenario_file, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["run", str(scenario_file), "--runs-dir", str(runs), "--no-progress", "--profile", "analytic"]) == 0
    out = capsys.readouterr().out
    assert "round time" in out and "straggler" in out
    run = only_run_dir(runs, "run")
    for name in ("config.resolved.yaml", "seeds.json", "versions.json", "command.json", "clients.csv", "results.json",
                 "delay_breakdown.png", "layout.png"):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "config.resolved.yaml").read_text())["model"]["name"] == "tiny-llama"
    assert json.loads((run / "versions.json").read_text())["torch"].startswith("2.13.0")
    rows = list(csv.DictReader((run / "clients.csv").open()))
    assert len(rows) == 3
    summary = json.loads((run / "results.json").read_text())["summary"]
    # total = N(r) * T_round with N(2) = 5 + 10 / sqrt(2)
    assert summary["rounds_to_target"] == pytest.approx(5 + 10 / np.sqrt(2))
    assert summary["total_time_s"] == pytest.approx(summary["rounds_to_target"] * summary["round_time_s"])
    assert max(float(r["client_round_s"]) for r in rows) < summary["round_time_s"]
    # equal share: 6 s-band subchannels over 3 clients
    assert all(int(r["subchannels_s"]) == 2 for r in rows)
    # fading never raises the ergodic rate above the rate at the mean gain by much (Jensen: log is concave)
    for r in rows:
        assert float(r["ergodic_rate_s_mbps"]) <= float(r["rate_s_mbps"]) * 1.05


def test_run_is_reproducible(scenario_file, tmp_path):
    for name in ("a", "b"):
        main(["run", str(scenario_file), "--runs-dir", str(tmp_path / name), "--no-progress", "--profile", "analytic"])
    a = (only_run_dir(tmp_path / "a", "run") / "clients.csv").read_text()
    b = (only_run_dir(tmp_path / "b", "run") / "clients.csv").read_text()
    assert a == b


def test_optimize_beats_equal_share_and_its_solution_runs(scenario_file, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["optimize", str(scenario_file), "--runs-dir", str(runs), "--no-progress",
                 "--profile", "analytic"]) == 0
    out = capsys.readouterr().out
    assert "lower bound (relaxation)" in out
    opt = only_run_dir(runs, "optimize")
    sol = json.loads((opt / "solution.json").read_text())
    results = json.loads((opt / "results.json").read_text())
    assert results["lower_bound_s"] <= sol["objective_s"] * (1 + 1e-9)
    for row in results["comparison"]:
        if row["allocation"] != "lower bound (relaxation)":
            assert row["total_s"] >= sol["objective_s"] * (1 - 1e-9), row
    assert main(["run", str(scenario_file), "--runs-dir", str(runs), "--no-progress", "--profile", "analytic",
                 "--allocation", str(opt / "solution.json")]) == 0
    summary = json.loads((only_run_dir(runs, "run") / "results.json").read_text())["summary"]
    assert summary["split"] == sol["split"] and summary["rank"] == sol["rank"]
    assert summary["total_time_s"] == pytest.approx(sol["objective_s"], rel=1e-9)


def test_bad_allocation_file_is_one_line(scenario_file, tmp_path, capsys):
    bad = tmp_path / "sol.json"
    bad.write_text("{}")
    assert main(["run", str(scenario_file), "--runs-dir", str(tmp_path), "--no-progress", "--profile", "analytic",
                 "--allocation", str(bad)]) == 2
    assert "is not a solution file" in capsys.readouterr().err


def test_split_beyond_the_model_is_a_clear_error(scenario_file, tmp_path, capsys):
    data = dict(SCENARIO, split={"layer": 7})
    f = tmp_path / "deep.yaml"
    f.write_text(yaml.safe_dump(data))
    assert main(["run", str(f), "--runs-dir", str(tmp_path / "r"), "--no-progress", "--profile", "analytic"]) == 2
    assert "split.layer: 7 is out of range for tiny-llama with J=4 blocks (allowed: 1..3)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_shipped_calibration_loads():
    fit = load_calibration_fit(builtin_calibration_path())
    assert fit.rounds(1) >= fit.rounds(16) > 0
