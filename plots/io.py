"""Atomic figure writing: a reader never sees a half-written image.

Figures land in run directories that other processes (a sweep driver, a notebook, a file server) may read
while a run is still going, and a run may be killed mid-write. ``fig.savefig(path)`` writes in place, so an
interrupted or failing render leaves a truncated file, or destroys the previous good figure. Here the figure
is rendered to a hidden temporary file in the same folder (same file system, so the final ``os.replace`` is
an atomic rename), synced to disk, made world-readable (``mkstemp`` creates files 0o600), and only then
moved over ``path``: :func:`fsllm_sim.rundir.atomic_write`, the writer of every other output too. On any failure the temporary file is removed and the old figure stays untouched.
The temporary file is named ``.<NAME>.tmp-<pid>-<random>``, as every temporary file of ``fsllm_sim.rundir``,
so one that survives a SIGKILL is recognised and removed later (``fsllm_sim.rundir.remove_stale_temp_files``).

Every PDF embeds its fonts as TrueType and carries no creation date (:mod:`plots.style`); the publication figures
go through :func:`save_figure_formats`, which writes the PNG (at print resolution) and the PDF of one figure.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import matplotlib.pyplot as plt  # noqa: E402

from fsllm_sim.rundir import atomic_write  # noqa: E402  (the project's one atomic writer)

from .style import RC, SAVE_METADATA, SAVE_RC  # noqa: E402

FORMATS = ("png", "pdf")  # a raster for slides and web pages, a vector file for the paper


def save_figure(fig, path: str | Path) -> Path:
    """Render ``fig`` atomically to ``path`` (format from its final suffix), close the figure, return the path.

    Raises ``ValueError`` when ``path`` has no suffix or matplotlib does not know the format; ``path`` is then
    left exactly as it was.
    """
    path = Path(path)
    try:
        _write(fig, path, SAVE_RC)
    finally:
        plt.close(fig)
    return path


def save_figure_formats(fig, stem: str | Path, formats=FORMATS) -> list[Path]:
    """Render ``fig`` atomically to ``stem.png`` and ``stem.pdf`` (``formats``), close it, return the paths.

    ``stem`` is the path without a suffix (``figures/rank_tradeoff``); its folder must exist.
    """
    stem = Path(stem)
    try:
        return [_write(fig, stem.with_name(f"{stem.name}.{fmt}"), RC) for fmt in formats]
    finally:
        plt.close(fig)


def _write(fig, path: Path, rc: dict) -> Path:
    fmt = path.suffix[1:].lower()
    if not fmt:
        raise ValueError(f"cannot infer a figure format from {str(path)!r}: it has no suffix")
    with plt.rc_context(rc):  # pdf.fonttype, the resolution and the bounding box are read when the file is written
        atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, metadata=SAVE_METADATA.get(fmt)),
                     make_parent=False)
    return path
