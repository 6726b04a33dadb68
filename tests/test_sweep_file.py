"""Sweep files: what they say, and a one-line error naming the field and what is allowed for every mistake.

* a file with axes, zip, set, methods, seeds and an evaluator is read as written (values checked against the
  scenario fields), the points are the product of the axes and the zipped group;
* unknown fields and field paths, empty axes, zips of unequal length, too many runs, unknown methods or
  evaluators, values out of range: one line that starts with the file and names the field, before any work;
* the command line tells a sweep file from a scenario file, and the reference documents every sweep field.
"""
from pathlib import Path

import pytest
import yaml

from fsllm_sim.cli import main
from fsllm_sim.config.reference import reference_markdown
from fsllm_sim.config.sweep_file import MAX_RUNS, SWEEP_FIELDS, load_sweep_file
from fsllm_sim.errors import ConfigError
from fsllm_sim.jobs.sweep import run_sweep_file
from fsllm_sim.jobs.sweeps.plan import check_methods

from test_sweep import BASE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    return tmp_path


def write(folder, data) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_sweep_file_is_read_as_written(folder):
    path = write(folder, {"base": "base.yaml",
                          "axes": {"clients.count": [1, 2], "lora.ranks": [[1, 2], [2]]},
                          "zip": {"channel.s_band.subchannels": [4, 8, 16], "channel.f_band.subchannels": [2, 4, 8]},
                          "set": {"simulation.rounds": 2},
                          "methods": ["bcd", "equal-share", "bcd/fixed-rank"], "seeds": 3, "evaluator": "simulate"})
    sweep = load_sweep_file(path)
    assert sweep.base == str((folder / "base.yaml").resolve())
    assert sweep.axes == (("clients.count", (1, 2)), ("lora.ranks", ([1, 2], [2])))
    assert sweep.zipped == (("channel.s_band.subchannels", (4, 8, 16)), ("channel.f_band.subchannels", (2, 4, 8)))
    assert sweep.fixed == (("simulation.rounds", 2),)
    assert (sweep.num_points, sweep.num_runs, sweep.evaluator, sweep.profile) == (12, 108, "simulate", "counted")
    assert sweep.varied_fields() == ["clients.count", "lora.ranks", "channel.s_band.subchannels",
                                     "channel.f_band.subchannels"]
    check_methods(sweep)


def test_defaults_one_point_bcd_one_seed_analytic(folder):
    sweep = load_sweep_file(write(folder, {"base": "base.yaml"}))
    assert (sweep.num_runs, sweep.methods, sweep.seeds, sweep.evaluator) == (1, ("bcd",), 1, "analytic")


BAD = [
    ({"base": "base.yaml", "axis": {}}, "axis: unknown sweep field; did you mean 'axes'?"),
    ({"axes": {"clients.count": [1]}}, "base: missing (allowed: the path of the base scenario file"),
    ({"base": "base.yaml", "axes": {"clients.cont": [1]}},
     "axes.clients.cont: unknown scenario field (allowed: the dotted path of a scenario field, listed in "
     "scenarios/REFERENCE.md, e.g. channel.s_band.subchannels); did you mean 'clients.count'?"),
    ({"base": "base.yaml", "axes": {"clients": [1]}}, "axes.clients: unknown scenario field"),
    ({"base": "base.yaml", "axes": {"seed": [1, 2]}}, "axes.seed: not allowed here (the seed is set by seeds:"),
    ({"base": "base.yaml", "axes": {}}, "axes: empty (allowed: a mapping from field paths to non-empty lists"),
    ({"base": "base.yaml", "axes": {"clients.count": []}},
     "axes.clients.count: [] is not a non-empty list (allowed: a list of values of clients.count: an integer >= 1 "
     "and <= 10000)"),
    ({"base": "base.yaml", "axes": {"clients.count": 4}}, "axes.clients.count: 4 is not a non-empty list"),
    ({"base": "base.yaml", "axes": {"clients.count": [1, 0]}},
     "axes.clients.count[1]: 0 is out of range (allowed: an integer >= 1 and <= 10000)"),
    ({"base": "base.yaml", "axes": {"clients.count": [2, 2.0]}},
     "axes.clients.count[1]: 2.0 is given twice (allowed: each value once)"),
    ({"base": "base.yaml", "zip": {"channel.s_band.subchannels": [4, 8], "channel.f_band.subchannels": [2]}},
     "zip: channel.s_band.subchannels has 2 values but channel.f_band.subchannels has 1 (allowed: lists of one "
     "common length)"),
    ({"base": "base.yaml", "axes": {"clients.count": [1]}, "zip": {"clients.count": [2]}},
     "zip.clients.count: also in axes (allowed: each field in one of axes, zip and set)"),
    ({"base": "base.yaml", "axes": {"clients.count": list(range(1, 1001)),
                                    "channel.s_band.subchannels": list(range(1, 201))}},
     f"the sweep has 200000 runs (1000 x 200 points x 1 methods x 1 seeds; allowed: at most {MAX_RUNS}); split it"),
    ({"base": "base.yaml", "evaluator": "simulated"},
     "evaluator: 'simulated' is not allowed (allowed: one of analytic, simulate); did you mean 'simulate'?"),
    ({"base": "base.yaml", "seeds": 0}, "seeds: 0 is out of range (allowed: an integer >= 1 and <= 1000)"),
    ({"base": "base.yaml", "methods": []}, "methods: [] is not a non-empty list"),
    ({"base": "base.yaml", "methods": ["bcd", "bcd"]}, "methods[1]: 'bcd' is given twice"),
    ({"base": "base.yaml", "set": {"simulation.rounds": 0}},
     "set.simulation.rounds: 0 is out of range (allowed: an integer >= 1 and <= 1000000)"),
    ("base: base.yaml\naxes: &a {clients.count: [1]}\nzip: *a\n",
     "YAML anchor '&a' at line 2, column 7 is not allowed"),
    ("- base.yaml\n", "expected a mapping of sweep fields, got ['base.yaml']"),
]


@pytest.mark.parametrize("data, expected", BAD)
def test_bad_sweep_files_are_one_line_errors(folder, data, expected):
    path = write(folder, data)
    with pytest.raises(ConfigError) as info:
        load_sweep_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message, message


@pytest.mark.parametrize("method, expected", [
    ("bcdd", "methods[1]: 'bcdd' is not a method (allowed: bcd, exact, gurobi, equal, random, max-power, "
             "equal-share, or METHOD/fixed-split|fixed-rank|fixed-split-rank (e.g. bcd/fixed-split))"),
    ("relaxation", "methods[1]: 'relaxation' computes a lower bound, not an allocation"),
    ("bcd/fixed-foo", "methods[1]: 'bcd/fixed-foo' is not a method"),
    ("equal-share/fixed-split", "methods[1]: 'equal-share/fixed-split' is not a method"),
])
def test_unknown_methods_are_refused_before_any_work(folder, method, expected):
    path = write(folder, {"base": "base.yaml", "methods": ["bcd", method]})
    with pytest.raises(ConfigError) as info:
        run_sweep_file(str(path), out_dir=str(folder / "o"), workers=1, progress=False)
    assert str(info.value) == f"{path}: {expected}" or expected in str(info.value)
    assert not (folder / "o").exists()


def test_an_invalid_point_fails_before_any_work(folder):
    path = write(folder, {"base": "base.yaml", "axes": {"clients.count": [2, 3]}, "profile": "analytic"})
    with pytest.raises(ConfigError) as info:
        run_sweep_file(str(path), out_dir=str(folder / "o"), workers=1, progress=False)
    assert str(info.value).startswith(f"{path}: point {{'clients.count': 3}}: clients.count: 3 clients exceed "
                                      f"channel.f_band.subchannels=2")
    assert not (folder / "o").exists()


def test_the_cli_tells_sweep_files_from_scenarios_in_one_line(folder, capsys):
    sweep = write(folder, {"base": "base.yaml", "axes": {"clients.count": [1, 0]}})
    for args, start in [
        ((sweep, "--out", folder / "o"), f"error: {sweep}: axes.clients.count[1]: 0 is out of range"),
        ((folder / "base.yaml", "--out", folder / "o"), f"error: {folder / 'base.yaml'}: not a sweep file (it has "
                                                         f"no base: field)"),
        ((sweep, "--set", "clients.count=1,2", "--out", folder / "o"), f"error: {sweep}: --set takes a scenario "
                                                                         f"file, this is a sweep file"),
        ((folder / "base.yaml", "--set", "clients.count=1", "--workers", "2", "--out", folder / "o"),
         "error: --workers applies to sweep files"),
        ((folder / "missing.yaml", "--out", folder / "o"), f"error: {folder / 'missing.yaml'}: file not found"),
    ]:
        assert main(["sweep", *map(str, args)]) == 2  # a traceback would escape main() and fail the test
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(start), err


def test_the_reference_documents_every_sweep_field():
    text = reference_markdown()
    assert "## Sweep files" in text
    for name, _, _ in SWEEP_FIELDS:
        assert f"| `{name}` |" in text


def test_the_shipped_example_is_valid():
    sweep = load_sweep_file(ROOT / "scenarios" / "sweeps" / "bandwidth.yaml")
    check_methods(sweep)
    assert sweep.seeds == 3 and sweep.evaluator == "analytic" and sweep.num_points == 4
