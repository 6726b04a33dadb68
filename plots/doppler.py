"""How far the mean-gain closed form is from the fading-aware simulation, against client speed (Doppler).

The closed form with mean-gain rates assumes E|h|² = 1 on every subchannel and Jensen makes it optimistic:
log2(1 + SNR·|h|²) averages below log2(1 + SNR). How the simulated round compares also depends on how fast
the channel changes within a transfer: at walking speed a transfer sees few fading blocks and its duration
varies from round to round; at vehicular speed it averages many and settles near the ergodic rate. The x
axis is the client speed (km/h), with the Doppler frequency f_D = v·f_c/c on the top axis when the carrier is
given; the y axis is the relative gap (simulated − closed form) / closed form of the round time, in percent.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from .io import save_figure_formats  # noqa: E402
from .style import BAND_ALPHA, axis_label, new_figure, series_styles, styled  # noqa: E402

PLAIN = FuncFormatter(lambda v, _: f"{v:g}")  # 1, 10, 100 on log axes, not 10^0, 10^1, 10^2
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0
KMH_PER_M_PER_S = 3.6


def doppler_hz(speed_kmh, carrier_hz: float):
    """f_D = v f_c / c for a speed in km/h and a carrier in Hz."""
    return np.asarray(speed_kmh, dtype=float) / KMH_PER_M_PER_S * carrier_hz / SPEED_OF_LIGHT_M_PER_S


def doppler_gap_figure(speeds_kmh, series: dict, stem: str | Path, *, carrier_hz: float | None = None,
                       band_label: str = "95 % CI"):
    """Gap lines ``series`` = ``{label: {"mean_pct": [...], "low_pct": [...], "high_pct": [...]}}`` (one value
    per speed, in percent; the interval optional) against ``speeds_kmh``, as ``stem.png``/``stem.pdf``.
    Returns the (closed) Figure."""
    speeds = np.asarray(speeds_kmh, dtype=float)
    if speeds.size == 0 or np.any(~np.isfinite(speeds)) or np.any(speeds < 0):
        raise ValueError("speeds_kmh must be finite speeds >= 0 km/h, at least one")
    if not series:
        raise ValueError("no gap series to plot")
    checked = {label: _checked(label, data, speeds.size) for label, data in series.items()}
    fig = _draw(speeds, checked, carrier_hz, band_label)
    save_figure_formats(fig, stem)
    return fig


def _checked(label, data: dict, n: int):
    out = []
    for key in ("mean_pct", "low_pct", "high_pct"):
        values = data.get(key)
        a = np.full(n, np.nan) if values is None and key != "mean_pct" else np.asarray(values, dtype=float)
        if a.shape != (n,):
            raise ValueError(f"series {label!r}: {key} needs one value per speed ({n}), got {np.size(a)}")
        out.append(a)
    return tuple(out)


@styled
def _draw(speeds, series: dict, carrier_hz, band_label):
    fig, axes = new_figure()
    ax = axes[0, 0]
    styles = series_styles(series)
    order = np.argsort(speeds, kind="stable")
    banded = False
    for label, (mean, low, high) in series.items():
        st = styles[label]
        ax.plot(speeds[order], mean[order], label=str(label), **st)
        ok = (np.isfinite(low) & np.isfinite(high))[order]
        if ok.any():
            ax.fill_between(speeds[order][ok], low[order][ok], high[order][ok], color=st["color"], alpha=BAND_ALPHA,
                            linewidth=0)
            banded = True
    ax.axhline(0.0, color="black", linewidth=0.6)
    positive = speeds[speeds > 0]
    if positive.size == speeds.size and positive.max() / positive.min() >= 10:
        ax.set_xscale("log")  # pedestrian to vehicular speeds span two decades
        ax.xaxis.set_major_formatter(PLAIN)
    ax.set_xlabel(axis_label("client speed v", "km/h"))
    ax.set_ylabel(axis_label("round-time gap", "%"))
    if carrier_hz is not None:
        top = ax.secondary_xaxis("top", functions=(lambda v: doppler_hz(v, carrier_hz),
                                                  lambda f: np.asarray(f) * KMH_PER_M_PER_S
                                                  * SPEED_OF_LIGHT_M_PER_S / carrier_hz))
        top.set_xlabel(axis_label("Doppler frequency f_D", "Hz"))
        top.xaxis.set_major_formatter(PLAIN)
    handles, labels = ax.get_legend_handles_labels()
    if banded:  # one grey patch explains every band
        handles.append(Patch(facecolor="grey", alpha=BAND_ALPHA, label=band_label))
        labels.append(band_label)
    fig.legend(handles, labels, loc="outside lower center", ncol=1)
    return fig
