"""Backends that solve a :class:`solvers.milp_model.LinearModel`: HiGHS and Gurobi (with a HiGHS fallback).

A backend object has ``solve(model, time_limit_s=, mip_rel_gap=, relax=)`` returning a
:class:`solvers.milp_model.MilpResult`, a list ``notes`` and a ``used`` name. Backends import the model
module only, never a solver method (those are in :mod:`solvers.exact` and :mod:`solvers.relaxation`).
"""
from .gurobi import SIZE_LIMITED_LICENCE, GurobiBackend, licence_excess, solve_gurobi_model
from .highs import HighsBackend, solve_highs

__all__ = ["make_backend", "HighsBackend", "solve_highs", "GurobiBackend", "solve_gurobi_model",
           "SIZE_LIMITED_LICENCE", "licence_excess"]


def make_backend(backend: str = "highs", **kw):
    """A backend object with ``solve(model, time_limit_s=, mip_rel_gap=, relax=)`` and ``notes``."""
    if backend == "highs":
        return HighsBackend(**kw)
    if backend == "gurobi":
        return GurobiBackend(**kw)
    raise ValueError(f"unknown MILP backend {backend!r}; use 'highs' or 'gurobi'")
