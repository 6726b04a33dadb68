"""The trade-offs behind the optimiser's choice: rank, split point, and what fixing one decision costs.

- **Rank** (``rank_tradeoff_figure``): a higher LoRA rank r needs fewer rounds N(r) but makes each round longer
  (a bigger adapter to upload, more FLOPs); the total delay N(r)·T_round is their product. Three panels share
  the rank axis so the reader sees both forces and the optimum they settle on.
- **Split** (``split_tradeoff_figure``): a deeper split ℓ puts more blocks on the device (client FLOPs and
  memory grow) and changes what crosses the uplink; the last panel is the resulting total delay.
- **Cost of fixing a decision** (``decision_cost_figure``): the total delay of the optimised method next to
  methods that fix one decision (split, rank, allocation), with the relative penalty written on each bar.

Each function takes plain arrays, writes PNG and PDF, and returns the (closed) Figure.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .io import save_figure_formats  # noqa: E402
from .style import (OKABE_ITO, PANEL_HEIGHT_IN, SINGLE_COLUMN_IN, axis_label, new_figure, scaled_unit,  # noqa: E402
                    series_styles, styled)

MAX_LABELLED_TICKS = 12  # beyond this many x values, integer ticks chosen by matplotlib
OPTIMUM_MARKER = {"marker": "*", "markersize": 9, "color": OKABE_ITO["vermillion"], "linestyle": "none",
                  "zorder": 4}


def rank_tradeoff_figure(ranks, rounds, round_time_s, total_s, stem: str | Path, *, split: int):
    """Panels N(r) (rounds), T_round (s) and N(r)·T_round (s) against r at split ``split``; the best r starred.
    Infeasible ranks are NaN (not drawn)."""
    r = _vector("ranks", ranks)
    panels = [("rounds N(r)", "", _vector("rounds", rounds, r.size)),
              ("round time\nT_round", "s", _vector("round_time_s", round_time_s, r.size)),
              ("total delay\nN(r)·T_round", "s", _vector("total_s", total_s, r.size))]
    fig = _draw_panels(r, panels, x_label="LoRA rank r", note=f"split ℓ = {split}", log2_x=True)
    save_figure_formats(fig, stem)
    return fig


def split_tradeoff_figure(splits, client_flops, activation_bits, total_s, stem: str | Path, *, rank: int,
                          client_memory_bytes=None, memory_limit_bytes: float | None = None,
                          min_split: int | None = None):
    """Panels client FLOPs per iteration, activation payload per iteration, client memory (when known, with
    the smallest device memory as a dashed line) and total delay against ℓ at rank ``rank``; splits below
    ``min_split`` (the privacy floor) are shaded. Infeasible splits are NaN in ``total_s``."""
    s = _vector("splits", splits)
    panels = [("client compute\nper iteration", "FLOP", _vector("client_flops", client_flops, s.size)),
              ("activations\nper iteration", "bit", _vector("activation_bits", activation_bits, s.size))]
    if client_memory_bytes is not None:
        panels.append(("client memory", "B", _vector("client_memory_bytes", client_memory_bytes, s.size)))
    panels.append(("total delay\nN(r)·T_round", "s", _vector("total_s", total_s, s.size)))
    fig = _draw_panels(s, panels, x_label="split point ℓ (blocks on the device)", note=f"rank r = {rank}",
                       memory_limit_bytes=memory_limit_bytes, min_split=min_split)
    save_figure_formats(fig, stem)
    return fig


def decision_cost_figure(labels, totals_s, stem: str | Path, *, reference: str, low=None, high=None,
                         relative_pct=None, relative_half_pct=None, x_label: str = "total training delay (s)"):
    """Horizontal bars of ``totals_s`` per method ``labels`` (bar i is method i, top to bottom), each annotated
    with its cost relative to the method ``reference``; returns the (closed) Figure.

    ``low``/``high`` (optional, NaN where unknown) draw the 95 % interval of each total as error bars, cut at
    0 s (a delay is positive). ``relative_pct`` (default: total / reference total - 1, in %) and its 95 % half
    width ``relative_half_pct`` are what the labels say: with seeds, pass the paired per-seed ratios' mean and
    interval, which are far tighter than the totals' spread across placements.
    """
    labels = [str(x) for x in labels]
    n = len(labels)
    totals = _vector("totals_s", totals_s, n)
    if reference not in labels:
        raise ValueError(f"the reference method {reference!r} is not among {labels}")
    if np.any(~np.isfinite(totals)) or np.any(totals <= 0):
        raise ValueError("every total delay must be a finite time > 0 s")
    nan = [None] * n
    low, high = _vector("low", nan if low is None else low, n), _vector("high", nan if high is None else high, n)
    rel = 100 * (totals / totals[labels.index(reference)] - 1) if relative_pct is None else \
        _vector("relative_pct", relative_pct, n)
    half = _vector("relative_half_pct", nan if relative_half_pct is None else relative_half_pct, n)
    fig = _draw_costs(labels, totals, (np.maximum(low, 0.0), high), (rel, half), reference, x_label)
    save_figure_formats(fig, stem)
    return fig


def _vector(name: str, values, size: int | None = None) -> np.ndarray:
    a = np.asarray([np.nan if v is None else v for v in np.ravel(values)], dtype=float)
    if a.size == 0 or (size is not None and a.size != size):
        raise ValueError(f"{name}: expected {size if size is not None else 'at least one'} values, got {a.size}")
    return a


@styled
def _draw_panels(x, panels, *, x_label: str, note: str, log2_x: bool = False, memory_limit_bytes=None,
                 min_split=None):
    fig, axes = new_figure(len(panels), 1, sharex=True, width_in=SINGLE_COLUMN_IN,
                           height_in=0.55 + PANEL_HEIGHT_IN * 0.8 * len(panels))
    colours = series_styles([name for name, _, _ in panels])
    total = panels[-1][2]
    best = int(np.nanargmin(total)) if np.any(np.isfinite(total)) else None
    for ax, (name, unit, y) in zip(axes[:, 0], panels):
        factor, shown = scaled_unit(y, unit)
        ax.plot(x, y / factor, color=colours[name]["color"], marker="o", label=name)
        if best is not None:
            ax.plot([x[best]], [y[best] / factor], label="optimum", **OPTIMUM_MARKER)
        if unit == "B" and memory_limit_bytes is not None:
            _memory_limit(ax, memory_limit_bytes, y, factor)
        if min_split is not None and x.min() < min_split:
            ax.axvspan(x.min() - 0.5, min_split - 0.5, color="grey", alpha=0.15, linewidth=0,
                       label="below the privacy floor ℓ_min")
        ax.set_ylabel(axis_label(name, shown))
    axes[0, 0].set_title(note, loc="right")
    fig.align_ylabels(axes[:, 0])
    last = axes[-1, 0]
    if log2_x:
        last.set_xscale("log", base=2)
    if x.size <= MAX_LABELLED_TICKS:
        last.set_xticks(x, [f"{v:g}" for v in x])
    else:  # e.g. the 29 split points of SmolLM2: every label would overlap its neighbours
        last.xaxis.set_major_locator(MaxNLocator(nbins=MAX_LABELLED_TICKS, integer=True))
    last.minorticks_off()
    last.set_xlabel(x_label)
    return fig


def _memory_limit(ax, limit_bytes: float, memory, factor: float) -> None:
    """The smallest device memory as a dashed line, or as a note when it is far above every split's need (a
    line there would squash the curve flat against zero)."""
    if limit_bytes <= 2 * np.nanmax(memory):
        ax.axhline(limit_bytes / factor, color="black", linestyle="--", linewidth=0.8, label="smallest device memory")
        ax.legend(loc="best")
    else:
        own_factor, own_unit = scaled_unit([limit_bytes], "B")
        ax.annotate(f"smallest device memory: {limit_bytes / own_factor:.3g} {own_unit}", (0.02, 0.92),
                    xycoords="axes fraction", va="top")


@styled
def _draw_costs(labels, totals, interval, relative, reference, x_label):
    fig, axes = new_figure(height_in=0.85 + 0.28 * len(labels))
    ax = axes[0, 0]
    styles = series_styles(labels)
    y = np.arange(len(labels))
    ax.barh(y, totals, color=[styles[m]["color"] for m in labels], height=0.65, linewidth=0)
    low, high = interval
    ok = np.isfinite(low) & np.isfinite(high)
    if ok.any():
        ax.errorbar(totals[ok], y[ok], xerr=[totals[ok] - low[ok], high[ok] - totals[ok]], fmt="none",
                    ecolor="black", elinewidth=0.8, label="95 % CI of the total over seeds")
        fig.legend(loc="outside lower center")
    ends = np.where(ok, high, totals)  # the label sits right of the bar or of its error bar
    for yi, end, m, pct, half in zip(y, ends, labels, *relative):
        text = "reference" if m == reference else (f"{pct:+.1f} %" if not np.isfinite(half)
                                                   else f"{pct:+.1f} ± {half:.1f} %")
        ax.annotate(text, (end, yi), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()  # the first method on top, as listed
    ax.set_xlim(0, 1.6 * ends.max())  # room for the labels
    ax.set_xlabel(x_label)
    ax.grid(False, axis="y")
    return fig
