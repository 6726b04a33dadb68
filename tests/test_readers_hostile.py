"""Files a scenario names (device trace CSV, calibration JSON) are untrusted input, like the scenario itself.

Each reader bounds the file size, refuses bytes that are not UTF-8, and applies the ranges of the scenario
fields the file's numbers stand for (read from the schema's ``Spec``, never repeated), with one-line errors
that name the file, the line and column (trace) or the key (calibration), and the allowed range. The CLI
prints them as ``error: ...`` with exit status 2 and never a traceback.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fsllm_sim.config.loader import field_spec
from fsllm_sim.config.schema import Scenario
from fsllm_sim.convergence import (MAX_CALIBRATION_BYTES, builtin_calibration_path, load_calibration_fit,
                                   read_calibration_document)
from fsllm_sim.devices import MAX_TRACE_BYTES, load_device_trace
from fsllm_sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
HEADER = "client_id,flops_per_s,memory_bytes\n"
SPEED_FIELDS = ("median_flops_per_s", "low_flops_per_s", "high_flops_per_s")


def trace_error(tmp_path, content, clients=2) -> str:
    f = tmp_path / "t.csv"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError) as info:
        load_device_trace(f, clients)
    message = str(info.value)
    assert "\n" not in message and str(f) in message
    return message


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fsllm_sim.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def assert_one_line_error(result, fragment):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]


# ------------------------------------------------------------------------------------------ device traces


def test_non_utf8_trace_is_one_line_naming_line_and_column(tmp_path):
    message = trace_error(tmp_path, HEADER.encode() + b"0,1e12,4e9\n1,\xff\xfe,4e9\n")
    assert message.endswith("t.csv: line 3, column 3: byte 0xff is not UTF-8 (allowed: a CSV text file in UTF-8)")


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes(b"\xef\xbb\xbf" + (HEADER + "0,1e12,4e9\n").encode())
    assert load_device_trace(f, 1).flops_per_s.tolist() == [1e12]


def _beyond(spec, side):
    """A value just outside the Spec on one side (None if that side is open)."""
    if side == "high":
        bound = spec.le if spec.le is not None else spec.lt
        return None if bound is None else bound * 10
    bound = spec.ge if spec.ge is not None else spec.gt
    return None if bound is None else (bound - 1 if spec.ge is not None else bound)


@pytest.mark.parametrize("side", ["low", "high"])
@pytest.mark.parametrize("column, field", [("flops_per_s", f"devices.speed.{f}") for f in SPEED_FIELDS]
                         + [("memory_bytes", "devices.memory_bytes")])
def test_trace_values_obey_the_ranges_of_the_scenario_fields(tmp_path, column, field, side):
    spec = field_spec(Scenario, field)
    value = _beyond(spec, side)
    assert value is not None
    row = {"flops_per_s": "1e12", "memory_bytes": "4e9"}
    row[column] = repr(value)
    message = trace_error(tmp_path, HEADER + "0,1e12,4e9\n" + f"1,{row['flops_per_s']},{row['memory_bytes']}\n")
    col = 2 if column == "flops_per_s" else 3
    assert f"t.csv: line 3, column {col} ({column}): " in message
    assert message.endswith(f"is out of range (allowed: {spec.allowed()})")


def test_the_trace_reader_applies_every_speed_field_of_the_schema():
    from fsllm_sim.devices import _trace_specs

    specs = _trace_specs()
    assert [name for name, _ in specs["flops_per_s"]] == [f"devices.speed.{f}" for f in SPEED_FIELDS]
    assert [spec for _, spec in specs["memory_bytes"]] == [field_spec(Scenario, "devices.memory_bytes")]


def test_a_vanishing_speed_is_refused(tmp_path):
    trace_error(tmp_path, HEADER + "0,1e-300,4e9\n1,1e12,4e9\n")


@pytest.mark.parametrize("content, expected", [
    (HEADER + "0,fast,4e9\n1,1,1\n", "t.csv: line 2, column 2 (flops_per_s): 'fast' is not a number (allowed: "),
    (HEADER + "0,nan,4e9\n1,1,1\n", "t.csv: line 2, column 2 (flops_per_s): nan is not a number"),
    (HEADER + "0,1e12,4.5\n1,1,1\n", "t.csv: line 2, column 3 (memory_bytes): 4.5 is not an integer"),
    (HEADER + "0,1e12\n1,1,1\n", "t.csv: line 2, column 3 (memory_bytes): missing value (the line has 2 fields for 3 "
                                 "columns)"),
    (HEADER + "0,1e12,4e9\n\n\n1,1e999,4e9\n", "t.csv: line 5, column 2 (flops_per_s): 1e999 FLOP/s is out of range"),
    (HEADER + '0,"1e12\n', "t.csv: line 2: not readable as CSV (unexpected end of data)"),
    (HEADER + "0,1e12,4e9\n1,\x00,4e9\n", "t.csv: line 3"),
])
def test_malformed_trace_values_are_one_line(tmp_path, content, expected):
    assert expected in trace_error(tmp_path, content)


def test_whole_numbers_written_as_floats_are_accepted_as_memory(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text(HEADER + "0,1e12,4.0e9\n1,2e11,4294967296.0\n")
    assert load_device_trace(f, 2).memory_bytes.tolist() == [4e9, 4294967296.0]


def test_trace_files_over_the_limit_are_refused_unread(tmp_path):
    f = tmp_path / "t.csv"
    with f.open("wb") as fh:  # sparse: costs no disk
        fh.write(HEADER.encode())
        fh.truncate(MAX_TRACE_BYTES + 1)
    with pytest.raises(ConfigError) as info:
        load_device_trace(f, 1)
    assert str(info.value).endswith(f"larger than the {MAX_TRACE_BYTES // 2 ** 20} MiB ({MAX_TRACE_BYTES} bytes) "
                                    f"allowed for a device trace")


def test_a_folder_is_not_a_trace(tmp_path):
    (tmp_path / "t.csv").mkdir()
    with pytest.raises(ConfigError, match="t.csv: not a regular file"):
        load_device_trace(tmp_path / "t.csv", 1)


def test_validate_reads_the_trace_and_reports_one_line(tmp_path):
    (tmp_path / "t.csv").write_bytes(HEADER.encode() + b"0,1e12,4e9\n1,\xff,4e9\n")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"devices": {"speed": {"distribution": "trace",
                                                                             "trace_path": "t.csv"}}}))
    result = run_cli("validate", "s.yaml", cwd=tmp_path)
    assert_one_line_error(result, "s.yaml: devices.speed.trace_path: ")
    assert "t.csv: line 3, column 3: byte 0xff is not UTF-8" in result.stderr


# ------------------------------------------------------------------------------------------ calibration files


def calibration_file(tmp_path, **changes) -> Path:
    doc = json.loads(builtin_calibration_path().read_text())
    doc.update(changes)
    f = tmp_path / "cal.json"
    f.write_text(json.dumps(doc))
    return f


def calibration_error(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_calibration_fit(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.mark.parametrize("key", ["a", "b", "c"])
@pytest.mark.parametrize("value, what", [("x", "is not a number"), (None, "is not a number"),
                                         (True, "is not a number"), ([1], "is not a number"),
                                         (1e308, "is out of range"), (-1.0, "is out of range")])
def test_fit_parameters_obey_the_ranges_of_convergence_abc(tmp_path, key, value, what):
    fit = {"a": 3.0, "b": 10.0, "c": 0.5, key: value}
    message = calibration_error(calibration_file(tmp_path, fit=fit))
    spec = field_spec(Scenario, f"convergence.{key}")
    assert f"fit.{key} (convergence.{key}): " in message
    assert message.endswith(f"{what} (allowed: {spec.allowed()})")


def test_a_huge_fit_no_longer_gives_an_infinite_total(tmp_path):
    message = calibration_error(calibration_file(tmp_path, fit={"a": 1e308, "b": 1e308, "c": 0.5}))
    assert "fit.a (convergence.a): 1e+308 is out of range (allowed: a number >= 0 and <= 1000000000)" in message


@pytest.mark.parametrize("changes, expected", [
    ({"fit": [1, 2]}, "fit is [1, 2] (allowed: a mapping with a, b, c, or null)"),
    ({"fit": "abc"}, "fit is 'abc' (allowed: a mapping with a, b, c, or null)"),
    ({"target": 4}, "target is 4 (allowed: a mapping or null)"),
    ({"target": {"value": "low"}}, "target.value (calibration.target_val_loss): 'low' is not a number"),
    ({"fit": {"a": 0, "b": 0, "c": 1}}, "convergence: a + b must be > 0"),
])
def test_malformed_fit_and_target_are_one_line(tmp_path, changes, expected):
    assert expected in calibration_error(calibration_file(tmp_path, **changes))


@pytest.mark.parametrize("raw, expected", [
    (b'{"schema": "\xff"}', "is not UTF-8 (byte 0xff at offset 12; allowed: a JSON file in UTF-8)"),
    (b"[" * 100_000, "is not readable JSON: nested too deeply"),
    (b"{", "is not readable JSON: Expecting property name"),
])
def test_unreadable_calibration_files_are_one_line(tmp_path, raw, expected):
    f = tmp_path / "cal.json"
    f.write_bytes(raw)
    assert expected in calibration_error(f)


def test_calibration_files_over_the_limit_are_refused_unread(tmp_path):
    f = tmp_path / "cal.json"
    with f.open("wb") as fh:
        fh.truncate(MAX_CALIBRATION_BYTES + 1)
    assert calibration_error(f).endswith(f"larger than the {MAX_CALIBRATION_BYTES // 2 ** 20} MiB "
                                         f"({MAX_CALIBRATION_BYTES} bytes) allowed")


def test_the_shipped_calibration_still_loads_unchanged():
    doc = json.loads(builtin_calibration_path().read_text())
    model = load_calibration_fit(builtin_calibration_path())
    assert (model.a, model.b, model.c) == (doc["fit"]["a"], doc["fit"]["b"], doc["fit"]["c"])
    assert read_calibration_document(builtin_calibration_path())["target"]["value"] == doc["target"]["value"]


def test_validate_reads_the_calibration_file_and_reports_one_line(tmp_path):
    calibration_file(tmp_path, fit={"a": "many", "b": 1, "c": 1})
    (tmp_path / "s.yaml").write_text("convergence:\n  calibration: cal.json\n")
    result = run_cli("validate", "s.yaml", cwd=tmp_path)
    assert_one_line_error(result, "fit.a (convergence.a): 'many' is not a number (allowed: a number >= 0 and "
                                  "<= 1000000000)")
