"""Former home of the MILP formulation and its HiGHS backend, kept so old imports still work.

The formulation (``LinearModel``, ``MilpResult``, ``safe_lp_bound``, ``AllocationModel``) lives in
:mod:`solvers.milp_model`, the backends (``solve_highs``, ``HighsBackend``, ``make_backend``) in
:mod:`solvers.backends`. Nothing inside ``solvers`` imports this module, so it cannot close a cycle.
"""
from .backends import HighsBackend, make_backend, solve_highs
from .milp_model import INF, RATE_UNIT_BPS, AllocationModel, LinearModel, MilpResult, safe_lp_bound

__all__ = ["INF", "RATE_UNIT_BPS", "LinearModel", "MilpResult", "safe_lp_bound", "AllocationModel",
           "solve_highs", "HighsBackend", "make_backend"]
