"""`fsllm-sim validate` catches what it can without running anything, and `validate --deep` what needs the model.

* ``convergence`` with ``calibration: null`` and ``a = b = 0`` (N(r) would be 0 rounds) is refused;
* ``calibration.target_rule`` is parsed as the calibration parses it (``best_fraction:F`` with 0<F<=1,
  ``initial_ratio:X`` with 0<X<1) and refused otherwise;
* ``--deep`` loads the model's configuration and checks ``split.layer``, ``split.min_layer`` (1..J-1) and
  ``training.seq_len`` (at most the context), one line each;
* integer fields take whole numbers written as floats (``4.0e9``).
"""
import math

import pytest
import yaml

from fsllm_sim.cli import main
from fsllm_sim.config import scenario_from_dict
from fsllm_sim.config.loader import TARGET_RULES, deep_checks, parse_target_rule
from fsllm_sim.errors import ConfigError

TINY = {"model": {"name": "tiny-llama"}, "split": {"layer": 2}, "clients": {"count": 2},
        "channel": {"s_band": {"subchannels": 4}, "f_band": {"subchannels": 2}}}
GOOD_RULES = ["best_fraction:0.8", "best_fraction:1", "best_fraction", "best_fraction:", "best_fraction:1e-3",
              "initial_ratio:0.9", "initial_ratio: 0.5", ""]  # "": the default, as in the calibration
BAD_RULES = ["best_fracton:0.8", "best_fraction:0", "best_fraction:1.5", "best_fraction:nan", "best_fraction:x",
             "initial_ratio", "initial_ratio:1", "initial_ratio:-0.1", "initial_ratio:inf", "0.8",
             "best_fraction:0.8:1"]


def validate(tmp_path, capsys, data, *extra):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(data))
    rc = main(["validate", *extra, str(f)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("a, b", [(0, 0), (0.0, 0.0)])
def test_zero_rounds_convergence_is_refused(tmp_path, capsys, a, b):
    rc, _, err = validate(tmp_path, capsys, {"convergence": {"calibration": None, "a": a, "b": b, "c": 0.5}})
    assert rc == 2 and err.count("\n") == 1
    assert err.endswith("s.yaml: convergence.a: a=0 and convergence.b=0 give N(r) = 0 rounds at every rank "
                        "(allowed: a + b > 0 when convergence.calibration is null)\n")


def test_a_and_b_zero_are_fine_when_a_calibration_file_gives_the_fit():
    s = scenario_from_dict({"convergence": {"calibration": "builtin", "a": 0, "b": 0}})
    assert s.convergence.a == 0


@pytest.mark.parametrize("rule", BAD_RULES)
def test_invalid_target_rules_are_refused_on_validation(tmp_path, capsys, rule):
    rc, _, err = validate(tmp_path, capsys, {"calibration": {"target_rule": rule}})
    assert rc == 2 and err.count("\n") == 1
    assert "s.yaml: calibration.target_rule: " in err and f"is not a valid target rule (allowed: {TARGET_RULES})" in err


@pytest.mark.parametrize("rule", GOOD_RULES)
def test_valid_target_rules_pass(rule):
    assert scenario_from_dict({"calibration": {"target_rule": rule}}).calibration.target_rule == rule


def test_the_pure_parser_agrees_with_the_calibration():
    from fsllm_sim.training.calibration import resolve_target

    curves = {1: [5.0, 4.0, 3.0]}
    for rule in GOOD_RULES + BAD_RULES:
        try:
            _, info = resolve_target(curves, None, rule)
        except ConfigError:
            with pytest.raises(ConfigError):
                parse_target_rule(rule)
            continue
        name, x = parse_target_rule(rule)
        expected = 5.0 - x * (5.0 - 3.0) if name == "best_fraction" else x * 5.0
        assert math.isclose(info["value"], expected), rule


@pytest.mark.parametrize("data, expected", [
    ({"split": {"layer": 4}}, "split.layer: 4 is out of range for tiny-llama with J=4 blocks (allowed: 1..3)"),
    ({"split": {"layer": 9, "min_layer": 9}},
     "split.layer: 9 is out of range for tiny-llama with J=4 blocks (allowed: 1..3)"),
    ({"training": {"seq_len": 2048}}, "training.seq_len: 2048 exceeds the context of tiny-llama (allowed: 2..1024)"),
    ({"privacy": {"splits": [0, 3, 5]}},
     "privacy.splits: [5] lie beyond tiny-llama's last split (allowed: 0..3, 0 being the embedding output)"),
])
def test_deep_validation_checks_the_model(tmp_path, capsys, data, expected):
    merged = {**TINY, **data}
    rc, out, err = validate(tmp_path, capsys, merged)
    assert rc == 0 and "valid" in out  # without --deep the model is not loaded
    rc, _, err = validate(tmp_path, capsys, merged, "--deep")
    assert rc == 2 and err.count("\n") == 1 and err.endswith(f"s.yaml: {expected}\n"), err


def test_deep_validation_of_a_good_scenario(tmp_path, capsys):
    rc, out, err = validate(tmp_path, capsys, {**TINY, "split": {"layer": 3, "min_layer": 1}}, "--deep")
    assert rc == 0 and err == ""
    assert out.rstrip().endswith("model tiny-llama; tiny-llama: 4 blocks, context 1024)")
    assert deep_checks(scenario_from_dict(TINY)) == {"model": "tiny-llama", "blocks": 4, "context": 1024}


def test_integer_fields_take_4_0e9(tmp_path, capsys):
    # YAML 1.1 reads 4.0e9 as text: the loader takes numeric text that is a whole number in an int field.
    (tmp_path / "s.yaml").write_text("devices:\n  memory_bytes: 4.0e9\nseed: 4.0e9\n")
    assert main(["validate", str(tmp_path / "s.yaml")]) == 0
    assert "valid" in capsys.readouterr().out
    (tmp_path / "s.yaml").write_text("devices:\n  memory_bytes: 4.5e0\n")
    assert main(["validate", str(tmp_path / "s.yaml")]) == 2
    assert "devices.memory_bytes: 4.5e0 is not an integer" in capsys.readouterr().err
