"""Helpers of the `fsllm-sim plot` tests: a tiny scenario, figure capture, and reading data back from artists.

The ``*_figure`` functions return their matplotlib Figure; :func:`plot_and_capture` runs the plot job with each
of them wrapped, so a test gets every Figure the job drew (by file stem) and reads the plotted data back from
its artists (Line2D data, bar geometry, fill_between outlines, the Gantt chart's rectangles).
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

# The engine tests' tiny world: a 4-block random Llama, 3 clients, a few subchannels, analytic training.
SCENARIO = {
    "name": "plot-test",
    "seed": 3,
    "model": {"name": "tiny-llama"},
    "split": {"layer": 2},
    "clients": {"count": 3},
    "channel": {"s_band": {"subchannels": 6}, "f_band": {"subchannels": 4}},
    "lora": {"rank": 2, "ranks": [1, 2, 4]},
    "training": {"batch_size": 2, "seq_len": 16, "local_iterations": 2},
    "convergence": {"calibration": None, "a": 5.0, "b": 10.0, "c": 0.5},
    "simulation": {"rounds": 3, "training": "analytic"},
}
SCENARIO_SPEED_KMH = 3.0  # the schema's default channel.fading.speed_kmh, which SCENARIO keeps

FIGURE_FUNCTIONS = (("plots.gantt", "gantt_figure"), ("plots.delay_breakdown", "breakdown_figure"),
                    ("plots.loss_curve", "loss_figure"), ("plots.tradeoffs", "rank_tradeoff_figure"),
                    ("plots.tradeoffs", "split_tradeoff_figure"), ("plots.tradeoffs", "decision_cost_figure"),
                    ("plots.doppler", "doppler_gap_figure"), ("plots.sweep", "delay_vs_axis_figure"))
PNG_MAGIC = b"\x89PNG"
PDF_MAGIC = b"%PDF"


def plot_and_capture(folder, **options) -> tuple[dict, list[Path], list[str]]:
    """Run ``run_plot(folder, **options)``; return ({stem name: Figure}, paths written, lines echoed)."""
    from fsllm_sim.jobs.plot import run_plot

    figures: dict = {}
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        for module_name, name in FIGURE_FUNCTIONS:
            module = importlib.import_module(module_name)
            mp.setattr(module, name, _recording(getattr(module, name), figures))
        paths = run_plot(str(folder), progress=False, echo=lines.append, **options)
    return figures, paths, lines


def _recording(real, figures: dict):
    def wrapper(*args, **kwargs):
        fig = real(*args, **kwargs)
        stem = next(a for a in args if isinstance(a, Path))
        figures[stem.name] = fig
        return fig
    return wrapper


def check_files(paths: list[Path], stems) -> None:
    """Every stem has a non-empty PNG and PDF, nothing else was written, and no temporary file is left."""
    names = {p.name for p in paths}
    assert names == {f"{s}.{ext}" for s in stems for ext in ("png", "pdf")}
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC if p.suffix == ".png" else PDF_MAGIC), p
    folder = paths[0].parent
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".") or ".tmp" in p.name]


def lines_by_label(ax) -> dict:
    """{label: (x, y)} of the axes' labelled lines."""
    return {ln.get_label(): (np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float))
            for ln in ax.get_lines() if not ln.get_label().startswith("_")}


def band_extents(collection) -> dict[float, tuple[float, float]]:
    """{x: (low, high)} of a fill_between band, from its outline."""
    out: dict[float, list[float]] = {}
    for x, y in collection.get_paths()[0].vertices:
        out.setdefault(round(float(x), 9), []).append(float(y))
    return {x: (min(ys), max(ys)) for x, ys in out.items()}


def bands(ax) -> list:
    """The fill_between collections of an axes (the Gantt and scatter collections left out)."""
    from matplotlib.collections import FillBetweenPolyCollection

    return [c for c in ax.collections if isinstance(c, FillBetweenPolyCollection)]


def gantt_bars(ax) -> dict[str, list[tuple[int, float, float]]]:
    """{category: sorted [(client, start_s, duration_s)]} from the chart's rectangle collections; rows are
    mapped to clients through the y tick labels (``FS`` = -1)."""
    names = [t.get_text() for t in ax.get_yticklabels()]
    clients = [-1 if n == "FS" else int(n) for n in names]
    out: dict[str, list] = {}
    for coll in ax.collections:
        for path in coll.get_paths():
            v = path.vertices
            x0, x1 = float(v[:, 0].min()), float(v[:, 0].max())
            row = int(round(float(v[:, 1].mean())))
            out.setdefault(coll.get_label(), []).append((clients[row], x0, x1 - x0))
    return {k: sorted(v) for k, v in out.items()}


def stacked_bars(ax) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{label: (heights, bottoms)} of each bar container."""
    return {c.get_label(): (np.array([p.get_height() for p in c.patches]), np.array([p.get_y() for p in c.patches]))
            for c in ax.containers if hasattr(c, "patches") and c.patches}
