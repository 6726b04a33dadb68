"""Loss (or any metric) against simulated wall-clock time, one line per system.

Comparing split-federated schemes per round or per iteration hides what the wireless resource allocation
buys: a scheme with shorter rounds reaches the target loss sooner even with the same loss per round. The x
axis is therefore simulated time in seconds. ``plot_loss_vs_time`` (one file) returns the data it drew;
``loss_figure`` (PNG and PDF) returns the Figure, whose lines hold the same data.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window

from matplotlib.ticker import MaxNLocator  # noqa: E402

from .io import save_figure, save_figure_formats  # noqa: E402
from .style import LINE_COLOURS, MARKERS, axis_label, new_figure, series_styles, styled  # noqa: E402

__all__ = ["LINE_COLOURS", "MARKERS", "loss_figure", "plot_loss_vs_time"]


def plot_loss_vs_time(series: dict, path: str | Path, *, ylabel: str = "validation loss", title: str = "",
                      target: float | None = None) -> dict:
    """One marked line per ``series`` label (``{"time_s": [...], "value": [...]}``); return what was drawn.

    Returns ``{label: (times_s, values)}`` as lists of floats. ``target``, if given, is drawn as a dashed
    horizontal line labelled "target".
    """
    drawn = _checked(series)
    fig = _draw(drawn, ylabel, title or f"{ylabel[:1].upper()}{ylabel[1:]} over simulated time", target)
    save_figure(fig, path)
    return drawn


def loss_figure(series: dict, stem: str | Path, *, ylabel: str = "validation loss", title: str = "",
                target: float | None = None, integer_y: bool = False):
    """The same figure as ``stem.png`` and ``stem.pdf``; returns the (closed) Figure. ``integer_y``: the values
    are counts (rounds completed), so the y ticks are whole numbers."""
    fig = _draw(_checked(series), ylabel, title, target)
    if integer_y:
        fig.axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    save_figure_formats(fig, stem)
    return fig


def _checked(series: dict) -> dict[str, tuple[list[float], list[float]]]:
    if not series:
        raise ValueError("no series to plot")
    drawn: dict[str, tuple[list[float], list[float]]] = {}
    for label, data in series.items():
        times_s = [float(t) for t in data["time_s"]]
        values = [float(v) for v in data["value"]]
        if not times_s or not values:
            raise ValueError(f"series {label!r} is empty")
        if len(times_s) != len(values):
            raise ValueError(f"series {label!r} has {len(times_s)} times but {len(values)} values")
        if any(b < a for a, b in zip(times_s, times_s[1:])):
            raise ValueError(f"series {label!r}: time_s is not ascending")
        drawn[label] = (times_s, values)
    return drawn


@styled
def _draw(drawn: dict, ylabel: str, title: str, target: float | None):
    fig, axes = new_figure()
    ax = axes[0, 0]
    styles = series_styles(drawn)
    for label, (times_s, values) in drawn.items():
        ax.plot(times_s, values, label=str(label), **styles[label])
    if target is not None:
        ax.axhline(float(target), color="grey", linestyle="--", linewidth=0.8, label="target")
    ax.set_xlabel(axis_label("simulated time", "s"))
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(loc="best")
    return fig
