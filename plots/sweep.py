"""Total training delay against the first swept parameter, one line per value of the second."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .io import save_figure  # noqa: E402


def plot_sweep(results: list[dict], set_columns: list[str], path: str | Path) -> Path:
    x_col = set_columns[0]
    group_col = set_columns[1] if len(set_columns) > 1 else None
    groups = sorted({r[group_col] for r in results}, key=str) if group_col else [None]
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=120)
    for g in groups:
        rows = sorted((r for r in results if group_col is None or r[group_col] == g), key=lambda r: r[x_col])
        xs = [r[x_col] for r in rows]
        label = "" if g is None else f"{group_col[4:]}={g}"
        ax.plot(xs, [r["total_s"] for r in rows], marker="o", label=f"optimised {label}".strip())
        ax.plot(xs, [r["equal_total_s"] for r in rows], marker="x", linestyle="--",
                label=f"equal share {label}".strip())
    ax.set_xlabel(x_col[4:])
    ax.set_ylabel("total training delay N(r)·T_round (s)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
