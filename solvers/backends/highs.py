"""The HiGHS backend: solves a :class:`solvers.milp_model.LinearModel` with highspy."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ..milp_model import INF, LinearModel, MilpResult


def solve_highs(model: LinearModel, *, time_limit_s: Optional[float] = None, mip_rel_gap: float = 1e-6,
                relax: bool = False, threads: Optional[int] = None) -> MilpResult:
    """Solve ``model`` with HiGHS (as an LP when ``relax`` or when nothing is integer)."""
    import highspy

    t0 = time.perf_counter()
    cost, cl, cu, integer, rl, ru = model.arrays()
    start, index, value = model.csr()
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = model.num_cols
    lp.num_row_ = model.num_rows
    lp.col_cost_ = cost
    lp.col_lower_ = np.where(np.isfinite(cl), cl, -inf)
    lp.col_upper_ = np.where(np.isfinite(cu), cu, inf)
    lp.row_lower_ = np.where(np.isfinite(rl), rl, -inf)
    lp.row_upper_ = np.where(np.isfinite(ru), ru, inf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    is_mip = bool(np.any(integer)) and not relax
    if is_mip:
        lp.integrality_ = [highspy.HighsVarType.kInteger if b else highspy.HighsVarType.kContinuous
                           for b in integer]
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(max(time_limit_s, 0.01)))
    if is_mip:
        h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
        h.setOptionValue("mip_abs_gap", 0.0)
    if threads is not None:
        h.setOptionValue("threads", int(threads))
    h.passModel(lp)
    h.run()
    ms = h.getModelStatus()
    name = h.modelStatusToString(ms)
    info = h.getInfo()
    S = highspy.HighsModelStatus
    has_x = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = np.asarray(h.getSolution().col_value, dtype=float) if has_x else None
    obj = float(info.objective_function_value) if has_x else INF
    runtime = time.perf_counter() - t0
    if ms == S.kOptimal:
        if is_mip:
            bound = float(info.mip_dual_bound)
            row_dual = None
        else:
            bound = obj
            row_dual = np.asarray(h.getSolution().row_dual, dtype=float)
        return MilpResult("optimal", x, obj, bound, "highs", runtime, row_dual, name)
    if ms in (S.kInfeasible,) or (ms == S.kUnboundedOrInfeasible and np.all(np.isfinite(cl) & np.isfinite(cu))):
        return MilpResult("infeasible", None, INF, INF, "highs", runtime, None, name)
    if ms in (S.kTimeLimit, S.kIterationLimit, S.kInterrupt, S.kSolutionLimit):
        bound = float(info.mip_dual_bound) if is_mip else -INF
        return MilpResult("time_limit", x, obj, bound if np.isfinite(bound) else -INF, "highs", runtime, None, name)
    return MilpResult("error", x, obj, -INF, "highs", runtime, None, f"HiGHS: {name}")


class HighsBackend:
    name = "highs"

    def __init__(self, threads: Optional[int] = None):
        self.threads = threads
        self.notes: list[str] = []
        self.used = "highs"

    def solve(self, model: LinearModel, **kw) -> MilpResult:
        return solve_highs(model, threads=self.threads, **kw)
