"""Figures written into run directories (matplotlib, headless)."""
from .delay_breakdown import plot_delay_breakdown
from .gantt import plot_round_gantt
from .io import save_figure
from .layout import plot_layout
from .loss_curve import plot_loss_vs_time

__all__ = ["plot_delay_breakdown", "plot_layout", "plot_loss_vs_time", "plot_round_gantt", "save_figure"]
