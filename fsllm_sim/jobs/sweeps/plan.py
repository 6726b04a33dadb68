"""A sweep file expanded into validated points and runs, each keyed by the hash of what it computes.

Every point's scenario is built and checked (cross-field rules included) and every profile it needs is
computed before any run starts, so a bad value fails at once with one line naming the point. A run's key
hashes its resolved scenario (seed included), the contents of the files the scenario names (device trace,
calibration), the method, the evaluator, the profile source and :data:`ROW_FORMAT`: a changed base scenario,
trace or calibration gives new keys, so no stale result is ever reused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import solvers
from solvers.registry import BOUND_METHODS

from ...config import load_scenario, scenario_from_dict, scenario_to_dict
from ...config.loader import shorten
from ...config.sweep_file import METHOD_VARIANTS, SweepFile
from ...convergence import BUILTIN_CALIBRATION, builtin_calibration_path
from ...engine.allocation import EQUAL_SHARE, load_scenario_plugins
from ...errors import ConfigError
from ...profiles import memoised_profiles, scenario_profile
from .points import Run

ROW_FORMAT = 1  # bump when a row's meaning changes, so older results are not mixed with new ones
SEED_MODULUS = 2 ** 32  # scenario seeds are 32-bit


@dataclass(frozen=True)
class Plan:
    sweep: SweepFile
    base: object  # the base Scenario (with the file's `set:` overrides)
    points: list  # [(axes: ((path, value), ...), scenario)] in grid order
    runs: list  # [Run] in the order rows are written: point, then method, then seed
    profiles: dict  # profile memo for the workers (fsllm_sim.profiles.adopt_profiles)


def allowed_methods() -> list[str]:
    return [m for m in solvers.method_names() if m not in BOUND_METHODS] + [EQUAL_SHARE]


def check_methods(sweep: SweepFile) -> None:
    """Every method is a registered allocation method, equal-share, or METHOD/variant (one line otherwise)."""
    allowed = allowed_methods()
    text = f"{', '.join(allowed)}, or METHOD/{'|'.join(METHOD_VARIANTS)} (e.g. bcd/fixed-split)"
    for i, method in enumerate(sweep.methods):
        name, _, variant = method.partition("/")
        where = f"{sweep.path}: methods[{i}]: {shorten(method)}"
        if name in BOUND_METHODS:
            raise ConfigError(f"{where} computes a lower bound, not an allocation (allowed: {text})")
        if name not in allowed or (variant and (variant not in METHOD_VARIANTS or name == EQUAL_SHARE)):
            raise ConfigError(f"{where} is not a method (allowed: {text})")


def _with_override(data: dict, path: str, value) -> dict:
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return data


def _grid(sweep: SweepFile):
    """Yield the overrides of every point: the Cartesian product of the axes and the zipped group."""
    factors = [[((p, v),) for v in values] for p, values in sweep.axes]
    if sweep.zipped:
        length = len(sweep.zipped[0][1])
        factors.append([tuple((p, values[i]) for p, values in sweep.zipped) for i in range(length)])
    for combo in itertools.product(*factors):
        yield tuple(pair for group in combo for pair in group)


def _file_digest(path, cache: dict) -> str | None:
    if path is None:
        return None
    if path == BUILTIN_CALIBRATION:  # the shipped fit may change between versions: hash it too
        path = str(builtin_calibration_path())
    if path not in cache:
        try:
            cache[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            cache[path] = "unreadable"  # the run itself reports it as an error row
    return cache[path]


def config_key(data: dict, files: dict) -> str:
    text = json.dumps({"scenario": data, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_key(cfg_key: str, method: str, evaluator: str, profile: str) -> str:
    text = json.dumps([ROW_FORMAT, cfg_key, method, evaluator, profile])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _seeded(scenario, seed: int, digests: dict) -> tuple:
    """(the scenario at ``seed``, its configuration key: the resolved scenario and the files it names)."""
    seeded = dataclasses.replace(scenario, seed=seed)
    files = {"devices.speed.trace_path": _file_digest(seeded.devices.speed.trace_path, digests),
             "convergence.calibration": _file_digest(seeded.convergence.calibration, digests)}
    for field in ("mobility", "availability"):  # a world that changes by a trace: its file too
        trace = getattr(seeded, field).trace_path
        if trace is not None:
            files[f"{field}.trace_path"] = _file_digest(trace, digests)
    return seeded, config_key(scenario_to_dict(seeded), files)


def build_points(sweep: SweepFile, progress: bool = False, echo=print):
    """(base scenario, [(axes, scenario)]): every point validated and its profile computed (memoised)."""
    try:
        base = load_scenario(sweep.base)
    except ConfigError as exc:
        raise ConfigError(f"{sweep.path}: base: {exc}") from None
    base_data = scenario_to_dict(base)
    for path, value in sweep.fixed:
        base_data = _with_override(base_data, path, value)
    folder = Path(sweep.path).parent  # relative paths in the sweep file resolve against its folder
    base = scenario_from_dict(base_data, source=f"{sweep.path}: set", base_dir=folder)
    points = []
    for axes in _grid(sweep):
        data = json.loads(json.dumps(base_data))
        for path, value in axes:
            _with_override(data, path, value)
        where = f"{sweep.path}: point {shorten(dict(axes), 80)}"
        scenario = scenario_from_dict(data, source=where, base_dir=folder)
        try:
            scenario_profile(scenario, source=sweep.profile, progress=progress, echo=echo)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        points.append((axes, scenario))
    return base, points


def build_plan(sweep: SweepFile, progress: bool = False, echo=print) -> Plan:
    try:  # the base's solver.plugins first: the methods they register are names a sweep may use
        load_scenario_plugins(load_scenario(sweep.base))
    except ConfigError as exc:
        raise ConfigError(f"{sweep.path}: base: {exc}") from None
    check_methods(sweep)
    base, points = build_points(sweep, progress=progress, echo=echo)
    runs, seen, digests = [], {}, {}
    for p, (axes, scenario) in enumerate(points):
        seeded = [_seeded(scenario, (base.seed + i) % SEED_MODULUS, digests) for i in range(sweep.seeds)]
        for method in sweep.methods:
            for one, cfg in seeded:
                key = run_key(cfg, method, sweep.evaluator, sweep.profile)
                if key in seen:
                    raise ConfigError(f"{sweep.path}: points {shorten(dict(seen[key]), 80)} and "
                                      f"{shorten(dict(axes), 80)} give the same scenario (allowed: values that differ "
                                      f"once read)")
                seen[key] = axes
                runs.append(Run(len(runs), p, key, cfg, one, method, sweep.evaluator, sweep.profile, axes))
    return Plan(sweep, base, points, runs, memoised_profiles())
