"""Total training delay against a swept parameter.

``delay_vs_axis_figure`` (``fsllm-sim plot``): one line per method (or method and value of the other axes),
the mean over seeds with its 95 % confidence interval as a band, as PNG and PDF; returns the Figure.

``plot_sweep`` (the figure ``fsllm-sim sweep`` writes): total delay against the first swept parameter,
one line per combination of the others.

With one swept field there is one optimised and one equal-share line; with two or more, one pair of lines
per combination of the values of the other fields (labelled ``f2=v, f3=w``), so no point is hidden whatever
the number of fields. Values that are not plain numbers (lists such as ``lora.ranks=[4,8]``, null, strings)
are placed as categories on the x axis, in the order they first appear.
"""
from __future__ import annotations

import json
from itertools import cycle
from numbers import Real
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .io import save_figure, save_figure_formats  # noqa: E402
from .style import (BAND_ALPHA, DOUBLE_COLUMN_IN, OKABE_ITO, SINGLE_COLUMN_IN, axis_label, new_figure,  # noqa: E402
                    scaled_unit, series_styles, styled)


def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _label(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _key(v) -> str:
    return json.dumps(v, sort_keys=True, default=str)


@styled
def plot_sweep(results: list[dict], set_columns: list[str], path: str | Path) -> dict:
    """Draw the sweep; returns {group label: x values drawn} (one entry per line pair) for checks."""
    x_col = set_columns[0]
    others = list(set_columns[1:])
    xs_all = [r[x_col] for r in results]
    numeric = all(_is_number(v) for v in xs_all)
    if numeric:
        position = {_key(v): float(v) for v in xs_all}
    else:
        order: dict[str, int] = {}
        for v in xs_all:
            order.setdefault(_key(v), len(order))
        position = {k: float(i) for k, i in order.items()}
    groups: dict[str, list[dict]] = {}
    for r in results:
        label = ", ".join(f"{c[4:]}={_label(r[c])}" for c in others)
        groups.setdefault(label, []).append(r)
    outside = len(groups) > 2  # many lines: the legend goes right of the axes, not over the curves
    fig, axes = new_figure(width_in=DOUBLE_COLUMN_IN if outside else SINGLE_COLUMN_IN)
    ax = axes[0, 0]
    drawn = {}
    colours = cycle(OKABE_ITO.values())
    for label, rows in groups.items():
        rows = sorted(rows, key=lambda r: position[_key(r[x_col])])
        xs = [position[_key(r[x_col])] for r in rows]
        colour = next(colours)
        ax.plot(xs, [r["total_s"] for r in rows], marker="o", color=colour, label=f"optimised {label}".strip())
        ax.plot(xs, [r["equal_total_s"] for r in rows], marker="x", linestyle="--", color=colour,
                label=f"equal share {label}".strip())
        drawn[label] = [r[x_col] for r in rows]
    if not numeric:
        ticks = sorted(position.values())
        names = {position[_key(v)]: _label(v) for v in xs_all}
        ax.set_xticks(ticks, [names[t] for t in ticks])
    ax.set_xlabel(x_col[4:])
    ax.set_ylabel("total training delay N(r)·T_round (s)")
    ax.set_yscale("log")
    ax.grid(True, which="both")
    if outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    else:
        ax.legend()
    save_figure(fig, path)
    return drawn


def delay_vs_axis_figure(series: dict, stem: str | Path, *, x_name: str, x_unit: str = "",
                         y_label: str = "total training delay (s)", x_ticklabels=None, log_x: bool = False,
                         log_y: bool = False, band_label: str = "95 % CI over seeds", positive: bool = True):
    """Lines of ``series`` = ``{label: {"x": [...], "mean": [...], "low": [...], "high": [...]}}`` (``low`` and
    ``high`` optional, a band where both are finite) as ``stem.png``/``stem.pdf``; returns the (closed) Figure.

    x values are plotted divided by ``scaled_unit(all x, x_unit)[0]`` (20 MHz, not 2e7 Hz); with
    ``x_ticklabels`` the x values are category positions 0, 1, ... named by the labels. ``positive``: the
    quantity cannot be negative (a delay), so a band's symmetric t interval is cut at 0.
    """
    checked = _checked_series(series)
    if positive:
        checked = {k: (x, m, np.maximum(lo, 0.0), hi) for k, (x, m, lo, hi) in checked.items()}
    fig = _draw_vs_axis(checked, x_name=x_name, x_unit=x_unit, y_label=y_label,
                        x_ticklabels=x_ticklabels, log_x=log_x, log_y=log_y, band_label=band_label)
    save_figure_formats(fig, stem)
    return fig


def _checked_series(series: dict) -> dict:
    if not series:
        raise ValueError("no series to plot")
    out = {}
    for label, data in series.items():
        x = np.asarray(data["x"], dtype=float)
        mean = np.asarray(data["mean"], dtype=float)
        if x.size == 0 or x.shape != mean.shape:
            raise ValueError(f"series {label!r}: {x.size} x values but {mean.size} means")
        low = np.asarray(data.get("low", np.full(x.shape, np.nan)), dtype=float)
        high = np.asarray(data.get("high", np.full(x.shape, np.nan)), dtype=float)
        if low.shape != x.shape or high.shape != x.shape:
            raise ValueError(f"series {label!r}: the interval has not one low and one high per x value")
        order = np.argsort(x, kind="stable")
        out[label] = (x[order], mean[order], low[order], high[order])
    return out


@styled
def _draw_vs_axis(series: dict, *, x_name, x_unit, y_label, x_ticklabels, log_x, log_y, band_label):
    fig, axes = new_figure()
    ax = axes[0, 0]
    all_x = np.concatenate([x for x, _, _, _ in series.values()])
    factor, unit = (1.0, "") if x_ticklabels is not None else scaled_unit(all_x, x_unit)
    styles = series_styles(series)
    banded = False
    for label, (x, mean, low, high) in series.items():
        st = styles[label]
        ax.plot(x / factor, mean, label=str(label), **st)
        ok = np.isfinite(low) & np.isfinite(high)
        if ok.any():
            ax.fill_between(x[ok] / factor, low[ok], high[ok], color=st["color"], alpha=BAND_ALPHA, linewidth=0)
            banded = True
    if x_ticklabels is not None:
        ax.set_xticks(range(len(x_ticklabels)), [str(t) for t in x_ticklabels])
    ax.set_xlabel(axis_label(x_name, unit))
    ax.set_ylabel(y_label)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    handles, labels = ax.get_legend_handles_labels()
    if banded:  # one grey patch explains every band
        handles.append(Patch(facecolor="grey", alpha=BAND_ALPHA, label=band_label))
        labels.append(band_label)
    fig.legend(handles, labels, loc="outside lower center", ncol=2)
    return fig
