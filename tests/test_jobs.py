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
    "simulation": {"training": "analytic", "rounds": 2},
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
    assert "closed form" in out and "straggler" in out
    run = only_run_dir(runs, "run")
    for name in ("config.resolved.yaml", "seeds.json", "versions.json", "command.json", "clients.csv", "results.json",
                 "trace.csv", "channel.csv", "rounds.csv", "allocations.json", "timing.json", "gantt_round1.png",
                 "delay_breakdown.png", "layout.png"):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "config.resolved.yaml").read_text())["model"]["name"] == "tiny-llama"
    assert json.loads((run / "versions.json").read_text())["torch"].startswith("2.13.0")
    rows = list(csv.DictReader((run / "clients.csv").open()))
    assert len(rows) == 3
    summary = json.loads((run / "results.json").read_text())["summary"]
    # predicted total = N(r) * closed-form T_round with N(2) = 5 + 10 / sqrt(2)
    assert summary["rounds_to_target_model"] == pytest.approx(5 + 10 / np.sqrt(2))
    assert summary["analytic_time_to_target_s"] == pytest.approx(summary["rounds_to_target_model"]
                                                                 * summary["mean_analytic_round_s"])
    rounds = list(csv.DictReader((run / "rounds.csv").open()))
    assert [int(r["round"]) for r in rounds] == [1, 2]
    assert float(rounds[1]["start_s"]) == float(rounds[0]["end_s"])
    assert summary["simulated_s"] == float(rounds[-1]["end_s"])
    # equal share: 6 s-band subchannels over 3 clients
    assert all(int(r["subchannels_s"]) == 2 for r in rows)
    # fading never raises the simulated rate of a fixed power far above the rate at the mean gain (Jensen)
    for r in rows:
        assert float(r["simulated_rate_s_mbps"]) <= float(r["mean_gain_rate_s_mbps"]) * 1.05
    allocations = json.loads((run / "allocations.json").read_text())
    assert [a["round"] for a in allocations] == [1, 2] and allocations[0]["label"] == "equal-share"


def test_run_is_reproducible_byte_for_byte(scenario_file, tmp_path):
    for name in ("a", "b"):
        main(["run", str(scenario_file), "--runs-dir", str(tmp_path / name), "--no-progress", "--profile", "analytic"])
    for file in ("trace.csv", "rounds.csv", "channel.csv", "clients.csv", "results.json", "allocations.json"):
        a = (only_run_dir(tmp_path / "a", "run") / file).read_bytes()
        b = (only_run_dir(tmp_path / "b", "run") / file).read_bytes()
        assert a == b, file


def test_optimize_beats_equal_share_and_its_solution_runs(scenario_file, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["optimize", str(scenario_file), "--runs-dir", str(runs), "--no-progress",
                 "--profile", "analytic"]) == 0
    out = capsys.readouterr().out
    assert "lower bound (bcd pair bound)" in out and "energy J" in out and "E_round J" in out
    opt = only_run_dir(runs, "optimize")
    sol = json.loads((opt / "solution.json").read_text())
    results = json.loads((opt / "results.json").read_text())
    assert results["lower_bound_s"] <= sol["objective_s"] * (1 + 1e-9)
    for row in results["comparison"]:
        assert row["total_s"] >= sol["objective_s"] * (1 - 1e-9), row
        assert row["training_energy_j"] > 0 and row["objective_s"] == row["total_s"]  # delay objective
    assert sol["training_energy_j"] == pytest.approx(sol["rounds"] * sol["energy"]["total_j"], rel=1e-12)
    assert main(["run", str(scenario_file), "--runs-dir", str(runs), "--no-progress", "--profile", "analytic",
                 "--allocation", str(opt / "solution.json")]) == 0
    summary = json.loads((only_run_dir(runs, "run") / "results.json").read_text())["summary"]
    assert summary["split"] == sol["split"] and summary["rank"] == sol["rank"]
    assert summary["mean_analytic_round_s"] == pytest.approx(sol["round_time_s"], rel=1e-9)
    assert summary["analytic_time_to_target_s"] == pytest.approx(sol["objective_s"], rel=1e-9)


def test_bad_allocation_file_is_one_line(scenario_file, tmp_path, capsys):
    bad = tmp_path / "sol.json"
    bad.write_text("{}")
    assert main(["run", str(scenario_file), "--runs-dir", str(tmp_path), "--no-progress", "--profile", "analytic",
                 "--allocation", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a solution file written by `fsllm-sim optimize`" in err and len(err.strip().splitlines()) == 1


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


# -- optimize: bounds, seeds, byte-identical outputs -------------------------------------------

def _optimize(scenario_path, runs, *extra):
    assert main(["optimize", str(scenario_path), "--runs-dir", str(runs), "--no-progress", "--profile", "analytic",
                 *extra]) == 0
    return only_run_dir(runs, "optimize")


def test_optimize_solution_json_is_byte_identical_and_timing_is_apart(scenario_file, tmp_path):
    runs = [_optimize(scenario_file, tmp_path / name) for name in ("a", "b")]
    for name in ("solution.json", "results.json", "comparison.csv"):
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name
    sol = json.loads((runs[0] / "solution.json").read_text())
    assert "wall_time_s" not in sol and "wall_time_s" not in json.loads((runs[0] / "results.json").read_text())["solution"]
    timing = json.loads((runs[0] / "timing.json").read_text())
    assert timing["solver_wall_s"]["bcd"] > 0 and len(timing["solver_wall_s"]) == 7


def test_optimize_reports_bcd_bound_by_default_and_relaxation_on_request(scenario_file, tmp_path, capsys):
    default = _optimize(scenario_file, tmp_path / "d", "--no-baselines")
    out = capsys.readouterr().out
    results = json.loads((default / "results.json").read_text())
    sol = json.loads((default / "solution.json").read_text())
    assert results["lower_bound"]["source"] == "bcd" and "lower bound (bcd pair bound)" in out
    assert results["lower_bound_s"] == pytest.approx(sol["lower_bound_s"], rel=1e-12)  # bcd's own bound
    assert results["lower_bound_s"] <= sol["objective_s"]
    assert all(not row["allocation"].startswith("lower bound") for row in results["comparison"])
    relaxed = _optimize(scenario_file, tmp_path / "r", "--no-baselines", "--bound", "relaxation")
    bound = json.loads((relaxed / "results.json").read_text())["lower_bound"]
    assert bound["source"] == "relaxation" and bound["lower_bound_s"] <= sol["objective_s"] * (1 + 1e-9)


def test_relaxation_bound_is_refused_above_the_size_limit(tmp_path, capsys):
    data = dict(SCENARIO, clients={"count": 70}, channel={"s_band": {"subchannels": 70}, "f_band": {"subchannels": 70}})
    f = tmp_path / "big.yaml"
    f.write_text(yaml.safe_dump(data))
    for flags in (["--bound", "relaxation"], ["--method", "relaxation"]):
        assert main(["optimize", str(f), "--runs-dir", str(tmp_path / "r"), "--no-progress", "--profile", "analytic",
                     *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "K*M <= 4096" in err and "70*70 = 4900" in err, err
    assert not (tmp_path / "r").exists()


def test_optimize_method_relaxation_is_a_bound_not_an_allocation(scenario_file, tmp_path, capsys):
    run = _optimize(scenario_file, tmp_path / "runs", "--method", "relaxation")
    out = capsys.readouterr().out
    assert "this is a bound, not an allocation" in out and "--allocation" not in out
    assert not (run / "solution.json").exists()
    results = json.loads((run / "results.json").read_text())
    assert "solution" not in results and "lower_bound_s" not in results
    assert results["lower_bound"]["method"] == "relaxation" and results["lower_bound"]["lower_bound_s"] > 0
    # every baseline allocation is at or above the bound
    assert all(row["total_s"] >= results["lower_bound"]["lower_bound_s"] * (1 - 1e-9) for row in results["comparison"])


def test_random_baseline_follows_the_scenario_seed(tmp_path):
    def random_assignment(seed, name):
        f = tmp_path / f"{name}.yaml"
        f.write_text(yaml.safe_dump(dict(SCENARIO, seed=seed)))
        sol = json.loads((_optimize(f, tmp_path / name, "--method", "random", "--no-baselines")
                          / "solution.json").read_text())
        return sol["assign_s"] + sol["assign_f"]

    first, again, other = random_assignment(1, "a"), random_assignment(1, "b"), random_assignment(2, "c")
    assert first == again
    assert first != other


def test_optimize_time_limit_must_be_positive(scenario_file, tmp_path, capsys):
    assert main(["optimize", str(scenario_file), "--runs-dir", str(tmp_path / "r"), "--no-progress",
                 "--profile", "analytic", "--time-limit", "-1"]) == 2
    assert "--time-limit" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_solution_records_its_k_and_problem_and_run_checks_them(scenario_file, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["optimize", str(scenario_file), "--runs-dir", str(runs), "--no-progress", "--profile", "analytic",
                 "--no-baselines"]) == 0
    sol_path = only_run_dir(runs, "optimize") / "solution.json"
    sol = json.loads(sol_path.read_text())
    assert sol["num_clients"] == 3 and len(sol["problem_fingerprint"]) == 16
    capsys.readouterr()
    # another K: refused in one line that names the file and both K
    other_k = tmp_path / "k4.yaml"
    other_k.write_text(yaml.safe_dump(dict(SCENARIO, clients={"count": 4}, channel={"s_band": {"subchannels": 6},
                                                                                     "f_band": {"subchannels": 4}})))
    assert main(["run", str(other_k), "--runs-dir", str(tmp_path / "r2"), "--no-progress", "--profile", "analytic",
                 "--allocation", str(sol_path)]) == 2
    err = capsys.readouterr().err
    assert "solution.json" in err and "made for K=3 clients, the scenario has K=4" in err
    # same K, another problem (a faster server): feasible, run, with a one-line note
    other = tmp_path / "fast.yaml"
    other.write_text(yaml.safe_dump(dict(SCENARIO, server={"flops_per_s": 1e14})))
    assert main(["run", str(other), "--runs-dir", str(tmp_path / "r3"), "--no-progress", "--profile", "analytic",
                 "--allocation", str(sol_path)]) == 0
    assert "optimised for another problem" in capsys.readouterr().out
    # the simulation section does not change the problem: no note
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump(dict(SCENARIO, simulation={"training": "analytic", "rounds": 1})))
    assert main(["run", str(same), "--runs-dir", str(tmp_path / "r4"), "--no-progress", "--profile", "analytic",
                 "--allocation", str(sol_path)]) == 0
    assert "optimised for another problem" not in capsys.readouterr().out


def test_optimize_with_per_client_splits_claims_no_bound_and_keeps_fixed_split_baselines_common(tmp_path, capsys):
    f = tmp_path / "own.yaml"
    f.write_text(yaml.safe_dump({**SCENARIO, "split": {"layer": 2, "per_client": True},
                                 "objective": {"kind": "weighted", "weight_s_per_j": 0.1}}))
    run = _optimize(f, tmp_path / "o")
    out = capsys.readouterr().out
    results = json.loads((run / "results.json").read_text())
    assert results["lower_bound_s"] is None and "lower bound: none: no lower bound applies with per-client" in out
    fixed = next(r for r in results["comparison"] if r["allocation"].startswith("bcd, fixed split"))
    assert fixed["split"] == 2  # one common split for every client: the fixed-split baseline's meaning
