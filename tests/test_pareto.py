"""`fsllm-sim optimize --pareto`: the delay-energy front, its files and figure, and optimize's energy report.

A tiny fast problem: the 4-block random Llama, K = 3, one split (split.min_layer 3), two ranks, mean-gain rates
(the energy step plans on them, so every budget above the floor is met), analytic profile.
"""
import csv
import json

import numpy as np
import pytest
import yaml

from fsllm_sim.cli import main

from test_jobs import only_run_dir

SCENARIO = {
    "name": "pareto-test",
    "model": {"name": "tiny-llama"},
    "split": {"layer": 3, "min_layer": 3},
    "clients": {"count": 3},
    "channel": {"s_band": {"subchannels": 5}, "f_band": {"subchannels": 4}},
    "lora": {"rank": 2, "ranks": [2, 4]},
    "convergence": {"calibration": None, "a": 5.0, "b": 10.0, "c": 0.5},
    "solver": {"rates": "mean-gain"},
    "simulation": {"training": "analytic", "rounds": 2},
}
QUIET = ["--profile", "analytic"]


def _write(tmp_path, name, data):
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(data))
    return f


def _rows(run):
    with (run / "pareto.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _delay_optimum(path):
    """The delay optimum solved here, apart from the job: bcd on the scenario's problem (objective delay)."""
    import solvers
    from fsllm_sim.config import load_scenario
    from fsllm_sim.jobs.optimize import scenario_problem

    problem, _, _ = scenario_problem(load_scenario(path), profile_source="analytic", progress=False, warn=False)
    return problem, solvers.solve(problem, "bcd")


def test_weight_front_is_monotone_starts_at_the_delay_optimum_and_redraws(tmp_path, capsys, monkeypatch):
    f = _write(tmp_path, "s", SCENARIO)
    runs = tmp_path / "runs"
    assert main(["optimize", str(f), "--pareto", "--points", "5", "--runs-dir", str(runs), *QUIET]) == 0
    out = capsys.readouterr().out
    run = only_run_dir(runs, "optimize")
    for name in ("pareto.csv", "pareto.png", "pareto.pdf", "results.json", "timing.json", "status.json",
                 "solutions/point_00.json", "solutions/point_04.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    assert len([line for line in out.splitlines() if line.startswith("bcd point ")]) == 5  # progress, one a point
    rows = _rows(run)
    assert list(rows[0])[:11] == ["point", "weight_s_per_j", "method", "split", "rank", "round_s", "rounds",
                                  "training_delay_s", "training_energy_j", "worst_client_round_j",
                                  "mean_frequency_ghz"]
    front = [r for r in rows if r["method"] == "bcd"]
    assert [int(r["point"]) for r in front] == list(range(5))
    lam = np.array([float(r["weight_s_per_j"]) for r in front])
    delay = np.array([float(r["training_delay_s"]) for r in front])
    energy = np.array([float(r["training_energy_j"]) for r in front])
    assert lam[0] == 0 and np.all(np.diff(lam) > 0)
    assert np.all(np.diff(delay) >= 0) and np.all(np.diff(energy) <= 0)
    assert energy[-1] < 0.5 * energy[0] and delay[-1] > delay[0]  # the front trades something
    # lambda = 0 is the delay optimum's delay; the grid is lambda_ref x 10^[-2, 2], lambda_ref = T / E of it
    problem, opt = _delay_optimum(f)
    assert delay[0] == pytest.approx(opt.training_delay_s, rel=1e-12)
    ref = opt.round_time_s / opt.energy.total_j
    assert lam[1] == pytest.approx(0.01 * ref, rel=1e-9) and lam[-1] == pytest.approx(100 * ref, rel=1e-9)
    assert float(rows[0]["round_s"]) * float(rows[0]["rounds"]) == pytest.approx(delay[0], rel=1e-12)
    for r in front:  # N(r) (T + lambda E), the objective each point minimised
        assert float(r["objective_s"]) == pytest.approx(float(r["training_delay_s"]) + float(r["weight_s_per_j"])
                                                        * float(r["training_energy_j"]), rel=1e-9)
    base = {r["method"]: r for r in rows if r["point"] == ""}
    assert set(base) == {"bcd-delay", "equal"}
    assert float(base["bcd-delay"]["training_delay_s"]) == pytest.approx(opt.training_delay_s, rel=1e-12)
    assert float(base["bcd-delay"]["mean_frequency_ghz"]) == float(base["equal"]["mean_frequency_ghz"]) == 1.0
    assert float(base["equal"]["training_delay_s"]) >= delay[0]
    assert float(front[-1]["mean_frequency_ghz"]) < 1.0  # DVFS lowered the clocks
    # same scenario, same bytes (no wall-clock time outside timing.json)
    assert main(["optimize", str(f), "--pareto", "--points", "5", "--runs-dir", str(tmp_path / "again"),
                 "--no-progress", *QUIET]) == 0
    again = only_run_dir(tmp_path / "again", "optimize")
    for name in ("pareto.csv", "results.json", "solutions/point_02.json"):
        assert (run / name).read_bytes() == (again / name).read_bytes(), name

    # `fsllm-sim plot DIR` redraws the figure from pareto.csv
    import plots.pareto

    drawn = {}
    real = plots.pareto.pareto_figure

    def capture(fronts, baselines, stem, **kw):
        drawn["fig"] = real(fronts, baselines, stem, **kw)
        return drawn["fig"]

    monkeypatch.setattr(plots.pareto, "pareto_figure", capture)
    capsys.readouterr()
    assert main(["plot", str(run), "--no-progress"]) == 0
    assert "pareto" in capsys.readouterr().out
    assert (run / "figures" / "pareto.png").is_file() and (run / "figures" / "pareto.pdf").is_file()
    ax = drawn["fig"].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert np.allclose(lines["bcd, front"].get_xdata(), delay) and np.allclose(lines["bcd, front"].get_ydata(), energy)
    assert lines["bcd, delay optimum (f_max)"].get_linestyle() == "None"  # baselines are points
    assert ax.get_xlabel().endswith("(s)") and ax.get_ylabel().endswith("(J)")

    # a point's allocation runs end to end, with its DVFS clocks (closed form = the point's round and energy)
    point = front[3]
    sol = json.loads((run / "solutions" / "point_03.json").read_text())
    assert float(point["mean_frequency_ghz"]) < 1.0 and min(sol["frequency_hz"]) < 1e9
    assert main(["run", str(f), "--runs-dir", str(tmp_path / "r"), "--no-progress", *QUIET, "--allocation",
                 str(run / "solutions" / "point_03.json")]) == 0
    done = json.loads((only_run_dir(tmp_path / "r", "run") / "results.json").read_text())
    assert done["summary"]["mean_analytic_round_s"] == pytest.approx(float(point["round_s"]), rel=1e-9)
    assert done["energy"]["mean_analytic_round_j"] == pytest.approx(
        float(point["training_energy_j"]) / float(point["rounds"]), rel=1e-9)


def test_budget_front_delay_grows_as_the_budget_shrinks(tmp_path, capsys):
    f = _write(tmp_path, "s", SCENARIO)
    runs = tmp_path / "runs"
    assert main(["optimize", str(f), "--pareto", "--budgets", "--points", "4", "--runs-dir", str(runs),
                 "--no-progress", *QUIET]) == 0
    run = only_run_dir(runs, "optimize")
    rows = _rows(run)
    assert "budget_j" in rows[0] and "weight_s_per_j" not in rows[0]
    front = [r for r in rows if r["method"] == "bcd"]
    budget = np.array([float(r["budget_j"]) for r in front])
    assert np.all(np.diff(budget) < 0)
    assert all(r["status"] != "refused" for r in front)  # mean-gain rates: every budget above the floor is met
    delay = np.array([float(r["training_delay_s"]) for r in front])
    assert np.all(np.diff(delay) >= 0) and delay[-1] > delay[0]
    worst = np.array([float(r["worst_client_round_j"]) for r in front])
    assert np.all(worst <= budget * (1 + 1e-9))
    _, opt = _delay_optimum(f)
    assert budget[0] == pytest.approx(opt.energy.worst_client_j, rel=1e-12)
    assert delay[0] == pytest.approx(opt.training_delay_s, rel=1e-12)
    sweep = json.loads((run / "results.json").read_text())["pareto"]
    assert sweep["sweep"] == "budget" and 0 < sweep["floor_j"] < budget[-1]


@pytest.mark.parametrize("override, fragment", [
    ({"protocol": "sl"}, "protocol sfl only"),
    ({"protocol": "fl"}, "protocol sfl only"),
    ({"channel": {"s_band": {"subchannels": 5}, "f_band": {"subchannels": 4}, "power": {"total_cap_s_dbm": 30.0}}},
     "total power caps"),
])
def test_pareto_where_energy_objectives_are_refused_is_one_line(tmp_path, capsys, override, fragment):
    f = _write(tmp_path, "bad", {**SCENARIO, **override})
    assert main(["optimize", str(f), "--pareto", "--runs-dir", str(tmp_path / "r"), "--no-progress", *QUIET]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --pareto: ") and fragment in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--pareto", "--points", "1"], "argument --points: '1' is not an integer from 2 to 64"),
    (["--pareto", "--points", "65"], "argument --points: '65' is not an integer from 2 to 64"),
    (["--points", "5"], "--points applies to --pareto"),
    (["--budgets"], "--budgets applies to --pareto"),
    (["--pareto", "--method", "equal"], "the front needs a method with the energy step"),
])
def test_bad_pareto_arguments_are_one_line(tmp_path, capsys, args, fragment):
    f = _write(tmp_path, "s", SCENARIO)
    argv = ["optimize", str(f), *args, "--runs-dir", str(tmp_path / "r"), "--no-progress", *QUIET]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own checks exit from the parser, in one line too
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
    assert not (tmp_path / "r").exists()


def test_check_points_and_the_grids():
    from fsllm_sim.errors import ConfigError
    from fsllm_sim.jobs.pareto import budgets_for, check_points, select_budgeted, select_weighted, weights_for

    assert check_points(None) == 9 and check_points(2) == 2 and check_points(64) == 64
    for bad in (1, 65, 2.5, True):
        with pytest.raises(ConfigError, match="from 2 to 64"):
            check_points(bad)
    w = weights_for(2.0, 5)
    assert w[0] == 0 and np.allclose(w[1:], 2.0 * np.logspace(-2, 2, 4))
    b = budgets_for(1.0, 0.5, 4)
    assert b[0] == 1.0 and np.all(np.diff(b) < 0) and b[-1] == pytest.approx(0.505)

    class Point:  # what the selections read of a Solution
        def __init__(self, d, e, worst):
            self.training_delay_s, self.training_energy_j = d, e
            self.energy = type("E", (), {"client_j": np.array([worst])})()

    # a heuristic's points out of order: the selections make the front consistent all the same
    found = [Point(10.0, 9.0, 3.0), Point(12.0, 5.0, 2.0), Point(11.0, 8.5, 2.9), Point(20.0, 2.0, 1.0),
             Point(13.0, 6.0, 2.5)]
    picks = select_weighted(found, [0.0, 0.1, 1.0, 10.0])
    d = [found[i].training_delay_s for i in picks]
    e = [found[i].training_energy_j for i in picks]
    assert d == sorted(d) and e == sorted(e, reverse=True) and picks[0] == 0
    assert select_budgeted(found, [3.0, 2.6, 1.5, 0.5]) == [0, 1, 3, None]  # the fastest within each budget


def test_optimize_reports_energy_clocks_and_per_client_splits(tmp_path, capsys):
    """The weighted objective in the scenario: the chosen line, the objective line, f GHz and energy columns;
    solution.json carries the energy; a solution with DVFS clocks and per-client splits runs as written."""
    import solvers
    from fsllm_sim.config import load_scenario
    from fsllm_sim.jobs.optimize import client_table, scenario_problem
    from solvers.problem import evaluate

    data = {**SCENARIO, "split": {"layer": 3, "min_layer": 2}, "objective": {"kind": "weighted",
                                                                              "weight_s_per_j": 2.0}}
    f = _write(tmp_path, "w", data)
    runs = tmp_path / "runs"
    assert main(["optimize", str(f), "--runs-dir", str(runs), "--no-progress", "--no-baselines", *QUIET]) == 0
    out = capsys.readouterr().out
    assert "objective weighted, λ = 2 s/J: N(r) (T_round + λ E_round) = " in out
    assert "f GHz" in out and "E_round J" in out and "energy J" in out and "objective s" in out
    run = only_run_dir(runs, "optimize")
    sol = json.loads((run / "solution.json").read_text())
    assert sol["training_energy_j"] == pytest.approx(sol["rounds"] * sol["energy"]["total_j"], rel=1e-12)
    assert sol["objective_s"] == pytest.approx(sol["training_delay_s"] + 2.0 * sol["training_energy_j"], rel=1e-9)
    assert len(sol["frequency_hz"]) == 3
    results = json.loads((run / "results.json").read_text())
    assert results["objective"] == {"kind": "weighted", "weight_s_per_j": 2.0, "budget_j": None,
                                    "per_client_split": False}
    row = results["comparison"][0]
    assert row["training_energy_j"] == sol["training_energy_j"] and row["objective_s"] == sol["objective_s"]
    assert row["total_s"] == pytest.approx(sol["training_delay_s"], rel=1e-12)

    # per-client splits and clocks chosen by hand: the table shows them, run --allocation reads them back
    problem, _, _ = scenario_problem(load_scenario(f), profile_source="analytic", progress=False, warn=False)
    start = solvers.solve(problem, "bcd", split=2, rank=4)
    clocks = 0.5 * (problem.energy.f_min_hz + problem.energy.f_max_hz)
    own = evaluate(problem, 2, 4, start.assign_s, start.power_s_w, start.assign_f, start.power_f_w,
                   splits=np.array([2, 3, 3]), frequency_hz=clocks)
    table = client_table(problem, own).splitlines()
    assert table[0].split()[:2] == ["k", "l"] and "f GHz" in table[0]
    assert [line.split()[1] for line in table[2:]] == ["2", "3", "3"]
    path = tmp_path / "own.json"
    path.write_text(json.dumps({**own.to_dict(timing=False), "num_clients": 3}))
    assert main(["run", str(f), "--runs-dir", str(tmp_path / "r"), "--no-progress", *QUIET, "--allocation",
                 str(path)]) == 0
    done = only_run_dir(tmp_path / "r", "run")
    alloc = json.loads((done / "allocations.json").read_text())[0]
    assert alloc["splits"] == [2, 3, 3] and np.allclose(alloc["frequency_hz"], clocks)
    summary = json.loads((done / "results.json").read_text())
    assert summary["summary"]["mean_analytic_round_s"] == pytest.approx(own.round_time_s, rel=1e-9)
    assert summary["energy"]["mean_analytic_round_j"] == pytest.approx(own.energy.total_j, rel=1e-9)
