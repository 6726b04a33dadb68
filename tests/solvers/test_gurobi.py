"""The Gurobi backend: same formulation as HiGHS, honest one-line fallbacks, never a crash."""
import sys

import numpy as np
import pytest

from solvers.exact import solve_milp
from solvers.gurobi_backend import (SIZE_LIMITED_LICENCE, GurobiBackend, licence_excess, solve_gurobi)
from solvers.instances import random_problem, synthetic_profile
from solvers.milp import LinearModel, safe_lp_bound, solve_highs

PROFILE = synthetic_profile(splits=[2, 12, 24], ranks=[1, 4, 16])


def instance(seed, k=3, m=5, n=4, caps=(None, None)):
    return random_problem(np.random.default_rng(seed), k, m, n, profile=PROFILE,
                          total_cap_s_w=caps[0], total_cap_f_w=caps[1])


def knapsack(num_vars: int) -> LinearModel:
    """max sum v_j x_j s.t. sum_j x_j <= W, x binary (as a minimisation; easy, so large sizes stay fast)."""
    rng = np.random.default_rng(num_vars)
    m = LinearModel()
    x = m.add_cols(num_vars, cost=-rng.uniform(1, 2, num_vars), lower=0.0, upper=1.0, integer=True)
    m.add_row(x, np.ones(num_vars), upper=num_vars // 4)
    m.add_row(x[:3], [1.0, 1.0, 1.0], lower=0.5, upper=2.0)  # a ranged row
    return m


def gurobi_works() -> bool:
    try:
        import gurobipy as gp

        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        env.dispose()
        return True
    except Exception:  # not installed, or no licence
        return False


needs_gurobi = pytest.mark.skipif(not gurobi_works(), reason="gurobipy is not installed or has no licence here")


def test_licence_excess_says_what_is_too_big_in_one_line():
    size = {"variables": 4312, "integer_variables": 100, "linear_constraints": 10, "nonlinear_terms": 0}
    assert licence_excess(size) == "model has 4312 variables, above the size-limited licence's 2000"
    size = {"variables": 100, "integer_variables": 0, "linear_constraints": 2500, "nonlinear_terms": 0}
    assert licence_excess(size) == "model has 2500 linear constraints, above the size-limited licence's 2000"
    size = {"variables": 300, "integer_variables": 0, "linear_constraints": 10, "nonlinear_terms": 1}
    assert "200" in licence_excess(size)
    assert licence_excess({"variables": 2000, "linear_constraints": 2000, "nonlinear_terms": 0}) is None
    assert licence_excess({"variables": 10 ** 6, "linear_constraints": 0}, limits=None) is None


def test_model_size_counts_a_ranged_row_twice():
    m = LinearModel()
    x = m.add_cols(3)
    m.add_row(x, [1, 1, 1], lower=0.0, upper=1.0)
    m.add_row(x, [1, 0, 1], upper=1.0)
    m.add_row(x, [1, 0, 1], lower=1.0, upper=1.0)
    assert m.size()["linear_constraints"] == 4 and m.size()["variables"] == 3


def test_over_the_size_limit_falls_back_to_highs_with_one_note():
    model = knapsack(2100)
    backend = GurobiBackend()
    res = backend.solve(model)
    again = backend.solve(model)
    reference = solve_highs(model)
    assert res.backend == "highs" and again.backend == "highs"
    assert res.objective == pytest.approx(reference.objective, rel=1e-6)
    assert len(backend.notes) == 1
    note = backend.notes[0]
    assert "\n" not in note
    assert note.startswith("gurobi: ") and note.endswith("solving with HiGHS instead")
    assert "2100 variables" in note or "gurobipy is not installed" in note


@needs_gurobi
def test_a_real_error_10010_is_caught_and_falls_back():
    """Without the size pre-check, Gurobi itself refuses the model (error 10010) at optimize()."""
    model = knapsack(SIZE_LIMITED_LICENCE["variables"] + 50)
    backend = GurobiBackend(size_limits=None)
    res = backend.solve(model)
    assert res.backend == "highs"
    assert res.objective == pytest.approx(solve_highs(model).objective, rel=1e-6)
    assert len(backend.notes) == 1 and "\n" not in backend.notes[0]
    assert "10010" in backend.notes[0] or "licen" in backend.notes[0].lower()


@needs_gurobi
def test_small_model_runs_on_gurobi_and_agrees_with_highs():
    model = knapsack(40)
    backend = GurobiBackend()
    res = backend.solve(model)
    assert res.backend == "gurobi" and res.status == "optimal"
    assert backend.notes == []
    assert res.objective == pytest.approx(solve_highs(model).objective, rel=1e-6)
    lp = backend.solve(model, relax=True)
    lp_h = solve_highs(model, relax=True)
    assert lp.objective == pytest.approx(lp_h.objective, rel=1e-9)
    # Same dual sign convention: the Lagrangian bound from Gurobi's duals is tight too.
    assert safe_lp_bound(model, lp.row_dual) == pytest.approx(lp.objective, rel=1e-9)


@needs_gurobi
@pytest.mark.parametrize("seed,caps", [(0, (None, None)), (1, (0.25, 0.25))])
def test_exact_on_gurobi_agrees_with_highs(seed, caps):
    pb = instance(seed, caps=caps)
    g = solve_gurobi(pb, rank=4)
    h = solve_milp(pb, rank=4)
    assert g.method == "gurobi"
    assert any("on gurobi" in n for n in g.notes), g.notes
    assert g.status == h.status == "optimal"
    assert g.objective_s == pytest.approx(h.objective_s, rel=2e-4)
    assert g.lower_bound_s <= h.objective_s * (1 + 1e-9) and h.lower_bound_s <= g.objective_s * (1 + 1e-9)


def test_exact_falls_back_mid_run_when_the_model_grows_past_the_limit():
    """Cuts make the model grow; with a (tiny, for the test) limit HiGHS takes over and says so once."""
    pb = instance(2)
    limits = {"variables": 2000, "linear_constraints": 300, "nonlinear_variables": 200}
    g = solve_gurobi(pb, rank=4, size_limits=limits)
    h = solve_milp(pb, rank=4)
    fallbacks = [n for n in g.notes if n.startswith("gurobi: ")]
    assert len(fallbacks) == 1 and "solving with HiGHS instead" in fallbacks[0]
    if gurobi_works():
        assert "above the size-limited licence's 300" in fallbacks[0] and "after" in fallbacks[0]
        assert any("on gurobi, then highs" in n for n in g.notes)
    assert g.status == "optimal"
    assert g.objective_s == pytest.approx(h.objective_s, rel=2e-4)


def test_missing_gurobipy_falls_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "gurobipy", None)  # import gurobipy now raises ImportError
    pb = instance(3, k=2, m=4, n=3)
    sol = solve_gurobi(pb, split=12, rank=4)
    assert sol.notes[0] == "gurobi: gurobipy is not installed; solving with HiGHS instead"
    assert sol.status == "optimal"


def test_gurobi_through_the_registry():
    from solvers import solve

    sol = solve(instance(4, k=2, m=4, n=3), "gurobi", split=12)
    assert sol.method == "gurobi" and sol.split == 12 and sol.status == "optimal"


def test_gurobi_under_a_tiny_time_limit_returns_no_worse_than_bcd():
    from solvers import solve

    pb = random_problem(np.random.default_rng(9), 6, 16, 10, profile=PROFILE)
    sol = solve(pb, "gurobi", time_limit_s=0.01)
    assert sol.method == "gurobi"
    assert sol.objective_s <= solve(pb, "bcd").objective_s
    assert sol.lower_bound_s <= sol.objective_s
    assert sol.status != "optimal" or sol.gap <= 1e-4
