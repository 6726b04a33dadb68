"""Sweeps: grid expansion, validation before work, and resuming an interrupted sweep."""
import json

import pytest
import yaml

from fsllm_sim.errors import ConfigError
from fsllm_sim.jobs.sweep import parse_assignment, run_sweep

BASE = {
    "model": {"name": "tiny-llama"},
    "split": {"layer": 2},
    "clients": {"count": 2},
    "channel": {"s_band": {"subchannels": 4}, "f_band": {"subchannels": 2}},
    "convergence": {"calibration": None, "a": 5.0, "b": 10.0, "c": 0.5},
    "lora": {"rank": 2, "ranks": [1, 2]},
}


@pytest.fixture
def base_file(tmp_path):
    f = tmp_path / "base.yaml"
    f.write_text(yaml.safe_dump(BASE))
    return f


def test_parse_assignment():
    assert parse_assignment("channel.s_band.subchannels=4,8") == ("channel.s_band.subchannels", [4, 8])
    assert parse_assignment("channel.power.total_cap_s_dbm=null,30") == ("channel.power.total_cap_s_dbm", [None, 30])
    with pytest.raises(ConfigError, match="expected FIELD=VALUE"):
        parse_assignment("clients.count")


def test_sweep_resumes_and_skips_finished_points(base_file, tmp_path):
    out = tmp_path / "sweep"
    grid = [parse_assignment("channel.s_band.subchannels=4,8")]
    run_sweep(str(base_file), grid, out_dir=str(out), profile_source="analytic", progress=False, echo=lambda *_: None)
    points = sorted((out / "points").glob("*.json"))
    assert len(points) == 2
    first = {p.name: json.loads(p.read_text()) for p in points}
    # Simulate an interruption: one point lost; the rerun recomputes only that one, identically.
    points[0].unlink()
    messages = []
    run_sweep(str(base_file), grid, out_dir=str(out), profile_source="analytic", progress=False, echo=messages.append)
    assert any("resumed: 1 of 2" in m for m in messages)
    again = {p.name: json.loads(p.read_text()) for p in sorted((out / "points").glob("*.json"))}
    for name in first:
        assert again[name]["total_s"] == pytest.approx(first[name]["total_s"], rel=1e-12)
    rows = (out / "sweep.csv").read_text().splitlines()
    assert len(rows) == 3 and (out / "sweep.png").is_file()
    # more subchannels never slow the optimised round down
    by_m = {r["set:channel.s_band.subchannels"]: r for r in again.values()}
    assert by_m[8]["round_time_s"] <= by_m[4]["round_time_s"] * (1 + 1e-9)


def test_invalid_point_fails_before_any_work(base_file, tmp_path):
    out = tmp_path / "sweep"
    with pytest.raises(ConfigError, match="clients.count: 3 clients exceed channel.f_band.subchannels=2"):
        run_sweep(str(base_file), [parse_assignment("clients.count=2,3")], out_dir=str(out),
                  profile_source="analytic", progress=False)
    assert not (out / "points").exists()
