"""Scenario loading: defaults, one-line errors for every kind of bad input, and the generated reference."""
from pathlib import Path

import pytest

from fsllm_sim.config import dump_scenario, load_scenario, scenario_from_dict
from fsllm_sim.config.reference import reference_markdown
from fsllm_sim.config.schema import Scenario
from fsllm_sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_default_file_matches_spec_section_6():
    s = load_scenario(ROOT / "scenarios" / "default.yaml")
    assert s.clients.count == 8
    assert (s.clients.layout.radius_m, s.clients.layout.min_distance_m) == (300.0, 35.0)
    pl = s.channel.path_loss
    assert (pl.model, pl.carrier_ghz, pl.bs_height_m, pl.ut_height_m) == ("uma", 3.5, 25.0, 1.5)
    assert (s.channel.fading.rician_k_db, s.channel.fading.speed_kmh, s.channel.fading.block_s) == (9.0, 3.0, 0.01)
    assert (s.channel.s_band.subchannels, s.channel.s_band.subchannel_bandwidth_hz) == (32, 360e3)
    assert (s.channel.f_band.subchannels, s.channel.f_band.subchannel_bandwidth_hz) == (16, 360e3)
    assert (s.channel.noise.thermal_psd_dbm_per_hz, s.channel.noise.noise_figure_db) == (-174.0, 7.0)
    assert s.channel.power.client_max_dbm == 23.0 and s.channel.power.total_cap_s_dbm is None
    assert (s.channel.downlink.power_dbm, s.channel.downlink.bandwidth_hz) == (43.0, 20e6)
    assert (s.devices.speed.distribution, s.devices.speed.median_flops_per_s, s.devices.speed.sigma) == \
        ("lognormal", 0.5e12, 0.6)
    assert s.devices.memory_bytes == 4 * 1024 ** 3
    assert (s.server.flops_per_s, s.server.discipline, s.server.workers) == (50e12, "partitioned", 1)
    assert s.model.name == "smollm2-135m"
    assert s.lora.ranks == (1, 2, 4, 8, 16) and s.lora.alpha_per_rank == 2.0
    assert s.lora.target_modules == ("q_proj", "v_proj")
    # the one deliberate departure from section 6 (README, "The default's training settings, and why"): b = 4,
    # L = 128, E = 5 met the target inside one round; 1,024 tokens per round make learning take 10+ rounds
    assert (s.training.batch_size, s.training.seq_len, s.training.local_iterations) == (2, 64, 1)
    assert s.clients.count == 8
    assert s.training.activation_precision == "fp16"


def test_empty_mapping_gives_the_schema_defaults_and_round_trips():
    s = scenario_from_dict({})
    assert s == Scenario()
    import yaml

    assert scenario_from_dict(yaml.safe_load(dump_scenario(s))) == s


@pytest.mark.parametrize("data, expected", [
    ({"clients": {"cont": 3}}, "clients.cont: unknown field; did you mean 'count'?"),
    ({"chanel": {}}, "chanel: unknown field; did you mean 'channel'?"),
    ({"clients": {"count": 0}}, "clients.count: 0 is out of range (allowed: an integer >= 1 and <= 10000)"),
    ({"clients": {"count": 2.5}}, "clients.count: 2.5 is not an integer"),
    ({"channel": {"path_loss": {"model": "umaa"}}}, "channel.path_loss.model: 'umaa' is not allowed (allowed: one of "
                                                    "uma, umi, rma, log-distance); did you mean 'uma'?"),
    ({"channel": {"path_loss": {"carrier_ghz": 200}}}, "channel.path_loss.carrier_ghz: 200 GHz is out of range"),
    ({"channel": {"s_band": {"subchannel_bandwidth_hz": -1}}}, "channel.s_band.subchannel_bandwidth_hz: -1 Hz is out"),
    ({"channel": {"path_loss": {"shadowing": "yes"}}}, "channel.path_loss.shadowing: 'yes' is not a boolean"),
    ({"clients": {"count": 40}}, "clients.count: 40 clients exceed channel.s_band.subchannels=32"),
    ({"clients": {"layout": {"min_distance_m": 400}}}, "clients.layout.min_distance_m: 400 m must be below"),
    ({"lora": {"rank": 3}}, "lora.rank: 3 is not among lora.ranks=[1, 2, 4, 8, 16]"),
    ({"lora": {"ranks": [1, 2, 2]}}, "lora.ranks: [1, 2, 2] has repeated entries"),
    ({"lora": {"ranks": [0, 2]}}, "lora.ranks[0]: 0 is out of range"),
    ({"split": {"layer": 2, "min_layer": 4}}, "split.layer: 2 is below split.min_layer=4"),
    ({"seed": "x"}, "seed: 'x' is not an integer"),
    ({"training": {"dropout": 0.1}}, "training.dropout: unknown field"),
    ({"devices": {"speed": {"distribution": "trace"}}}, "devices.speed.trace_path: a trace file is required"),
    ({"clients": 5}, "clients: expected a mapping of fields, got int 5"),
    ({"training": {"learning_rate": None}}, "training.learning_rate: null is not allowed"),
    ({"channel": {"path_loss": {"bs_height_m": 30}}}, "channel.path_loss: path_loss_db(uma): h_bs_m=30.0 outside"),
    ({"clients": {"layout": {"min_distance_m": 5}}}, "channel.path_loss: path_loss_db(uma): d_2d_m=5.0 outside"),
    ({"channel": {"path_loss": {"model": "rma", "carrier_ghz": 40}}}, "path_loss_db(rma): fc_ghz=40.0 outside"),
])
def test_bad_input_gives_one_line_naming_field_and_range(data, expected):
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(data, source="bad.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("bad.yaml: ")
    assert expected in message


def test_numeric_strings_are_accepted_for_floats():
    # PyYAML reads 20e6 (no dot) as a string; users write it anyway.
    s = scenario_from_dict({"channel": {"downlink": {"bandwidth_hz": "20e6"}}})
    assert s.channel.downlink.bandwidth_hz == 20e6


def test_yaml_syntax_error_names_the_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("clients:\n  count: [1,\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: invalid YAML at line \d+"):
        load_scenario(f)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.yaml")


def test_relative_paths_resolve_against_the_scenario_folder(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("devices:\n  speed:\n    distribution: trace\n    trace_path: traces/d.csv\n")
    s = load_scenario(f)
    assert s.devices.speed.trace_path == str((tmp_path / "traces" / "d.csv").resolve())


def test_reference_document_is_up_to_date_and_lists_every_field():
    text = (ROOT / "scenarios" / "REFERENCE.md").read_text()
    assert text == reference_markdown(), "scenarios/REFERENCE.md is stale: run `make reference`"
    for path in ("clients.count", "channel.path_loss.carrier_ghz", "channel.fading.block_s", "server.discipline",
                 "training.activation_precision", "convergence.calibration"):
        assert f"`{path}`" in text


def test_a_solution_file_named_in_the_scenario_resolves_against_its_folder(tmp_path):
    sub = tmp_path / "scen"
    sub.mkdir()
    f = sub / "s.yaml"
    f.write_text("simulation:\n  allocation: sols/solution.json\n")
    assert load_scenario(f).simulation.allocation == str((sub / "sols" / "solution.json").resolve())
    f.write_text("simulation:\n  allocation: bcd\n")
    assert load_scenario(f).simulation.allocation == "bcd"
