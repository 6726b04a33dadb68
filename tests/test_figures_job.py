"""`fsllm-sim figures` (make figures): every shipped step's inputs are valid, a step writes its figures and an
index entry that names them with the commands that made them, and a bad step name is a one-line error."""
import re
from pathlib import Path

import pytest

from fsllm_sim.cli import main
from fsllm_sim.config import load_scenario
from fsllm_sim.config.sweep_file import load_sweep_file
from fsllm_sim.jobs.figures import STEPS, figure_meaning

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_every_shipped_step_reads(step):
    path = ROOT / step.source
    if step.kind == "sweep":
        sweep = load_sweep_file(path)
        assert sweep.methods  # at least one method compared
    else:
        assert load_scenario(path).name


def test_every_figure_the_plot_job_names_has_a_meaning():
    for stem in ("delay_vs_channel_s_band_subchannels", "decision_cost", "gantt_round1_bcd", "delay_breakdown",
                 "rank_tradeoff", "split_tradeoff", "doppler_gap", "loss_vs_time", "rounds_vs_time"):
        assert figure_meaning(stem), stem


def test_one_step_writes_its_figures_and_index(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the steps name the shipped files relative to the repository
    out = tmp_path / "figs"
    assert main(["figures", "--only", "decisions", "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    index = (out / "README.md").read_text()
    assert "fsllm-sim sweep scenarios/sweeps/tradeoffs.yaml" in index and "Seeds: 1, 2, 3." in index
    listed = re.findall(r"`decisions/(\w+)\.png`", index)
    assert listed == ["decision_cost"]
    for stem in listed:
        for ext in ("png", "pdf"):
            assert (out / "decisions" / f"{stem}.{ext}").stat().st_size > 1000
    assert '"complete"' in (out / "status.json").read_text()


def test_an_unknown_step_is_a_one_line_error(tmp_path, capsys):
    assert main(["figures", "--only", "nope", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err and "bandwidth" in err
