"""Scenario fields of a changing world: one-line errors naming the field and the allowed range, and
resolved configurations that read back the same."""
import pytest

from fsllm_sim.config.loader import dump_scenario, parse_yaml_text, problem_fingerprint, scenario_from_dict
from fsllm_sim.config.schema import Scenario
from fsllm_sim.errors import ConfigError


@pytest.mark.parametrize("data, field, words", [
    ({"round": {"policy": "deadline"}}, "round.deadline_s", "required"),
    ({"round": {"policy": "over-selection"}}, "round.clients_per_round", "give K"),
    ({"round": {"selection": "random"}}, "round.clients_per_round", "give K"),
    ({"round": {"clients_per_round": 9}}, "round.clients_per_round", "exceeds clients.count=8"),
    ({"round": {"min_clients": 9}}, "round.min_clients", "exceeds"),
    ({"round": {"deadline_s": -1}}, "round.deadline_s", "> 0"),
    ({"mobility": {"groups": [{"share": 0.7}, {"share": 0.6}]}}, "mobility.groups", "add up to 1.3"),
    ({"mobility": {"groups": [{"share": 0.5, "speed_min_mps": 3, "speed_max_mps": 2}]}},
     "mobility.groups[0].speed_min_mps", "must not exceed"),
    ({"mobility": {"groups": [{"speed": 3}]}}, "mobility.groups[0].speed", "unknown field"),
    ({"mobility": {"groups": {"share": 1}}}, "mobility.groups", "not a list"),
    ({"mobility": {"groups": [{"share": 0.01}] * 17}}, "mobility.groups", "at most 16"),
    ({"mobility": {"model": "trace"}}, "mobility.trace_path", "required"),
    ({"mobility": {"update_s": 0}}, "mobility.update_s", "> 0"),
    ({"availability": {"model": "trace"}}, "availability.trace_path", "required"),
    ({"availability": {"share": 1.5}}, "availability.share", "<= 1"),
    ({"protocol": "sl", "availability": {"model": "markov"}}, "availability.model", "protocol sl"),
    ({"radio": {"outage_rate_bps": 0}}, "radio.outage_rate_bps", "> 0"),
    ({"channel": {"downlink": {"fading": "rayleigh"}}}, "channel.downlink.fading", "static, fading"),
])
def test_bad_dynamic_fields_give_one_line_naming_the_field(data, field, words):
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(data, source="s.yaml")
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"s.yaml: {field}") and words in text, text


def test_a_dynamic_scenario_reads_back_from_its_resolved_dump():
    s = scenario_from_dict({"mobility": {"groups": [{"share": 0.5, "model": "random-direction"}]},
                            "availability": {"model": "markov"},
                            "round": {"policy": "over-selection", "clients_per_round": 4}})
    again = scenario_from_dict(parse_yaml_text(dump_scenario(s)))
    assert again == s and again.mobility.groups[0].model == "random-direction"


def test_a_static_world_keeps_its_fingerprint_and_a_changing_one_does_not():
    """The default scenario of commit 89c720b, before the dynamic sections existed, had the fingerprint
    047230a0da1dabf6: that scenario (the default before its training settings changed) still has it."""
    from pathlib import Path

    import yaml

    default = yaml.safe_load((Path(__file__).resolve().parents[1] / "scenarios" / "default.yaml").read_text())
    default["training"] = {"batch_size": 4, "seq_len": 128, "local_iterations": 5, "learning_rate": 3e-3,
                           "activation_precision": "fp16"}
    del default["data"]["max_tokens_per_client"], default["evaluation"], default["simulation"]
    assert problem_fingerprint(scenario_from_dict(default)) == "047230a0da1dabf6"
    base = Scenario()
    moving = scenario_from_dict({"mobility": {"model": "random-waypoint"}})
    assert problem_fingerprint(moving) != problem_fingerprint(base)


def test_sweeps_take_the_dynamic_fields_as_axes(tmp_path):
    """Rule: every new field is a sweep axis, a list of groups included (one value each), and every point of
    the grid is a valid scenario carrying its value."""
    from fsllm_sim.config.sweep_file import load_sweep_file
    from fsllm_sim.jobs.sweeps.plan import build_plan

    base = tmp_path / "base.yaml"
    base.write_text("name: sw\nmodel: {name: tiny-llama}\nsplit: {layer: 2}\nclients: {count: 3}\n"
                    "channel: {s_band: {subchannels: 6}, f_band: {subchannels: 4}}\n"
                    "lora: {rank: 2, ranks: [1, 2]}\nconvergence: {calibration: null}\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("base: base.yaml\nevaluator: simulate\nprofile: analytic\nmethods: [equal]\n"
                     "axes:\n  round.policy: [wait-all, over-selection]\n"
                     "  mobility.groups: [[], [{share: 0.5, model: random-direction, speed_max_mps: 9}]]\n"
                     "set:\n  round.clients_per_round: 2\n  availability.model: markov\n"
                     "  channel.downlink.fading: fading\n  radio.outage_rate_bps: 1.0e5\n")
    plan = build_plan(load_sweep_file(sweep), progress=False, echo=lambda *a: None)
    scenarios = [s for _, s in plan.points]
    assert len(scenarios) == 4
    assert {s.round.policy for s in scenarios} == {"wait-all", "over-selection"}
    assert sorted(len(s.mobility.groups) for s in scenarios) == [0, 0, 1, 1]
    assert all(s.availability.model == "markov" and s.radio.outage_rate_bps == 1e5 for s in scenarios)
    assert {g.speed_max_mps for s in scenarios for g in s.mobility.groups} == {9.0}
