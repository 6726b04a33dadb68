"""Loss (or any metric) against simulated wall-clock time, one line per system.

Comparing split-federated schemes per round or per iteration hides what the wireless resource allocation
buys: a scheme with shorter rounds reaches the target loss sooner even with the same loss per round. The x
axis is therefore simulated time in seconds. The function returns the data it drew so tests can check it.
"""
from __future__ import annotations

from itertools import cycle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import matplotlib.pyplot as plt  # noqa: E402

from .gantt import OKABE_ITO  # noqa: E402
from .io import save_figure  # noqa: E402

# Yellow last: it is the hardest Okabe-Ito colour to see as a thin line on white.
LINE_COLOURS = tuple(OKABE_ITO[name] for name in (
    "blue", "orange", "bluish green", "vermillion", "reddish purple", "sky blue", "black", "yellow"))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_loss_vs_time(series: dict, path: str | Path, *, ylabel: str = "validation loss", title: str = "",
                      target: float | None = None) -> dict:
    """One marked line per ``series`` label (``{"time_s": [...], "value": [...]}``); return what was drawn.

    Returns ``{label: (times_s, values)}`` as lists of floats. ``target``, if given, is drawn as a dashed
    horizontal line labelled "target".
    """
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

    fig, ax = plt.subplots(figsize=(5.6, 3.6), dpi=120)
    for (label, (times_s, values)), colour, marker in zip(drawn.items(), cycle(LINE_COLOURS), cycle(MARKERS)):
        ax.plot(times_s, values, color=colour, marker=marker, markersize=4, linewidth=1.2, label=str(label))
    if target is not None:
        ax.axhline(float(target), color="grey", linestyle="--", linewidth=1, label="target")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.set_title(title or f"{ylabel[:1].upper()}{ylabel[1:]} over simulated time")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
    return drawn
