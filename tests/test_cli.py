"""The command line as a user meets it: exit codes, one-line errors, no tracebacks."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fsllm_sim.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "fsllm_sim.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_validate_default(capsys):
    assert main(["validate", str(ROOT / "scenarios" / "default.yaml")]) == 0
    assert "valid" in capsys.readouterr().out


def test_show_config_prints_every_default(capsys):
    assert main(["show-config", str(ROOT / "scenarios" / "default.yaml")]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["channel"]["fading"]["coherence_bandwidth_hz"] is None  # a default not written in the file
    assert data["federated_server"]["overhead_s"] == 0.001


@pytest.mark.parametrize("content, fragment", [
    ("clients:\n  count: -3\n", "clients.count: -3 is out of range"),
    ("channel:\n  s_band:\n    subchanels: 4\n", "did you mean 'subchannels'?"),
    ("channel: [1, 2\n", "invalid YAML at line"),
])
def test_bad_scenarios_exit_2_with_one_line_and_no_traceback(tmp_path, content, fragment):
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    result = run_cli("validate", str(f))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]


def test_reference_write(tmp_path, capsys):
    out = tmp_path / "ref.md"
    assert main(["reference", "--write", str(out)]) == 0
    assert out.read_text().startswith("# Scenario reference")


def test_bench_arguments():
    from fsllm_sim.cli import build_parser

    assert build_parser().parse_args(["bench"]).which == ["all"]
    assert build_parser().parse_args(["bench", "fading", "solvers"]).which == ["fading", "solvers"]
    result = run_cli("bench", "nope")
    assert result.returncode == 2 and "unknown benchmark 'nope'; allowed: all, fading, solvers, training" in result.stderr


def test_bench_runner_does_not_leak_argv_into_benchmarks(monkeypatch):
    import fsllm_sim.benchmarks.training as training_bench
    from fsllm_sim.benchmarks.runner import run_benchmarks

    seen = []
    monkeypatch.setattr(training_bench, "main", lambda argv=None: seen.append(argv) or 0)
    monkeypatch.setattr(sys, "argv", ["fsllm-sim", "bench", "training"])
    assert run_benchmarks(["training"]) == 0
    assert seen == [[]]
