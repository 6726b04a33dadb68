"""Plug-in allocation methods (solvers.plugins): files and modules named by a scenario, installed entry points,
and the one-line errors for plug-ins that cannot be used. Every plug-in's result is re-scored by solve()."""

import sys
import textwrap

import pytest

import solvers
from fsllm_sim.errors import SolverError
from solvers import METHODS, is_method, load_plugins, method_names, solve
from solvers.plugins import ENTRY_POINT_GROUP
from solvers.registry import load_plugin

from solver_helpers import tiny_problem


@pytest.fixture
def clean_registry():
    before = dict(METHODS)
    yield
    for name in set(METHODS) - set(before):
        del METHODS[name]


def _write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_file_plugin_declared_methods_are_solved_and_rescored(tmp_path, clean_registry):
    path = _write(tmp_path, "mine.py", """
        from solvers.baselines import solve_equal, solve_random

        def solve_mine(problem, split=None, rank=None, **options):
            return solve_equal(problem, split=split, rank=rank)

        FSLLM_SIM_METHODS = {"pl-file-mine": solve_mine}
    """)
    assert load_plugins([str(path)]) == ["pl-file-mine"]
    assert load_plugins([str(path)]) == []  # imported once per process
    problem = tiny_problem()
    mine, equal = solve(problem, "pl-file-mine"), solve(problem, "equal")
    assert mine.objective_s == pytest.approx(equal.objective_s, rel=1e-12)
    assert mine.status != "optimal"  # a plug-in is not certified


def test_relative_file_resolves_against_base_dir_and_module_registering_at_import(tmp_path, clean_registry,
                                                                                 monkeypatch):
    _write(tmp_path, "rel.py", """
        import solvers
        from solvers.baselines import solve_max_power
        solvers.register_method("pl-rel", lambda problem, split=None, rank=None, **o:
                                solve_max_power(problem, split=split, rank=rank))
    """)
    assert load_plugin("rel.py", base_dir=tmp_path) == ["pl-rel"]
    pkg = tmp_path / "pkgroot"
    pkg.mkdir()
    _write(pkg, "pl_module_x.py", """
        from solvers.baselines import solve_equal
        FSLLM_SIM_METHODS = {"pl-module": lambda problem, split=None, rank=None, **o:
                             solve_equal(problem, split=split, rank=rank)}
    """)
    monkeypatch.syspath_prepend(str(pkg))
    assert load_plugin("pl_module_x") == ["pl-module"]
    assert is_method("pl-module") and "pl-module" in method_names()


@pytest.mark.parametrize("body, message", [
    ("raise RuntimeError('boom')", "importing .* failed: RuntimeError: boom"),
    ("x = 1", "registered no method"),
    ("FSLLM_SIM_METHODS = {'Bad Name': print}", "must match"),
    ("FSLLM_SIM_METHODS = {'pl-notcallable': 3}", "is not callable"),
    ("FSLLM_SIM_METHODS = {'bcd': print}", "already registered"),
    ("FSLLM_SIM_METHODS = [1]", "must be a dict"),
])
def test_bad_plugins_give_one_line(tmp_path, clean_registry, body, message):
    path = _write(tmp_path, f"bad_{abs(hash(body))}.py", body)
    with pytest.raises(SolverError, match=message) as err:
        load_plugin(str(path))
    assert "\n" not in str(err.value)
    assert METHODS["bcd"] is solvers.registry.solve_bcd


def test_missing_file_and_module(tmp_path):
    with pytest.raises(SolverError, match="no such file"):
        load_plugin(str(tmp_path / "absent.py"))
    with pytest.raises(SolverError, match="module 'no_such_module_xyz' not found"):
        load_plugin("no_such_module_xyz")
    with pytest.raises(SolverError, match="not a module name"):
        load_plugin("not a module")


def test_entry_point_is_loaded_when_first_named(tmp_path, clean_registry, monkeypatch):
    """An installed distribution (a .dist-info on sys.path) offering a method in the fsllm_sim.methods group."""
    site = tmp_path / "site"
    site.mkdir()
    _write(site, "pl_ep_module.py", """
        from solvers.baselines import solve_random
        def solve_ep(problem, split=None, rank=None, **options):
            return solve_random(problem, split=split, rank=rank, **options)
    """)
    dist = site / "pl_ep_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pl-ep-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\npl-ep = pl_ep_module:solve_ep\n")
    monkeypatch.syspath_prepend(str(site))
    assert "pl-ep" not in METHODS and "pl-ep" in method_names()
    sol = solve(tiny_problem(), "pl-ep")
    assert "pl-ep" in METHODS and sol.objective_s > 0
    assert not is_method("pl-no-such-entry")
    with pytest.raises(SolverError, match="unknown solver method 'pl-no-such-entry'.*pl-ep"):
        solvers.get_method("pl-no-such-entry")
    sys.modules.pop("pl_ep_module", None)
