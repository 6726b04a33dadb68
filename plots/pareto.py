"""The delay-energy trade-off of `fsllm-sim optimize --pareto`: training energy against training delay.

Each front (the optimiser's allocations as the energy weight lambda grows, or as the per-client energy budget
shrinks) is a line with markers, in sweep order; the baselines (the delay optimum, equal share at f_max, ...) are
single points with their own markers and no line. Both axes are totals over training: the delay N(r)·T_round in s
and the clients' energy N(r)·E_round in J. An axis is logarithmic when its values span more than a decade and a half
(a budget front near the least feasible budget runs to very long delays).

The function takes plain numbers, writes PNG and PDF through :func:`plots.io.save_figure_formats`, and returns the
(closed) Figure.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import numpy as np  # noqa: E402

from .io import save_figure_formats  # noqa: E402
from .style import MARKERS, axis_label, new_figure, series_styles, styled  # noqa: E402

LOG_SPAN = 30.0  # an axis whose values span more than this factor is drawn on a log scale
DELAY_LABEL = axis_label("training delay N(r)·T_round", "s")
ENERGY_LABEL = axis_label("clients' training energy N(r)·E_round", "J")
# Baselines take the markers the fronts do not start with, drawn larger and without a line.
BASELINE_MARKERS = ("D", "s", "^", "v", "P", "X")


def pareto_figure(fronts: dict, baselines: dict, stem: str | Path, *, title: str | None = None,
                  note: str | None = None):
    """``fronts``: {label: {"delay_s": [...], "energy_j": [...]}} in sweep order (None or NaN entries, e.g. a
    refused budget, are left out); ``baselines``: {label: (delay_s, energy_j)}. Writes ``stem.png`` and
    ``stem.pdf``; returns the Figure. ValueError when no point is finite and positive."""
    clean = {}
    for label, series in fronts.items():
        d, e = _finite_pairs(series["delay_s"], series["energy_j"])
        if d.size:
            clean[str(label)] = (d, e)
    points = {str(k): v for k, v in baselines.items()
              if v is not None and _finite_pairs([v[0]], [v[1]])[0].size}
    if not clean and not points:
        raise ValueError("pareto_figure: no finite point with a delay and an energy > 0 to draw")
    fig = _draw(clean, points, title, note)
    save_figure_formats(fig, stem)
    return fig


def _finite_pairs(delay_s, energy_j) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray([np.nan if v is None else float(v) for v in delay_s], dtype=float)
    e = np.asarray([np.nan if v is None else float(v) for v in energy_j], dtype=float)
    if d.shape != e.shape:
        raise ValueError(f"pareto_figure: {d.size} delays but {e.size} energies")
    ok = np.isfinite(d) & np.isfinite(e) & (d > 0) & (e > 0)
    return d[ok], e[ok]


@styled
def _draw(fronts: dict, baselines: dict, title, note):
    fig, axes = new_figure()
    ax = axes[0, 0]
    styles = series_styles(list(fronts) + list(baselines))
    all_d, all_e = [], []
    for i, (label, (d, e)) in enumerate(fronts.items()):
        st = styles[label]
        ax.plot(d, e, color=st["color"], linestyle=st["linestyle"], marker=MARKERS[i % len(MARKERS)], label=label,
                zorder=3)
        all_d += list(d)
        all_e += list(e)
    for i, (label, (d, e)) in enumerate(baselines.items()):
        ax.plot([d], [e], color=styles[label]["color"], linestyle="none", marker=BASELINE_MARKERS[i % len(
            BASELINE_MARKERS)], markersize=6, markeredgecolor="black", markeredgewidth=0.5, label=label, zorder=4)
        all_d.append(float(d))
        all_e.append(float(e))
    for values, set_scale in ((all_d, ax.set_xscale), (all_e, ax.set_yscale)):
        if max(values) > LOG_SPAN * min(values):
            set_scale("log")
    ax.set_xlabel(DELAY_LABEL)
    ax.set_ylabel(ENERGY_LABEL)
    if title:
        ax.set_title(title, loc="left")
    if note:
        ax.annotate(note, (0.98, 0.96), xycoords="axes fraction", ha="right", va="top")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    return fig
