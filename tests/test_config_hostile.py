"""Hostile scenario files: each must end in one short `error:` line, in bounded time and memory, never a traceback.

Covers YAML anchors/aliases (billion laughs), deep nesting, duplicate keys, numbers too large for their field,
huge values and files, unsafe scenario names, non-UTF-8 and binary files, and a property-based test that
mutates the default scenario at random and runs `fsllm-sim validate` on it in-process.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsllm_sim.cli import main
from fsllm_sim.config import load_scenario, scenario_from_dict
from fsllm_sim.config import loader as L
from fsllm_sim.config.schema import Scenario
from fsllm_sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "default.yaml"
NAME_RULE = "allowed: 1-64 characters of A-Z a-z 0-9 . _ - , not starting with '.'"

# The libyaml-backed loader (used when PyYAML has libyaml) and the pure-Python one: both must hold.
LOADERS = [c for c in (getattr(L, "CScenarioLoader", None), getattr(L, "SafeScenarioLoader", None)) if c] or [None]


@pytest.fixture(params=LOADERS, ids=lambda c: getattr(c, "__name__", "default"))
def loader_class(request, monkeypatch):
    monkeypatch.setattr(L, "ScenarioLoader", request.param, raising=False)
    return request.param


def validate(path) -> tuple[int, str, str]:
    """Run `fsllm-sim validate PATH` in-process; stdout/stderr encode strictly as UTF-8, like a real terminal."""
    out_buf, err_buf = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_buf, encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(err_buf, encoding="utf-8", errors="strict", write_through=True)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["validate", str(path)])
    return rc, out_buf.getvalue().decode(), err_buf.getvalue().decode()


def error_of(tmp_path, content, name="s.yaml") -> str:
    """Write ``content`` (str or bytes), load it, and return the one-line ConfigError message."""
    f = tmp_path / name
    f.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(ConfigError) as info:
        load_scenario(f)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert len(message) < 400 + len(str(f)), message
    return message


def laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- 1. anchors and aliases


@pytest.mark.usefixtures("loader_class")
def test_billion_laughs_is_refused_at_the_first_anchor_in_bounded_time_and_memory(tmp_path):
    # A small one first: with the old loader it expands fine and fails on "unknown field" instead.
    message = error_of(tmp_path, laughs(3))
    assert message.endswith("s.yaml: YAML anchor '&a0' at line 1, column 5 is not allowed in scenario files "
                            "(write each value out in full)")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        message = error_of(tmp_path, laughs(9))  # 9**9 strings once expanded: 95 s and 4.6 GB before
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "YAML anchor '&a0' at line 1, column 5 is not allowed" in message
    assert time.perf_counter() - start < 1.0
    assert peak < 20 * 2 ** 20


@pytest.mark.usefixtures("loader_class")
@pytest.mark.parametrize("content, expected", [
    ("seed: *s\n", "YAML alias '*s' at line 1, column 7 is not allowed in scenario files"),
    ("seed: &s 3\n", "YAML anchor '&s' at line 1, column 7 is not allowed in scenario files"),
    ("clients:\n  layout: &l {radius_m: 100}\n", "YAML anchor '&l' at line 2, column 11 is not allowed"),
    ("clients:\n  count: 4\nlora:\n  ranks: [1, *x]\n", "YAML alias '*x' at line 4, column 14 is not allowed"),
    ("<<: {seed: 3}\n", "YAML merge key '<<' at line 1, column 1 is not allowed in scenario files"),
])
def test_anchors_aliases_and_merge_keys_are_refused_naming_line_and_column(tmp_path, content, expected):
    assert expected in error_of(tmp_path, content)


# ----------------------------------------------------------------------------------- 2. deep nesting


@pytest.mark.usefixtures("loader_class")
@pytest.mark.parametrize("content, line", [
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", 1),                         # flow: RecursionError before
    ("a: " + "{k: " * 3000 + "1" + "}" * 3000 + "\n", 1),
    ("a:\n" + "".join("  " * i + "k:\n" for i in range(1, 700)), 33),  # block: 32 levels, then line 33
    ("a:\n" + "".join("  " * i + "-\n" for i in range(1, 700)), 33),
])
def test_nesting_deeper_than_32_levels_is_refused_naming_the_line(tmp_path, content, line):
    start = time.perf_counter()
    message = error_of(tmp_path, content)
    assert f"s.yaml: nesting deeper than 32 levels at line {line}, column " in message
    assert "(allowed: at most 32 levels of mappings and lists)" in message
    assert time.perf_counter() - start < 2.0


@pytest.mark.usefixtures("loader_class")
def test_32_levels_of_nesting_still_parse(tmp_path):
    # 32 nested collections (the top-level mapping is the first) parse; the field check then refuses the key.
    message = error_of(tmp_path, "a: " + "[" * 31 + "]" * 31 + "\n")
    assert "a: unknown field" in message


# --------------------------------------------------------------------------------- 3. duplicate keys


@pytest.mark.usefixtures("loader_class")
@pytest.mark.parametrize("content, expected", [
    ("name: x\nname: y\n", "s.yaml: name: duplicate key at line 2, column 1 (first at line 1, column 1; allowed: "
                           "each key once per mapping)"),
    ("clients:\n  count: 4\n  layout:\n    radius_m: 100\n    min_distance_m: 10\n    radius_m: 200\n",
     "s.yaml: clients.layout.radius_m: duplicate key at line 6, column 5 (first at line 4, column 5;"),
    ("clients: {count: 4, count: 5}\n", "s.yaml: clients.count: duplicate key at line 1, column 21 (first at "
                                        "line 1, column 11;"),
    ("seed: 1\nclients:\n  count: 2\nseed: 1\n", "s.yaml: seed: duplicate key at line 4, column 1"),
    ("lora:\n  ranks: [1, {a: 1, a: 2}]\n", "s.yaml: lora.ranks[1].a: duplicate key at line 2, column 21"),
])
def test_duplicate_keys_are_refused_naming_key_and_line(tmp_path, content, expected):
    assert expected in error_of(tmp_path, content)


@pytest.mark.usefixtures("loader_class")
def test_keys_that_only_look_alike_are_not_duplicates(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("clients:\n  count: 4\nchannel:\n  s_band:\n    subchannels: 8\n  f_band:\n    subchannels: 8\n")
    s = load_scenario(f)
    assert (s.clients.count, s.channel.s_band.subchannels, s.channel.f_band.subchannels) == (4, 8, 8)


# ------------------------------------------------------------------------------ 4. numeric coercion


INT_RANGE = "(allowed: an integer >= 0 and <= 4294967295)"


@pytest.mark.usefixtures("loader_class")
@pytest.mark.parametrize("content, expected", [
    ("seed: 1e400\n", f"seed: 1e400 is out of range {INT_RANGE}"),
    ("seed: -1e400\n", f"seed: -1e400 is out of range {INT_RANGE}"),
    ("seed: 1.0e+400\n", f"seed: inf is out of range {INT_RANGE}"),
    ("seed: .inf\n", f"seed: inf is out of range {INT_RANGE}"),
    ("seed: .nan\n", f"seed: nan is not an integer {INT_RANGE}"),
    ("seed: 4.5\n", f"seed: 4.5 is not an integer {INT_RANGE}"),
    ("seed: 4.5e9\n", f"seed: 4.5e9 is out of range {INT_RANGE}"),
    ("seed: x\n", f"seed: 'x' is not an integer {INT_RANGE}"),
    ("seed: 1e5.5\n", f"seed: '1e5.5' is not an integer {INT_RANGE}"),
    ("clients:\n  count: 99999999999999999999999999\n",
     "clients.count: 99999999999999999999999999 is out of range (allowed: an integer >= 1 and <= 10000)"),
    ("seed: " + "9" * 5000 + "\n", "seed: 9999999999999999999999999...999999999999 is out of range"),
    ("seed: 0x" + "f" * 300 + "\n", "seed: 0xfffffffffffffffffffffff...ffffffffffff is out of range"),
    ("seed: " + "1:" * 60 + "1\n", "seed: 1:1:1:1:1:1:1:1:1:1:1:1:1...:1:1:1:1:1:1 is out of range"),  # base 60
    ("channel:\n  fading:\n    speed_kmh: " + "9" * 400 + "\n",
     "channel.fading.speed_kmh: 9999999999999999999999999...999999999999 km/h is out of range (allowed: a number "
     ">= 0 and <= 500)"),
    ("channel:\n  downlink:\n    bandwidth_hz: 1e400\n",
     "channel.downlink.bandwidth_hz: 1e400 Hz is out of range (allowed: a number > 0 and <= 10000000000)"),
    ("lora:\n  ranks: [1, 2, 99999999999999999999999999]\n",
     "lora.ranks[2]: 99999999999999999999999999 is out of range (allowed: an integer >= 1 and <= 1024)"),
    ("lora:\n  ranks: [1, 2, 1e400]\n", "lora.ranks[2]: 1e400 is out of range"),
    ("seed: 2001-13-45\n", "s.yaml: cannot read '2001-13-45' as !!timestamp at line 1, column 7: month must be"),
    ("seed: !!float abc\n", "s.yaml: cannot read 'abc' as !!float at line 1, column 7: could not convert string"),
    ("seed: !!int abc\n", "s.yaml: cannot read 'abc' as !!int at line 1, column 7: invalid literal"),
])
def test_numbers_too_large_or_malformed_give_the_usual_one_line_error(tmp_path, content, expected):
    assert expected in error_of(tmp_path, content)


@pytest.mark.parametrize("data, expected", [
    ({"seed": 10 ** 5000}, f"seed: <an integer of about 5001 digits> is out of range {INT_RANGE}"),
    ({"seed": -(10 ** 400)}, "seed: <an integer of about 401 digits> is out of range"),
    ({"channel": {"fading": {"speed_kmh": 10 ** 400}}}, "channel.fading.speed_kmh: <an integer of about 401 digits> "
                                                        "km/h is out of range (allowed: a number >= 0 and <= 500)"),
    ({"channel": {"fading": {"speed_kmh": 10 ** 30}}}, "channel.fading.speed_kmh: 1000000000000000000000000000000 "
                                                       "km/h is out of range"),
    ({"seed": float("inf")}, f"seed: inf is out of range {INT_RANGE}"),
    ({"seed": b"\x00"}, f"seed: b'\\x00' is not an integer {INT_RANGE}"),
    ({"seed": [1]}, f"seed: [1] is not an integer {INT_RANGE}"),
])
def test_numeric_coercion_never_overflows(data, expected):
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(data, source="t.yaml")
    assert f"t.yaml: {expected}" in str(info.value)


@pytest.mark.usefixtures("loader_class")
def test_int_fields_take_floats_and_numeric_text_that_are_whole_numbers(tmp_path):
    f = tmp_path / "s.yaml"
    # YAML 1.1 reads 4.0e9 (no sign in the exponent) as text and 4.0e+9 as a float: both are whole numbers.
    f.write_text("seed: 4.0e9\ndevices:\n  memory_bytes: 4.0e+9\nclients:\n  count: 4.0\n"
                 "lora:\n  rank: 8\n  ranks: [1.0, 2, '4', 8e0]\n")
    s = load_scenario(f)
    assert (s.seed, s.devices.memory_bytes, s.clients.count, s.lora.ranks) == (4_000_000_000, 4_000_000_000, 4,
                                                                              (1, 2, 4, 8))
    assert all(type(v) is int for v in (s.seed, s.devices.memory_bytes, s.clients.count, *s.lora.ranks))


# ------------------------------------------------------------------------ 5. huge files and values


def test_files_over_1_mib_are_refused_unread_naming_size_and_limit(tmp_path):
    message = error_of(tmp_path, "name: " + "x" * (5 * 2 ** 20) + "\n")
    assert message.endswith("s.yaml: the file is 5.0 MiB (5242887 bytes), larger than the 1 MiB (1048576 bytes) "
                            "allowed for a scenario file")


@pytest.mark.usefixtures("loader_class")
@pytest.mark.parametrize("content, expected", [
    ("model:\n  name: " + "m" * 900_000 + "\n",
     "model.name: 'mmmmmmmmmmmmmmmmm...mmmmmmmmmmmmmmmmmm' (900000 characters) is too long (allowed: a string of "
     "at most 4096 characters)"),
    ("name: " + "n" * 900_000 + "\n", "name: 'nnnnnnnnnnnnnnnnn...nnnnnnnnnnnnnnnnnn' (900000 characters) is too"),
    ("channel:\n  path_loss:\n    model: " + "u" * 900_000 + "\n",
     "channel.path_loss.model: 'uuuuuuuuuuuuuuuuu...uuuuuuuuuuuuuuuuuu' (900000 characters) is too long"),
    ("channel:\n  path_loss:\n    model: " + "u" * 1000 + "\n",
     "channel.path_loss.model: 'uuuuuuuuuuuuuuuuu...uuuuuuuuuuuuuuuuuu' (1000 characters) is not allowed (allowed: "
     "one of uma, umi, rma, log-distance)"),
    ("seed: " + "s" * 900_000 + "\n", "seed: 'sssssssssssssssss...ssssssssssssssssss' (900000 characters) is not an "
                                      "integer"),
    ("clients: " + "c" * 900_000 + "\n", "clients: expected a mapping of fields, got str 'ccccccccccccccc"),
    ("clients:\n  " + "k" * 1000 + ": 1\n", "clients.'kkkkkkkkkkkkkkkkk...kkkkkkkkkkkkkkkkkk' (1000 characters): "
                                             "unknown field (known: count, layout)"),
    ("clients:\n  " + "k" * 900_000 + ": 1\n", "invalid YAML at line 2, column 900003: mapping values are not"),
    ("lora:\n  target_modules: " + "t" * 900_000 + "\n", "lora.target_modules: 'ttttttttttttttttt...tttttt"),
    ("lora:\n  ranks: [" + ", ".join(["1"] * 9000) + "]\n", "lora.ranks: [1, 1, 1, 1, 1, 1, ...] has repeated"),
    ("lora:\n  ranks: [" + ", ".join(["1"] * 20000) + "]\n", "more than 10000 values at line 2, column"),
    ("channel:\n  path_loss:\n    shadowing: " + "y" * 900_000 + "\n", "channel.path_loss.shadowing: 'yyyy"),
    ("x" * 900_000 + "\n", "scenario: expected a mapping of fields, got str 'xxxxxxxxxxxxxxxxx...x"),
    ("seed: !" + "t" * 900_000 + " 1\n", "could not determine a constructor for the tag '!ttttt"),
    ("seed: &" + "a" * 900_000 + " 1\n", "YAML anchor '&aaaaaaaaaaaaaaaa...aaaaaaaaaaaaaaaaaa' (900001 characters) "
                                         "at line 1, column 7 is not allowed"),
])
def test_huge_values_are_quoted_shortened_in_one_short_line(tmp_path, content, expected):
    start = time.perf_counter()
    message = error_of(tmp_path, content)  # checks: one line, under 400 characters past the file name
    assert expected in message
    assert time.perf_counter() - start < 2.0


def test_shorten_keeps_any_value_short_and_on_one_line():
    for value in ("x" * 10 ** 6, "a\nb\rc\x00\ud800" * 1000, list(range(10 ** 5)),
                  {str(i): "v" * 1000 for i in range(99)}, 10 ** 5000, -(2 ** 100000), 1e308, b"\xff" * 10 ** 5,
                  [[[[["deep"] * 50] * 50]]], None, True):
        text = L.shorten(value)
        assert len(text) <= 120 and "\n" not in text and "\r" not in text and text.isprintable()


@pytest.mark.parametrize("value", ["a\x00b", "line\nbreak", "\ud800", "tab\there", "\x7f"])
def test_control_characters_and_lone_surrogates_are_refused_in_string_fields(value):
    for data, path in (({"model": {"name": value}}, "model.name"), ({"data": {"source": value}}, "data.source")):
        with pytest.raises(ConfigError) as info:
            scenario_from_dict(data, source="t.yaml")
        assert f"t.yaml: {path}: " in str(info.value)
        assert "contains a control character or an unpaired surrogate" in str(info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("content, expected", [
    ('data:\n  source: "a\\0b"\n', "data.source: 'a\\x00b' contains a control character"),
    ('model:\n  name: "two\\nlines"\n', "model.name: 'two\\nlines' contains a control character"),
    ('model:\n  name: "\\ud800"\n', "invalid YAML at line 2, column 12: found invalid Unicode character escape"),
])
def test_control_characters_in_string_fields_give_one_line_in_the_cli(tmp_path, content, expected):
    f = tmp_path / "s.yaml"
    f.write_text(content)
    rc, out, err = validate(f)
    assert rc == 2 and out == "" and err.count("\n") == 1 and expected in err, err


# ------------------------------------------------------------------------------------ 6. scenario name


@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\b", "a b", "x" * 65, "x" * 300, "", ".", "..", ".hidden",
                                  "naïve", "a\x00b", "a\nb", 7, None])
def test_unsafe_scenario_names_are_refused(name):
    with pytest.raises(ConfigError) as info:
        scenario_from_dict({"name": name}, source="t.yaml")
    message = str(info.value)
    assert message.startswith("t.yaml: name: ") and "\n" not in message and len(message) < 200
    if isinstance(name, str) and "\x00" not in name and "\n" not in name:
        assert message == f"t.yaml: name: {L.shorten(name)} is not allowed; {NAME_RULE}"


def test_name_message_is_exactly_as_documented(tmp_path):
    assert error_of(tmp_path, "name: ../../x\n").endswith(f"s.yaml: name: '../../x' is not allowed; {NAME_RULE}")


@pytest.mark.parametrize("name", ["default", "x", "run-1.2_b", "A" * 64, "_x", "-x", "1"])
def test_safe_scenario_names_are_accepted(name):
    assert scenario_from_dict({"name": name}).name == name


def test_run_directory_refuses_an_unsafe_name_built_in_code(tmp_path):
    from fsllm_sim.rundir import create_run_dir

    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match=r"^name: '\.\./\.\./escaped' is not allowed; allowed: 1-64 characters"):
        create_run_dir(Scenario(name="../../escaped"), "run", runs)
    assert not any(tmp_path.rglob("*escaped*"))
    run = create_run_dir(Scenario(name="ok"), "run", runs)
    assert run.parent == runs and run.name.startswith("ok-run-")


# ---------------------------------------------------------------------- binary, non-UTF-8, not a file


@pytest.mark.parametrize("content, fragment", [
    (b"\xff\xfe\x00\x00binary", "not a UTF-8 text file (byte 0xff at offset 0 cannot be decoded; allowed: a YAML "
                                "file in UTF-8)"),
    ("seed: 1\nname: caf\xe9\n".encode("latin-1"), "not a UTF-8 text file (byte 0xe9 at offset 17"),
    (bytes(range(256)) * 4, "not a UTF-8 text file (byte 0x80 at offset 128"),
    (b"\x00\x01\x02\x03", "invalid YAML"),
    (b"seed: 1\x00\n", "invalid YAML"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 16, "not a UTF-8 text file (byte 0x8b at offset 1"),  # gzip
    (b"", None),
])
def test_binary_and_non_utf8_files_give_one_line(tmp_path, content, fragment):
    f = tmp_path / "s.yaml"
    f.write_bytes(content)
    rc, out, err = validate(f)
    if fragment is None:
        assert rc == 0 and err == ""
        return
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {f}: ") and fragment in err, err


def test_a_folder_is_not_a_scenario_file(tmp_path):
    rc, _, err = validate(tmp_path)
    assert rc == 2 and err == f"error: {tmp_path}: not a regular file (allowed: a scenario YAML file)\n"


# ---------------------------------------------------------------- 7. property: random mutations of default


BASE_TEXT = DEFAULT.read_text(encoding="utf-8")
BASE = yaml.safe_load(BASE_TEXT)
SPECIAL = ["1e400", "-1e400", "4.0e9", "1.0e+400", "99999999999999999999999999", "9" * 400, "0x" + "f" * 120,
           "../../x", ".", "", "x" * 300, "a\x00b", "null", "~", "&a", "*a", "<<", "2001-13-45", "!!float x",
           "\u202e\u0000\ufeff", "\U0001f600", "nan", ".inf", "-.inf", "1:2:3", "0b101", "0o17", "1_000"]


def _paths(node, prefix=()):
    """Every key path in a nested mapping: (path, is_leaf)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,), not isinstance(v, dict)
            yield from _paths(v, prefix + (k,))


def _get_parent(data, path):
    for k in path[:-1]:
        data = data[k]
    return data


# Beyond float range (1e308) and up to Python's 4300-digit limit on int <-> str.
huge_ints = st.builds(lambda m, e, sign: sign * m * 10 ** e, st.integers(1, 10 ** 6), st.integers(300, 4200),
                      st.sampled_from([1, -1]))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), huge_ints, st.floats(), st.text(max_size=12),
    st.sampled_from(SPECIAL), st.sampled_from(SPECIAL), huge_ints.map(str),  # the troublemakers, more often
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=6), scalars, max_size=3))


@st.composite
def mutated_scenarios(draw) -> bytes:
    data = copy.deepcopy(BASE)
    edits = draw(st.sampled_from([0, 1, 1, 2, 3]))
    for _ in range(edits):
        paths = list(_paths(data))
        op = draw(st.sampled_from(["replace_leaf", "replace_leaf", "replace_any", "delete", "add_key"]))
        if not paths:
            break
        if op == "replace_leaf" and any(leaf for _, leaf in paths):
            path = draw(st.sampled_from([p for p, leaf in paths if leaf]))
            _get_parent(data, path)[path[-1]] = draw(values)
        elif op == "replace_any":
            path = draw(st.sampled_from([p for p, _ in paths]))
            _get_parent(data, path)[path[-1]] = draw(values)
        elif op == "delete":
            path = draw(st.sampled_from([p for p, _ in paths]))
            del _get_parent(data, path)[path[-1]]
        else:
            path = draw(st.sampled_from([p for p, _ in paths]))
            parent = _get_parent(data, path)
            parent[draw(st.one_of(st.text(max_size=8), st.sampled_from([str(path[-1]) + "x", "<<", "1", "true"])))] \
                = draw(values)
    text = BASE_TEXT if edits == 0 else yaml.safe_dump(data, sort_keys=False, allow_unicode=draw(st.booleans()),
                                                       default_flow_style=draw(st.sampled_from([None, False, True])))
    for _ in range(draw(st.integers(0, 3))):
        lines = text.splitlines(keepends=True) or [""]
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["duplicate_line", "delete_line", "insert_text", "truncate", "swap_lines"]))
        if op == "duplicate_line":
            lines.insert(i, lines[i])
        elif op == "delete_line":
            del lines[i]
        elif op == "swap_lines":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert_text":
            at = draw(st.integers(0, len(lines[i])))
            piece = draw(st.one_of(st.text(max_size=10), st.sampled_from(SPECIAL + ["9" * 5000, " &x", " *x"])))
            lines[i] = lines[i][:at] + piece + lines[i][at:]
        else:
            lines = lines[:i] + [lines[i][:draw(st.integers(0, len(lines[i])))]]
        text = "".join(lines)
    raw = text.encode("utf-8", errors="surrogatepass")
    if draw(st.integers(0, 9)) == 0:  # now and then, bytes that are not UTF-8 at all
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    return raw


@pytest.fixture(scope="module")
def warm_cli():
    """Import everything `validate` needs once, so no example pays for imports."""
    assert validate(DEFAULT)[0] == 0


@settings(max_examples=100, deadline=timedelta(seconds=2), database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=mutated_scenarios(), loader_class=st.sampled_from(LOADERS))
def test_validate_survives_random_mutations_of_the_default_scenario(warm_cli, raw, loader_class):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mutated.yaml")
        with open(path, "wb") as fh:
            fh.write(raw)
        with mock.patch.object(L, "ScenarioLoader", loader_class, create=True):
            start = time.perf_counter()
            rc, out, err = validate(path)  # an uncaught exception fails the test
            elapsed = time.perf_counter() - start
    assert elapsed < 2.0
    assert rc in (0, 2)
    if rc == 2:
        assert err.endswith("\n") and err.count("\n") == 1 and err.startswith("error:"), err
        assert len(err) < 400 + len(path), err
    else:
        assert err == "" and out.startswith(f"{path}: valid")
