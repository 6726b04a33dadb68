"""Scenario files: YAML (safe loader) → typed, validated :class:`Scenario`, and back.

Every problem is reported as one line ``<file>: <field.path>: <what is wrong> (allowed: ...)``.

Scenario files are treated as untrusted input: they are read with a size limit, parsed by a safe loader
that refuses anchors and aliases (no "billion laughs"), nesting deeper than :data:`MAX_DEPTH` levels and
duplicate keys, and every value quoted back in a message is shortened by :func:`shorten`.
"""
from __future__ import annotations

import difflib
import math
import os
import re
import reprlib
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .fields import Spec, iter_fields
from .schema import Scenario

MAX_FILE_BYTES = 1024 * 1024  # a scenario file is a few KiB; refuse anything above 1 MiB unread
MAX_DEPTH = 32                # nested mappings/lists; the schema itself is 4 levels deep
MAX_NODES = 10_000            # keys, values and lists in one file; the default scenario has about 150
MAX_STRING_CHARS = 4096       # longest string field value (PATH_MAX on Linux)
SHOW_CHARS = 40               # values quoted in messages are cut to about this many characters
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
NAME_RULE = "1-64 characters of A-Z a-z 0-9 . _ - , not starting with '.'"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_INT_TEXT = re.compile(r"[-+]?[0-9][0-9_]*")


class _Short(reprlib.Repr):
    """A repr that stays short and on one line whatever the value (huge strings, lists, integers)."""

    def __init__(self, limit: int):
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple, self.maxset = 2, 4, 6, 6, 6
        self.maxfrozenset = self.maxdeque = self.maxarray = 6
        self.maxstring = self.maxother = self.maxlong = limit

    def repr_int(self, x, level):
        if x.bit_length() > 4 * self.maxlong:  # str() of a huge int is slow, or refused above 4300 digits
            return f"<an integer of about {int(x.bit_length() * math.log10(2)) + 1} digits>"
        return _clip(repr(x), self.maxlong)


def _clip(text: str, limit: int = SHOW_CHARS) -> str:
    """Cut the middle out of ``text`` so it is at most about ``limit`` characters."""
    if len(text) <= limit:
        return text
    keep = max(limit - 3, 2)
    return text[:keep - keep // 3] + "..." + text[len(text) - keep // 3:]


def shorten(value: Any, limit: int = SHOW_CHARS) -> str:
    """A short, one-line repr of any value, to quote it in an error message.

    Strings longer than ``limit`` keep their start and end and say how long they were."""
    try:
        text = _Short(limit).repr(value)
    except Exception:  # a repr must never turn a user error into a traceback
        text = f"<{type(value).__name__}>"
    text = _clip(text.replace("\n", "\\n").replace("\r", "\\r"), 2 * limit)
    if isinstance(value, str) and len(value) > limit:
        text += f" ({len(value)} characters)"
    return text


def _display_path(path) -> str:
    text = str(path)
    return text if text.isprintable() else ascii(text)


def _fail(where: str, message: str):
    raise ConfigError(f"{where}: {message}")


# --------------------------------------------------------------------------------------------------- YAML


def _at(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown position"


class _HugeInt(str):
    """A YAML integer with too many digits to be any field's value; kept as text and reported out of range."""

    def __repr__(self):
        return str.__str__(self)


class _Guarded:
    """The safe loader's composer and constructor, minus the YAML features that let a small file cost unbounded
    time or memory, or hide a mistake: anchors and aliases, merge keys, nesting deeper than :data:`MAX_DEPTH`
    and duplicate keys are refused with a one-line :class:`ConfigError` that names the line and column.
    Mixed in before ``Composer`` (and the constructor) of a safe loader; see :data:`ScenarioLoader`."""

    _depth = 0
    _nodes = 0
    _path: list[str]

    def _init_guards(self):
        self._depth = 0
        self._nodes = 0
        self._path = []

    def _where(self) -> str:
        return "".join(self._path).lstrip(".")

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise ConfigError(f"YAML alias {shorten('*' + str(event.anchor))} at {_at(event.start_mark)} is not "
                              f"allowed in scenario files (write each value out in full)")
        if event.anchor is not None:
            raise ConfigError(f"YAML anchor {shorten('&' + str(event.anchor))} at {_at(event.start_mark)} is not "
                              f"allowed in scenario files (write each value out in full)")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ConfigError(f"more than {MAX_NODES} values at {_at(event.start_mark)} (allowed: at most "
                              f"{MAX_NODES} keys, values and lists in a scenario file)")
        nested = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
        if nested and self._depth >= MAX_DEPTH:
            raise ConfigError(f"nesting deeper than {MAX_DEPTH} levels at {_at(event.start_mark)} "
                              f"(allowed: at most {MAX_DEPTH} levels of mappings and lists)")
        if isinstance(parent, yaml.SequenceNode):
            self._path.append(f"[{index}]")
        elif isinstance(index, yaml.ScalarNode):
            self._path.append("." + _key_text(index.value))
        elif isinstance(index, yaml.Node):
            self._path.append(".?")
        else:
            self._path.append("")
        self._depth += nested
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= nested
            self._path.pop()

    def compose_mapping_node(self, anchor):
        start_event = self.get_event()
        tag = start_event.tag
        if tag is None or tag == "!":
            tag = self.resolve(yaml.MappingNode, None, start_event.implicit)
        node = yaml.MappingNode(tag, [], start_event.start_mark, None, flow_style=start_event.flow_style)
        seen: dict = {}
        while not self.check_event(yaml.MappingEndEvent):
            key = self.compose_node(node, None)
            if key.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(f"YAML merge key '<<' at {_at(key.start_mark)} is not allowed in scenario files "
                                  f"(write each value out in full)")
            if isinstance(key, yaml.ScalarNode):
                first = seen.setdefault((key.tag, key.value), key.start_mark)
                if first is not key.start_mark:
                    where = self._where()
                    path = f"{where}.{_key_text(key.value)}" if where else _key_text(key.value)
                    raise ConfigError(f"{path}: duplicate key at {_at(key.start_mark)} (first at {_at(first)}; "
                                      f"allowed: each key once per mapping)")
            node.value.append((key, self.compose_node(node, key)))
        node.end_mark = self.get_event().end_mark
        return node

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, ConfigError):
            raise
        except (ValueError, TypeError, ArithmeticError, LookupError) as exc:
            # e.g. a timestamp 2001-13-45 or `!!float abc`: PyYAML lets the plain Python error through.
            what = shorten(node.value) if isinstance(node, yaml.ScalarNode) else f"a {node.id}"
            tag = _clip(str(node.tag).replace("tag:yaml.org,2002:", "!!"))
            raise ConfigError(f"cannot read {what} as {tag} at {_at(node.start_mark)}: "
                              f"{_clip(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 80)}") from None

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if len(text) > 100:  # no field takes such a number; int() of it may be slow or refused (4300 digits)
            return _HugeInt(text)
        return super().construct_yaml_int(node)


class SafeScenarioLoader(_Guarded, yaml.SafeLoader):
    """:class:`yaml.SafeLoader` (pure Python) with the guards of :class:`_Guarded`."""

    def __init__(self, stream):
        yaml.SafeLoader.__init__(self, stream)
        self._init_guards()


SafeScenarioLoader.add_constructor("tag:yaml.org,2002:int", _Guarded.construct_yaml_int)
ScenarioLoader: type = SafeScenarioLoader

if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser as _CParser

    class CScenarioLoader(_Guarded, yaml.composer.Composer, _CParser, yaml.constructor.SafeConstructor,
                          yaml.resolver.Resolver):
        """The same guards on libyaml's parser (about 10x faster on a large file): libyaml only produces
        events, which the guarded Python composer turns into nodes (yaml.CSafeLoader composes in C, where
        aliases and depth cannot be checked)."""

        def __init__(self, stream):
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._init_guards()

    CScenarioLoader.add_constructor("tag:yaml.org,2002:int", _Guarded.construct_yaml_int)
    ScenarioLoader = CScenarioLoader


def _key_text(key: Any) -> str:
    """A mapping key as it appears in a field path: itself when short and plain, else shortened and quoted."""
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_\-]{1,40}", key):
        return key
    return shorten(key)


def parse_yaml_text(text: str, loader_class: type | None = None):
    """Parse scenario YAML with :data:`ScenarioLoader`. Raises ConfigError (without the file name)."""
    loader = None
    try:
        loader = (loader_class or ScenarioLoader)(text)  # the pure-Python reader checks characters here already
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at {_at(mark)}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        if "maximum nesting depth" in problem:  # libyaml's own limit (1000), met while scanning ahead
            raise ConfigError(f"nesting deeper than {MAX_DEPTH} levels{where} (allowed: at most {MAX_DEPTH} "
                              f"levels of mappings and lists)") from None
        raise ConfigError(f"invalid YAML{where}: {_clip(' '.join(problem.split()), 120)}") from None
    finally:
        if loader is not None:
            loader.dispose()


# ------------------------------------------------------------------------------------------------ values


def _parse_number(text: str):
    """A number written as text (YAML 1.1 reads 20e6 and 4.0e9 as strings): int, float, or None."""
    if isinstance(text, _HugeInt):
        return -math.inf if text.lstrip().startswith("-") else math.inf
    s = text.strip()
    if not s or not s.isascii():
        return None
    try:
        if _INT_TEXT.fullmatch(s):
            return int(s) if len(s) <= 1000 else float(s)  # float(): inf, without int()'s 4300-digit limit
        return float(s)
    except ValueError:
        return None


def _show_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):  # a number written as text, e.g. 1e400: shown as written, without quotes
        return _clip(value.strip())
    return shorten(value)


def _coerce(value: Any, spec: Spec, where: str):
    """Check one leaf value against its spec; return it in its canonical Python type."""
    if value is None:
        if spec.nullable:
            return None
        _fail(where, f"null is not allowed (allowed: {spec.allowed()})")
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            _fail(where, f"{shorten(value)} is not a boolean (allowed: true or false)")
        return value
    if kind in ("str", "path"):
        if not isinstance(value, str) or isinstance(value, _HugeInt) or (kind == "path" and not value):
            _fail(where, f"{shorten(value)} is not a string (allowed: {spec.allowed()})")
        if len(value) > MAX_STRING_CHARS:
            _fail(where, f"{shorten(value)} is too long (allowed: {spec.allowed()} of at most {MAX_STRING_CHARS} "
                         f"characters)")
        if _CONTROL.search(value):
            _fail(where, f"{shorten(value)} contains a control character or an unpaired surrogate (allowed: "
                         f"{spec.allowed()} of printable characters)")
        if spec.choices is not None and value not in spec.choices:
            hint = difflib.get_close_matches(value, [str(c) for c in spec.choices], n=1) if len(value) <= 64 else []
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            _fail(where, f"{shorten(value)} is not allowed (allowed: {spec.allowed()}){extra}")
        return value
    if kind == "list[section]":
        if not isinstance(value, (list, tuple)) or len(value) > spec.max_items:
            _fail(where, f"{shorten(value)} is not a list of at most {spec.max_items} mappings (allowed: "
                         f"{spec.allowed()})")
        return tuple(v if isinstance(v, spec.item_type) else _build(spec.item_type, v, f"{where}[{i}]")
                     for i, v in enumerate(value))
    if kind in ("list[int]", "list[float]", "list[str]"):
        if not isinstance(value, (list, tuple)) or len(value) == 0:
            _fail(where, f"{shorten(value)} is not a non-empty list (allowed: {spec.allowed()})")
        item_spec = Spec(doc=spec.doc, ge=spec.ge, gt=spec.gt, le=spec.le, lt=spec.lt,
                         kind=kind[5:-1])
        items = tuple(_coerce(v, item_spec, f"{where}[{i}]") for i, v in enumerate(value))
        if len(set(items)) != len(items):
            _fail(where, f"{shorten(list(value))} has repeated entries (allowed: {spec.allowed()}, each once)")
        return items
    return _coerce_number(value, spec, where)


def _coerce_number(value: Any, spec: Spec, where: str):
    """An int or float field. Numbers written as text are accepted (YAML 1.1 reads 20e6 and 4.0e9 as strings),
    an int field takes a float that is a whole number, and anything too large, however written, is reported
    as out of range (never OverflowError)."""
    kind = spec.kind
    noun = "an integer" if kind == "int" else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        _fail(where, f"{shorten(value)} is not {noun} (allowed: {spec.allowed()})")
    shown = _show_number(value)
    number = _parse_number(value) if isinstance(value, str) else value
    if number is None:
        _fail(where, f"{shorten(value)} is not {noun} (allowed: {spec.allowed()})")
    unit = f" {spec.unit}" if spec.unit else ""
    out_of_range = f"{shown}{unit} is out of range (allowed: {spec.allowed()})"
    if isinstance(number, float):
        if math.isnan(number):
            _fail(where, f"{shown} is not {noun} (allowed: {spec.allowed()})")
        if math.isinf(number):
            _fail(where, out_of_range)
        if kind == "int":
            if not number.is_integer():
                _fail(where, f"{shown} is not an integer (allowed: {spec.allowed()})")
            number = int(number)
    if ((spec.ge is not None and number < spec.ge) or (spec.gt is not None and number <= spec.gt)
            or (spec.le is not None and number > spec.le) or (spec.lt is not None and number >= spec.lt)):
        _fail(where, out_of_range)
    if kind != "int":
        try:
            number = float(number)
        except OverflowError:  # an int beyond float range in a field without bounds
            _fail(where, out_of_range)
    if spec.choices is not None and number not in spec.choices:
        _fail(where, f"{shown} is not allowed (allowed: {spec.allowed()})")
    return number


def check_number(value: Any, spec: Spec, where: str):
    """Check a number read from a file other than a scenario (a device trace, a calibration fit) against the
    :class:`Spec` of the scenario field it stands for, so both obey one range. Returns the number in the
    field's type; raises a one-line ConfigError ``<where>: <value> is out of range (allowed: ...)``."""
    return _coerce_number(value, spec, where)


def field_spec(cls, dotted: str) -> Spec:
    """The :class:`Spec` of a scenario field by its dotted path below ``cls``, e.g. ``convergence.a``."""
    head, _, rest = dotted.partition(".")
    for f, spec, sec, default in iter_fields(cls):
        if f.name == head:
            if rest:
                return field_spec(type(default), rest)
            if spec is None:
                raise KeyError(dotted)
            return spec
    raise KeyError(dotted)


TARGET_RULES = "'best_fraction:F' with 0<F<=1, or 'initial_ratio:X' with 0<X<1"


def parse_target_rule(rule: str | None) -> tuple[str, float]:
    """``calibration.target_rule`` as (name, value), read exactly as the calibration reads it (``best_fraction``
    alone means F = 0.8). Pure (no torch), so validation catches a bad rule before any training."""
    rule = rule or "best_fraction:0.8"
    name, _, arg = rule.partition(":")
    try:
        x = float(arg) if arg else (0.8 if name == "best_fraction" else math.nan)
    except ValueError:
        x = math.nan
    if (name == "best_fraction" and 0 < x <= 1) or (name == "initial_ratio" and 0 < x < 1):
        return name, x
    raise ConfigError(f"{shorten(rule)} is not a valid target rule (allowed: {TARGET_RULES})")


def _build(cls, data: Any, where: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _fail(where or "scenario", f"expected a mapping of fields, got {type(data).__name__} {shorten(data)}")
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            hint = (difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
                    if isinstance(key, str) and len(key) <= 64 else [])
            extra = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(known)})"
            _fail(f"{where}.{_key_text(key)}" if where else _key_text(key), f"unknown field{extra}")
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


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a scenario name (it becomes part of a directory name), or None if it can."""
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
        return None
    return f"{shorten(name)} is not allowed; allowed: {NAME_RULE}"


def _energy_checks(s: Scenario) -> None:
    """The DVFS range, and what each objective needs (docs/energy.md)."""
    en = s.devices.energy
    if en.f_min_hz > en.f_max_hz:
        _fail("devices.energy.f_min_hz", f"{en.f_min_hz:g} Hz is above devices.energy.f_max_hz={en.f_max_hz:g} Hz; "
                                         f"allowed: f_min_hz <= f_max_hz")
    obj = s.objective
    if obj.kind == "delay-under-energy" and obj.budget_j is None:
        _fail("objective.budget_j", "a per-client energy budget of one round is required by objective.kind "
                                    "delay-under-energy; allowed: a number > 0 (J)")
    if obj.kind != "delay" and s.protocol != "sfl":
        _fail("objective.kind", f"{obj.kind} is supported under protocol sfl only (protocol is {s.protocol}); "
                                f"allowed here: delay")
    if obj.kind != "delay" and (s.channel.power.total_cap_s_dbm is not None or s.channel.power.total_cap_f_dbm is not None):
        _fail("objective.kind", f"{obj.kind} with a total power cap per band (channel.power.total_cap_*_dbm) is not "
                                f"supported (the energy step sets each client's power on its own); allowed with "
                                f"total caps: delay")
    if en.battery_j is not None and s.protocol == "sl":
        _fail("devices.energy.battery_j", "batteries need a protocol whose clients can drop mid-round (sfl or fl; sl's "
                                          "turns cannot); allowed under sl: null")
    if s.split.per_client and s.protocol != "sfl":
        _fail("split.per_client", f"per-client splits need protocol sfl (protocol is {s.protocol}); allowed here: "
                                  f"false")


def _cross_checks(s: Scenario) -> None:
    """Constraints that involve several fields."""
    problem = name_problem(s.name)
    if problem:
        _fail("name", problem)
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
        _fail("lora.rank", f"{s.lora.rank} is not among lora.ranks={shorten(list(s.lora.ranks))}")
    if s.split.layer < s.split.min_layer:
        _fail("split.layer", f"{s.split.layer} is below split.min_layer={s.split.min_layer}")
    spd = s.devices.speed
    if spd.distribution == "uniform" and spd.low_flops_per_s >= spd.high_flops_per_s:
        _fail("devices.speed.low_flops_per_s", f"{spd.low_flops_per_s:g} must be below "
                                               f"devices.speed.high_flops_per_s={spd.high_flops_per_s:g}")
    if spd.distribution == "trace" and not spd.trace_path:
        _fail("devices.speed.trace_path", "a trace file is required when devices.speed.distribution is trace")
    _dynamics_checks(s)
    _privacy_checks(s)
    _energy_checks(s)
    dev = s.training.device
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]{1,3})?", dev):
        _fail("training.device", f"{shorten(dev)} is not allowed; allowed: auto, cpu, cuda, cuda:N")
    sigma = s.training.activation_noise_sigma
    if s.protocol == "fl" and sigma > 0:
        _fail("training.activation_noise_sigma", f"{sigma:g} needs activations on the wire, and protocol fl sends "
                                                 f"none (allowed: 0 under fl; the noise is for sfl and sl)")
    cal = s.calibration
    for flag, on in (("stop_at_target", cal.stop_at_target),
                     ("learning_rate_search", cal.learning_rate_search == "first_seed")):
        if on and cal.target_val_loss is None:
            _fail(f"calibration.{flag}", "needs calibration.target_val_loss (an absolute target, known before "
                                         "the runs); allowed: a loss > 0")
    conv = s.convergence
    if conv.calibration is None and conv.a + conv.b <= 0:
        _fail("convergence.a", f"a={conv.a:g} and convergence.b={conv.b:g} give N(r) = 0 rounds at every rank "
                               f"(allowed: a + b > 0 when convergence.calibration is null)")
    try:
        parse_target_rule(s.calibration.target_rule)
    except ConfigError as exc:
        _fail("calibration.target_rule", str(exc))


def _privacy_checks(s: Scenario) -> None:
    from ..privacy import ATTACKS

    pv = s.privacy
    precisions = field_spec(Scenario, "training.activation_precision").choices
    for i, wire in enumerate(pv.wires):
        if wire not in precisions:
            _fail(f"privacy.wires[{i}]", f"{shorten(wire)} is not a wire precision (allowed: {', '.join(precisions)})")
    for i, attack in enumerate(pv.attacks):
        if attack not in ATTACKS:
            _fail(f"privacy.attacks[{i}]", f"{shorten(attack)} is not an attack (allowed: {', '.join(ATTACKS)})")
    if not pv.attacks or not pv.wires or not pv.noise_sigmas:
        empty = "attacks" if not pv.attacks else "wires" if not pv.wires else "noise_sigmas"
        _fail(f"privacy.{empty}", "is empty (allowed: a list of at least one value)")
    for limit in ("max_token_accuracy", "max_rouge_l"):
        if getattr(pv, limit) is not None and pv.file is None:
            _fail(f"privacy.{limit}", "needs privacy.file (builtin, or the privacy.json of `fsllm-sim privacy`)")


def _dynamics_checks(s: Scenario) -> None:
    """Cross-field rules of the changing network (mobility, availability, round rules)."""
    mob = s.mobility
    for where, g in [("mobility", mob)] + [(f"mobility.groups[{i}]", g) for i, g in enumerate(mob.groups)]:
        if g.speed_min_mps > g.speed_max_mps:
            _fail(f"{where}.speed_min_mps", f"{g.speed_min_mps:g} m/s must not exceed {where}.speed_max_mps="
                                            f"{g.speed_max_mps:g} m/s")
    share = sum(g.share for g in mob.groups)
    if share > 1 + 1e-9:
        _fail("mobility.groups", f"the groups' shares add up to {share:g} (allowed: at most 1)")
    if mob.model == "trace" and not mob.trace_path:
        _fail("mobility.trace_path", "a trace file is required when mobility.model is trace")
    av = s.availability
    if av.model == "trace" and not av.trace_path:
        _fail("availability.trace_path", "a trace file is required when availability.model is trace")
    rnd = s.round
    k = s.clients.count
    if rnd.policy == "deadline" and rnd.deadline_s is None:
        _fail("round.deadline_s", "a deadline is required when round.policy is deadline (allowed: a number > 0)")
    if rnd.policy == "over-selection" and rnd.clients_per_round is None:
        _fail("round.clients_per_round", "over-selection aggregates the first K uploads: give K (allowed: an "
                                         f"integer from 1 to clients.count={k})")
    if rnd.selection in ("random", "solver") and rnd.clients_per_round is None:
        _fail("round.clients_per_round", f"selection {rnd.selection} picks K clients: give K (allowed: an integer "
                                         f"from 1 to clients.count={k})")
    if rnd.clients_per_round is not None and rnd.clients_per_round > k:
        _fail("round.clients_per_round", f"{rnd.clients_per_round} exceeds clients.count={k}")
    if rnd.min_clients > (rnd.clients_per_round or k):
        _fail("round.min_clients", f"{rnd.min_clients} exceeds the {rnd.clients_per_round or k} clients a round "
                                   f"aggregates at most (round.clients_per_round, else clients.count)")
    if s.protocol == "sl":
        if rnd.policy != "wait-all" or rnd.selection != "all" or rnd.clients_per_round is not None:
            _fail("round.policy", "protocol sl gives every client its turn (allowed: round.policy wait-all, "
                                  "selection all, clients_per_round null)")
        if av.model != "always":
            _fail("availability.model", "protocol sl needs every client for its turn (allowed: always)")


def deep_checks(s: Scenario) -> dict:
    """Checks that need the model's configuration (``validate --deep``): ``split.layer`` and ``split.min_layer``
    against its number of blocks J (allowed 1..J-1), ``privacy.splits`` (0..J-1) and ``training.seq_len``
    against its context. Loads the model through the registry (the default model: its cached weights). Returns
    what it checked against."""
    from ..training.models import load_model

    lm = load_model(s.model.name)
    j, context = lm.num_blocks, lm.max_positions
    for where, value in (("split.layer", s.split.layer), ("split.min_layer", s.split.min_layer)):
        if not 1 <= value <= j - 1:
            _fail(where, f"{value} is out of range for {lm.name} with J={j} blocks (allowed: 1..{j - 1})")
    if s.training.seq_len > context:
        _fail("training.seq_len", f"{s.training.seq_len} exceeds the context of {lm.name} (allowed: 2..{context})")
    outside = [x for x in (s.privacy.splits or ()) if x > j - 1]
    if outside:
        _fail("privacy.splits", f"{shorten(outside)} lie beyond {lm.name}'s last split (allowed: 0..{j - 1}, 0 being "
                                f"the embedding output)")
    return {"model": lm.name, "blocks": j, "context": context}


def scenario_from_dict(data: dict, source: str = "scenario", base_dir: str | os.PathLike | None = None) -> Scenario:
    """Validate a plain mapping (e.g. parsed YAML) into a Scenario; relative paths resolve against ``base_dir``."""
    try:
        scenario = _build(Scenario, data, "")
        _cross_checks(scenario)
    except ConfigError as exc:
        raise ConfigError(f"{_display_path(source)}: {exc}") from None
    if base_dir is not None:
        scenario = _resolve_paths(scenario, Path(base_dir))
    try:
        _privacy_floor_check(scenario)  # after the paths are resolved: it reads privacy.file
    except ConfigError as exc:
        raise ConfigError(f"{_display_path(source)}: {exc}") from None
    return scenario


def _privacy_floor_check(s: Scenario) -> None:
    """``split.layer`` (what equal-share and the fixed-split baselines train at) must meet the floor a leakage
    limit sets, as it must meet ``split.min_layer``; under fl no activations leave the device."""
    pv = s.privacy
    if s.protocol == "fl" or (pv.max_token_accuracy is None and pv.max_rouge_l is None):
        return
    from ..privacy import scenario_privacy_floor

    floor = scenario_privacy_floor(s)
    if s.split.layer < floor.split:
        leak = floor.measured.get(s.split.layer)
        there = f"; split {s.split.layer} reaches {leak[0]:.3f} ({leak[1]})" if leak else ""
        _fail("split.layer", f"{s.split.layer} is below the privacy floor {floor.split} (privacy.file {pv.file}, "
                             f"{floor.metric} upper 95 % bound <= {floor.limit:g}{there}) (allowed: split.layer >= "
                             f"{floor.split}, or a looser limit)")


def _resolve_paths(s: Scenario, base: Path) -> Scenario:
    def fix(p):
        if p is None or p == "builtin" or os.path.isabs(p):
            return p
        return str((base / p).resolve())

    speed = replace(s.devices.speed, trace_path=fix(s.devices.speed.trace_path))
    s = replace(s, mobility=replace(s.mobility, trace_path=fix(s.mobility.trace_path)),
                availability=replace(s.availability, trace_path=fix(s.availability.trace_path)))
    conv = replace(s.convergence, calibration=fix(s.convergence.calibration))
    data = s.data if s.data.source == "shakespeare" else replace(s.data, source=fix(s.data.source))
    # simulation.allocation names a method or a file; only a file name (a .json, or a path) is resolved
    alloc = s.simulation.allocation
    if alloc.endswith(".json") or os.sep in alloc:
        s = replace(s, simulation=replace(s.simulation, allocation=fix(alloc)))
    if s.simulation.host_profile:
        s = replace(s, simulation=replace(s.simulation, host_profile=fix(s.simulation.host_profile)))
    plugins = s.solver.plugins  # a plug-in file (not a module name) is relative to the scenario
    if plugins:
        s = replace(s, solver=replace(s.solver, plugins=tuple(
            fix(p) if p.endswith(".py") or "/" in p or os.sep in p else p for p in plugins)))
    privacy = replace(s.privacy, file=fix(s.privacy.file))
    return replace(s, devices=replace(s.devices, speed=speed), convergence=conv, data=data, privacy=privacy)


def _read_scenario_text(p: Path, shown: str) -> str:
    """The file's text, read with a size limit; every problem as a one-line ConfigError."""
    def too_large(size: int):
        return ConfigError(f"{shown}: the file is {size / 2 ** 20:.1f} MiB ({size} bytes), larger than the "
                           f"{MAX_FILE_BYTES / 2 ** 20:g} MiB ({MAX_FILE_BYTES} bytes) allowed for a scenario file")
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise too_large(size)
        with p.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read the scenario file ({exc.strerror or type(exc).__name__})") from None
    if len(raw) > MAX_FILE_BYTES:  # it grew, or stat() does not know its size
        raise too_large(max(size, len(raw)))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not a UTF-8 text file (byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                          f"cannot be decoded; allowed: a YAML file in UTF-8)") from None


def load_scenario(path: str | os.PathLike) -> Scenario:
    """Read and validate a scenario file. Raises ConfigError (one line) on any problem."""
    p = Path(path)
    shown = _display_path(path)
    if not p.is_file():
        if p.exists():
            raise ConfigError(f"{shown}: not a regular file (allowed: a scenario YAML file)")
        raise ConfigError(f"{shown}: scenario file not found")
    text = _read_scenario_text(p, shown)
    try:
        data = parse_yaml_text(text)
    except ConfigError as exc:
        raise ConfigError(f"{shown}: {exc}") from None
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


# Sections that do not change the optimisation problem (how it is named, simulated, solved or stored).
NOT_PROBLEM_SECTIONS = ("name", "simulation", "solver", "output", "calibration")
DYNAMIC_SECTIONS = ("mobility", "availability", "round", "radio")


def problem_fingerprint(s: Scenario) -> str:
    """A short hash of everything in the scenario that defines the allocation problem (placement, channel,
    devices, servers, model, LoRA, split, training, data, convergence), recorded with a saved solution so
    that using it on another scenario is noticed."""
    import hashlib
    import json

    data = {k: v for k, v in scenario_to_dict(s).items() if k not in NOT_PROBLEM_SECTIONS}
    if data.get("protocol") == "sfl":
        del data["protocol"]  # the default protocol keeps the fingerprints made before the field existed
    # a world that does not change keeps its fingerprint of before the dynamics existed
    for key in DYNAMIC_SECTIONS:
        if data.get(key) == scenario_to_dict(getattr(Scenario(), key)):
            del data[key]
    if data.get("channel", {}).get("downlink", {}).get("fading") == "static":
        del data["channel"]["downlink"]["fading"]
    # where the host trains (and in what compute dtype) is not part of the allocation problem
    for key in ("device", "dtype"):
        data.get("training", {}).pop(key, None)
    # only a leakage limit changes the problem (its feasible splits), not how `fsllm-sim privacy` measures
    limits = {k: v for k, v in data.pop("privacy", {}).items()
              if k in ("file", "max_token_accuracy", "max_rouge_l") and v is not None}
    if limits.get("max_token_accuracy") is not None or limits.get("max_rouge_l") is not None:
        data["privacy"] = limits
    # the delay objective, default device energy and one common split keep the fingerprints made before energy
    if data.get("objective") == scenario_to_dict(Scenario().objective):
        del data["objective"]
    if data.get("devices", {}).get("energy") == scenario_to_dict(Scenario().devices.energy):
        del data["devices"]["energy"]
    if data.get("split", {}).get("per_client") is False:
        del data["split"]["per_client"]
    # no activation noise (the default) keeps the fingerprints made before the defence existed
    if data.get("training", {}).get("activation_noise_sigma") == 0.0:
        del data["training"]["activation_noise_sigma"]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]
