"""Stacked bars of where each client's round time goes (spec section 4 breakdown)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import save_figure  # noqa: E402

PHASES = (
    ("client compute", "#4c72b0"),
    ("uplink (activations)", "#dd8452"),
    ("server compute", "#55a868"),
    ("downlink (gradients)", "#c44e52"),
    ("adapter upload", "#8172b3"),
)


def plot_delay_breakdown(breakdown, local_iterations: int, path: str | Path, title: str = "") -> Path:
    """Per-client stacked bars: E × (compute, uplink, server, downlink) + adapter upload = client round time."""
    e = local_iterations
    parts = [
        e * (breakdown.client_forward_s + breakdown.client_backward_s),
        e * breakdown.uplink_s,
        e * breakdown.server_compute_s,
        e * breakdown.downlink_s,
        breakdown.adapter_upload_s,
    ]
    k = np.arange(len(parts[0]))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(k) + 3), 3.6), dpi=120)
    bottom = np.zeros(len(k))
    for (label, colour), values in zip(PHASES, parts):
        ax.bar(k, values, bottom=bottom, color=colour, label=label, width=0.7)
        bottom += values
    ax.axhline(breakdown.round_s, color="black", linestyle="--", linewidth=1,
               label=f"round time {breakdown.round_s:.3g} s")
    ax.set_xlabel("client k")
    ax.set_ylabel("time per global round (s)")
    ax.set_xticks(k)
    ax.set_title(title or "Round-time breakdown per client")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return save_figure(fig, path)
