"""Figures written into run directories (matplotlib, headless)."""
from .delay_breakdown import plot_delay_breakdown
from .layout import plot_layout

__all__ = ["plot_delay_breakdown", "plot_layout"]
