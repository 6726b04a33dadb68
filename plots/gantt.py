"""Gantt chart of one global round from the simulator's event trace.

The delay breakdown (``delay_breakdown.py``) shows how long each phase takes on average; it cannot show
*when* clients wait: uplink contention, queueing at the main server, stragglers holding up aggregation. This
chart draws every traced interval of one round on a client-by-time grid, so those gaps are visible.

``plot_round_gantt`` (one file, for run directories) returns the data it drew, relative to the round start, so
tests can check the picture against the trace without reading pixels; ``gantt_figure`` (PNG and PDF, for
``fsllm-sim plot``) returns the Figure, whose bars can be read back.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .io import save_figure, save_figure_formats  # noqa: E402
from .style import ADAPTER_DOWNLOAD_COLOUR, OKABE_ITO, SINGLE_COLUMN_IN, axis_label, new_figure, styled  # noqa: E402

IDLE = "idle"
IDLE_COLOUR = "#E8E8E8"  # light grey: the background a client shows while it does nothing

# Drawing category -> colour, in legend order.
CATEGORY_COLOURS = {
    "compute": OKABE_ITO["blue"],
    "uplink": OKABE_ITO["orange"],
    "queue wait": OKABE_ITO["yellow"],
    "server": OKABE_ITO["bluish green"],
    "downlink": OKABE_ITO["vermillion"],
    "adapter upload": OKABE_ITO["reddish purple"],
    "adapter download": ADAPTER_DOWNLOAD_COLOUR,
    "aggregation": OKABE_ITO["black"],
    "broadcast": OKABE_ITO["sky blue"],
    "stall": "#555555",  # every subchannel of a transfer in outage: drawn over the transfer's bar
}
# Instant marks of a changing world (docs/dynamics.md): marker and colour.
MARK_STYLES = {"drop": ("X", OKABE_ITO["vermillion"]), "abort": ("|", OKABE_ITO["black"]),
               "cancel": ("s", OKABE_ITO["reddish purple"]), "battery": ("v", OKABE_ITO["orange"])}

# Trace phase -> drawing category.
PHASE_CATEGORY = {
    "forward": "compute",
    "backward": "compute",
    "uplink": "uplink",
    "server_wait": "queue wait",
    "server": "server",
    "downlink": "downlink",
    "adapter_upload": "adapter upload",
    "adapter_download": "downlink",  # protocol sl: the client adapter handed on to the next client
    "aggregation": "aggregation",
    "broadcast": "broadcast",
    "stall": "stall",
}

FS_CLIENT = -1  # the federated server's client id in the trace
BAR_HEIGHT = 0.7  # of one row (rows are 1 apart)
TALL_ROWS = 48  # rows drawn at full height; more rows share that height (a page holds no taller chart)
LABELLED_ROWS = 64  # above this, only some rows are labelled (every label would overlap)


def plot_round_gantt(trace_rows, round_index: int, path: str | Path, *, title: str = "") -> dict:
    """Draw round ``round_index`` (1-based) of the trace as a Gantt chart at ``path``; return what was drawn.

    Returns ``{"round_start_s", "round_end_s", "bars": {category: [(client, start_rel_s, duration_s), ...]},
    "marks": {mark: [(client, time_rel_s), ...]}}`` with times relative to the round start (the round's earliest
    ``start_s``). ``bars["idle"]`` holds the grey background span of each client row. Zero-length intervals are
    skipped; drops, aborts, cancellations and empty batteries are instants, drawn as markers.
    """
    fig, drawn = _draw(trace_rows, round_index, title or f"Round {round_index} timeline")
    save_figure(fig, path)
    return drawn


def gantt_figure(trace_rows, round_index: int, stem: str | Path, *, title: str = ""):
    """The same chart in both formats (``stem.png``, ``stem.pdf``); returns the (closed) Figure, whose
    collections (one per category) hold the bars (round-relative seconds, one row per client, the FS last)."""
    fig, _ = _draw(trace_rows, round_index, title)
    save_figure_formats(fig, stem)
    return fig


def _round_rows(trace_rows, round_index: int) -> list[tuple[int, str, float, float]]:
    """(client, category, start_s, end_s) of one round, checked."""
    rows = []
    for r in trace_rows:
        if int(r["round"]) != round_index:
            continue
        phase = str(r["phase"])
        if phase in MARK_STYLES:
            rows.append((int(r["client"]), phase, float(r["start_s"]), float(r["end_s"])))
            continue
        if phase not in PHASE_CATEGORY:
            raise ValueError(f"unknown trace phase {phase!r} in round {round_index}")
        start_s, end_s = float(r["start_s"]), float(r["end_s"])
        if end_s < start_s:
            raise ValueError(f"trace interval ends before it starts: {phase} of client {r['client']} "
                             f"in round {round_index} ({start_s} s > {end_s} s)")
        rows.append((int(r["client"]), PHASE_CATEGORY[phase], start_s, end_s))
    if not rows:
        raise ValueError(f"the trace has no rows for round {round_index}")
    return rows


@styled
def _draw(trace_rows, round_index: int, title: str):
    rows = _round_rows(trace_rows, round_index)
    round_start_s = min(start for _, _, start, _ in rows)
    round_end_s = max(end for _, _, _, end in rows)
    round_len_s = round_end_s - round_start_s

    clients = sorted({c for c, _, _, _ in rows if c != FS_CLIENT})
    row_ids = clients + [FS_CLIENT]  # client 0 at the top, the federated server last
    y_of = {c: i for i, c in enumerate(row_ids)}

    bars: dict[str, list[tuple[int, float, float]]] = {IDLE: [(c, 0.0, round_len_s) for c in clients]}
    marks: dict[str, list[tuple[int, float]]] = {}
    for client, category, start_s, end_s in sorted(rows, key=lambda x: (x[0], x[2], x[3])):
        if category in MARK_STYLES:
            marks.setdefault(category, []).append((client, start_s - round_start_s))
            continue
        if end_s == start_s:
            continue
        bars.setdefault(category, []).append((client, start_s - round_start_s, end_s - start_s))

    fig, axes = new_figure(width_in=SINGLE_COLUMN_IN, height_in=1.3 + 0.2 * min(len(row_ids), TALL_ROWS))
    ax = axes[0, 0]
    for category, colour in [(IDLE, IDLE_COLOUR), *CATEGORY_COLOURS.items()]:
        spans = bars.get(category)
        if spans:  # one collection per category: thousands of clients cost one artist, not thousands
            half = BAR_HEIGHT / 2
            verts = [[(x, y_of[c] - half), (x, y_of[c] + half), (x + d, y_of[c] + half), (x + d, y_of[c] - half)]
                     for c, x, d in spans]
            ax.add_collection(PolyCollection(verts, facecolors=colour, linewidths=0, label=category,
                                             zorder=1 if category == IDLE else (3 if category == "stall" else 2)),
                              autolim=False)
    for mark, points in marks.items():
        marker, colour = MARK_STYLES[mark]
        ax.scatter([t for _, t in points], [y_of[c] for c, _ in points], marker=marker, color=colour, s=36,
                   zorder=4, label=mark)
    step = 1 if len(row_ids) <= LABELLED_ROWS else int(np.ceil(len(row_ids) / LABELLED_ROWS))
    shown = sorted(set(range(0, len(row_ids), step)) | {len(row_ids) - 1})  # the FS row always
    ax.set_yticks(shown)
    ax.set_yticklabels([str(row_ids[i]) if row_ids[i] != FS_CLIENT else "FS" for i in shown])
    ax.set_ylim(len(row_ids) - 0.5, -0.5)  # inverted: client 0 at the top
    ax.set_xlim(0.0, round_len_s if round_len_s > 0 else 1.0)
    ax.set_xlabel(axis_label(f"simulated time in round {round_index}", "s"))
    ax.set_ylabel("client")
    ax.grid(True, axis="x")
    ax.grid(False, axis="y")
    if title:
        ax.set_title(title)
    handles = [Patch(facecolor=colour, label=category)
               for category, colour in [(IDLE, IDLE_COLOUR), *CATEGORY_COLOURS.items()] if bars.get(category)]
    handles += [Line2D([], [], linestyle="none", marker=MARK_STYLES[m][0], color=MARK_STYLES[m][1], label=m)
                for m in MARK_STYLES if marks.get(m)]
    # below the axes: at one column's width there is no room beside them
    fig.legend(handles=handles, loc="outside lower center", ncol=3)
    return fig, {"round_start_s": round_start_s, "round_end_s": round_end_s, "bars": bars, "marks": marks}
