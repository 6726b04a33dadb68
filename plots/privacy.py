"""Leakage figures of ``fsllm-sim privacy``: token accuracy against the split, and against the noise defence.

Left of each figure token accuracy, right ROUGE-L F1; error bars are the 95 % intervals over held-out texts, the
dashed line is the frequency baseline. Returns what it drew (series name -> list of (x, value)) for tests.
``path`` with a suffix is one file; without one it is a stem, written as PNG and PDF.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .io import save_figure, save_figure_formats  # noqa: E402

COLOURS = {"linear": "#0072B2", "mlp": "#E69F00", "optimisation": "#009E73", "frequency": "#000000"}
METRICS = (("token_acc", "token accuracy"), ("rouge_l", "ROUGE-L F1"))


def _save(fig, path) -> None:
    path = Path(path)
    if path.suffix:
        save_figure(fig, path)
    else:
        save_figure_formats(fig, path)


def _errorbars(ax, rows, x_key, metric, label, colour, dashed=False):
    rows = sorted(rows, key=lambda r: r[x_key])
    xs = [r[x_key] for r in rows]
    ys = [r[metric] for r in rows]
    err = [[y - r[f"{metric}_lo"] for y, r in zip(ys, rows)], [r[f"{metric}_hi"] - y for y, r in zip(ys, rows)]]
    ax.errorbar(xs, ys, yerr=err, color=colour, marker="" if dashed else "o", ms=3.5, capsize=2, lw=1.2,
                ls="--" if dashed else "-", label=label)
    return list(zip(xs, ys))


def plot_leakage_vs_split(rows, path: str | Path, title: str = "") -> dict:
    """Each attack's leakage against the split, without defence (fp16 wire, no noise)."""
    clean = [r for r in rows if r["wire"] == "fp16" and float(r["strength"]) == 0.0] or list(rows)
    drawn = {}
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4), dpi=120)
    for ax, (metric, name) in zip(axes, METRICS):
        for attack in sorted({r["attack"] for r in clean}, key=list(COLOURS).index):
            mine = [r for r in clean if r["attack"] == attack]
            drawn[(metric, attack)] = _errorbars(ax, mine, "split", metric, attack, COLOURS[attack],
                                                 dashed=attack == "frequency")
        ax.set(xlabel="split point l (blocks on the device; 0 = embedding output)", ylabel=name, ylim=(-0.02, 1.02))
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=-0.3)  # split 0 (the embedding output) at the left edge, no negative ticks
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return drawn


def plot_leakage_vs_noise(rows, path: str | Path, title: str = "") -> dict:
    """The leakiest learned or optimisation attack's token accuracy against the noise sigma, one line per split
    (fp16 wire)."""
    fp16 = [r for r in rows if r["wire"] == "fp16" and r["attack"] != "frequency"]
    drawn = {}
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4), dpi=120)
    splits = sorted({r["split"] for r in fp16})
    cmap = plt.get_cmap("viridis")
    for ax, (metric, name) in zip(axes, METRICS):
        for i, s in enumerate(splits):
            best = {}
            for r in fp16:
                if r["split"] == s and (r["strength"] not in best or r[metric] > best[r["strength"]][metric]):
                    best[r["strength"]] = r
            drawn[(metric, s)] = _errorbars(ax, list(best.values()), "strength", metric, f"l = {s}",
                                            cmap(i / max(1, len(splits) - 1)))
        ax.set(xlabel="noise sigma (relative to each token's RMS)", ylabel=f"{name} (leakiest attack)",
               ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return drawn
