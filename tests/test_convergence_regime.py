"""The convergence model is in training tokens and says where it holds (issue: a fit used out of its regime warns)."""
import json

import pytest
import yaml

from fsllm_sim.cli import main
from fsllm_sim.config import scenario_from_dict
from fsllm_sim.convergence import builtin_calibration_path, load_convergence, tokens_per_round

SHIPPED = json.loads(builtin_calibration_path().read_text())


def calibration_like(**changes):
    """A scenario at the shipped calibration's own settings (no regime difference), with changes."""
    cfg = SHIPPED["config"]
    data = {"model": {"name": SHIPPED["model"]}, "clients": {"count": cfg["num_clients"]},
            "training": {"batch_size": cfg["batch_size"], "seq_len": cfg["seq_len"],
                         "local_iterations": cfg["local_iters"], "learning_rate": cfg["lr"],
                         "activation_precision": cfg["activation_precision"]},
            "lora": {"alpha_per_rank": cfg["lora_alpha_per_rank"]}, "data": {"partition": cfg["partition"]}}
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    return scenario_from_dict(data)


def test_at_the_calibrations_own_settings_n_is_its_fit_and_no_warning():
    s = calibration_like()
    model = load_convergence(s)
    fit = SHIPPED["fit"]
    for r in (1, 4, 16):
        assert float(model.rounds(r)) == pytest.approx(fit["a"] + fit["b"] * r ** -fit["c"], rel=1e-12)
    assert model.regime_warnings(s) == []


def test_rounds_scale_with_tokens_per_round():
    base = calibration_like()
    doubled = calibration_like(clients={"count": 2 * SHIPPED["config"]["num_clients"]},
                               channel={"f_band": {"subchannels": 16}})
    ratio = tokens_per_round(8, 2, 2, 64) / tokens_per_round(4, 2, 2, 64)
    m1, m2 = load_convergence(base), load_convergence(doubled)
    assert float(m1.rounds(8)) == pytest.approx(ratio * float(m2.rounds(8)), rel=1e-12)
    assert float(m1.tokens(8)) == pytest.approx(float(m2.tokens(8)))
    assert m2.regime_warnings(doubled) == []  # more tokens per round is what the token model covers


@pytest.mark.parametrize("changes, label", [
    ({"training": {"activation_precision": "int8"}}, "activation precision 'fp16'"),
    ({"model": {"name": "tiny-llama"}}, "model 'smollm2-135m'"),
    ({"lora": {"scaling": "rslora"}}, "LoRA scaling 'standard'"),
    ({"training": {"learning_rate": 1e-4}}, "learning rate 0.002"),
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
