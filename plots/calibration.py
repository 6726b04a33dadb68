"""The calibration figure: validation curves per rank, tokens to the target with intervals, and the fit.

Left: the seed-mean validation loss against training tokens for every rank (band: min to max over seeds) and
the target. Right: tokens to the target per rank (mean and 95 % interval of the seeds that reached it; a
censored run is drawn at its bound as an open triangle), the fitted T(r) = a + b r^-c and its bootstrap band.
Returns what it drew so tests can compare it with the calibration document.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import save_figure  # noqa: E402

COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")


def plot_calibration(doc: dict, path: str | Path) -> dict:
    tpr = float(doc["tokens_per_round"])
    ranks = [e["rank"] for e in doc["ranks"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6), dpi=120)
    drawn = {"curves": {}, "points": {}, "fit": None}
    for colour, e in zip(COLOURS * 4, doc["ranks"]):
        runs = [x for x in doc["runs"] if x["rank"] == e["rank"] and x["learning_rate"] == e["learning_rate"]]
        # runs that stopped at the target are shorter: the band and mean cover the rounds every seed trained
        n_common = min(len(x["val_losses"]) for x in runs)
        curves = np.array([x["val_losses"][:n_common] for x in runs], dtype=float)
        tokens = np.arange(curves.shape[1]) * tpr
        left.plot(tokens, curves.mean(axis=0), color=colour, label=f"r = {e['rank']}")
        left.fill_between(tokens, curves.min(axis=0), curves.max(axis=0), color=colour, alpha=0.2, linewidth=0)
        drawn["curves"][e["rank"]] = curves.mean(axis=0).tolist()
        stats = e["tokens_to_target"]
        if stats["mean"] is not None:
            ci = stats["ci95"] or [stats["mean"], stats["mean"]]
            right.errorbar([e["rank"]], [stats["mean"]], yerr=[[stats["mean"] - ci[0]], [ci[1] - stats["mean"]]],
                           fmt="o", color=colour, capsize=3)
            drawn["points"][e["rank"]] = stats["mean"]
        for x in runs:
            if x["censored"]:
                right.plot([e["rank"]], [x["censored_above_tokens"]], marker="^", mfc="none", color=colour)
    left.axhline(doc["target"]["value"], color="black", linestyle="--", linewidth=1, label="target")
    left.set_xlabel("training tokens")
    left.set_ylabel("validation loss")
    left.legend(fontsize=7)
    fit = doc.get("fit")
    if fit:
        grid = np.geomspace(min(ranks), max(ranks), 100)
        right.plot(grid, fit["a"] + fit["b"] * grid ** -fit["c"], color="black",
                   label=f"T(r) = {fit['a']:.3g} + {fit['b']:.3g} r^-{fit['c']:.3g}")
        boot = fit.get("bootstrap")
        if boot and boot.get("prediction"):
            pr = sorted((int(k), v) for k, v in boot["prediction"].items())
            right.fill_between([k for k, _ in pr], [v[0] for _, v in pr], [v[1] for _, v in pr], color="grey",
                               alpha=0.3, linewidth=0, label="bootstrap 95 %")
        drawn["fit"] = (fit["a"], fit["b"], fit["c"])
        right.legend(fontsize=7)
    right.set_xscale("log", base=2)
    right.set_xlabel("LoRA rank r")
    right.set_ylabel("training tokens to the target")
    fig.suptitle(f"{doc['model']}: {doc['seeds']['count']} seeds, {tpr:.0f} tokens per round", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return drawn
