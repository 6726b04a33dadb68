"""`fsllm-sim sweep`: ``--set`` syntax, bookkeeping that survives a kill, byte-comparable results, figures.

* ``--set FIELD=V1,V2`` values are one YAML flow list: a list value is written in brackets
  (``lora.ranks=[1,2],[2,4]``); malformed assignments and values given twice are one-line errors;
* a point's configuration is written before its result, wall-clock times go to ``timing.csv`` (never to
  ``sweep.csv``), so the same scenario and seed give a byte-identical ``sweep.csv``, fresh or resumed;
* a resume removes the temporary files a killed run left; ``status.json`` says complete at the end;
* a point with an infinite total delay is an error, not a row;
* the figure draws three or more swept fields (one line pair per combination of the other fields).
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fsllm_sim.errors import ConfigError
from fsllm_sim.jobs.sweep import parse_assignment, run_sweep
from fsllm_sim.rundir import run_status

ROOT = Path(__file__).resolve().parents[1]
from test_sweep import BASE  # noqa: E402  (the same tiny base scenario)
QUIET = {"profile_source": "analytic", "progress": False, "echo": lambda *_: None}


@pytest.fixture
def base_file(tmp_path):
    f = tmp_path / "base.yaml"
    f.write_text(yaml.safe_dump(BASE))
    return f


# ------------------------------------------------------------------------------------------ --set


@pytest.mark.parametrize("text, expected", [
    ("lora.ranks=[4,8]", ("lora.ranks", [[4, 8]])),
    ("lora.ranks=[1,2],[2,4]", ("lora.ranks", [[1, 2], [2, 4]])),
    ("lora.ranks=[1, 2], [2, 4]", ("lora.ranks", [[1, 2], [2, 4]])),
    ("channel.s_band.subchannels=4,8", ("channel.s_band.subchannels", [4, 8])),
    ("channel.power.total_cap_s_dbm=null,30", ("channel.power.total_cap_s_dbm", [None, 30])),
    ("data.source='a,b.txt',c.txt", ("data.source", ["a,b.txt", "c.txt"])),
    ("clients.count=4,", ("clients.count", [4])),
])
def test_set_values_are_a_yaml_list_with_bracketed_lists(text, expected):
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("foo", "--set 'foo': expected FIELD=VALUE[,VALUE...], e.g. channel.s_band.subchannels=16,32 or "
            "lora.ranks=[4,8],[8,16]"),
    ("=3", "--set '=3': no field before '='"),
    ("a.b=", "--set 'a.b=': no value after '='"),
    ("a.b=  ", "--set 'a.b=  ': no value after '='"),
    ("a..b=1", "--set 'a..b=1': 'a..b' is not a field path"),
    ("a.b.=1", "--set 'a.b.=1': 'a.b.' is not a field path"),
    ("lora.ranks=[4,8", "--set 'lora.ranks=[4,8': the values are not a list of YAML values (invalid YAML: "),
    ("x=&a 1", "--set 'x=&a 1': the values are not a list of YAML values"),
    ("clients.count=2,2", "--set 'clients.count=2,2': the value 2 is given twice (allowed: each value once)"),
    ("lora.ranks=[1,2],[1, 2]", "the value [1, 2] is given twice"),
])
def test_malformed_or_repeated_set_values_are_one_line(text, expected):
    with pytest.raises(ConfigError) as info:
        parse_assignment(text)
    message = str(info.value)
    assert (message.startswith(expected) if expected.startswith("--set") else expected in message)
    assert "\n" not in message


def test_values_that_read_the_same_are_refused_before_any_work(base_file, tmp_path):
    with pytest.raises(ConfigError) as info:
        run_sweep(str(base_file), [parse_assignment("clients.count=2,2.0")], out_dir=str(tmp_path / "o"), **QUIET)
    assert str(info.value) == ("--set: {'clients.count': 2} and {'clients.count': 2.0} give the same scenario "
                               "(allowed: values that differ once read, e.g. not both 4 and 4.0)")
    with pytest.raises(ConfigError, match=r"--set lora.rank and --set lora set the same field"):
        run_sweep(str(base_file), [parse_assignment("lora={rank: 1}"), parse_assignment("lora.rank=1,2")],
                  out_dir=str(tmp_path / "o"), **QUIET)
    assert not (tmp_path / "o").exists()


def test_cli_set_errors_are_one_line(base_file, tmp_path):
    for bad in ("=3", "foo", "a.b=", "lora.ranks=[4,8"):
        result = subprocess.run([sys.executable, "-m", "fsllm_sim.cli", "sweep", str(base_file), "--set", bad,
                                 "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: --set {bad!r}: ")


def test_a_list_valued_field_is_swept(base_file, tmp_path):
    out = run_sweep(str(base_file), [parse_assignment("lora.ranks=[1,2],[2,4]")], out_dir=str(tmp_path / "o"),
                    **QUIET)
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [r["set:lora.ranks"] for r in rows] == ["[1, 2]", "[2, 4]"]
    assert [int(r["rank"]) for r in rows] == [2, 4]
    assert (out / "sweep.png").is_file()


# ------------------------------------------------------------------------------------------ bookkeeping


def test_a_points_configuration_is_written_before_its_result(base_file, tmp_path, monkeypatch):
    import fsllm_sim.jobs.sweep as sweep
    import fsllm_sim.rundir as rundir

    order = []
    real = rundir.atomic_write_text
    for module in (rundir, sweep):
        monkeypatch.setattr(module, "atomic_write_text", lambda p, t: (order.append(Path(p)), real(p, t)))
    out = run_sweep(str(base_file), [parse_assignment("channel.s_band.subchannels=4,8")],
                    out_dir=str(tmp_path / "o"), **QUIET)
    for result in (out / "points").glob("*.json"):
        config = result.with_suffix(".yaml")
        timing = out / "timing" / result.name
        assert order.index(config) < order.index(timing) < order.index(result)
    assert order[-1] == out / "status.json" and run_status(out) == "complete"


def test_sweep_csv_has_no_wall_clock_time_and_is_byte_identical(base_file, tmp_path):
    grid = [parse_assignment("channel.s_band.subchannels=4,8"), parse_assignment("clients.count=1,2")]
    first = run_sweep(str(base_file), grid, out_dir=str(tmp_path / "a"), **QUIET)
    second = run_sweep(str(base_file), grid, out_dir=str(tmp_path / "b"), **QUIET)
    header = (first / "sweep.csv").read_text().splitlines()[0]
    assert "wall" not in header and "time_s" not in header.replace("round_time_s", "")
    assert (first / "sweep.csv").read_bytes() == (second / "sweep.csv").read_bytes()
    timing = list(csv.DictReader((first / "timing.csv").open()))
    assert len(timing) == 4 and all(float(t["solver_wall_s"]) > 0 for t in timing)
    # resumed: one point lost, recomputed; the table is byte for byte the same
    next((first / "points").glob("*.json")).unlink()
    run_sweep(str(base_file), grid, out_dir=str(first), **QUIET)
    assert (first / "sweep.csv").read_bytes() == (second / "sweep.csv").read_bytes()


def test_a_resume_removes_the_temp_files_of_a_killed_run(base_file, tmp_path):
    grid = [parse_assignment("channel.s_band.subchannels=4,8")]
    out = run_sweep(str(base_file), grid, out_dir=str(tmp_path / "o"), **QUIET)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = [out / "points" / f".abc.json.tmp-{proc.pid}-q1w2e3r4", out / "points" / ".abc.json.k3j4h5g6.tmp",
             out / "timing" / f".abc.json.tmp-{proc.pid}-q1w2e3r4", out / f".sweep.csv.tmp-{proc.pid}-q1w2e3r4"]
    for p in stale:
        p.write_text("half")
    live = out / "points" / f".def.json.tmp-{os.getpid()}-q1w2e3r4"
    live.write_text("in flight")
    run_sweep(str(base_file), grid, out_dir=str(out), **QUIET)
    assert not any(p.exists() for p in stale) and live.exists()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_vanishing_device_speed_is_an_error_not_a_row(base_file, tmp_path):
    """A speed of 1e-300 FLOP/s would give an infinite total: the trace reader refuses it (schema range)."""
    (tmp_path / "t.csv").write_text("client_id,flops_per_s,memory_bytes\n0,1e-300,4e9\n1,1e12,4e9\n")
    data = {**BASE, "devices": {"speed": {"distribution": "trace", "trace_path": "t.csv"}}}
    base_file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        run_sweep(str(base_file), [parse_assignment("clients.count=2")], out_dir=str(tmp_path / "o"), **QUIET)
    assert "(flops_per_s): 1e-300 FLOP/s is out of range (allowed: a number >= 1000000" in str(info.value)
    assert not (tmp_path / "o" / "sweep.csv").exists() and run_status(tmp_path / "o") != "complete"


# ------------------------------------------------------------------------------------------ figure


def _results(fields):
    import itertools

    rows = []
    for i, combo in enumerate(itertools.product(*[vals for _, vals in fields])):
        row = {f"set:{name}": v for (name, _), v in zip(fields, combo)}
        row.update(total_s=10.0 + i, equal_total_s=12.0 + i)
        rows.append(row)
    return rows


def test_the_figure_draws_three_swept_fields(tmp_path):
    from plots.sweep import plot_sweep

    fields = [("channel.s_band.subchannels", [8, 16, 32]), ("clients.count", [2, 4]), ("lora.rank", [4, 8])]
    results = _results(fields)
    drawn = plot_sweep(results, [f"set:{n}" for n, _ in fields], tmp_path / "s.png")
    assert sorted(drawn) == ["clients.count=2, lora.rank=4", "clients.count=2, lora.rank=8",
                             "clients.count=4, lora.rank=4", "clients.count=4, lora.rank=8"]
    assert all(xs == [8, 16, 32] for xs in drawn.values())  # every point on exactly one line
    assert (tmp_path / "s.png").read_bytes().startswith(b"\x89PNG")


def test_the_figure_takes_lists_and_null_as_categories(tmp_path):
    from plots.sweep import plot_sweep

    fields = [("channel.power.total_cap_s_dbm", [None, 30, 20]), ("lora.ranks", [[1, 2], [2, 4]])]
    drawn = plot_sweep(_results(fields), [f"set:{n}" for n, _ in fields], tmp_path / "s.png")
    assert drawn == {"lora.ranks=[1, 2]": [None, 30, 20], "lora.ranks=[2, 4]": [None, 30, 20]}


def test_a_three_field_sweep_end_to_end(base_file, tmp_path):
    grid = [parse_assignment("channel.s_band.subchannels=4,8"), parse_assignment("clients.count=1,2"),
            parse_assignment("lora.rank=1,2")]
    out = run_sweep(str(base_file), grid, out_dir=str(tmp_path / "o"), **QUIET)
    assert len(list(csv.DictReader((out / "sweep.csv").open()))) == 8
    assert json.loads((out / "status.json").read_text())["status"] == "complete"
