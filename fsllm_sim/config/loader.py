"""Scenario files: YAML (safe loader) → typed, validated :class:`Scenario`, and back.

Every problem is reported as one line ``<file>: <field.path>: <what is wrong> (allowed: ...)``.
"""
from __future__ import annotations

import difflib
import math
import os
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .fields import Spec, iter_fields
from .schema import Scenario


def _fail(where: str, message: str):
    raise ConfigError(f"{where}: {message}")


def _coerce(value: Any, spec: Spec, where: str):
    """Check one leaf value against its spec; return it in its canonical Python type."""
    if value is None:
        if spec.nullable:
            return None
        _fail(where, f"null is not allowed (allowed: {spec.allowed()})")
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            _fail(where, f"{value!r} is not a boolean (allowed: true or false)")
        return value
    if kind in ("str", "path"):
        if not isinstance(value, str) or (kind == "path" and not value):
            _fail(where, f"{value!r} is not a string (allowed: {spec.allowed()})")
        if spec.choices is not None and value not in spec.choices:
            hint = difflib.get_close_matches(value, [str(c) for c in spec.choices], n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            _fail(where, f"{value!r} is not allowed (allowed: {spec.allowed()}){extra}")
        return value
    if kind in ("list[int]", "list[str]"):
        if not isinstance(value, (list, tuple)) or len(value) == 0:
            _fail(where, f"{value!r} is not a non-empty list (allowed: {spec.allowed()})")
        item_spec = Spec(doc=spec.doc, ge=spec.ge, gt=spec.gt, le=spec.le, lt=spec.lt,
                         kind="int" if kind == "list[int]" else "str")
        items = tuple(_coerce(v, item_spec, f"{where}[{i}]") for i, v in enumerate(value))
        if len(set(items)) != len(items):
            _fail(where, f"{list(value)!r} has repeated entries")
        return items
    # Numbers. YAML 1.1 reads "20e6" (no dot) as a string, so numeric strings are accepted for floats.
    if isinstance(value, bool):
        _fail(where, f"{value!r} is not a number (allowed: {spec.allowed()})")
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            _fail(where, f"{value!r} is not an integer (allowed: {spec.allowed()})")
    else:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                _fail(where, f"{value!r} is not a number (allowed: {spec.allowed()})")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(where, f"{value!r} is not a finite number (allowed: {spec.allowed()})")
        value = float(value)
    if ((spec.ge is not None and value < spec.ge) or (spec.gt is not None and value <= spec.gt)
            or (spec.le is not None and value > spec.le) or (spec.lt is not None and value >= spec.lt)):
        unit = f" {spec.unit}" if spec.unit else ""
        _fail(where, f"{value:g}{unit} is out of range (allowed: {spec.allowed()})")
    if spec.choices is not None and value not in spec.choices:
        _fail(where, f"{value!r} is not allowed (allowed: {spec.allowed()})")
    return value


def _build(cls, data: Any, where: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _fail(where or "scenario", f"expected a mapping of fields, got {type(data).__name__} {data!r}")
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            hint = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.5)
            extra = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(known)})"
            _fail(f"{where}.{key}" if where else str(key), f"unknown field{extra}")
    kwargs = {}
    for f, spec, sec, default in iter_fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            kwargs[f.name] = default
        elif sec is not None:
            kwargs[f.name] = _build(f.type if isinstance(f.type, type) else type(default), data[f.name], path)
        else:
            kwargs[f.name] = _coerce(data[f.name], spec, path)
    return cls(**kwargs)


def _check_path_loss_validity(s: Scenario) -> None:
    """Ask the channel model itself whether the layout, carrier and heights are inside its validity range,
    so the ranges live in one place (channel_models) and a bad scenario fails at validation, not mid-run."""
    import numpy as np

    from channel_models import path_loss_db

    from ..errors import ValidityRangeError

    pl = s.channel.path_loss
    lay = s.clients.layout
    d = np.array([max(lay.min_distance_m, 1e-9), lay.radius_m, max(lay.min_distance_m, 1e-9), lay.radius_m])
    los = np.array([True, True, False, False])
    try:
        path_loss_db(pl.model, d, pl.carrier_ghz, pl.bs_height_m, pl.ut_height_m, los)
    except ValidityRangeError as exc:
        _fail("channel.path_loss", f"{exc} (check clients.layout and channel.path_loss)")


def _cross_checks(s: Scenario) -> None:
    """Constraints that involve several fields."""
    lay = s.clients.layout
    if lay.min_distance_m >= lay.radius_m:
        _fail("clients.layout.min_distance_m",
              f"{lay.min_distance_m:g} m must be below clients.layout.radius_m={lay.radius_m:g} m")
    _check_path_loss_validity(s)
    k = s.clients.count
    for band in ("s_band", "f_band"):
        m = getattr(s.channel, band).subchannels
        if k > m:
            _fail("clients.count", f"{k} clients exceed channel.{band}.subchannels={m}: each client needs at "
                                    f"least one subchannel on each band")
    if s.lora.rank not in s.lora.ranks:
        _fail("lora.rank", f"{s.lora.rank} is not among lora.ranks={list(s.lora.ranks)}")
    if s.split.layer < s.split.min_layer:
        _fail("split.layer", f"{s.split.layer} is below split.min_layer={s.split.min_layer}")
    spd = s.devices.speed
    if spd.distribution == "uniform" and spd.low_flops_per_s >= spd.high_flops_per_s:
        _fail("devices.speed.low_flops_per_s", f"{spd.low_flops_per_s:g} must be below "
                                               f"devices.speed.high_flops_per_s={spd.high_flops_per_s:g}")
    if spd.distribution == "trace" and not spd.trace_path:
        _fail("devices.speed.trace_path", "a trace file is required when devices.speed.distribution is trace")


def scenario_from_dict(data: dict, source: str = "scenario", base_dir: str | os.PathLike | None = None) -> Scenario:
    """Validate a plain mapping (e.g. parsed YAML) into a Scenario; relative paths resolve against ``base_dir``."""
    try:
        scenario = _build(Scenario, data, "")
        _cross_checks(scenario)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if base_dir is not None:
        scenario = _resolve_paths(scenario, Path(base_dir))
    return scenario


def _resolve_paths(s: Scenario, base: Path) -> Scenario:
    def fix(p):
        if p is None or p == "builtin" or os.path.isabs(p):
            return p
        return str((base / p).resolve())

    speed = replace(s.devices.speed, trace_path=fix(s.devices.speed.trace_path))
    conv = replace(s.convergence, calibration=fix(s.convergence.calibration))
    data = s.data if s.data.source == "shakespeare" else replace(s.data, source=fix(s.data.source))
    return replace(s, devices=replace(s.devices, speed=speed), convergence=conv, data=data)


def load_scenario(path: str | os.PathLike) -> Scenario:
    """Read and validate a scenario file. Raises ConfigError (one line) on any problem."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: scenario file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    return scenario_from_dict(data if data is not None else {}, source=str(path), base_dir=p.parent)


def scenario_to_dict(obj) -> dict:
    """The fully resolved configuration as plain YAML-able data (tuples become lists)."""
    if is_dataclass(obj):
        return {f.name: scenario_to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [scenario_to_dict(v) for v in obj]
    return obj


def dump_scenario(s: Scenario) -> str:
    return yaml.safe_dump(scenario_to_dict(s), sort_keys=False, default_flow_style=None)
