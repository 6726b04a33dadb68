"""The one publication style of every figure: font, sizes, palette, line styles and units.

Figures are sized for a single journal column (3.5 in, IEEE and ACM alike) and drawn at the size they are
printed, so an 8 pt label in the file is an 8 pt label on paper; nothing is shrunk by LaTeX afterwards.

- **Font.** One family, DejaVu Sans, for text and mathematics (``mathtext.fontset: dejavusans``): matplotlib
  ships it, so the figures look the same on every machine, and PDFs embed it as TrueType (``pdf.fonttype: 42``):
  publishers reject the Type 3 fonts matplotlib writes by default.
- **Colour.** The Okabe & Ito (2008) palette, safe for the common colour-vision deficiencies. Each line also
  has its own marker and dash pattern, so a figure still reads in greyscale print.
- **Units.** Every quantity axis names its unit; large SI quantities are rescaled to a prefix (20 MHz, not
  2e7 Hz) by :func:`scaled_unit`, and the factor is returned so callers and tests can map data back.
- **Reproducible files.** PDFs carry no creation date (:data:`SAVE_METADATA`), so the same data give the same
  bytes.
"""
from __future__ import annotations

import functools
from itertools import cycle

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import matplotlib.pyplot as plt  # noqa: E402
from cycler import cycler  # noqa: E402

SINGLE_COLUMN_IN = 3.5  # width of one column of a two-column paper (IEEE: 3.5 in, ACM: 3.33 in)
DOUBLE_COLUMN_IN = 7.16  # the full text width of the IEEE template
PANEL_HEIGHT_IN = 1.55  # height of one panel of a stacked figure: three panels fit a third of a page
DEFAULT_HEIGHT_IN = 2.4
PNG_DPI = 300  # print resolution; the PDF is vector anyway
FONT_FAMILY = "DejaVu Sans"
BASE_FONT_PT = 8.0  # journals ask for 7-9 pt in figures at print size
SMALL_FONT_PT = 7.0

# Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}
# Line order: yellow last, it is the hardest Okabe-Ito colour to see as a thin line on white.
LINE_COLOURS = tuple(OKABE_ITO[name] for name in (
    "blue", "orange", "bluish green", "vermillion", "reddish purple", "sky blue", "black", "yellow"))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", "-.", ":")
# Split learning's hand-off of the client adapter: the adapter upload's hue (reddish purple), lighter, so the pair
# reads as one kind of transfer in either direction (the eight Okabe-Ito colours are all taken by then).
ADAPTER_DOWNLOAD_COLOUR = "#E8B9D5"
BAND_ALPHA = 0.22  # confidence bands: light enough that crossing lines stay visible

# The same method keeps its colour in every figure of a paper: the optimised methods blue, the baselines as below.
METHOD_COLOURS = {
    "optimised": OKABE_ITO["blue"], "bcd": OKABE_ITO["blue"], "exact": OKABE_ITO["blue"],
    "gurobi": OKABE_ITO["blue"],
    "equal": OKABE_ITO["orange"], "equal-share": OKABE_ITO["black"], "equal share": OKABE_ITO["black"],
    "random": OKABE_ITO["bluish green"], "max-power": OKABE_ITO["vermillion"],
    "fixed-split": OKABE_ITO["reddish purple"], "fixed-rank": OKABE_ITO["sky blue"],
}

RC = {
    "font.family": "sans-serif",
    "font.sans-serif": [FONT_FAMILY],
    "mathtext.fontset": "dejavusans",
    "font.size": BASE_FONT_PT,
    "axes.labelsize": BASE_FONT_PT,
    "axes.titlesize": BASE_FONT_PT,
    "xtick.labelsize": SMALL_FONT_PT,
    "ytick.labelsize": SMALL_FONT_PT,
    "legend.fontsize": SMALL_FONT_PT,
    "legend.frameon": False,
    "legend.handlelength": 2.2,
    "axes.linewidth": 0.6,
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.prop_cycle": cycler(color=LINE_COLOURS),
    "grid.linewidth": 0.4,
    "grid.alpha": 0.35,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "errorbar.capsize": 2.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "figure.dpi": PNG_DPI,  # PNGs are saved at the figure's resolution
    "figure.constrained_layout.use": True,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,  # TrueType, not Type 3
    "ps.fonttype": 42,
    "svg.hashsalt": "fsllm-sim",
}
# What every figure, publication or not, is saved with: embedded TrueType fonts and reproducible files.
SAVE_RC = {key: RC[key] for key in ("pdf.fonttype", "ps.fonttype", "svg.hashsalt")}
SAVE_METADATA = {"pdf": {"CreationDate": None}}  # by format: no timestamp, so equal data give equal bytes


def styled(draw):
    """Run a drawing function inside the publication style (font sizes are fixed when artists are made)."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return draw(*args, **kwargs)
    return wrapper


def new_figure(nrows: int = 1, ncols: int = 1, *, width_in: float = SINGLE_COLUMN_IN,
               height_in: float | None = None, sharex: bool = False):
    """``plt.subplots`` at print size: single-column width, stacked panels of :data:`PANEL_HEIGHT_IN` each."""
    if height_in is None:
        height_in = DEFAULT_HEIGHT_IN if nrows == 1 else 0.45 + PANEL_HEIGHT_IN * nrows
    return plt.subplots(nrows, ncols, figsize=(width_in, height_in), sharex=sharex, squeeze=False)


def series_styles(labels) -> dict:
    """``{label: {"color", "marker", "linestyle"}}``: known methods keep their colour across figures, the others
    take the unused palette colours in order; marker and dash pattern differ line by line."""
    labels = list(labels)
    taken: set[str] = set()
    colours: dict[str, str] = {}
    for label in labels:  # preferred colours first, each used once, so two methods never share one
        preferred = METHOD_COLOURS.get(_method_of(label))
        if preferred is not None and preferred not in taken:
            colours[label] = preferred
            taken.add(preferred)
    spare = (c for c in cycle(LINE_COLOURS) if c not in taken or len(taken) >= len(LINE_COLOURS))
    out = {}
    for i, label in enumerate(labels):
        colour = colours.get(label) or next(spare)
        out[label] = {"color": colour, "marker": MARKERS[i % len(MARKERS)], "linestyle": DASHES[i % len(DASHES)]}
    return out


def _method_of(label) -> str:
    """The method part of a series label such as ``bcd`` or ``bcd, clients.count=4``; a sweep's method variant
    ``bcd/fixed-split`` is coloured as its variant."""
    method = str(label).split(",")[0].strip().lower()
    return method.rpartition("/")[2] if "/" in method else method


# SI prefixes for the units that span many decades in this simulator's outputs.
_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
SCALABLE_UNITS = ("Hz", "FLOP", "FLOP/s", "bit", "bit/s", "B")


def scaled_unit(values, unit: str) -> tuple[float, str]:
    """(factor, unit label) to show ``values`` in a readable prefixed unit: plotted = value / factor.

    Only the units of :data:`SCALABLE_UNITS` are rescaled (a dBm or a second keeps its unit); bytes use the
    decimal prefixes too (kB, MB, GB), as device memory is quoted.
    """
    finite = [abs(float(v)) for v in values if v is not None and float(v) == float(v)]
    if unit not in SCALABLE_UNITS or not finite:
        return 1.0, unit
    top = max(finite)
    for factor, prefix in _PREFIXES:
        if top >= factor:
            return factor, prefix + unit
    return 1.0, unit


def axis_label(name: str, unit: str = "") -> str:
    """``name (unit)``, or the bare name for a dimensionless quantity."""
    return f"{name} ({unit})" if unit else name
