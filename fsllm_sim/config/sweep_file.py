"""Sweep files: a base scenario, the axes to vary, the methods to compare and the seeds to repeat, validated.

A sweep file is YAML read by the scenario files' hardened reader (size limit, no anchors or aliases, no
duplicate keys, bounded nesting) and checked field by field; every problem is one line
``<file>: <field>: <what is wrong> (allowed: ...)``. Example (``scenarios/sweeps/bandwidth.yaml``)::

    base: ../default.yaml                 # relative to the sweep file
    zip:                                  # varied together, value i with value i
      channel.s_band.subchannels: [16, 32, 64]
      channel.f_band.subchannels: [8, 16, 32]
    axes:                                 # Cartesian product (with the zipped group as one axis)
      clients.count: [4, 8]
    methods: [bcd, equal, random]
    seeds: 3
    evaluator: analytic

This module only reads and checks the file against the scenario schema; which methods exist and what a
point costs are the sweep job's business (:mod:`fsllm_sim.jobs.sweeps`), since the solvers sit above
the configuration layer. :data:`SWEEP_FIELDS` drives both the checks and the reference section.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .fields import Spec, iter_fields
from .loader import _coerce, _display_path, _key_text, _read_scenario_text, field_spec, parse_yaml_text, shorten
from .schema import Scenario

MAX_RUNS = 100_000  # points x methods x seeds: beyond this a sweep is a mistake or a job for several files
MAX_SEEDS = 1000
EVALUATORS = ("analytic", "simulate")
PROFILE_SOURCES = ("counted", "analytic")  # as fsllm_sim.profiles.PROFILE_SOURCES (not imported: no numpy here)
# Method variants: the solver at the point's own split and/or rank (the fixed-split / fixed-rank baselines).
METHOD_VARIANTS = ("fixed-split", "fixed-rank", "fixed-split-rank")
# Fields a sweep may not vary: the seed is what `seeds:` repeats (seed i = the base seed + i).
NOT_AXES = {"seed": "the seed is set by seeds: (repetition i uses the base scenario's seed + i)"}

# (name, Spec, meaning) for the reference and for the scalar checks; the mappings are described here too.
SWEEP_FIELDS = (
    ("base", Spec("Scenario file every point starts from (relative to the sweep file).", kind="path"), True),
    ("axes", Spec("Grid axes: a mapping from a scenario field path (e.g. channel.s_band.subchannels) to the list of "
                  "values it takes; the points are the Cartesian product of all axes (the zip group counts as one "
                  "axis).", kind="mapping"), False),
    ("zip", Spec("Zipped fields: a mapping from field paths to lists of one common length, varied together (value "
                 "i of every field with value i of the others), e.g. both bands' subchannel counts.",
                 kind="mapping"), False),
    ("set", Spec("Fixed overrides applied to every point: a mapping from field path to one value (e.g. "
                 "simulation.rounds: 2).", kind="mapping"), False),
    ("methods", Spec("Allocations compared at every point: solver methods (bcd, exact, gurobi, equal, random, "
                     "max-power), equal-share (equal subchannels, water-filled power, the point's split and rank), "
                     "and METHOD/fixed-split, METHOD/fixed-rank, METHOD/fixed-split-rank (the solver at the point's "
                     "split.layer and/or lora.rank).", kind="list[str]"), False),
    ("seeds", Spec("Repetitions of every point and method; repetition i sets the scenario's seed to the base seed + "
                   "i (placement, shadowing, devices, fading and the random baseline change with it).",
                   kind="int", ge=1, le=MAX_SEEDS), False),
    ("evaluator", Spec("analytic: the closed-form objective N(r) x T_round of the chosen allocation; simulate: the "
                       "event engine with training analytic, the scenario's fading and server discipline, for "
                       "simulation.rounds rounds, total = N(r) x the mean simulated round.", choices=EVALUATORS,
                       kind="str"), False),
    ("profile", Spec("FLOPs and payloads per (split, rank): counted from the real PyTorch model (cached on disk) or "
                     "from the analytic formula.", choices=PROFILE_SOURCES, kind="str"), False),
)
DEFAULTS = {"axes": {}, "zip": {}, "set": {}, "methods": ["bcd"], "seeds": 1, "evaluator": "analytic",
            "profile": "counted"}


@dataclass(frozen=True)
class SweepFile:
    """A checked sweep file. ``axes``, ``zipped`` and ``fixed`` are ((field path, values or value), ...) in
    file order; every value has been checked against its scenario field (cross-field checks come when the
    points are built)."""

    path: str
    base: str  # absolute path of the base scenario
    axes: tuple
    zipped: tuple
    fixed: tuple
    methods: tuple
    seeds: int
    evaluator: str
    profile: str

    @property
    def num_points(self) -> int:
        n = 1
        for _, values in self.axes:
            n *= len(values)
        return n * (len(self.zipped[0][1]) if self.zipped else 1)

    @property
    def num_runs(self) -> int:
        return self.num_points * len(self.methods) * self.seeds

    def varied_fields(self) -> list[str]:
        """Every swept field path, axes first, then the zipped ones (the ``axis:`` columns, in order)."""
        return [p for p, _ in self.axes] + [p for p, _ in self.zipped]


def leaf_paths(cls=Scenario, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf field of the scenario schema."""
    out = []
    for f, spec, sec, default in iter_fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        out += leaf_paths(type(default), path) if sec is not None else [path]
    return out


def _path_text(path) -> str:
    """A field path as written when it is plain (``clients.count``), else shortened and quoted."""
    if isinstance(path, str) and re.fullmatch(r"[A-Za-z0-9_.\-]{1,200}", path):
        return path
    return shorten(path)


def _field_path_spec(where: str, path) -> Spec:
    """The Spec of a scenario leaf field, or a one-line error naming the sweep-file entry."""
    if not isinstance(path, str):
        raise ConfigError(f"{where}.{_path_text(path)}: not a field path (allowed: a dotted scenario field path, e.g. "
                          f"channel.s_band.subchannels)")
    if path in NOT_AXES:
        raise ConfigError(f"{where}.{path}: not allowed here ({NOT_AXES[path]})")
    try:
        return field_spec(Scenario, path)
    except KeyError:
        hint = difflib.get_close_matches(path, leaf_paths(), n=1, cutoff=0.6) if len(path) <= 200 else []
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(f"{where}.{_path_text(path)}: unknown scenario field (allowed: the dotted path of a scenario "
                          f"field, listed in scenarios/REFERENCE.md, e.g. channel.s_band.subchannels){extra}") from None


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _plain(item):
    """A checked value as plain YAML data (a list of sections becomes a list of mappings)."""
    from .loader import scenario_to_dict

    return scenario_to_dict(item) if isinstance(item, tuple) else item


def _value_list(where: str, path: str, values, spec: Spec) -> tuple:
    """A non-empty list of values of one field, each checked against the field and given once."""
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}.{path}: {shorten(values)} is not a non-empty list (allowed: a list of values of "
                          f"{path}: {spec.allowed()})")
    checked, seen = [], set()
    for i, value in enumerate(values):
        item = _plain(_coerce(value, spec, f"{where}.{path}[{i}]"))
        key = _canonical(item)
        if key in seen:
            raise ConfigError(f"{where}.{path}[{i}]: {shorten(value)} is given twice (allowed: each value once)")
        seen.add(key)
        checked.append(item)
    return tuple(checked)


def _mapping(where: str, data) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {shorten(data)} is not a mapping (allowed: field path: values)")
    return data


def _read_grid(data: dict) -> tuple[tuple, tuple, tuple]:
    axes, zipped, fixed = (_mapping(w, data.get(w)) for w in ("axes", "zip", "set"))
    if "axes" in data and not axes:
        raise ConfigError("axes: empty (allowed: a mapping from field paths to non-empty lists of values; leave "
                          "axes out for a sweep over methods and seeds only)")
    if "zip" in data and not zipped:
        raise ConfigError("zip: empty (allowed: a mapping from field paths to lists of one common length)")
    owner: dict[str, str] = {}
    for where, group in (("axes", axes), ("zip", zipped), ("set", fixed)):
        for path in group:
            _field_path_spec(where, path)
            for other, other_where in owner.items():
                if path == other:
                    raise ConfigError(f"{where}.{path}: also in {other_where} (allowed: each field in one of axes, "
                                      f"zip and set)")
            owner[path] = where
    out_axes = tuple((p, _value_list("axes", p, v, field_spec(Scenario, p))) for p, v in axes.items())
    out_zip = tuple((p, _value_list("zip", p, v, field_spec(Scenario, p))) for p, v in zipped.items())
    for path, values in out_zip[1:]:
        first, n = out_zip[0][0], len(out_zip[0][1])
        if len(values) != n:
            raise ConfigError(f"zip: {first} has {n} values but {path} has {len(values)} (allowed: lists of one "
                              f"common length)")
    out_fixed = []
    for p, v in fixed.items():
        out_fixed.append((p, _plain(_coerce(v, field_spec(Scenario, p), f"set.{p}"))))
    return out_axes, out_zip, tuple(out_fixed)


def _read_methods(value) -> tuple:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"methods: {shorten(value)} is not a non-empty list (allowed: a list of method names, "
                          f"e.g. [bcd, equal, random])")
    seen = set()
    for i, m in enumerate(value):
        if not isinstance(m, str) or not m or len(m) > 64:
            raise ConfigError(f"methods[{i}]: {shorten(m)} is not a method name (allowed: a solver method, "
                              f"equal-share, or METHOD/{'|'.join(METHOD_VARIANTS)})")
        if m in seen:
            raise ConfigError(f"methods[{i}]: {m!r} is given twice (allowed: each method once)")
        seen.add(m)
    return tuple(value)


def _check_size(sweep_axes, zipped, methods, seeds) -> None:
    """Refuse a sweep with more than MAX_RUNS runs before building any point (the product, not a list)."""
    factors = [len(v) for _, v in sweep_axes] + ([len(zipped[0][1])] if zipped else [])
    runs = len(methods) * seeds
    for f in factors:
        runs *= f
    if runs > MAX_RUNS:
        shape = " x ".join(str(f) for f in factors) or "1"
        raise ConfigError(f"the sweep has {runs} runs ({shape} points x {len(methods)} methods x {seeds} seeds; "
                          f"allowed: at most {MAX_RUNS}); split it into several sweep files")


def sweep_from_dict(data, path: str, base_dir: Path) -> SweepFile:
    """Check the parsed mapping of a sweep file; ``path`` is shown in messages, ``base`` resolves from ``base_dir``."""
    shown = _display_path(path)
    try:
        if not isinstance(data, dict):
            raise ConfigError(f"expected a mapping of sweep fields, got {shorten(data)} (allowed fields: "
                              f"{', '.join(n for n, _, _ in SWEEP_FIELDS)})")
        names = [n for n, _, _ in SWEEP_FIELDS]
        for key in data:
            if key not in names:
                hint = difflib.get_close_matches(key, names, n=1, cutoff=0.5) if isinstance(key, str) else []
                extra = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(names)})"
                raise ConfigError(f"{_key_text(key)}: unknown sweep field{extra}")
        specs = {n: s for n, s, _ in SWEEP_FIELDS}
        if "base" not in data:
            raise ConfigError("base: missing (allowed: the path of the base scenario file, relative to the sweep file)")
        base = _coerce(data["base"], specs["base"], "base")
        full = {**DEFAULTS, **data}
        seeds = _coerce(full["seeds"], specs["seeds"], "seeds")
        evaluator = _coerce(full["evaluator"], specs["evaluator"], "evaluator")
        profile = _coerce(full["profile"], specs["profile"], "profile")
        methods = _read_methods(full["methods"])
        axes, zipped, fixed = _read_grid(data)
        _check_size(axes, zipped, methods, seeds)
    except ConfigError as exc:
        raise ConfigError(f"{shown}: {exc}") from None
    base_path = base if os.path.isabs(base) else str((base_dir / base).resolve())
    return SweepFile(str(path), base_path, axes, zipped, fixed, methods, seeds, evaluator, profile)


def read_yaml_file(path: str | os.PathLike, what: str = "sweep file"):
    """The parsed YAML of a sweep (or scenario) file, read with the scenario files' limits and guards."""
    p = Path(path)
    shown = _display_path(path)
    if not p.is_file():
        raise ConfigError(f"{shown}: " + ("not a regular file" if p.exists() else "file not found")
                          + f" (allowed: a {what} in YAML)")
    text = _read_scenario_text(p, shown)
    try:
        return parse_yaml_text(text)
    except ConfigError as exc:
        raise ConfigError(f"{shown}: {exc}") from None


def is_sweep_data(data) -> bool:
    """A sweep file names its base scenario; a scenario file has no ``base`` field."""
    return isinstance(data, dict) and "base" in data


def load_sweep_file(path: str | os.PathLike) -> SweepFile:
    """Read and check a sweep file (one-line ConfigError on any problem)."""
    data = read_yaml_file(path)
    return sweep_from_dict(data, str(path), Path(path).parent)


def sweep_reference() -> list[str]:
    """The reference section on sweep files (appended to scenarios/REFERENCE.md)."""
    out = ["", "## Sweep files (`fsllm-sim sweep SWEEP.yaml --out DIR`)", "",
           "A sweep file names a base scenario and what to vary; the scenario fields above are addressed by their "
           "dotted paths. "
           f"A sweep may hold at most {MAX_RUNS} runs (points x methods x seeds). `seed` cannot be an axis. An example "
           "is `scenarios/sweeps/bandwidth.yaml`.", "",
           "| field | default | allowed | meaning |", "|---|---|---|---|"]
    for name, spec, _ in SWEEP_FIELDS:
        default = "required" if name == "base" else json.dumps(DEFAULTS[name]).replace('"', "")
        allowed = "field path: [values]" if name in ("axes", "zip") else (
            "field path: value" if name == "set" else spec.allowed())
        out.append(f"| `{name}` | `{default}` | {allowed} | {spec.doc} |")
    return out
