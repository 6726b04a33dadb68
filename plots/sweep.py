"""Total training delay against the first swept parameter, one line per combination of the others.

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
import matplotlib.pyplot as plt  # noqa: E402

from .gantt import OKABE_ITO  # noqa: E402
from .io import save_figure  # noqa: E402


def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _label(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _key(v) -> str:
    return json.dumps(v, sort_keys=True, default=str)


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
    fig, ax = plt.subplots(figsize=(8.4 if outside else 5.2, 3.6), dpi=120)
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
        ax.set_xticks(ticks, [names[t] for t in ticks], fontsize=7)
    ax.set_xlabel(x_col[4:])
    ax.set_ylabel("total training delay N(r)·T_round (s)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    if outside:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return drawn
