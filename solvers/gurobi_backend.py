"""Former home of the Gurobi backend and the "gurobi" method, kept so old imports still work.

The backend (``GurobiBackend``, ``solve_gurobi_model``, ``licence_excess``, ``SIZE_LIMITED_LICENCE``)
lives in :mod:`solvers.backends.gurobi`; the method ``solve_gurobi`` in :mod:`solvers.exact`. Nothing
inside ``solvers`` imports this module, so it cannot close a cycle.
"""
from .backends.gurobi import SIZE_LIMITED_LICENCE, GurobiBackend, licence_excess, solve_gurobi_model
from .exact import solve_gurobi

__all__ = ["SIZE_LIMITED_LICENCE", "GurobiBackend", "licence_excess", "solve_gurobi_model", "solve_gurobi"]
