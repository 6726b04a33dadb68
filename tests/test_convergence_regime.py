"""The convergence model is in training tokens and says where it holds (issue: a fit used out of its regime warns);
its measured corrections (wire-precision penalty, tokens-per-step exponent) enter N(r) exactly, and hostile
correction sections are one-line errors."""
import json
from pathlib import Path

import pytest
import yaml

from fsllm_sim.cli import main
from fsllm_sim.config import scenario_from_dict
from fsllm_sim.convergence import (BATCH_EXTRAPOLATION_FACTOR, builtin_calibration_path, load_calibration_fit,
                                   load_convergence, measured_at, tokens_per_round)
from fsllm_sim.errors import ConfigError

SHIPPED = json.loads(builtin_calibration_path().read_text())
AT = measured_at(SHIPPED)  # the shipped file's settings, whichever schema it has


def calibration_like(**changes):
    """A scenario at the shipped calibration's own settings (no regime difference), with changes."""
    lr = AT["learning_rate"] if "learning_rate" in AT else next(iter(AT["best_learning_rates"].values()))
    data = {"model": {"name": AT["model"]}, "clients": {"count": AT["num_clients"]},
            "training": {"batch_size": AT["batch_size"], "seq_len": AT["seq_len"],
                         "local_iterations": AT["local_iterations"], "learning_rate": lr,
                         "activation_precision": AT["activation_precision"]},
            "lora": {"alpha_per_rank": AT["lora_alpha_per_rank"], "scaling": AT["lora_scaling"]},
            "data": {"partition": AT["partition"]}}
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    return scenario_from_dict(data)


def test_at_the_calibrations_own_settings_n_is_its_fit_and_no_warning():
    s = calibration_like()
    model = load_convergence(s)
    fit = SHIPPED["fit"]
    per_round = tokens_per_round(AT["num_clients"], AT["local_iterations"], AT["batch_size"], AT["seq_len"])
    unit = per_round if SHIPPED.get("unit") == "tokens" else 1.0  # v2 fits tokens, v1 rounds at these settings
    for r in (1, 4, 16):
        assert float(model.rounds(r)) == pytest.approx((fit["a"] + fit["b"] * r ** -fit["c"]) / unit, rel=1e-12)
    assert model.regime_warnings(s) == []


def test_rounds_scale_with_tokens_per_round():
    base = calibration_like()
    doubled = calibration_like(clients={"count": 2 * AT["num_clients"]},
                               channel={"f_band": {"subchannels": 16}})
    ratio = tokens_per_round(2 * AT["num_clients"], 2, 2, 64) / tokens_per_round(AT["num_clients"], 2, 2, 64)
    m1, m2 = load_convergence(base), load_convergence(doubled)
    assert float(m1.rounds(8)) == pytest.approx(ratio * float(m2.rounds(8)), rel=1e-12)
    assert float(m1.tokens(8)) == pytest.approx(float(m2.tokens(8)))
    assert m2.regime_warnings(doubled) == []  # more tokens per round is what the token model covers


def _lr_label():
    if "learning_rate" in AT:
        return f"learning rate {AT['learning_rate']!r}"
    return "per-rank best learning rate from the grid"


@pytest.mark.parametrize("changes, label", [
    ({"training": {"activation_precision": "bf16"}}, "activation precision 'fp16'"),  # never has a penalty
    ({"model": {"name": "tiny-llama"}}, "model 'smollm2-135m'"),
    ({"lora": {"scaling": "rslora"}}, "LoRA scaling 'standard'"),
    ({"training": {"learning_rate": 1e-4}}, _lr_label()),
    ({"data": {"partition": "iid"}}, "partition 'by_play'"),
])
def test_leaving_the_regime_warns_in_one_line(changes, label):
    s = calibration_like(**changes)
    warnings = load_convergence(s).regime_warnings(s)
    assert len(warnings) == 1 and label in warnings[0] and "\n" not in warnings[0]


def test_the_cli_prints_the_warning_once_on_stderr(tmp_path, capsys):
    data = {"name": "w", "model": {"name": "tiny-llama"}, "split": {"layer": 2}, "clients": {"count": 2},
            "lora": {"rank": 2, "ranks": [2]}, "simulation": {"training": "analytic", "rounds": 1}}
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(data))
    assert main(["run", str(f), "--runs-dir", str(tmp_path / "r"), "--no-progress", "--profile", "analytic"]) == 0
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("warning: convergence:")]
    assert any("model 'smollm2-135m'" in x and "'tiny-llama'" in x for x in lines)
    run = next((tmp_path / "r").iterdir())
    notes = json.loads((run / "results.json").read_text())["summary"]["notes"]
    assert any("model 'smollm2-135m'" in n for n in notes)


# ----------------------------------------------------------------------------- measured corrections of the fit

FIT = {"a": 500.0, "b": 6000.0, "c": 0.4}
CAL_CONFIG = {"model": "smollm2-135m", "num_clients": 4, "local_iterations": 2, "batch_size": 2, "seq_len": 64,
              "activation_precision": "fp16", "lora_scaling": "standard", "lora_alpha_per_rank": 2.0,
              "learning_rate": None, "partition": "by_play"}


def corrected_file(tmp_path, **sections):
    """A v2 calibration measured at K=4, E=2, b=2, L=64 (128 tokens per step), fp16, a learning-rate grid."""
    doc = {"schema": "fsllm-sim/calibration/v2", "unit": "tokens", "model": "smollm2-135m", "config": CAL_CONFIG,
           "learning_rates": [1e-3, 3e-3], "tokens_per_round": 1024, "target": {"value": 4.5}, "fit": FIT,
           "precision_penalty": {"int8": {"factor": 1.3, "ci95": [1.1, 1.6]}},
           "batch_scaling": {"exponent": 0.5, "ci95": [0.4, 0.6], "tokens_per_step_range": [128, 256]}}
    doc.update(sections)
    f = tmp_path / "cal.json"
    f.write_text(json.dumps(doc))
    return f


def scenario_on(path, *, b=2, L=64, precision="fp16", lr=1e-3, **training):
    return scenario_from_dict({"model": {"name": "smollm2-135m"}, "clients": {"count": 4},
                               "convergence": {"calibration": str(path)}, "data": {"partition": "by_play"},
                               "lora": {"alpha_per_rank": 2.0},
                               "training": {"batch_size": b, "seq_len": L, "local_iterations": 2,
                                            "learning_rate": lr, "activation_precision": precision, **training}})


def fit_tokens(r):
    return FIT["a"] + FIT["b"] * r ** -FIT["c"]


@pytest.mark.parametrize("b, precision, factor", [
    (2, "fp16", 1.0), (2, "int8", 1.3), (4, "fp16", 2 ** 0.5), (4, "int8", 1.3 * 2 ** 0.5), (8, "int8", 1.3 * 2.0),
])
def test_rounds_carry_the_precision_penalty_and_the_batch_factor_exactly(tmp_path, b, precision, factor):
    s = scenario_on(corrected_file(tmp_path), b=b, precision=precision)
    m = load_convergence(s)
    assert m.factor == pytest.approx(factor, rel=1e-12)
    tpr = 4 * 2 * b * 64
    for r in (1, 2, 4, 8, 16):
        assert float(m.rounds(r)) == pytest.approx(fit_tokens(r) * factor / tpr, rel=1e-12)
        assert float(m.tokens(r)) == pytest.approx(fit_tokens(r) * factor, rel=1e-12)
    if precision == "int8":
        assert "x 1.3 for the int8 wire" in m.description
    if b != 2:
        assert f"for {2 * b * 32:g} tokens per client step (calibrated at 128, exponent 0.5)" in m.description


def test_the_solvers_objective_sees_the_penalty(tmp_path):
    import dataclasses

    import numpy as np

    from solvers.baselines import solve_equal
    from solvers.instances import random_problem

    f = corrected_file(tmp_path)
    plain, int8 = (load_convergence(scenario_on(f, precision=p)) for p in ("fp16", "int8"))
    problem = random_problem(np.random.default_rng(0))
    a = solve_equal(dataclasses.replace(problem, convergence=plain), split=2, rank=4)
    b = solve_equal(dataclasses.replace(problem, convergence=int8), split=2, rank=4)
    assert b.round_time_s == a.round_time_s  # same problem, same allocation: only N(r) differs
    assert b.objective_s == pytest.approx(1.3 * a.objective_s, rel=1e-12)


def test_no_correction_without_sections_and_none_for_a_rounds_model(tmp_path):
    f = corrected_file(tmp_path, precision_penalty=None, batch_scaling=None)
    m = load_convergence(scenario_on(f, b=8, precision="int8"))
    assert m.factor == 1.0
    rounds_model = load_calibration_fit(corrected_file(tmp_path))  # the calibration's own rounds
    assert rounds_model.factor == 1.0 and rounds_model.unit == "rounds"


def _warnings(path, **kw):
    s = scenario_on(path, **kw)
    out = load_convergence(s).regime_warnings(s)
    assert all("\n" not in w for w in out)
    return out


def test_precision_warns_only_without_a_measured_penalty(tmp_path):
    f = corrected_file(tmp_path)
    assert _warnings(f, precision="fp16") == [] and _warnings(f, precision="int8") == []
    w = _warnings(f, precision="int8-tensor")
    assert len(w) == 1 and "activation precision 'fp16'" in w[0] and "'int8-tensor'" in w[0]
    assert "penalties are measured for int8 only" in w[0]
    g = corrected_file(tmp_path, precision_penalty=None)
    assert len(_warnings(g, precision="int8")) == 1


def test_a_learning_rate_outside_the_grid_warns(tmp_path):
    f = corrected_file(tmp_path)
    assert _warnings(f, lr=1e-3) == [] and _warnings(f, lr=3e-3) == []
    w = _warnings(f, lr=2e-3)
    assert len(w) == 1 and "grid [0.001, 0.003]" in w[0] and "uses 0.002" in w[0]
    single = corrected_file(tmp_path, config={**CAL_CONFIG, "learning_rate": 1e-3}, learning_rates=[1e-3])
    assert len(_warnings(single, lr=3e-3)) == 1 and "learning rate 0.001" in _warnings(single, lr=3e-3)[0]


@pytest.mark.parametrize("b, L, expected", [
    (2, 64, None), (4, 64, None), (2, 96, None),  # 128, 256, 192: within the measured range
    (4, 96, None), (3, 32, None),  # 384 = 256 x 1.5 and 96 > 128 / 1.5: within the factor
    (4, 128, "2x above"), (8, 128, "4x above"), (1, 64, "2x below"), (1, 32, "4x below"),
])
def test_tokens_per_step_far_outside_the_measured_range_warn_with_how_far(tmp_path, b, L, expected):
    assert BATCH_EXTRAPOLATION_FACTOR == 1.5
    w = [x for x in _warnings(corrected_file(tmp_path), b=b, L=L) if "floored at 1 round" not in x]
    if expected is None:
        assert w == []
    else:
        assert len(w) == 1 and expected in w[0] and "extrapolation" in w[0] and "between 128 and 256" in w[0]
        assert f"the factor {(b * L / 128) ** 0.5:.3g}" in w[0]


@pytest.mark.parametrize("sections, expected", [
    ({"precision_penalty": [1.3]}, "precision_penalty is [1.3] (allowed: a mapping from a wire precision"),
    ({"precision_penalty": {"int4": {"factor": 2}}}, "precision_penalty: 'int4' is not a wire precision (allowed: "
                                                     "one of fp32, fp16, bf16, int8, int8-tensor)"),
    ({"precision_penalty": {"fp16": {"factor": 1.1}}}, "precision_penalty.fp16: fp16 is the calibration's own"),
    ({"precision_penalty": {"int8": {"ci95": [1, 2]}}}, "precision_penalty.int8 is {'ci95': [1, 2]} (allowed: a "
                                                        "mapping with factor, a number > 0 and <= 1000)"),
    ({"precision_penalty": {"int8": {"factor": -1.3}}}, "precision_penalty.int8.factor: -1.3 is out of range "
                                                        "(allowed: a number > 0 and <= 1000)"),
    ({"precision_penalty": {"int8": {"factor": 0}}}, "precision_penalty.int8.factor: 0 is out of range"),
    ({"precision_penalty": {"int8": {"factor": float("nan")}}}, "precision_penalty.int8.factor: nan is not a number "
                                                                "(allowed: a number > 0 and <= 1000)"),
    ({"precision_penalty": {"int8": {"factor": 1e300}}}, "precision_penalty.int8.factor: 1e+300 is out of range"),
    ({"precision_penalty": {"int8": {"factor": "big"}}}, "precision_penalty.int8.factor: 'big' is not a number"),
    ({"precision_penalty": {"int8": {"factor": 1.3, "ci95": [2, 1]}}}, "precision_penalty.int8.ci95 is [2, 1]: "
                                                                       "low > high"),
    ({"batch_scaling": "abc"}, "batch_scaling is 'abc' (allowed: a mapping with exponent and tokens_per_step_range"),
    ({"batch_scaling": {"tokens_per_step_range": [128, 256]}}, "batch_scaling: exponent is missing (allowed: a "
                                                               "number >= -1 and <= 2)"),
    ({"batch_scaling": {"exponent": 5, "tokens_per_step_range": [128, 256]}},
     "batch_scaling.exponent: 5 is out of range (allowed: a number >= -1 and <= 2)"),
    ({"batch_scaling": {"exponent": float("inf"), "tokens_per_step_range": [1, 2]}}, "batch_scaling.exponent: inf "
                                                                                     "is out of range"),
    ({"batch_scaling": {"exponent": 0.5}}, "batch_scaling: tokens_per_step_range is missing (allowed: [low, high], "
                                           "each a number > 0 and <= 1000000000)"),
    ({"batch_scaling": {"exponent": 0.5, "tokens_per_step_range": [0, 256]}}, "tokens_per_step_range[0]: 0 is out "
                                                                              "of range"),
    ({"batch_scaling": {"exponent": 0.5, "tokens_per_step_range": [128]}}, "tokens_per_step_range is [128] "
                                                                           "(allowed: [low, high]"),
    ({"batch_scaling": {"exponent": 0.5, "tokens_per_step_range": [1e30, 1e31]}}, "tokens_per_step_range[0]: 1e+30 "
                                                                                  "is out of range"),
])
def test_hostile_correction_sections_are_one_line_errors(tmp_path, sections, expected):
    f = corrected_file(tmp_path, **sections)
    with pytest.raises(ConfigError) as info:
        load_convergence(scenario_on(f))
    message = str(info.value)
    assert "\n" not in message and str(f) in message and expected in message


def test_batch_scaling_without_the_calibrations_batch_shape_is_an_error(tmp_path):
    cfg = {k: v for k, v in CAL_CONFIG.items() if k != "seq_len"}
    f = corrected_file(tmp_path, config=cfg, tokens_per_round=1024)
    with pytest.raises(ConfigError, match="does not record batch_size and seq_len") as info:
        load_convergence(scenario_on(f))
    assert "\n" not in str(info.value)


def test_a_target_met_within_one_round_costs_one_round_and_says_so():
    """N(r) below one round would make the total delay shorter than the round that reaches the target."""
    many = calibration_like(clients={"count": 64}, channel={"s_band": {"subchannels": 64}, "f_band": {"subchannels": 64}},
                            training={"local_iterations": 50})
    model = load_convergence(many)
    ranks = [1, 2, 4, 8, 16]
    raw = [float(model.tokens(r)) / model.tokens_per_round for r in ranks]
    assert max(raw) < 1.0  # the shipped targets are met within this scenario's first round
    assert [float(model.rounds(r)) for r in ranks] == [1.0] * len(ranks)
    warnings = [w for w in model.regime_warnings(many) if "floored at 1 round" in w]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert not [w for w in load_convergence(calibration_like()).regime_warnings(calibration_like())
                if "floored" in w]


def test_a_rate_in_the_grid_that_did_not_win_warns():
    """The grid calibration behind the shipped file tried 3e-3 and 6e-3; 6e-3 won at every rank, so a scenario
    training at 3e-3 (in the grid) is warned that N(r) was measured at the winning rate."""
    grid_file = Path(__file__).resolve().parents[1] / "scenarios" / "results" / "calibration-default-grid.json"
    grid = measured_at(json.loads(grid_file.read_text()))
    best = grid.get("best_learning_rates") or {}
    losers = [g for g in grid.get("learning_rates", []) if all(abs(g - b) > 1e-12 for b in best.values())]
    assert losers == [3e-3]
    s = calibration_like(training={"learning_rate": losers[0]}, convergence={"calibration": str(grid_file)})
    w = [x for x in load_convergence(s).regime_warnings(s) if "best learning rate of each rank" in x]
    assert len(w) == 1 and f"trains with {losers[0]:g}" in w[0] and "\n" not in w[0]

