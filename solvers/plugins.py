"""Allocation methods from outside the project: installed entry points and modules named by a scenario.

A method is any callable ``(problem, split=None, rank=None, **options) -> solvers.Solution`` (the contract of
:data:`solvers.registry.METHODS`). There are three ways to make one usable by ``optimize``, ``run
--allocation``, ``compare --methods``, the online policy and sweeps; every one ends in
:func:`solvers.registry.register_method`, and every result is re-scored by :func:`solvers.registry.solve`
(the objective its allocation achieves, constraints included), so a plug-in cannot report a number it does
not reach and cannot claim "optimal":

1. in Python, before calling the API: ``solvers.register_method("mine", solve_mine)``;
2. a scenario's ``solver.plugins``: a list of modules (``package.module``) or Python files (``path/to/x.py``,
   relative to the scenario file), imported once per process by :func:`solvers.registry.load_plugins`. Such a module registers
   its methods when imported, or defines ``FSLLM_SIM_METHODS = {"name": callable}``;
3. an installed package's entry points in the group ``fsllm_sim.methods`` (``name = "package.module:function"``),
   loaded when their name is first asked for (:func:`entry_point_method`).

A plug-in name must be new (a built-in cannot be replaced by accident) and match ``[a-z][a-z0-9_-]*``.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Callable, Optional

from fsllm_sim.errors import SolverError

ENTRY_POINT_GROUP = "fsllm_sim.methods"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_loaded: dict[str, str] = {}  # plugin spec (resolved) -> module name, imported in this process


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SolverError(f"plug-in method name {name!r} must match [a-z][a-z0-9_-]* (at most 64 characters)")
    return name


def _module_from_file(path: Path) -> object:
    name = "fsllm_sim_plugin_" + re.sub(r"[^0-9a-zA-Z_]", "_", path.stem) + f"_{abs(hash(str(path))) % 10 ** 8}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SolverError(f"solver.plugins: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SolverError:
        sys.modules.pop(name, None)
        raise
    except Exception as err:  # a user's module: any failure becomes one line naming it
        sys.modules.pop(name, None)
        raise SolverError(f"solver.plugins: importing {path} failed: {type(err).__name__}: {err}") from None
    return module


def import_plugin(spec: str, base_dir: Optional[os.PathLike] = None):
    """Import one plug-in (a module name or a .py file): (key, module), or None if it was imported already in
    this process. The caller registers what it declares (:func:`solvers.registry.load_plugin`)."""
    if not isinstance(spec, str) or not spec.strip():
        raise SolverError(f"solver.plugins: {spec!r} is not a module name or a .py file")
    is_file = spec.endswith(".py") or os.sep in spec or "/" in spec
    if not is_file:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", spec):
            raise SolverError(f"solver.plugins: {spec!r} is not a module name (a.b.c) or a .py file")
        if spec in _loaded:
            return None
        try:
            module = importlib.import_module(spec)
        except ModuleNotFoundError as err:
            raise SolverError(f"solver.plugins: module {spec!r} not found ({err.name} is missing)") from None
        except Exception as err:
            raise SolverError(f"solver.plugins: importing {spec!r} failed: {type(err).__name__}: {err}") from None
        return spec, module
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    path = path.resolve()
    if str(path) in _loaded:
        return None
    if not path.is_file():
        raise SolverError(f"solver.plugins: no such file {spec!r} (resolved to {path})")
    return str(path), _module_from_file(path)


def declared_methods(module, spec: str) -> Optional[dict]:
    """A plug-in module's ``FSLLM_SIM_METHODS`` (name -> callable), checked; None if it declares none."""
    declared = getattr(module, "FSLLM_SIM_METHODS", None)
    if declared is None:
        return None
    if not isinstance(declared, dict):
        raise SolverError(f"solver.plugins: {spec}: FSLLM_SIM_METHODS must be a dict name -> callable")
    for name, fn in declared.items():
        check_name(name)
        if not callable(fn):
            raise SolverError(f"solver.plugins: {spec}: FSLLM_SIM_METHODS[{name!r}] is not callable")
    return dict(declared)


def mark_loaded(key: str, module) -> None:
    _loaded[key] = getattr(module, "__name__", key)


def _entry_points():
    try:
        return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken installed distribution must not break the built-in methods
        return ()


def entry_point_names() -> list[str]:
    """Names of the methods installed packages offer (not imported until used)."""
    return sorted({ep.name for ep in _entry_points()})


def entry_point_method(name: str) -> Optional[Callable]:
    """The callable behind entry point ``name`` of the group, loaded now; None if no package offers it."""
    for ep in _entry_points():
        if ep.name == name:
            check_name(name)
            try:
                fn = ep.load()
            except Exception as err:
                raise SolverError(f"entry point {ENTRY_POINT_GROUP}:{name} ({ep.value}) failed to load: "
                                  f"{type(err).__name__}: {err}") from None
            if not callable(fn):
                raise SolverError(f"entry point {ENTRY_POINT_GROUP}:{name} ({ep.value}) is not callable")
            return fn
    return None
