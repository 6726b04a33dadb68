"""Joint subchannel, power, split and rank optimisation (spec section 5).

    from solvers import solve
    sol = solve(problem)                       # bcd, all allowed (split, rank) pairs
    sol = solve(problem, "equal", split=10)    # a baseline at a fixed split

Methods: see ``METHODS``; the online (per-round) policy is ``OnlinePolicy``; your own method: ``register_method``
or a scenario's ``solver.plugins`` (:mod:`solvers.plugins`, docs/plugins.md).
"""
from .online import OnlinePolicy
from .problem import Problem, Solution, SplitRankProfile, check_allocation, evaluate
from .registry import (DEFAULT_METHOD, METHODS, get_method, is_method, load_plugins, method_names, register_method,
                       solve)

__all__ = ["Problem", "Solution", "SplitRankProfile", "evaluate", "check_allocation", "solve", "METHODS",
           "DEFAULT_METHOD", "get_method", "is_method", "method_names", "register_method", "load_plugins",
           "OnlinePolicy"]
