"""Map of the cell: base station, client positions, LOS state and mean SNR."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import save_figure  # noqa: E402


LABELLED_CLIENTS = 64


def plot_layout(positions_m, los, snr_db, radius_m: float, path: str | Path, title: str = "",
                trajectories: dict | None = None) -> Path:
    """Clients as dots coloured by mean SNR (dB) at t = 0; LOS clients ringed; the BS at the origin.
    ``trajectories`` (client -> (x_m (n,), y_m (n,))) are drawn as lines from each moving client's start."""
    pos = np.asarray(positions_m)
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=120)
    ax.add_patch(plt.Circle((0, 0), radius_m, fill=False, linestyle=":", color="grey"))
    for i, (client, (x, y)) in enumerate(sorted((trajectories or {}).items())):
        ax.plot(x, y, linewidth=0.8, color="grey", alpha=0.8, zorder=2, label="trajectory" if i == 0 else None)
    sc = ax.scatter(pos[:, 0], pos[:, 1], c=snr_db, cmap="viridis", s=40, zorder=3)
    los = np.asarray(los, dtype=bool)
    ax.scatter(pos[los, 0], pos[los, 1], facecolors="none", edgecolors="red", s=110, label="LOS", zorder=4)
    ax.scatter([0], [0], marker="^", s=120, color="black", label="base station", zorder=5)
    if len(pos) <= LABELLED_CLIENTS:  # more labels than that only overlap
        for k, (x, y) in enumerate(pos):
            ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    fig.colorbar(sc, ax=ax, label="mean SNR per subchannel (dB)")
    ax.set_aspect("equal")
    ax.set_xlim(-1.05 * radius_m, 1.05 * radius_m)
    ax.set_ylim(-1.05 * radius_m, 1.05 * radius_m)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title or "Cell layout")
    # "best" weighs every point against every place the legend could go: slow for thousands of clients
    ax.legend(fontsize=7, loc="best" if len(pos) <= LABELLED_CLIENTS else "upper right")
    fig.tight_layout()
    return save_figure(fig, path)
