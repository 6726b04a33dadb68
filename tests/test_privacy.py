"""Measured leakage files (fsllm_sim/privacy.py): read and checked, the split floor a limit sets, the optimiser
respecting it, and `fsllm-sim privacy` end to end on a tiny model."""
import csv
import json
import textwrap

import pytest
import yaml

from fsllm_sim.cli import main
from fsllm_sim.config import scenario_from_dict
from fsllm_sim.errors import ConfigError
from fsllm_sim.privacy import (PRIVACY_SCHEMA, ROW_FIELDS, effective_min_split, load_privacy_file, privacy_floor,
                               scenario_privacy_floor)

# token accuracy upper bounds per split of a made-up measurement: leakage falls with depth, then a bump at 16
LEAK = {0: 1.0, 1: 0.99, 2: 0.9, 4: 0.6, 8: 0.35, 16: 0.38, 29: 0.2}


def _row(split, attack, hi, wire="fp16", sigma=0.0):
    mid = max(0.0, hi - 0.02)
    return {"split": split, "attack": attack, "defence": "none", "strength": sigma, "wire": wire,
            "token_acc": mid, "token_acc_lo": max(0.0, mid - 0.02), "token_acc_hi": hi,
            "rouge_l": mid, "rouge_l_lo": max(0.0, mid - 0.02), "rouge_l_hi": hi,
            "exact": 0.0, "exact_lo": 0.0, "exact_hi": 0.05, "texts": 64, "tokens": 4096}


def _doc(model="smollm2-135m"):
    rows = []
    for s, hi in LEAK.items():
        rows += [_row(s, "linear", hi), _row(s, "mlp", hi - 0.05), _row(s, "frequency", 0.08),
                 _row(s, "linear", hi * 0.5, sigma=1.0)]
    return {"schema": PRIVACY_SCHEMA, "model": model, "rows": rows}


@pytest.fixture
def file(tmp_path):
    path = tmp_path / "privacy.json"
    path.write_text(json.dumps(_doc()))
    return path


def test_the_floor_is_the_smallest_split_from_which_every_deeper_one_meets_the_limit(file):
    doc = load_privacy_file(file)
    floor = privacy_floor(doc, limit_field="max_token_accuracy", limit=0.5, wire="fp16", noise_sigma=0.0,
                          model="smollm2-135m", source=str(file))
    assert floor.split == 8 and floor.measured[4] == (0.6, "linear")
    # the bump at 16 (0.38) above a limit of 0.36 moves the floor past it
    assert privacy_floor(doc, limit_field="max_token_accuracy", limit=0.36, wire="fp16", noise_sigma=0.0,
                         model="smollm2-135m", source="f").split == 29
    # with the noise defence (half the leakage here) a limit of 0.4 allows l = 4 (0.3) and not l = 2 (0.45)
    assert privacy_floor(doc, limit_field="max_token_accuracy", limit=0.4, wire="fp16", noise_sigma=1.0,
                         model="smollm2-135m", source="f").split == 4
    # and at the embedding output a limit it meets everywhere is no floor: the smallest split, 1
    assert privacy_floor(doc, limit_field="max_token_accuracy", limit=0.5, wire="fp16", noise_sigma=1.0,
                         model="smollm2-135m", source="f").split == 1
    assert "privacy floor: split >= 8" in floor.description and "linear" in floor.description


def test_a_limit_no_split_meets_names_the_least_leaky_split(file):
    with pytest.raises(ConfigError) as err:
        privacy_floor(load_privacy_file(file), limit_field="max_rouge_l", limit=0.1, wire="fp16", noise_sigma=0.0,
                      model="smollm2-135m", source="f")
    assert "no split measured in f meets it" in str(err.value) and "least leaky is split 29" in str(err.value)
    assert "\n" not in str(err.value)


def test_another_model_or_an_unmeasured_wire_is_one_line(file):
    doc = load_privacy_file(file)
    with pytest.raises(ConfigError, match="measured on model 'gpt2'"):
        privacy_floor({**doc, "model": "gpt2"}, limit_field="max_token_accuracy", limit=0.5, wire="fp16",
                      noise_sigma=0.0, model="smollm2-135m", source="f")
    with pytest.raises(ConfigError, match=r"no measurement at the scenario's wire 'int8' with noise 0.*it has: fp16"):
        privacy_floor(doc, limit_field="max_token_accuracy", limit=0.5, wire="int8", noise_sigma=0.0,
                      model="smollm2-135m", source="f")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: "not json", "is not readable JSON"),
    (lambda d: {**d, "schema": "x"}, "has schema 'x'"),
    (lambda d: {**d, "rows": []}, r"rows is \[\]"),
    (lambda d: {**d, "rows": [{"split": 1}]}, r"rows\[0\] lacks"),
    (lambda d: {**d, "rows": [{**d["rows"][0], "token_acc_hi": 1.5}]}, r"rows\[0\].token_acc_hi=1.5"),
    (lambda d: {**d, "rows": [{**d["rows"][0], "split": -1}]}, r"rows\[0\].split=-1"),
    (lambda d: {**d, "rows": [{**d["rows"][0], "attack": "magic"}]}, r"rows\[0\].attack='magic'"),
    (lambda d: {**d, "rows": [{**d["rows"][0], "strength": float("nan")}]}, "strength=nan"),
])
def test_a_bad_file_is_one_line(tmp_path, mutate, message):
    path = tmp_path / "bad.json"
    bad = mutate(_doc())
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(ConfigError, match=message) as err:
        load_privacy_file(path)
    assert "\n" not in str(err.value)


def test_missing_deep_and_huge_files_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_privacy_file(tmp_path / "none.json")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_privacy_file(tmp_path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="not readable JSON"):
        load_privacy_file(deep)
    huge = tmp_path / "huge.json"
    with huge.open("wb") as fh:
        fh.truncate(17 * 1024 * 1024)
    with pytest.raises(ConfigError, match="more than the"):
        load_privacy_file(huge)


def test_the_scenario_floor_raises_the_optimisers_smallest_split(file):
    plain = scenario_from_dict({"split": {"min_layer": 2}})
    assert scenario_privacy_floor(plain) is None and effective_min_split(plain) == 2
    limited = scenario_from_dict({"split": {"min_layer": 2, "layer": 8},
                                  "privacy": {"file": str(file), "max_token_accuracy": 0.5, "max_rouge_l": 0.7}})
    assert scenario_privacy_floor(limited).split == 8 and effective_min_split(limited) == 8
    with pytest.raises(ConfigError, match="privacy.max_rouge_l: needs privacy.file"):
        scenario_from_dict({"privacy": {"max_rouge_l": 0.5}})


def test_optimize_respects_prints_and_saves_the_floor(file, tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "clients": {"count": 3}, "channel": {"s_band": {"subchannels": 8}, "f_band": {"subchannels": 4}},
        "split": {"layer": 8},
        "privacy": {"file": "privacy.json", "max_token_accuracy": 0.5},  # relative to the scenario
        "output": {"runs_dir": str(tmp_path / "runs")}}))
    assert main(["optimize", str(path), "--profile", "analytic", "--no-progress", "--no-baselines"]) == 0
    out = capsys.readouterr().out
    assert "privacy floor: split >= 8 from" in out
    run = sorted((tmp_path / "runs").glob("*-optimize-*"))[-1]
    solution = json.loads((run / "solution.json").read_text())
    assert solution["split"] >= 8 and solution["privacy_floor"]["split"] == 8
    assert json.loads((run / "results.json").read_text())["privacy_floor"]["upper_bound_by_split"]["4"] == \
        {"upper_bound": 0.6, "attack": "linear"}


def test_privacy_command_end_to_end_on_a_tiny_model(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(f"""
        name: tp
        model: {{name: tiny-llama}}
        training: {{seq_len: 16}}
        privacy:
          splits: [0, 2]
          wires: [fp16]
          noise_sigmas: [0.0, 1.0]
          attacks: [linear, frequency]
          heldout_texts: 8
          public_tokens: 2000
        output: {{runs_dir: {tmp_path / 'runs'}}}
    """))
    assert main(["privacy", str(path), "--no-progress"]) == 0
    run = sorted((tmp_path / "runs").glob("tp-privacy-*"))[-1]
    rows = list(csv.DictReader(open(run / "privacy.csv")))
    assert list(rows[0]) == list(ROW_FIELDS) and len(rows) == 2 * 2 * 2
    doc = load_privacy_file(run / "privacy.json")
    assert doc["model"] == "tiny-llama" and doc["settings"]["splits"] == [0, 2]
    assert set(doc["text_split"]["public_groups"]).isdisjoint(doc["text_split"]["client_groups"])
    for figure in ("leakage_vs_split.png", "leakage_vs_noise.png"):
        assert (run / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # `fsllm-sim plot` redraws them from the directory, as PNG and PDF
    assert main(["plot", str(run), "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "leakage_vs_noise.pdf", "leakage_vs_noise.png", "leakage_vs_split.pdf", "leakage_vs_split.png"]
    # the file feeds a limit: at the embedding output the tiny model leaks everything, so the floor is 2
    assert privacy_floor(doc, limit_field="max_token_accuracy", limit=1.0, wire="fp16", noise_sigma=0.0,
                         model="tiny-llama", source="f").split == 1


@pytest.mark.parametrize("override, message", [
    ({"splits": [0, 9]}, r"privacy.splits: \[9\] outside 0..3"),
    ({"noise_sigmas": [-0.5]}, r"privacy.noise_sigmas\[0\]: -0.5 is out of range"),
    ({"wires": ["fp8"]}, r"privacy.wires\[0\]: 'fp8' is not a wire precision"),
])
def test_privacy_command_bad_input_is_one_line(tmp_path, capsys, override, message):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "tp", "model": {"name": "tiny-llama"},
                                    "privacy": {"heldout_texts": 4, "public_tokens": 500, **override},
                                    "output": {"runs_dir": str(tmp_path / "runs")}}))
    assert main(["privacy", str(path), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    import re
    assert re.search(message, err[0]), err[0]


def test_a_scenario_split_below_the_floor_is_one_line(file):
    with pytest.raises(ConfigError) as err:
        scenario_from_dict({"split": {"layer": 4}, "privacy": {"file": str(file), "max_token_accuracy": 0.5}})
    message = str(err.value)
    assert "split.layer: 4 is below the privacy floor 8" in message and "split 4 reaches 0.600 (linear)" in message
    assert "allowed: split.layer >= 8" in message and "\n" not in message
    assert scenario_from_dict({"split": {"layer": 8},
                               "privacy": {"file": str(file), "max_token_accuracy": 0.5}}).split.layer == 8
    # under fl no activations leave the device: no floor
    assert scenario_from_dict({"protocol": "fl", "split": {"layer": 4},
                               "privacy": {"file": str(file), "max_token_accuracy": 0.5}}).protocol == "fl"


def test_the_shipped_measurement_of_smollm2():
    # fsllm_sim/data/privacy-smollm2-135m.json, made by scenarios/measure_privacy.sh on the real model
    doc = load_privacy_file("builtin")
    assert doc["model"] == "smollm2-135m" and doc["settings"]["splits"] == [0, 1, 2, 4, 8, 16, 29]
    assert {(r["wire"], r["strength"]) for r in doc["rows"]} == {(w, s) for w in ("fp16", "int8")
                                                                   for s in (0.0, 0.25, 1.0)}
    assert set(doc["text_split"]["public_groups"]).isdisjoint(doc["text_split"]["client_groups"])
    rows = {(r["split"], r["attack"], r["wire"], r["strength"]): r for r in doc["rows"]}
    assert rows[(0, "linear", "fp16", 0.0)]["token_acc"] >= 0.95  # the embedding output inverts
    for s in doc["settings"]["splits"]:  # every learned inverter beats the baseline at every split
        assert rows[(s, "mlp", "fp16", 0.0)]["token_acc_lo"] > rows[(s, "frequency", "fp16", 0.0)]["token_acc_hi"]
    assert doc["provenance"]["wall_s"] > 0 and "torch" in doc["provenance"]["versions"]
    # the floor the shipped file sets on the default model: deep at the plain wire, shallower with noise
    plain = scenario_from_dict({"split": {"layer": 16}, "privacy": {"file": "builtin", "max_token_accuracy": 0.8}})
    noisy = scenario_from_dict({"split": {"layer": 16}, "privacy": {"file": "builtin", "max_token_accuracy": 0.8},
                                "training": {"activation_noise_sigma": 1.0}})
    assert scenario_privacy_floor(plain).split == 16 and scenario_privacy_floor(noisy).split == 2
    with pytest.raises(ConfigError, match="least leaky is split 29"):
        scenario_from_dict({"split": {"layer": 29}, "privacy": {"file": "builtin", "max_token_accuracy": 0.5}})


def test_an_interrupted_measurement_resumes_with_the_same_rows(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    settings = {"splits": [0, 1], "wires": ["fp16"], "noise_sigmas": [0.0, 1.0], "attacks": ["linear", "frequency"],
                "heldout_texts": 6, "public_tokens": 1500}
    path.write_text(yaml.safe_dump({"name": "tp", "model": {"name": "tiny-llama"}, "training": {"seq_len": 16},
                                    "privacy": settings}))
    out = tmp_path / "out"
    assert main(["privacy", str(path), "--out", str(out), "--no-progress"]) == 0
    first = json.loads((out / "privacy.json").read_text())["rows"]
    # as if the run had stopped after three of its four (split, defence) groups
    (out / "parts" / "split1-fp16-sigma1.json").unlink()
    (out / "privacy.json").unlink()
    capsys.readouterr()
    assert main(["privacy", str(path), "--out", str(out), "--no-progress"]) == 0
    assert "resumed: 3 of 4 (split, defence) groups" in capsys.readouterr().out
    again = json.loads((out / "privacy.json").read_text())
    assert again["rows"] == first and again["provenance"]["groups_resumed"] == 3
    # other settings into the same folder: one line, nothing measured
    path.write_text(yaml.safe_dump({"name": "tp", "model": {"name": "tiny-llama"}, "training": {"seq_len": 16},
                                    "privacy": {**settings, "heldout_texts": 5}}))
    assert main(["privacy", str(path), "--out", str(out), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was measured with other privacy settings (heldout_texts)" in err[0]
