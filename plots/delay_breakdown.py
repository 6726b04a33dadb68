"""Stacked bars of where each client's round time goes (spec section 4 breakdown).

``plot_delay_breakdown`` draws the closed form's breakdown (a :class:`fsllm_sim.delay.DelayBreakdown`, read by
attribute) into one file of a run directory; ``breakdown_figure`` draws any per-client parts (e.g. the simulated
means of a run's ``clients.csv``) as PNG and PDF and returns the Figure, whose bars hold the parts' values.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import numpy as np  # noqa: E402

from matplotlib.ticker import MaxNLocator  # noqa: E402

from .io import save_figure, save_figure_formats  # noqa: E402
from .style import ADAPTER_DOWNLOAD_COLOUR, OKABE_ITO, SINGLE_COLUMN_IN, axis_label, new_figure, styled  # noqa: E402

# Part -> colour; the same colours as the Gantt chart's categories, so the two figures read together.
PART_COLOURS = {
    "client compute": OKABE_ITO["blue"],
    "uplink (activations)": OKABE_ITO["orange"],
    "server queue": OKABE_ITO["yellow"],
    "server compute": OKABE_ITO["bluish green"],
    "downlink (gradients)": OKABE_ITO["vermillion"],
    "adapter upload": OKABE_ITO["reddish purple"],
    "adapter download": ADAPTER_DOWNLOAD_COLOUR,  # split learning's hand-off, as in the Gantt chart
}
WIDE_CLIENTS = 48  # clients drawn at full bar width; more share that width (a page holds no wider chart)
PHASES = tuple((label, PART_COLOURS[label]) for label in (
    "client compute", "uplink (activations)", "server compute", "downlink (gradients)", "adapter upload"))


def plot_delay_breakdown(breakdown, local_iterations: int, path: str | Path, title: str = "") -> Path:
    """Per-client stacked bars: E × (compute, uplink, server, downlink) + adapter upload = client round time."""
    e = local_iterations
    parts = {
        "client compute": e * (breakdown.client_forward_s + breakdown.client_backward_s),
        "uplink (activations)": e * breakdown.uplink_s,
        "server compute": e * breakdown.server_compute_s,
        "downlink (gradients)": e * breakdown.downlink_s,
        "adapter upload": breakdown.adapter_upload_s,
    }
    fig = _draw(parts, round_s=float(breakdown.round_s), title=title or "Round-time breakdown per client")
    return save_figure(fig, path)


def breakdown_figure(parts: dict, stem: str | Path, *, round_s: float | None = None, reference_s=None,
                     reference_label: str = "", title: str = ""):
    """Stacked bars of ``parts`` ({label: per-client seconds per round}, in stacking order) as ``stem.png`` and
    ``stem.pdf``. ``round_s`` draws the round time as a dashed line; ``reference_s`` (per client) draws a
    marker per client labelled ``reference_label`` (e.g. the closed form's client round time). Returns the
    (closed) Figure."""
    if reference_s is not None and not reference_label:
        raise ValueError("reference_s needs a reference_label to name it in the legend")
    fig = _draw(parts, round_s=round_s, reference_s=reference_s, reference_label=reference_label, title=title)
    save_figure_formats(fig, stem)
    return fig


def _checked_parts(parts: dict) -> dict[str, np.ndarray]:
    if not parts:
        raise ValueError("no delay parts to plot")
    arrays = {label: np.asarray(values, dtype=float).ravel() for label, values in parts.items()}
    sizes = {a.size for a in arrays.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"every delay part needs one value per client; got sizes {sorted(sizes)}")
    for label, a in arrays.items():
        if np.any(~np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"delay part {label!r} must be finite and >= 0 s")
    return arrays


@styled
def _draw(parts: dict, *, round_s=None, reference_s=None, reference_label: str = "", title: str = ""):
    arrays = _checked_parts(parts)
    k = np.arange(next(iter(arrays.values())).size)
    fig, axes = new_figure(width_in=max(SINGLE_COLUMN_IN, 0.25 * min(k.size, WIDE_CLIENTS) + 1.5))
    ax = axes[0, 0]
    bottom = np.zeros(k.size)
    spare = iter(c for c in OKABE_ITO.values() if c not in PART_COLOURS.values())
    for label, values in arrays.items():
        colour = PART_COLOURS.get(label) or next(spare)
        if k.size <= WIDE_CLIENTS:
            ax.bar(k, values, bottom=bottom, color=colour, label=label, width=0.7, linewidth=0)
        else:  # one stacked step patch per part: thousands of clients, one artist each, bars edge to edge
            ax.stairs(bottom + values, np.arange(k.size + 1) - 0.5, baseline=bottom.copy(), fill=True, color=colour,
                      label=label, linewidth=0)
        bottom += values
    if round_s is not None:
        ax.axhline(round_s, color="black", linestyle="--", linewidth=0.8, label=f"round time {round_s:.3g} s")
    if reference_s is not None:
        ax.plot(k, np.asarray(reference_s, dtype=float), linestyle="none", marker="_", markersize=9,
                markeredgewidth=1.4, color="black", label=reference_label)
    ax.set_xlabel("client k")
    ax.set_ylabel(axis_label("time per global round", "s"))
    if k.size <= WIDE_CLIENTS:
        ax.set_xticks(k)
    else:  # more clients share the width: integer ticks only where they fit
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
        ax.set_xlim(-0.5, k.size - 0.5)
    ax.grid(False, axis="x")
    if title:
        ax.set_title(title)
    fig.legend(loc="outside lower center", ncol=2)
    return fig
