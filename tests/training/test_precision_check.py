"""The measured corrections of the token model: the wire-precision penalty (precision_check) and the tokens-per-step
exponent (transfer_check), on synthetic calibration documents with hand-computed answers, and once end to end on
tiny-model calibrations."""

import json
import math

import numpy as np
import pytest
from training_helpers import make_fake_data

from fsllm_sim.convergence import load_calibration_fit, read_calibration_document
from fsllm_sim.errors import ConfigError
from fsllm_sim.training import precision_check, transfer_check
from fsllm_sim.training.calibration import calibrate
from fsllm_sim.training.federated_training import TrainingConfig
from fsllm_sim.training.precision_check import precision_penalty
from fsllm_sim.training.transfer_check import batch_exponent, transfer_report

SEEDS = (11, 22, 33)


def cal_doc(tokens, *, precision="fp16", batch_size=2, seq_len=64, num_clients=4, lr=1e-3, grid=None, target=4.5,
            seeds=SEEDS, censored=(), bound=None, fit=(1000.0, 4000.0, 0.5), path="cal.json"):
    """A schema-v2 calibration document. ``tokens``: {rank: [tokens per seed]}; ``censored``: {(rank, seed index)}
    whose run is censored at ``bound`` (default: its value in ``tokens``)."""
    tpr = num_clients * 2 * batch_size * seq_len
    runs, ranks = [], []
    for r, values in tokens.items():
        rows = []
        for i, t in enumerate(values):
            cens = (r, i) in censored
            rows.append({"rank": r, "learning_rate": lr, "seed_index": i, "seed": seeds[i], "censored": cens,
                         "tokens_to_target": None if cens else float(t),
                         "censored_above_tokens": float(bound or t) if cens else None,
                         "rounds_to_target": None if cens else t / tpr})
        runs += rows
        done = [e["tokens_to_target"] for e in rows if not e["censored"]]
        ranks.append({"rank": r, "learning_rate": lr, "runs": len(rows), "censored_runs": len(rows) - len(done),
                      "tokens_to_target": {"mean": float(np.mean(done)) if done else None, "ci95": None,
                                           "n": len(done)}})
    config = {"model": "smollm2-135m", "num_clients": num_clients, "batch_size": batch_size, "seq_len": seq_len,
              "local_iterations": 2, "split": 6, "partition": "by_play", "lora_scaling": "standard",
              "lora_alpha_per_rank": 2.0, "activation_precision": precision,
              "learning_rate": None if grid else lr, "seed": 7}
    a, b, c = fit
    return {"schema": "fsllm-sim/calibration/v2", "unit": "tokens", "model": "smollm2-135m", "config": config,
            "learning_rates": list(grid or [lr]), "tokens_per_round": tpr, "seeds": {"count": len(seeds),
                                                                                  "values": list(seeds)},
            "target": {"rule": "absolute", "value": target}, "ranks": ranks, "runs": runs,
            "fit": {"a": a, "b": b, "c": c}, "compute": {"train_wall_s": 10.0 * len(runs), "runs": len(runs)},
            "command": f"fsllm-sim calibrate {path}", "host": {"platform": "test"}, "versions": {"torch": "x"},
            "fingerprint": f"fp-{precision}-{batch_size}", "_path": path}


def write(tmp_path, doc, name):
    d = {k: v for k, v in doc.items() if k != "_path"}
    f = tmp_path / name
    f.write_text(json.dumps(d))
    return f


BASE_TOKENS = {1: [1000.0, 2000.0, 3000.0], 4: [500.0, 600.0, 700.0]}


# --------------------------------------------------------------------------------------------- precision penalty


def test_penalty_is_the_geometric_mean_of_per_rank_ratios_of_means():
    base = cal_doc(BASE_TOKENS)
    int8 = cal_doc({1: [1200.0, 2200.0, 3200.0], 4: [600.0, 720.0, 840.0]}, precision="int8")
    s = precision_penalty(base, [int8], resamples=200)["int8"]
    ratios = {row["rank"]: row["ratio"] for row in s["ranks"]}
    assert ratios[1] == pytest.approx(6600.0 / 6000.0) and ratios[4] == pytest.approx(2160.0 / 1800.0)
    assert s["factor"] == pytest.approx(math.sqrt(1.1 * 1.2), rel=1e-12)
    assert s["measured_against"] == "fp16" and s["target"] == 4.5 and s["ranks_used"] == [1, 4]
    # rank 4's seeds all have the ratio 1.2: paired resampling cannot move it
    row4 = next(r for r in s["ranks"] if r["rank"] == 4)
    assert row4["ci95"] == pytest.approx([1.2, 1.2]) and row4["paired"] and row4["pairs_used"] == 3
    lo, hi = s["ci95"]
    assert lo <= s["factor"] <= hi
    assert s["compute"] == {"train_wall_s": 60.0, "runs": 6} and s["calibrations"][0]["command"]


def test_censored_runs_count_at_their_bound_and_both_sides_censored_is_left_out():
    base = cal_doc(BASE_TOKENS, censored={(1, 2)}, bound=3500.0)
    other = cal_doc({1: [1500.0, 2000.0, 9999.0], 4: [500.0, 600.0, 1400.0]}, precision="int8-tensor",
                    censored={(1, 2), (4, 2)}, bound=1400.0)
    s = precision_penalty(base, [other], resamples=50)["int8-tensor"]
    rows = {row["rank"]: row for row in s["ranks"]}
    # rank 1: seed 2 censored on both sides -> dropped; (1500 + 2000) / (1000 + 2000)
    assert rows[1]["ratio"] == pytest.approx(3500.0 / 3000.0) and rows[1]["dropped_censored_both"] == 1
    assert rows[1]["bound"] is None
    # rank 4: seed 2 censored at int8-tensor only, at its bound 1400: the ratio is a lower bound
    assert rows[4]["ratio"] == pytest.approx((500 + 600 + 1400) / 1800.0) and rows[4]["bound"] == "lower"
    assert s["bound"] == "lower" and rows[4]["censored_runs"] == 1 and rows[4]["base_censored_runs"] == 0


def test_without_common_seeds_the_ratio_is_of_unpaired_means():
    base = cal_doc({4: [500.0, 600.0, 700.0]})
    other = cal_doc({4: [800.0, 1000.0]}, precision="int8", seeds=(98, 99))
    row = precision_penalty(base, [other], resamples=20)["int8"]["ranks"][0]
    assert not row["paired"] and row["ratio"] == pytest.approx(900.0 / 600.0)


def test_learning_rate_groups_of_one_precision_merge_and_record_the_learning_rates():
    base = cal_doc(BASE_TOKENS, grid=[1e-3, 3e-3])
    base["ranks"][0]["learning_rate"] = 3e-3  # fp16 chose 3e-3 at rank 1
    for e in base["runs"]:
        if e["rank"] == 1:
            e["learning_rate"] = 3e-3
    g1 = cal_doc({1: [1100.0, 2200.0, 3300.0]}, precision="int8", lr=3e-3, path="g1")
    g4 = cal_doc({4: [500.0, 600.0, 700.0]}, precision="int8", lr=1e-3, path="g4")
    s = precision_penalty(base, [g1, g4], resamples=20)["int8"]
    assert [r["rank"] for r in s["ranks"]] == [1, 4]
    assert all(r["learning_rate_matches"] for r in s["ranks"]) and s["ranks"][0]["learning_rate"] == 3e-3
    assert s["factor"] == pytest.approx(math.sqrt(1.1 * 1.0))
    assert [c["path"] for c in s["calibrations"]] == ["g1", "g4"]
    with pytest.raises(ConfigError, match="rank 4 at int8 is in both"):
        precision_penalty(base, [g4, cal_doc({4: [1.0, 2.0, 3.0]}, precision="int8", path="again")])


@pytest.mark.parametrize("change, match", [
    ({"target": 4.4}, "the targets differ"),
    ({"batch_size": 4}, "config.batch_size"),
    ({"precision": "fp16"}, "activation precision 'fp16' and noise sigma 0, as the base"),
])
def test_incompatible_calibrations_are_refused_in_one_line(change, match):
    kwargs = {"precision": "int8", **change}
    with pytest.raises(ConfigError, match=match) as info:
        precision_penalty(cal_doc(BASE_TOKENS), [cal_doc(BASE_TOKENS, **kwargs)])
    assert "\n" not in str(info.value)


def test_the_cli_writes_a_merged_file_that_the_convergence_model_applies(tmp_path, capsys):
    base = write(tmp_path, cal_doc(BASE_TOKENS), "base.json")
    other = write(tmp_path, cal_doc({1: [1200.0, 2200.0, 3200.0], 4: [600.0, 720.0, 840.0]}, precision="int8"),
                  "int8.json")
    out = tmp_path / "merged.json"
    assert precision_check.main([str(base), str(other), "--out", str(out), "--bootstrap", "50",
                                 "--note", "test"]) == 0
    printed = capsys.readouterr().out
    assert "int8: T(r) x 1.149" in printed and f"written: {out}" in printed
    doc = read_calibration_document(out)
    assert doc["precision_penalty"]["int8"]["factor"] == pytest.approx(math.sqrt(1.32))
    assert doc["precision_check"]["note"] == "test" and doc["precision_check"]["versions"]["numpy"]
    assert doc["fit"] == json.loads(base.read_text())["fit"]  # the base document, unchanged otherwise
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # atomic: no temporary files left
    fp16 = load_calibration_fit(out, 1024.0, activation_precision="fp16")
    int8 = load_calibration_fit(out, 1024.0, activation_precision="int8")
    assert int8.precision_factor == pytest.approx(math.sqrt(1.32)) and fp16.precision_factor == 1.0
    assert float(int8.rounds(4)) == pytest.approx(float(fp16.rounds(4)) * math.sqrt(1.32), rel=1e-12)
    # a refused input is one line on stderr, exit status 2
    assert precision_check.main([str(base), str(base)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: precision check:")


# --------------------------------------------------------------------------------------------- batch exponent


def test_batch_exponent_recovers_a_known_power_exactly():
    a = cal_doc(BASE_TOKENS, path="a")
    b = cal_doc({r: [t * 2 ** 0.6 for t in v] for r, v in BASE_TOKENS.items()}, batch_size=4, path="b")
    s = batch_exponent(a, b, resamples=100)
    assert s["exponent"] == pytest.approx(0.6, abs=1e-12) and s["ci95"] == pytest.approx([0.6, 0.6], abs=1e-12)
    assert s["tokens_per_step_range"] == [128.0, 256.0]
    assert s["measured_from"]["calibration_a"] == "a" and s["measured_from"]["tokens_per_step"] == [128, 256]


def test_transfer_report_corrects_in_sample_and_leave_one_rank_out_as_hand_computed():
    a = cal_doc(BASE_TOKENS, fit=(0.0, 3000.0, 0.5), path="a")
    b = cal_doc({1: [1500.0, 3000.0, 4500.0], 4: [900.0, 1080.0, 1260.0]}, batch_size=4, path="b")  # 1.5x, 1.8x
    rep = transfer_report(a, b, resamples=50)
    beta = math.log(math.sqrt(1.5 * 1.8)) / math.log(2.0)
    assert rep["batch_scaling"]["exponent"] == pytest.approx(beta, rel=1e-12)
    rows = {r["rank"]: r for r in rep["ranks"]}
    fit_a = {1: 3000.0, 4: 1500.0}
    measured = {1: 3000.0, 4: 1080.0}
    for r, other in ((1, 4), (4, 1)):
        ratio_other = {1: 1.5, 4: 1.8}[other]
        assert rows[r]["relative_error"] == pytest.approx(fit_a[r] / measured[r] - 1.0)
        assert rows[r]["predicted_corrected_tokens"] == pytest.approx(fit_a[r] * 2 ** beta)
        assert rows[r]["exponent_leave_one_rank_out"] == pytest.approx(math.log2(ratio_other))
        assert rows[r]["predicted_leave_one_rank_out_tokens"] == pytest.approx(fit_a[r] * ratio_other)
        assert rows[r]["relative_error_leave_one_rank_out_from_a_mean"] == pytest.approx(
            {1: 2000.0, 4: 600.0}[r] * ratio_other / measured[r] - 1.0)
    assert rep["summary"]["mean_abs_error_leave_one_rank_out"] == pytest.approx(
        np.mean([abs(fit_a[r] * {1: 1.8, 4: 1.5}[r] / measured[r] - 1) for r in (1, 4)]))


def test_batch_exponent_refuses_what_it_cannot_measure():
    a = cal_doc(BASE_TOKENS)
    with pytest.raises(ConfigError, match="needs two different values"):
        batch_exponent(a, cal_doc(BASE_TOKENS))
    with pytest.raises(ConfigError, match="config.num_clients"):
        batch_exponent(a, cal_doc(BASE_TOKENS, batch_size=4, num_clients=8))
    # without a b L difference the report still compares, and says why there is no exponent
    rep = transfer_report(a, cal_doc(BASE_TOKENS, num_clients=8))
    assert rep["batch_scaling"] is None and "tokens per client step" in rep["batch_scaling_missing"]


def test_the_transfer_cli_writes_batch_scaling_into_a_calibration(tmp_path, capsys):
    a = write(tmp_path, cal_doc(BASE_TOKENS), "a.json")
    b = write(tmp_path, cal_doc({r: [t * 2 ** 0.6 for t in v] for r, v in BASE_TOKENS.items()}, batch_size=4),
              "b.json")
    target = write(tmp_path, cal_doc(BASE_TOKENS, fit=(100.0, 2000.0, 0.7)), "ship.json")
    assert transfer_check.main([str(a), str(b), "--bootstrap", "20", "--into", str(target)]) == 0
    out = capsys.readouterr().out
    assert "beta = 0.600" in out and (tmp_path / "transfer.json").is_file()
    doc = read_calibration_document(target)
    assert doc["batch_scaling"]["exponent"] == pytest.approx(0.6)
    assert "transfer_check" in doc["batch_scaling"]["command"]
    m = load_calibration_fit(target, 1024.0, tokens_per_step=512)
    assert m.batch_factor == pytest.approx(4 ** 0.6, rel=1e-12)
    assert float(m.rounds(2)) == pytest.approx((100.0 + 2000.0 * 2 ** -0.7) * 4 ** 0.6 / 1024.0, rel=1e-12)


# --------------------------------------------------------------------------------------------- end to end, tiny


def test_tiny_model_calibrations_give_a_penalty_the_model_applies(tmp_path):
    """fp16 and int8-tensor on a tiny Llama, two ranks, two seeds, two rounds: the int8-tensor calibration runs at
    the fp16 target; the check merges it and the convergence model reads the merged file."""
    cfg = TrainingConfig(model="tiny-llama", num_clients=2, batch_size=4, seq_len=16, local_iterations=3, split=2,
                         learning_rate=2e-2, eval_batch_size=8)
    data = make_fake_data(2, 16)
    base = calibrate(cfg, ranks=(1, 4), max_rounds=2, out_dir=tmp_path / "fp16", data=data, seeds=2, bootstrap=0,
                     progress=False, target_rule="best_fraction:0.5")
    target = base.document["target"]["value"]
    cfg8 = TrainingConfig(**{**cfg.__dict__, "activation_precision": "int8-tensor"})
    calibrate(cfg8, ranks=(1, 4), max_rounds=2, out_dir=tmp_path / "int8", data=data, seeds=2, bootstrap=0,
              progress=False, target_val_loss=target)
    out = tmp_path / "merged.json"
    assert precision_check.main([str(tmp_path / "fp16"), str(tmp_path / "int8"), "--out", str(out),
                                 "--bootstrap", "20"]) == 0
    doc = read_calibration_document(out)
    factor = doc["precision_penalty"]["int8-tensor"]["factor"]
    assert np.isfinite(factor) and factor > 0
    m = load_calibration_fit(out, 384.0, activation_precision="int8-tensor")
    plain = load_calibration_fit(out, 384.0, activation_precision="fp16")
    assert float(m.rounds(1)) == pytest.approx(float(plain.rounds(1)) * factor, rel=1e-12)


@pytest.mark.parametrize("damage, match", [
    (lambda d: d.update(runs=[]), r"runs is \[\] \(allowed: a non-empty list of mappings"),
    (lambda d: d["runs"][0].update(rank="x"), r"runs\[0\].rank is 'x' \(allowed: an integer >= 1"),
    (lambda d: d["ranks"][1].pop("rank"), r"ranks\[1\].rank is None"),
    (lambda d: d["runs"][0].update(learning_rate=-1.0), r"runs\[0\].learning_rate is -1.0 \(allowed: a number > 0"),
    (lambda d: d["runs"][0].update(tokens_to_target=float("nan")), r"has tokens nan \(allowed: a finite number > 0\)"),
    (lambda d: d["runs"][0].update(tokens_to_target=-5.0), r"has tokens -5.0 \(allowed: a finite number > 0\)"),
])
def test_hostile_run_records_are_one_line_errors(damage, match):
    other = cal_doc({1: [1200.0, 2200.0, 3200.0], 4: [600.0, 720.0, 840.0]}, precision="int8")
    damage(other)
    with pytest.raises(ConfigError, match=match) as info:
        precision_penalty(cal_doc(BASE_TOKENS), [other])
    assert "\n" not in str(info.value)
    b = cal_doc(BASE_TOKENS, batch_size=4)
    damage(b)
    with pytest.raises(ConfigError, match=match):
        batch_exponent(cal_doc(BASE_TOKENS), b)


def test_transfer_report_refuses_malformed_rank_rows():
    b = cal_doc(BASE_TOKENS, batch_size=4)
    b["ranks"][0]["tokens_to_target"] = {"mean": float("inf")}
    with pytest.raises(ConfigError, match=r"ranks\[0\] needs an integer rank >= 1 and tokens_to_target.mean"):
        transfer_report(cal_doc(BASE_TOKENS), b)


# --------------------------------------------------------------------------------------------- noise penalty


def test_a_noise_calibration_gives_a_noise_penalty_that_round_trips_into_n_of_r(tmp_path, capsys):
    from fsllm_sim.config import scenario_from_dict
    from fsllm_sim.convergence import load_convergence

    base = cal_doc(BASE_TOKENS)
    int8 = cal_doc({1: [1100.0, 2200.0, 3300.0], 4: [550.0, 660.0, 770.0]}, precision="int8", path="int8.json")
    noisy = cal_doc({1: [1500.0, 3000.0, 4500.0], 4: [600.0, 720.0, 840.0]}, path="noisy.json")
    noisy["config"]["activation_noise_sigma"] = 0.25
    base_file, int8_file, noisy_file = (write(tmp_path, base, "base.json"), write(tmp_path, int8, "int8.json"),
                                        write(tmp_path, noisy, "noisy.json"))
    out = tmp_path / "merged.json"
    assert precision_check.main([str(base_file), str(int8_file), str(noisy_file), "--out", str(out),
                                 "--bootstrap", "100"]) == 0
    printed = capsys.readouterr().out
    assert "noise 0.25: T(r) x 1.3" in printed
    merged = json.loads(out.read_text())
    # both kinds measured in one call, each in its own section, each with its record
    assert set(merged["precision_penalty"]) == {"int8"} and set(merged["noise_penalty"]) == {"0.25"}
    assert merged["noise_check"]["inputs"] == [str(noisy_file)] and "precision_check" in merged
    factor = merged["noise_penalty"]["0.25"]["factor"]
    assert factor == pytest.approx(math.sqrt(1.5 * 1.2), rel=1e-12)
    assert merged["noise_penalty"]["0.25"]["measured_against"] == 0.0

    plain = {"convergence": {"calibration": str(out)}, "clients": {"count": 4},
             "training": {"batch_size": 2, "seq_len": 64, "local_iterations": 2, "learning_rate": 1e-3}}
    without = load_convergence(scenario_from_dict(plain))
    scenario = scenario_from_dict({**plain, "training": {**plain["training"], "activation_noise_sigma": 0.25}})
    model = load_convergence(scenario)
    assert model.noise_factor == pytest.approx(factor)
    assert float(model.rounds(4)) == pytest.approx(float(without.rounds(4)) * factor, rel=1e-12)
    assert "for activation noise of sigma 0.25" in model.description
    assert not [w for w in model.regime_warnings(scenario) if "activation noise" in w]
    # a sigma that was not measured: no factor, and one line saying so
    other = scenario_from_dict({**plain, "training": {**plain["training"], "activation_noise_sigma": 1.0}})
    lines = [w for w in load_convergence(other).regime_warnings(other) if "activation noise" in w]
    assert load_convergence(other).noise_factor == 1.0 and len(lines) == 1
    assert "measured without activation noise" in lines[0] and "measured for sigma 0.25 only" in lines[0]


def test_a_calibration_differing_in_both_precision_and_noise_is_refused():
    base = cal_doc(BASE_TOKENS)
    both = cal_doc(BASE_TOKENS, precision="int8")
    both["config"]["activation_noise_sigma"] = 0.5
    with pytest.raises(ConfigError, match=r"differs from the base in both the wire precision .* and the activation "
                                          r"noise \(0.5 against 0\)"):
        precision_check.penalty_sections(base, [both], resamples=10)


@pytest.mark.parametrize("section, message", [
    ({"0": {"factor": 1.2}}, "'0' is not a noise sigma"),
    ({"abc": {"factor": 1.2}}, "'abc' is not a noise sigma"),
    ({"0.25": {"factor": -1}}, r"noise_penalty.0.25.factor"),
    ({"0.25": 3}, r"noise_penalty.0.25 is 3"),
])
def test_a_bad_noise_penalty_section_is_one_line(tmp_path, section, message):
    doc = cal_doc(BASE_TOKENS)
    doc["noise_penalty"] = section
    with pytest.raises(ConfigError, match=message):
        read_calibration_document(write(tmp_path, doc, "bad.json"))


def test_a_noise_penalty_from_censored_runs_is_a_lower_bound_and_says_so(tmp_path):
    from fsllm_sim.config import scenario_from_dict
    from fsllm_sim.convergence import load_convergence

    base = cal_doc(BASE_TOKENS)
    noisy = cal_doc({1: [9000.0] * 3, 4: [9000.0] * 3}, censored={(r, i) for r in (1, 4) for i in range(3)},
                    path="noisy.json")
    noisy["config"]["activation_noise_sigma"] = 0.25
    out = tmp_path / "merged.json"
    assert precision_check.main([str(write(tmp_path, base, "base.json")), str(write(tmp_path, noisy, "noisy.json")),
                                 "--out", str(out), "--bootstrap", "50"]) == 0
    section = json.loads(out.read_text())["noise_penalty"]["0.25"]
    assert section["bound"] == "lower" and section["factor"] == pytest.approx(math.sqrt(9000 / 2000 * 9000 / 600))
    scenario = scenario_from_dict({"convergence": {"calibration": str(out)}, "clients": {"count": 4},
                                   "training": {"batch_size": 2, "seq_len": 64, "local_iterations": 2,
                                                "learning_rate": 1e-3, "activation_noise_sigma": 0.25}})
    model = load_convergence(scenario)
    lines = [w for w in model.regime_warnings(scenario) if "noise penalty" in w]
    assert len(lines) == 1 and "is a lower bound" in lines[0] and "(a lower bound)" in model.description
