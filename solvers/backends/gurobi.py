"""The Gurobi backend, with an honest fallback to HiGHS.

The model is the one of :mod:`solvers.milp_model` (one formulation, two backends): ``LinearModel`` arrays
are handed to gurobipy as they are handed to HiGHS. The formulation is purely linear (the rate and
time nonlinearities are outer-approximated by cuts), so no nonlinear term is ever sent.

Gurobi may be unusable here for three reasons, and each one makes the backend say so in one note
and solve with HiGHS instead (never a crash):

* gurobipy is not installed, or no licence can be started;
* the model is larger than a size-limited licence allows. The pip licence of gurobipy caps a model
  at 2 000 variables and 2 000 linear constraints (200 variables once any quadratic or nonlinear term
  appears); exceeding it fails only at ``optimize()`` with error 10010. The size is counted first
  (``size_limits``, pass ``None`` with a full licence) so the fallback note says what was too big;
* ``optimize()`` raises ``GurobiError`` anyway (10010 when the limits differ from the assumed ones,
  or any licence error).

The outer-approximation loop adds rows, so a model may cross the limit after a few Gurobi solves;
from then on HiGHS finishes the job and the note says when it happened.

The solver method that runs the exact solver's MILP through this backend is
:func:`solvers.exact.solve_gurobi` (registered as method "gurobi").
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ..milp_model import INF, LinearModel, MilpResult
from .highs import HighsBackend

# The size-limited (pip) licence: variables, linear constraints, variables with nonlinear terms.
SIZE_LIMITED_LICENCE = {"variables": 2000, "linear_constraints": 2000, "nonlinear_variables": 200}


def licence_excess(size: dict, limits: Optional[dict] = SIZE_LIMITED_LICENCE) -> Optional[str]:
    """The one-line reason a model does not fit ``limits`` (None when it fits or there are no limits)."""
    if limits is None:
        return None
    if size.get("nonlinear_terms", 0) and size["variables"] > limits["nonlinear_variables"]:
        return (f"model has {size['variables']} variables and nonlinear terms, above the size-limited "
                f"licence's {limits['nonlinear_variables']}")
    if size["variables"] > limits["variables"]:
        return f"model has {size['variables']} variables, above the size-limited licence's {limits['variables']}"
    if size["linear_constraints"] > limits["linear_constraints"]:
        return (f"model has {size['linear_constraints']} linear constraints, above the size-limited "
                f"licence's {limits['linear_constraints']}")
    return None


class GurobiBackend:
    """``solve(model, time_limit_s=, mip_rel_gap=, relax=)`` on Gurobi, or on HiGHS after a fallback."""

    name = "gurobi"

    def __init__(self, threads: Optional[int] = None, size_limits: Optional[dict] = SIZE_LIMITED_LICENCE):
        self.threads = threads
        self.size_limits = size_limits
        self.notes: list[str] = []
        self.gurobi_solves = 0
        self.highs_solves = 0
        self._highs = HighsBackend(threads=threads)
        self._fallen_back = False
        self._env = None
        try:
            import gurobipy  # noqa: F401
        except ImportError:
            self._fall_back("gurobipy is not installed")

    @property
    def used(self) -> str:
        if self.gurobi_solves and self.highs_solves:
            return "gurobi, then highs"
        return "highs" if self.highs_solves else "gurobi"

    def _fall_back(self, reason: str) -> None:
        if not self._fallen_back:
            when = f" after {self.gurobi_solves} Gurobi solves" if self.gurobi_solves else ""
            self.notes.append(f"gurobi: {reason}; solving with HiGHS instead{when}")
        self._fallen_back = True

    def _highs_solve(self, model, **kw) -> MilpResult:
        self.highs_solves += 1
        return self._highs.solve(model, **kw)

    def _environment(self):
        import gurobipy as gp

        if self._env is None:
            env = gp.Env(empty=True)
            env.setParam("OutputFlag", 0)
            env.start()
            self._env = env
        return self._env

    def close(self) -> None:
        """Release the Gurobi environment (and its licence token), if one was started."""
        if self._env is not None:
            try:
                self._env.dispose()
            finally:
                self._env = None

    def solve(self, model: LinearModel, *, time_limit_s: Optional[float] = None, mip_rel_gap: float = 1e-6,
              relax: bool = False) -> MilpResult:
        kw = dict(time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, relax=relax)
        if self._fallen_back:
            return self._highs_solve(model, **kw)
        reason = licence_excess(model.size(), self.size_limits)
        if reason is not None:
            self._fall_back(reason)
            return self._highs_solve(model, **kw)
        import gurobipy as gp

        try:
            res = solve_gurobi_model(model, self._environment(), time_limit_s=time_limit_s,
                                     mip_rel_gap=mip_rel_gap, relax=relax, threads=self.threads)
        except gp.GurobiError as err:
            self._fall_back(f"error {getattr(err, 'errno', '?')} ({str(err).strip()})")
            return self._highs_solve(model, **kw)
        self.gurobi_solves += 1
        return res


def solve_gurobi_model(model: LinearModel, env, *, time_limit_s: Optional[float] = None,
                       mip_rel_gap: float = 1e-6, relax: bool = False,
                       threads: Optional[int] = None) -> MilpResult:
    """Solve a :class:`LinearModel` with gurobipy (raises ``GurobiError`` as gurobipy does)."""
    import gurobipy as gp
    import scipy.sparse as sp
    from gurobipy import GRB

    t0 = time.perf_counter()
    cost, cl, cu, integer, rl, ru = model.arrays()
    start, index, value = model.csr()
    n, m_rows = model.num_cols, model.num_rows
    is_mip = bool(np.any(integer)) and not relax
    g = gp.Model(env=env)
    try:
        g.Params.OutputFlag = 0
        if time_limit_s is not None:
            g.Params.TimeLimit = float(max(time_limit_s, 0.01))
        if is_mip:
            g.Params.MIPGap = float(mip_rel_gap)
            g.Params.MIPGapAbs = 0.0
        if threads is not None:
            g.Params.Threads = int(threads)
        vtype = np.where(integer & is_mip, GRB.INTEGER, GRB.CONTINUOUS)
        x = g.addMVar(n, lb=np.where(np.isfinite(cl), cl, -GRB.INFINITY),
                      ub=np.where(np.isfinite(cu), cu, GRB.INFINITY), obj=cost, vtype=vtype)
        a = sp.csr_matrix((value, index, start), shape=(m_rows, n))
        eq = np.isfinite(rl) & np.isfinite(ru) & (rl == ru)
        up = np.isfinite(ru) & ~eq
        lo = np.isfinite(rl) & ~eq
        parts = []
        for rows, sense, rhs in ((np.flatnonzero(eq), GRB.EQUAL, rl), (np.flatnonzero(up), GRB.LESS_EQUAL, ru),
                                 (np.flatnonzero(lo), GRB.GREATER_EQUAL, rl)):
            if rows.size:
                c = g.addMConstr(a[rows], x, sense, rhs[rows])
                parts.append((rows, c))
        g.ModelSense = GRB.MINIMIZE
        g.optimize()
        status = g.Status
        runtime = time.perf_counter() - t0
        has_x = g.SolCount > 0
        xv = np.asarray(x.X, dtype=float) if has_x else None
        obj = float(g.ObjVal) if has_x else INF
        if status == GRB.OPTIMAL:
            if is_mip:
                return MilpResult("optimal", xv, obj, float(g.ObjBound), "gurobi", runtime)
            duals = np.zeros(m_rows)
            for rows, c in parts:
                np.add.at(duals, rows, np.asarray(c.Pi, dtype=float))
            return MilpResult("optimal", xv, obj, obj, "gurobi", runtime, duals)
        if status in (GRB.INFEASIBLE, GRB.INF_OR_UNBD):
            return MilpResult("infeasible", None, INF, INF, "gurobi", runtime)
        if status in (GRB.TIME_LIMIT, GRB.INTERRUPTED, GRB.NODE_LIMIT, GRB.ITERATION_LIMIT, GRB.SOLUTION_LIMIT):
            bound = float(g.ObjBound) if is_mip else -INF
            return MilpResult("time_limit", xv, obj, bound, "gurobi", runtime)
        return MilpResult("error", xv, obj, -INF, "gurobi", runtime, message=f"Gurobi status {status}")
    finally:
        g.dispose()
