"""Participation per round in a changing world: who was selected, who was aggregated, who dropped or was
cancelled, and which rounds hit their deadline (one bar group per round of ``rounds.csv``)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import save_figure  # noqa: E402
from .style import OKABE_ITO  # noqa: E402


def plot_participation(round_rows: list[dict], path: str | Path, *, title: str = "") -> dict:
    """Stacked bars per round attempt: aggregated, dropped, cancelled (their sum is at most the selected, drawn
    as a step line); deadline hits marked. Returns the drawn arrays."""
    x = np.arange(1, len(round_rows) + 1)
    agg = np.array([r["participants"] for r in round_rows], dtype=float)
    dropped = np.array([r["dropped"] for r in round_rows], dtype=float)
    cancelled = np.array([r["cancelled"] for r in round_rows], dtype=float)
    selected = np.array([r["selected"] for r in round_rows], dtype=float)
    hit = np.array([bool(r["deadline_hit"]) for r in round_rows])
    fig, ax = plt.subplots(figsize=(5.0, 3.0), dpi=120)
    ax.bar(x, agg, color=OKABE_ITO["bluish green"], label="aggregated")
    ax.bar(x, dropped, bottom=agg, color=OKABE_ITO["vermillion"], label="dropped")
    ax.bar(x, cancelled, bottom=agg + dropped, color=OKABE_ITO["reddish purple"], label="cancelled")
    ax.step(x, selected, where="mid", color="black", linewidth=1.0, label="selected")
    if hit.any():
        ax.scatter(x[hit], selected[hit] + 0.3, marker="v", color=OKABE_ITO["orange"], s=20, label="deadline hit")
    labels = [f"{r['round']}" + (f"/{r['attempt']}" if r["attempt"] > 1 else "") for r in round_rows]
    if len(x) <= 30:
        ax.set_xticks(x, labels)
    ax.set_xlabel("round (/attempt)")
    ax.set_ylabel("clients")
    ax.set_title(title or "Participation per round")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
    return {"round": x, "aggregated": agg, "dropped": dropped, "cancelled": cancelled, "selected": selected,
            "deadline_hit": hit}
