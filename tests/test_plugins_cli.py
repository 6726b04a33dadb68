"""A scenario's own allocation method (solver.plugins, a file next to it) used by every command: optimize,
run --allocation, compare --methods, the online policy and a sweep (its points solved in worker code)."""

import csv
import json
import textwrap
from pathlib import Path

import pytest

from fsllm_sim.cli import main
from solvers import METHODS

PLUGIN = """
    from solvers.baselines import solve_equal

    def solve_half(problem, split=None, rank=None, **options):
        '''The equal baseline: a stand-in for a user's method.'''
        return solve_equal(problem, split=split, rank=rank)

    FSLLM_SIM_METHODS = {"cli-half": solve_half}
"""


@pytest.fixture
def scenario(tmp_path):
    before = dict(METHODS)
    (tmp_path / "half.py").write_text(textwrap.dedent(PLUGIN))
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(f"""
        clients:
          count: 3
        channel:
          s_band: {{subchannels: 8}}
          f_band: {{subchannels: 4}}
        solver:
          plugins: [half.py]
          method: cli-half
        simulation:
          training: analytic
          rounds: 1
        output:
          runs_dir: {tmp_path / 'runs'}
    """))
    yield path
    for name in set(METHODS) - set(before):
        del METHODS[name]


def _latest(tmp_path, kind):
    return sorted((tmp_path / "runs").glob(f"*-{kind}-*"))[-1]


def test_optimize_run_compare_use_the_plugin(scenario, tmp_path, capsys):
    assert main(["optimize", str(scenario), "--profile", "analytic", "--no-progress"]) == 0
    sol = json.loads((_latest(tmp_path, "optimize") / "solution.json").read_text())
    assert sol["method"] == "cli-half"
    assert main(["run", str(scenario), "--allocation", "cli-half", "--profile", "analytic", "--no-progress"]) == 0
    assert main(["compare", str(scenario), "--methods", "cli-half,equal", "--policies", "static,online",
                 "--profile", "analytic", "--no-progress"]) == 0
    rows = list(csv.DictReader(open(_latest(tmp_path, "compare") / "compare.csv")))
    by = {r["allocation"]: r for r in rows}
    # the plug-in is the equal baseline: the same simulated time, statically and re-solved every round
    assert float(by["cli-half/static"]["simulated_s"]) == pytest.approx(float(by["equal/static"]["simulated_s"]))
    assert float(by["cli-half/online"]["simulated_s"]) == pytest.approx(float(by["equal/online"]["simulated_s"]))


def test_sweep_uses_the_plugin(scenario, tmp_path):
    sweep = tmp_path / "sw.yaml"
    sweep.write_text(textwrap.dedent(f"""
        base: {scenario.name}
        axes:
          channel.s_band.subchannels: [8, 12]
        methods: [cli-half, equal]
        seeds: 1
        evaluator: analytic
        profile: analytic
    """))
    out = tmp_path / "sweep-out"
    assert main(["sweep", str(sweep), "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    mine = sorted(float(r["total_s"]) for r in rows if r["method"] == "cli-half")
    equal = sorted(float(r["total_s"]) for r in rows if r["method"] == "equal")
    assert len(mine) == 2 and mine == pytest.approx(equal)


def test_unknown_method_and_missing_plugin_are_one_line(scenario, tmp_path, capsys):
    text = scenario.read_text()
    scenario.write_text(text.replace("method: cli-half", "method: cli-halff"))
    assert main(["optimize", str(scenario), "--profile", "analytic", "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning:")]
    assert len(err) == 1 and "solver.method 'cli-halff'" in err[0] and "cli-half" in err[0]
    scenario.write_text(text.replace("[half.py]", "[gone.py]"))
    assert main(["run", str(scenario), "--profile", "analytic", "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning:")]
    assert len(err) == 1 and err[0].startswith("error: solver.plugins: no such file") and "gone.py" in err[0]
