"""`fsllm-sim plot DIR`: every figure of a run, compare and sweep directory, checked against the files it comes from.

Each directory is made here by the real commands on a tiny scenario (analytic training, a 4-block random Llama);
the plot job runs with its figure functions wrapped (``plot_helpers.plot_and_capture``), and every test reads
the plotted data back from the Figure's artists and compares them with the numbers in the result files, or,
for figures the job computes (trade-offs, Doppler gap), with an independent computation or a number the run
itself recorded.
"""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import yaml
from plot_helpers import (SCENARIO, SCENARIO_SPEED_KMH, band_extents, bands, check_files, gantt_bars, lines_by_label,
                          plot_and_capture, stacked_bars)

from fsllm_sim.cli import main
from plots.gantt import PHASE_CATEGORY
from plots.style import FONT_FAMILY, SINGLE_COLUMN_IN, scaled_unit

QUIET = ["--no-progress", "--profile", "analytic"]
SPEEDS_KMH = (SCENARIO_SPEED_KMH, 30.0, 120.0)  # the run's own speed first: its gap is in results.json


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _only_dir(folder, command):
    dirs = [d for d in folder.iterdir() if f"-{command}-" in d.name]
    assert len(dirs) == 1
    return dirs[0]


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("scenario") / "tiny.yaml"
    f.write_text(yaml.safe_dump(SCENARIO))
    return f


@pytest.fixture(scope="module")
def run_plot_result(scenario_file, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["run", str(scenario_file), "--runs-dir", str(runs), *QUIET]) == 0
    run = _only_dir(runs, "run")
    return run, *plot_and_capture(run, speeds_kmh=SPEEDS_KMH)


@pytest.fixture(scope="module")
def compare_plot_result(scenario_file, tmp_path_factory):
    runs = tmp_path_factory.mktemp("compare")
    assert main(["compare", str(scenario_file), "--methods", "bcd,equal-share", "--runs-dir", str(runs),
                 *QUIET]) == 0
    folder = _only_dir(runs, "compare")
    out = tmp_path_factory.mktemp("compare-figures")
    return folder, *plot_and_capture(folder, out=str(out), speeds_kmh=(SCENARIO_SPEED_KMH,))


def _sweep(scenario_file, folder, body: dict):
    from fsllm_sim.jobs.sweep import run_sweep_file

    sweep = folder / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": str(scenario_file), "profile": "analytic", **body}))
    return run_sweep_file(str(sweep), out_dir=str(folder / "out"), workers=1, progress=False, echo=lambda *_: None)


@pytest.fixture(scope="module")
def bandwidth_sweep(scenario_file, tmp_path_factory):
    out = _sweep(scenario_file, tmp_path_factory.mktemp("sweep-bw"), {
        "axes": {"channel.s_band.subchannel_bandwidth_hz": [180e3, 360e3, 720e3]},
        "methods": ["bcd", "equal"], "seeds": 2, "evaluator": "analytic"})
    return out, *plot_and_capture(out)


# ------------------------------------------------------------------------------------------------- run directory

RUN_FIGURES = ("gantt_round1", "delay_breakdown", "rank_tradeoff", "split_tradeoff", "doppler_gap")


def test_run_directory_writes_every_figure_in_png_and_pdf(run_plot_result):
    run, figures, paths, lines = run_plot_result
    assert sorted(figures) == sorted(RUN_FIGURES)
    check_files(paths, RUN_FIGURES)
    assert all(p.parent == run / "figures" for p in paths)
    assert any("loss_vs_time: skipped: analytic training" in line for line in lines)


def test_figures_are_in_the_publication_style(run_plot_result):
    _, figures, paths, _ = run_plot_result
    for name, fig in figures.items():
        assert fig.get_figwidth() == pytest.approx(SINGLE_COLUMN_IN), name
        for ax in fig.axes:
            assert ax.get_xlabel() or ax.get_ylabel(), name
            for text in (ax.xaxis.label, ax.yaxis.label):
                assert text.get_fontfamily() == ["sans-serif"]
                assert text.get_fontproperties().get_name() == FONT_FAMILY
    pdf = (paths[0].parent / "rank_tradeoff.pdf").read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType embedded, no Type 3 fonts
    assert b"/CreationDate" not in pdf  # reproducible bytes


def test_gantt_draws_round_one_of_the_trace(run_plot_result):
    run, figures, _, _ = run_plot_result
    ax = figures["gantt_round1"].axes[0]
    assert ax.get_xlabel() == "simulated time in round 1 (s)"
    rows = [r for r in _read_csv(run / "trace.csv") if r["round"] == "1"]
    t0 = min(float(r["start_s"]) for r in rows)
    want: dict = {}
    for r in rows:
        start, end = float(r["start_s"]), float(r["end_s"])
        if end > start:
            want.setdefault(PHASE_CATEGORY[r["phase"]], []).append((int(r["client"]), start - t0, end - start))
    got = gantt_bars(ax)
    got.pop("idle")
    assert sorted(got) == sorted(want)
    for category, spans in want.items():
        assert len(got[category]) == len(spans), category
        for (gk, gs, gd), (wk, ws, wd) in zip(got[category], sorted(spans)):
            assert gk == wk and gs == pytest.approx(ws, abs=1e-9) and gd == pytest.approx(wd, abs=1e-9)


def test_delay_breakdown_bars_are_the_simulated_per_client_means(run_plot_result):
    run, figures, _, _ = run_plot_result
    ax = figures["delay_breakdown"].axes[0]
    assert ax.get_ylabel() == "time per global round (s)"
    clients = _read_csv(run / "clients.csv")
    columns = {"client compute": "compute_s_per_round", "uplink (activations)": "uplink_s_per_round",
               "server queue": "server_wait_s_per_round", "server compute": "server_s_per_round",
               "downlink (gradients)": "downlink_s_per_round", "adapter upload": "adapter_upload_s_per_round"}
    bars = stacked_bars(ax)
    assert list(bars) == list(columns)
    bottom = np.zeros(len(clients))
    for label, col in columns.items():
        heights, bottoms = bars[label]
        np.testing.assert_allclose(heights, [float(c[col]) for c in clients], rtol=1e-12)
        np.testing.assert_allclose(bottoms, bottom, rtol=1e-12, atol=1e-15)
        bottom += heights
    lines = lines_by_label(ax)
    np.testing.assert_allclose(lines["closed form (client round)"][1],
                               [float(c["analytic_client_round_s"]) for c in clients], rtol=1e-12)
    mean_round = json.loads((run / "results.json").read_text())["summary"]["mean_round_s"]
    assert lines[f"round time {mean_round:.3g} s"][1][0] == pytest.approx(mean_round)


@pytest.fixture(scope="module")
def problem(run_plot_result):
    """The run's problem, rebuilt from its resolved scenario (the profile source it recorded: analytic)."""
    from fsllm_sim.config import load_scenario
    from fsllm_sim.engine import build_world

    run = run_plot_result[0]
    return build_world(load_scenario(run / "config.resolved.yaml"), profile_source="analytic", progress=False).problem


def _panel(ax):
    """The (x, y) of a trade-off panel's curve (the first line; the star marks the optimum)."""
    line = ax.get_lines()[0]
    return np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)


def test_rank_tradeoff_draws_n_of_r_round_time_and_their_product(run_plot_result, problem):
    import solvers

    run, figures, _, _ = run_plot_result
    fig = figures["rank_tradeoff"]
    (x1, rounds), (x2, round_s), (x3, total_s) = (_panel(ax) for ax in fig.axes[:3])
    ranks = np.array(SCENARIO["lora"]["ranks"], float)
    assert x1.tolist() == x2.tolist() == x3.tolist() == ranks.tolist()
    conv = json.loads((run / "results.json").read_text())["summary"]["convergence"]
    np.testing.assert_allclose(rounds, conv["a"] + conv["b"] * ranks ** -conv["c"], rtol=1e-12)
    np.testing.assert_allclose(total_s, rounds * round_s, rtol=1e-9)
    best = solvers.solve(problem, "bcd")
    assert fig.axes[0].get_title(loc="right") == f"split ℓ = {best.split}"
    for r, t in zip(ranks, total_s):
        assert t == pytest.approx(solvers.solve(problem, "bcd", split=best.split, rank=int(r)).objective_s, rel=1e-9)
    assert total_s.min() == pytest.approx(best.objective_s, rel=1e-9)


def test_split_tradeoff_draws_the_profile_and_the_delay(run_plot_result, problem):
    import solvers

    _, figures, _, _ = run_plot_result
    fig = figures["split_tradeoff"]
    best = solvers.solve(problem, "bcd")
    prof = problem.profile
    ri = prof.index(best.split, best.rank)[1]
    want = [("FLOP", prof.client_forward_flops[:, ri] + prof.client_backward_flops[:, ri]),
            ("bit", prof.activation_bits[:, ri]), ("B", prof.client_memory_bytes[:, ri])]
    axes = fig.axes[:4]
    for ax, (unit, values) in zip(axes, want):
        x, y = _panel(ax)
        assert x.tolist() == prof.splits.tolist()
        factor, shown = scaled_unit(values, unit)
        assert ax.get_ylabel().endswith(f"({shown})")
        np.testing.assert_allclose(y * factor, values, rtol=1e-12)
    x, total = _panel(axes[3])
    assert axes[3].get_ylabel().endswith("(s)")
    for split, t in zip(prof.splits, total):
        assert t == pytest.approx(solvers.solve(problem, "bcd", split=int(split), rank=best.rank).objective_s,
                                  rel=1e-9)
    assert axes[-1].get_xlabel() == "split point ℓ (blocks on the device)"


def test_doppler_gap_at_the_runs_speed_is_the_runs_own_gap(run_plot_result):
    """Simulating the run's scenario again at its own speed for its rounds gives its rounds back: the plotted gap
    there is results.json's round_gap_vs_mean_gain (and _vs_analytic), and the band is the t interval of the
    per-round gaps of rounds.csv."""
    from scipy.stats import t

    run, figures, _, _ = run_plot_result
    ax = figures["doppler_gap"].axes[0]
    summary = json.loads((run / "results.json").read_text())["summary"]
    lines = lines_by_label(ax)
    cases = (("simulated vs mean-gain closed form", "round_gap_vs_mean_gain", summary["mean_mean_gain_round_s"]),
             ("simulated vs ergodic closed form", "round_gap_vs_analytic", summary["mean_analytic_round_s"]))
    durations = np.array([float(r["duration_s"]) for r in _read_csv(run / "rounds.csv")])
    for (label, key, reference), band in zip(cases, bands(ax)):  # one band per line, in order
        x, y = lines[label]
        assert x.tolist() == sorted(SPEEDS_KMH)
        assert y[0] == pytest.approx(100 * summary[key], rel=1e-9, abs=1e-9)
        gaps = 100 * (durations / reference - 1)
        half = t.ppf(0.975, gaps.size - 1) * gaps.std(ddof=1) / math.sqrt(gaps.size)
        lo, hi = band_extents(band)[SCENARIO_SPEED_KMH]
        assert lo == pytest.approx(gaps.mean() - half, rel=1e-9) and hi == pytest.approx(gaps.mean() + half, rel=1e-9)
    assert ax.get_xlabel() == "client speed v (km/h)" and ax.get_ylabel() == "round-time gap (%)"


# ---------------------------------------------------------------------------------------------- compare directory

COMPARE_FIGURES = ("rounds_vs_time", "decision_cost", "gantt_round1_bcd", "gantt_round1_equal-share",
                   "delay_breakdown_bcd", "delay_breakdown_equal-share", "rank_tradeoff", "split_tradeoff",
                   "doppler_gap")


def test_compare_directory_writes_every_figure(compare_plot_result):
    folder, figures, paths, _ = compare_plot_result
    assert sorted(figures) == sorted(COMPARE_FIGURES)
    check_files(paths, COMPARE_FIGURES)
    assert not (folder / "figures").exists()  # --out was given


def test_progress_against_simulated_time_per_method(compare_plot_result):
    folder, figures, _, _ = compare_plot_result
    ax = figures["rounds_vs_time"].axes[0]
    lines = lines_by_label(ax)
    assert list(lines) == ["bcd", "equal-share"]
    for method, (x, y) in lines.items():
        rounds = _read_csv(folder / method / "rounds.csv")
        np.testing.assert_allclose(x, [0.0] + [float(r["end_s"]) for r in rounds], rtol=1e-12)
        assert y.tolist() == list(range(len(rounds) + 1))
    assert ax.get_xlabel() == "simulated time (s)"


def test_decision_cost_bars_are_each_methods_total_delay(compare_plot_result):
    folder, figures, _, _ = compare_plot_result
    ax = figures["decision_cost"].axes[0]
    rows = _read_csv(folder / "compare.csv")
    totals = [json.loads((folder / r["allocation"] / "results.json").read_text())["summary"]["rounds_to_target_model"]
              * float(r["mean_round_s"]) for r in rows]
    widths = [p.get_width() for p in ax.patches]
    np.testing.assert_allclose(widths, totals, rtol=1e-12)
    assert [t.get_text() for t in ax.get_yticklabels()] == [r["allocation"] for r in rows]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["reference"] + [f"{100 * (x / totals[0] - 1):+.1f} %" for x in totals[1:]]
    assert ax.get_xlabel() == "total delay N(r)·mean simulated round (s)"


# ------------------------------------------------------------------------------------------------- sweep directory

def test_sweep_delay_against_the_axis_with_the_seed_interval(bandwidth_sweep):
    out, figures, paths, _ = bandwidth_sweep
    stem = "delay_vs_channel_s_band_subchannel_bandwidth_hz"
    check_files(paths, [stem])
    ax = figures[stem].axes[0]
    assert ax.get_xlabel() == "s-band subchannel bandwidth B (kHz)"
    summary = _read_csv(out / "summary.csv")
    lines = lines_by_label(ax)
    assert list(lines) == ["bcd", "equal"]
    extents = [band_extents(b) for b in bands(ax)]
    for method, band in zip(lines, extents):
        rows = [r for r in summary if r["method"] == method]
        x, y = lines[method]
        hz = [float(r["axis:channel.s_band.subchannel_bandwidth_hz"]) for r in rows]
        np.testing.assert_allclose(x * 1e3, hz, rtol=1e-12)
        np.testing.assert_allclose(y, [float(r["total_s_mean"]) for r in rows], rtol=1e-12)
        for xi, r in zip(x, rows):  # the t interval over the 2 seeds, cut at 0 s
            lo, hi = band[round(float(xi), 9)]
            assert lo == pytest.approx(max(0.0, float(r["total_s_ci95_low"])), abs=1e-12)
            assert hi == pytest.approx(float(r["total_s_ci95_high"]), rel=1e-12)


def test_the_sweep_reader_takes_the_csv_rows_alike(bandwidth_sweep, tmp_path):
    import shutil

    from fsllm_sim.jobs.plot import read_sweep_rows

    out = bandwidth_sweep[0]
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "results.json").unlink()
    from_json, from_csv = read_sweep_rows(out), read_sweep_rows(copy)
    assert len(from_json) == len(from_csv) == 3 * 2 * 2
    for a, b in zip(from_json, from_csv):
        assert a["axes"] == b["axes"] and a["method"] == b["method"] and a["seed"] == b["seed"]
        assert a["total_s"] == pytest.approx(b["total_s"], rel=1e-15)


def test_one_point_sweep_draws_the_cost_of_fixing_each_decision(scenario_file, tmp_path):
    out = _sweep(scenario_file, tmp_path, {"methods": ["bcd", "bcd/fixed-split", "bcd/fixed-rank", "equal"],
                                           "seeds": 2, "evaluator": "analytic"})
    figures, paths, _ = plot_and_capture(out)
    check_files(paths, ["decision_cost"])
    ax = figures["decision_cost"].axes[0]
    summary = _read_csv(out / "summary.csv")
    np.testing.assert_allclose([p.get_width() for p in ax.patches], [float(r["total_s_mean"]) for r in summary],
                               rtol=1e-12)
    rows = json.loads((out / "results.json").read_text())
    ref = {r["seed"]: r["total_s"] for r in rows if r["method"] == "bcd"}
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == "reference"
    for r, text in zip(summary[1:], texts[1:]):
        ratios = [100 * (x["total_s"] / ref[x["seed"]] - 1) for x in rows if x["method"] == r["method"]]
        assert text.startswith(f"{np.mean(ratios):+.1f} ± ")


def test_speed_sweep_with_the_simulator_draws_the_doppler_gap(scenario_file, tmp_path):
    out = _sweep(scenario_file, tmp_path, {"axes": {"channel.fading.speed_kmh": [3.0, 120.0]}, "methods": ["bcd"],
                                           "seeds": 2, "evaluator": "simulate", "set": {"simulation.rounds": 2}})
    figures, paths, _ = plot_and_capture(out)
    check_files(paths, ["delay_vs_channel_fading_speed_kmh", "doppler_gap"])
    ax = figures["doppler_gap"].axes[0]
    (label, (x, y)), = lines_by_label(ax).items()
    assert label == "bcd vs ergodic closed form"  # the base scenario's solver.rates
    rows = json.loads((out / "results.json").read_text())
    for v, gap in zip(x, y):
        want = [100 * (r["round_time_s"] / r["closed_form_round_s"] - 1) for r in rows
                if r["axis:channel.fading.speed_kmh"] == v]
        assert len(want) == 2 and gap == pytest.approx(np.mean(want), rel=1e-9, abs=1e-12)


def test_an_old_set_grid_sweep_still_plots(scenario_file, tmp_path):
    from fsllm_sim.jobs.sweep import parse_assignment, run_sweep

    out = run_sweep(str(scenario_file), [parse_assignment("clients.count=2,3")], out_dir=str(tmp_path / "old"),
                    profile_source="analytic", progress=False, echo=lambda *_: None)
    figures, paths, _ = plot_and_capture(out)
    check_files(paths, ["delay_vs_clients_count"])
    ax = figures["delay_vs_clients_count"].axes[0]
    assert ax.get_xlabel() == "number of clients K"
    rows = _read_csv(out / "sweep.csv")
    lines = lines_by_label(ax)
    assert list(lines) == ["bcd", "equal-share"]
    for label, column in (("bcd", "total_s"), ("equal-share", "equal_total_s")):
        np.testing.assert_allclose(lines[label][0], [float(r["set:clients.count"]) for r in rows])
        np.testing.assert_allclose(lines[label][1], [float(r[column]) for r in rows], rtol=1e-12)
    assert bands(ax) == []  # one seed: no interval to draw


# ------------------------------------------------------------------------------------------------------- errors

def test_an_unrecognised_folder_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run, compare, sweep, privacy or pareto directory" in err and len(err.strip().splitlines()) == 1
    assert main(["plot", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "figures").exists()


def test_real_training_loss_against_time_from_a_compare_method_folder(compare_plot_result, tmp_path):
    """A method folder of a compare directory plots as a run (its scenario is the parent's); with validation
    losses in rounds.csv (real training: faked here on a copy) it draws loss against simulated time."""
    import shutil

    copy = tmp_path / "compare"
    shutil.copytree(compare_plot_result[0], copy)
    run = copy / "bcd"
    rounds = _read_csv(run / "rounds.csv")
    losses = [3.0 - 0.25 * i for i in range(1, len(rounds) + 1)]
    with open(run / "rounds.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*rounds[0], "train_loss", "val_loss"])
        writer.writeheader()
        writer.writerows({**r, "train_loss": v, "val_loss": v} for r, v in zip(rounds, losses))
    results = json.loads((run / "results.json").read_text())
    results["summary"].update(initial_val_loss=3.5, target_val_loss=2.6)
    (run / "results.json").write_text(json.dumps(results))
    figures, paths, _ = plot_and_capture(run, speeds_kmh=(SCENARIO_SPEED_KMH,))
    check_files(paths, [*RUN_FIGURES, "loss_vs_time"])
    lines = lines_by_label(figures["loss_vs_time"].axes[0])
    x, y = lines["bcd"]
    np.testing.assert_allclose(x, [0.0] + [float(r["end_s"]) for r in rounds], rtol=1e-12)
    assert y.tolist() == [3.5, *losses]
    assert lines["target"][1][0] == 2.6


def test_the_command_line_writes_to_out(tmp_path, scenario_file, capsys):
    from fsllm_sim.jobs.sweep import parse_assignment, run_sweep

    out = run_sweep(str(scenario_file), [parse_assignment("lora.rank=1,2")], out_dir=str(tmp_path / "s"),
                    profile_source="analytic", progress=False, echo=lambda *_: None)
    assert main(["plot", str(out), "--out", str(tmp_path / "f")]) == 0
    assert "1 figures (PNG and PDF)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["delay_vs_lora_rank.pdf", "delay_vs_lora_rank.png"]
    with pytest.raises(SystemExit) as info:  # a usage mistake: argparse's one line
        main(["plot", str(out), "--speeds-kmh", "3,x"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--speeds-kmh" in err and len(err.strip().splitlines()) == 1


def test_zipped_fields_draw_one_figure_and_an_independent_axis_its_own(scenario_file, tmp_path):
    out = _sweep(scenario_file, tmp_path, {"zip": {"channel.s_band.subchannels": [6, 8],
                                                   "channel.f_band.subchannels": [3, 4]},
                                           "axes": {"channel.power.client_max_dbm": [10, 20]},
                                           "methods": ["equal"], "seeds": 1, "evaluator": "analytic"})
    figures, paths, notes = plot_and_capture(out)
    drawn = sorted(name for name in figures if name.startswith("delay_vs_"))
    assert len(drawn) == 2 and "delay_vs_channel_power_client_max_dbm" in drawn
    assert any("is zipped with" in n for n in notes)
