"""`fsllm-sim profile-device`: this host measured as a client device, written as device-trace rows."""
import csv

import pytest

from fsllm_sim.cli import main
from fsllm_sim.config import scenario_from_dict
from fsllm_sim.devices import make_fleet
from fsllm_sim.jobs.profile_device import run_profile_device
from fsllm_sim.profiles import scenario_profile
from fsllm_sim.training.from_scenario import training_config
from fsllm_sim.training.host_speed import host_speed_from_profile

SHAPE = dict(model="tiny-llama", batch_size=2, seq_len=16, rank=2)


@pytest.fixture(scope="module")
def profile_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "host.csv"
    run_profile_device(out=str(path), reps=7, count=3, echo=lambda *_: None, **SHAPE)
    return path


def _scenario(path, **extra):
    return scenario_from_dict({"model": {"name": "tiny-llama"}, "clients": {"count": 3}, "split": {"layer": 2},
                               "lora": {"rank": 2, "ranks": [2]},
                               "training": {"batch_size": 2, "seq_len": 16},
                               "devices": {"speed": {"distribution": "trace", "trace_path": str(path)}}, **extra})


def test_the_profile_loads_as_a_device_trace_and_the_simulated_block_time_is_the_measured_one(profile_csv):
    rows = list(csv.DictReader(profile_csv.open()))
    assert [int(r["client_id"]) for r in rows] == [0, 1, 2]
    row = rows[0]
    assert (row["model"], row["batch_size"], row["seq_len"], row["rank"]) == ("tiny-llama", "2", "16", "2")
    scenario = _scenario(profile_csv)
    fleet = make_fleet(scenario.devices, 3, rng=None)
    assert fleet.flops_per_s.tolist() == [float(row["flops_per_s"])] * 3
    assert fleet.memory_bytes[0] == int(row["memory_bytes"]) > 0
    # the simulator's own FLOP table: one more client block adds a block's forward and backward FLOPs
    profile, _ = scenario_profile(scenario, progress=False)
    i2, i3 = list(profile.splits).index(2), list(profile.splits).index(3)
    block_flops = (profile.client_forward_flops[i3, 0] - profile.client_forward_flops[i2, 0]
                   + profile.client_backward_flops[i3, 0] - profile.client_backward_flops[i2, 0])
    assert block_flops == int(row["block_forward_flops"]) + int(row["block_backward_flops"])
    simulated_s = block_flops / fleet.flops_per_s[0]
    measured_s = float(row["block_forward_s"]) + float(row["block_backward_s"])
    noise_s = float(row["block_time_rel_noise"]) * measured_s
    assert abs(simulated_s - measured_s) <= max(noise_s, 1e-9 * measured_s)
    assert float(row["block_forward_flops_per_s"]) > 0 and float(row["head_flops_per_s"]) > 0
    assert row["peak_memory_bytes"] == "" or int(row["peak_memory_bytes"]) > 0


def test_measured_timing_takes_the_host_speed_from_the_profile(profile_csv, tmp_path):
    scenario = _scenario(profile_csv, simulation={"host_profile": str(profile_csv), "timing": "measured"})
    speed, notes = host_speed_from_profile(scenario.simulation.host_profile, training_config(scenario))
    assert speed == pytest.approx(float(next(csv.DictReader(profile_csv.open()))["flops_per_s"]))
    assert notes == []
    other = _scenario(profile_csv, training={"batch_size": 4, "seq_len": 16})
    _, notes = host_speed_from_profile(str(profile_csv), training_config(other))
    assert len(notes) == 1 and "batch_size 2, this run trains with 4" in notes[0]
    # relative to the scenario file, like every other path
    (tmp_path / "s.yaml").write_text("simulation: {host_profile: host.csv}\n")
    from fsllm_sim.config import load_scenario

    assert load_scenario(tmp_path / "s.yaml").simulation.host_profile == str((tmp_path / "host.csv").resolve())


def test_append_continues_the_client_ids(profile_csv, tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_bytes(profile_csv.read_bytes())
    run_profile_device(out=str(path), reps=3, count=2, append=True, memory_bytes=2 ** 30, echo=lambda *_: None,
                       **SHAPE)
    rows = list(csv.DictReader(path.open()))
    assert [int(r["client_id"]) for r in rows] == [0, 1, 2, 3, 4]
    assert rows[-1]["memory_bytes"] == str(2 ** 30)


@pytest.mark.parametrize("args, message", [
    (["--count", "0"], "--count=0 is invalid; allowed: an integer in [1, 100000]"),
    (["--batch", "0"], "--batch=0 is invalid; allowed: an integer in [1, 4096]"),
    (["--reps", "1"], "--reps=1 is invalid; allowed: an integer in [3, 10000]"),
    (["--device", "gpu"], "profile-device.device='gpu' is invalid; allowed: auto, cpu, cuda"),
    (["--dtype", "fp8"], "profile-device.dtype='fp8' is invalid; allowed: float32, bfloat16, float16"),
    (["--memory-bytes", "0"], "--memory-bytes=0 is invalid"),
])
def test_bad_arguments_are_one_line(args, message, tmp_path, capsys):
    assert main(["profile-device", "--model", "tiny-llama", "--out", str(tmp_path / "p.csv"), *args]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.csv").exists()


def test_out_must_be_a_csv_and_append_needs_a_device_trace(tmp_path, capsys):
    assert main(["profile-device", "--model", "tiny-llama", "--out", str(tmp_path / "p.txt")]) != 0
    assert "allowed: a path ending in .csv" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("a,b,c\n1,2,3\n")
    assert main(["profile-device", "--model", "tiny-llama", "--append", "--out", str(tmp_path / "other.csv")]) != 0
    err = capsys.readouterr().err.strip()
    assert "not a device trace's (client_id, flops_per_s, memory_bytes)" in err and len(err.splitlines()) == 1
