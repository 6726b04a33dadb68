"""Method registry and the ``solve`` dispatcher.

``METHODS`` maps a method name to a callable ``(problem, split=None, rank=None, **options) -> Solution``
(the same contract for every entry, like peft's mapping from a PEFT type to its class). Methods that
live in modules written separately (exact, gurobi, relaxation) are imported only when called, so the
rest works without them and a missing optional dependency (gurobipy) costs nothing until it is used.
``register_method`` adds one (a plug-in, or a test double); :mod:`solvers.plugins` loads them from a scenario's
``solver.plugins`` and from installed entry points.

``solve`` times the call, checks that a fixed split/rank was respected, re-scores the returned allocation
with :func:`solvers.problem.evaluate` (constraints included) and insists the objectives agree to 1e-9
relative, so no method can report a number its allocation does not achieve. Only certified methods may
say "optimal". Under ``protocol: sl`` and ``fl`` the methods are mapped as :mod:`solvers.protocols` says.
"""
from __future__ import annotations

import importlib
import time
from typing import Callable, Optional

import numpy as np

from fsllm_sim.errors import SolverError

from . import plugins
from .baselines import solve_equal, solve_max_power, solve_random
from .bcd import solve_bcd
from .problem import Problem, Solution, evaluate

DEFAULT_METHOD = "bcd"
# Methods whose "optimal" is a certificate (exhaustive enumeration / MILP to zero gap).
CERTIFIED_METHODS = {"exact", "gurobi"}
# Methods that return a lower bound rather than an allocation evaluate() can score.
BOUND_METHODS = {"relaxation"}
OBJECTIVE_RTOL = 1e-9
# The methods with an energy step and per-client splits (solvers.energy), for problems that ask for them.
ENERGY_METHODS = {"bcd": "solve_energy", "exact": "solve_energy_exact"}


def _lazy(module: str, attr: str, name: str) -> Callable[..., Solution]:
    def call(problem, split=None, rank=None, **options):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name == module:
                raise SolverError(f"method {name!r} is not available: module {module} is missing") from err
            raise SolverError(f"method {name!r} needs {err.name!r}, which is not installed") from err
        return getattr(mod, attr)(problem, split=split, rank=rank, **options)

    call.__name__ = attr
    call.__qualname__ = attr
    call.__doc__ = f"{module}:{attr} (imported when first called)."
    return call


METHODS: dict[str, Callable[..., Solution]] = {
    "bcd": solve_bcd,
    "exact": _lazy("solvers.exact", "solve_exact", "exact"),
    "gurobi": _lazy("solvers.exact", "solve_gurobi", "gurobi"),
    "relaxation": _lazy("solvers.relaxation", "solve_relaxation", "relaxation"),
    "equal": solve_equal,
    "random": solve_random,
    "max-power": solve_max_power,
}


BUILTIN_METHODS = frozenset(METHODS)


def register_method(name: str, fn: Callable[..., Solution], certified: bool = False, overwrite: bool = False):
    """Add a method to ``METHODS`` (``certified``: its "optimal" status may be trusted)."""
    if name in METHODS and not overwrite:
        raise SolverError(f"method {name!r} is already registered")
    METHODS[name] = fn
    if certified:
        CERTIFIED_METHODS.add(name)


def load_plugin(spec: str, base_dir=None) -> list[str]:
    """Import one plug-in (solvers.plugins) unless already imported and register its methods; returns the names
    it added."""
    before = set(METHODS)  # before the import: a module may register its methods as it is imported
    imported = plugins.import_plugin(spec, base_dir)
    if imported is None:
        return []
    key, module = imported
    declared = plugins.declared_methods(module, spec)
    for name, fn in (declared or {}).items():
        if METHODS.get(name) is not fn:
            register_method(name, fn)
    added = sorted(set(METHODS) - before)
    for name in added:
        plugins.check_name(name)
    if not added and declared is None:
        raise SolverError(f"solver.plugins: {spec} registered no method (call solvers.register_method at import, "
                          f"or define FSLLM_SIM_METHODS)")
    plugins.mark_loaded(key, module)
    return added


def load_plugins(specs, base_dir=None) -> list[str]:
    """:func:`load_plugin` for each spec, in order; returns every method name added."""
    added: list[str] = []
    for spec in specs or ():
        added += load_plugin(spec, base_dir)
    return added


def is_method(name: str) -> bool:
    """Whether ``name`` is a registered method, registering it from an installed entry point if one offers it
    (:mod:`solvers.plugins`)."""
    if name in METHODS:
        return True
    if not isinstance(name, str):
        return False
    fn = plugins.entry_point_method(name)
    if fn is None:
        return False
    register_method(name, fn)
    return True


def method_names() -> list[str]:
    """Every registered method and every installed entry point's, in registration order."""
    return list(METHODS) + [n for n in plugins.entry_point_names() if n not in METHODS]


def get_method(name: str) -> Callable[..., Solution]:
    if not is_method(name):
        raise SolverError(f"unknown solver method {name!r}; allowed: {', '.join(method_names())}")
    return METHODS[name]


def _not_worse_than_its_start(problem: Problem, sol: Solution, split, rank) -> Solution:
    """Under ergodic rates a pair the mean-gain search pruned or refined away can score better than bcd's choice:
    bcd then answers with the cheaper method it starts from (max-power: its greedy at full power, every pair
    scored ergodically) when that scores lower, so it never returns worse than that method. Applied here, by
    :func:`solve` (bcd itself cannot import the baselines, which build on it)."""
    start = solve_max_power(problem, split=split, rank=rank)
    if not start.objective_s < sol.objective_s * (1 - 1e-12):
        return sol
    better = evaluate(problem, start.split, start.rank, start.assign_s, start.power_s_w, start.assign_f,
                      start.power_f_w, method="bcd")
    better.status = "feasible"
    better.lower_bound_s = sol.lower_bound_s
    better.notes = sol.notes + [f"the greedy at full power (max-power) scored {start.objective_s:.6g} s at "
                                f"(split {start.split}, rank {start.rank}) under ergodic rates, below the search's "
                                f"{sol.objective_s:.6g} s at ({sol.split}, {sol.rank}): taken instead"]
    return better


def _same(a: float, b: float) -> bool:
    if not (np.isfinite(a) and np.isfinite(b)):
        return a == b
    return abs(a - b) <= OBJECTIVE_RTOL * max(abs(a), abs(b), 1e-300)


def solve(problem: Problem, method: str = DEFAULT_METHOD, split: Optional[int] = None,
          rank: Optional[int] = None, **options) -> Solution:
    """Solve ``problem`` with ``method`` (see ``METHODS``), optionally at a fixed split and/or rank."""
    if not isinstance(problem, Problem):
        raise SolverError(f"solve() needs a solvers.Problem, got {type(problem).__name__}")
    fn = get_method(method)
    start = time.perf_counter()
    if problem.protocol == "sl":  # nothing to allocate but split and rank: see solvers.protocols
        from .protocols import solve_sl

        sol = solve_sl(problem, split=split, rank=rank, method=method, **options)
    elif (problem.objective != "delay" or problem.per_client_split) and method in ENERGY_METHODS:
        # docs/energy.md: bcd and exact with the energy step and per-client splits; the baselines keep their
        # allocation (every device at f_max and its cap), scored by the problem's objective
        from . import energy

        sol = getattr(energy, ENERGY_METHODS[method])(problem, split=split, rank=rank, **options)
    else:
        sol = fn(problem, split=split, rank=rank, **options)
        if method == "bcd" and problem.rate_model == "ergodic" and problem.protocol == "sfl" \
                and problem.objective == "delay":
            sol = _not_worse_than_its_start(problem, sol, split, rank)
    if problem.protocol == "fl" and sol.status != "lower_bound":
        from .protocols import without_s_band

        sol = without_s_band(problem, sol)
    wall = time.perf_counter() - start
    if method not in BUILTIN_METHODS and sol.method != method:  # a plug-in built on another method: its own name
        sol.notes.append(f"{method}: the solution was labelled {sol.method!r} by the code it called")
        sol.method = method
    sol.notes[:0] = [n for n in problem.notes if n not in sol.notes]  # how the problem was built (fl: exclusions)
    if split is not None and sol.split != int(split):
        raise SolverError(f"method {method!r} returned split={sol.split}, but split={split} was fixed")
    if rank is not None and sol.rank != int(rank):
        raise SolverError(f"method {method!r} returned rank={sol.rank}, but rank={rank} was fixed")
    if method not in BOUND_METHODS and sol.status != "lower_bound":
        check = evaluate(problem, sol.split, sol.rank, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w,
                         method=method, frequency_hz=sol.frequency_hz, splits=sol.splits)
        if not _same(check.objective_s, sol.objective_s):
            raise SolverError(f"method {method!r} reported objective {sol.objective_s!r} s, but its allocation "
                              f"evaluates to {check.objective_s!r} s")
        if check.status == "over-budget":  # whatever the method called it (the baselines say feasible)
            sol.status = check.status
            sol.notes += [n for n in check.notes if n not in sol.notes]
        if sol.status == "optimal" and method not in CERTIFIED_METHODS:
            sol.status = "feasible"
            sol.notes.append(f"status downgraded: {method!r} is not a certified method")
    sol.wall_time_s = wall
    return sol
