"""Figures written into run directories and by `fsllm-sim plot` (matplotlib, headless, one publication style).

The ``plot_*`` functions write one file of a run directory; the ``*_figure`` functions write PNG and PDF in the
publication style of :mod:`plots.style` and return the matplotlib Figure. None imports solvers, the engine or
the jobs: they draw the plain rows and arrays they are given.
"""
from .delay_breakdown import breakdown_figure, plot_delay_breakdown
from .doppler import doppler_gap_figure
from .gantt import gantt_figure, plot_round_gantt
from .io import save_figure, save_figure_formats
from .layout import plot_layout
from .loss_curve import loss_figure, plot_loss_vs_time
from .participation import plot_participation
from .sweep import delay_vs_axis_figure
from .tradeoffs import decision_cost_figure, rank_tradeoff_figure, split_tradeoff_figure

__all__ = ["breakdown_figure", "decision_cost_figure", "delay_vs_axis_figure", "doppler_gap_figure", "gantt_figure",
           "loss_figure", "plot_delay_breakdown", "plot_layout", "plot_loss_vs_time", "plot_participation",
           "plot_round_gantt",
           "rank_tradeoff_figure", "save_figure", "save_figure_formats", "split_tradeoff_figure"]
