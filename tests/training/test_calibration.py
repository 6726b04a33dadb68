"""Calibration of N(r) = a + b·r^(-c): reading N off curves, censoring, the fit, resumable runs, loading."""

import json

import numpy as np
import pytest
from training_helpers import make_fake_data

from fsllm_sim.errors import ConfigError
from fsllm_sim.training import calibration
from fsllm_sim.training.calibration import (
    calibrate,
    fit_rounds_model,
    load_calibration,
    resolve_target,
    rounds_model,
    rounds_to_target,
)
from fsllm_sim.training.federated_training import TrainingConfig


def test_rounds_to_target_interpolates_and_censors():
    curve = [4.0, 3.0, 2.0, 1.5]
    assert rounds_to_target(curve, 2.5) == (1.5, False)  # halfway between rounds 1 and 2
    assert rounds_to_target(curve, 3.0) == (1.0, False)
    assert rounds_to_target(curve, 5.0) == (0.0, False)  # already met before training
    assert rounds_to_target(curve, 1.0) == (None, True)  # never reached: censored
    assert rounds_to_target([4.0, 3.0, 3.5, 2.0], 2.5) == (2 + 2 / 3, False)  # first crossing, non-monotone


def test_target_rules():
    curves = {1: [5.0, 4.0, 3.5], 4: [5.0, 3.0, 2.0]}
    t, info = resolve_target(curves, None, "best_fraction:0.5")
    assert t == 3.5 and info["best_val_loss"] == 2.0 and info["initial_val_loss"] == 5.0
    assert resolve_target(curves, None, "initial_ratio:0.9")[0] == pytest.approx(4.5)
    assert resolve_target(curves, 3.2, None)[0] == 3.2
    for bad in ("best_fraction:0", "initial_ratio:1.5", "median", "best_fraction:x"):
        with pytest.raises(ConfigError, match="target_rule"):
            resolve_target(curves, None, bad)


def test_fit_recovers_known_parameters():
    r = np.array([1, 2, 4, 8, 16])
    n = rounds_model(r, 3.0, 12.0, 0.8)
    fit = fit_rounds_model(r, n)
    assert fit["n_points"] == 5 and not fit["degenerate"]
    assert fit["a"] == pytest.approx(3.0, abs=1e-4) and fit["b"] == pytest.approx(12.0, abs=1e-4)
    assert fit["c"] == pytest.approx(0.8, abs=1e-4) and fit["r2"] == pytest.approx(1.0)


def test_fit_respects_bounds_with_noisy_increasing_data():
    fit = fit_rounds_model([1, 2, 4, 8], [5.0, 5.5, 6.0, 7.0])  # more rank, more rounds: not in the model
    assert fit["a"] >= 0 and fit["b"] >= 0 and 0 <= fit["c"] <= calibration.C_MAX


def test_fit_small_samples_are_flagged():
    three = fit_rounds_model([1, 4, 16], [10.0, 6.0, 5.0])
    assert three["degenerate"] and "exact" in three["note"] and three["sse"] < 1e-6
    two = fit_rounds_model([2, 8], [9.0, 5.0])
    assert two["c"] == 1.0 and two["degenerate"] and two["sse"] < 1e-9
    one = fit_rounds_model([4], [7.0])
    assert (one["a"], one["b"]) == (7.0, 0.0)
    assert fit_rounds_model([], []) is None


CFG = TrainingConfig(model="tiny-llama", num_clients=2, batch_size=4, seq_len=16, local_iterations=3, split=2, learning_rate=2e-2,
                     eval_batch_size=8)


def test_calibrate_writes_provenance_resumes_and_loads(tmp_path, monkeypatch):
    res = calibrate(CFG, ranks=(1, 4), max_rounds=2, out_dir=tmp_path, data=make_fake_data(2, 16), seeds=2,
                    bootstrap=20, progress=False, command="pytest calibrate")
    doc = json.loads((tmp_path / "calibration.json").read_text())
    assert doc == res.document
    assert doc["schema"] == calibration.SCHEMA_V2 and doc["unit"] == "tokens" and doc["command"] == "pytest calibrate"
    assert {"torch", "transformers", "peft"} <= set(doc["versions"]) and doc["seeds"]["count"] == 2
    assert len(set(doc["seeds"]["values"])) == 2
    assert doc["tokens_per_round"] == 2 * 3 * 4 * 16
    assert [e["rank"] for e in doc["ranks"]] == [1, 4]
    assert len(doc["runs"]) == 4
    for e in doc["runs"]:
        assert len(e["val_losses"]) == 3 and len(e["train_losses"]) == 2
        if not e["censored"]:
            assert e["tokens_to_target"] == pytest.approx(e["rounds_to_target"] * doc["tokens_per_round"])
    assert doc["target"]["rule"] == "best_fraction:0.8"
    assert any(not e["censored"] for e in doc["runs"])  # the best rank reaches a best_fraction target
    assert len(list((tmp_path / "curves").iterdir())) == 4
    assert (tmp_path / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left behind

    # rerun: every run comes from disk, nothing is trained
    def no_training(*a, **k):
        raise AssertionError("resumed runs must not be retrained")

    monkeypatch.setattr(calibration, "run_federated_training", no_training)
    again = calibrate(CFG, ranks=(1, 4), max_rounds=2, out_dir=tmp_path, data=make_fake_data(2, 16), seeds=2,
                      bootstrap=0, progress=False, target_val_loss=doc["runs"][0]["val_losses"][1])
    assert all(e["resumed"] for e in again.document["runs"])
    assert again.document["target"]["rule"] == "absolute"
    # a different configuration in the same out_dir is refused
    with pytest.raises(ConfigError, match="different configuration"):
        calibrate(TrainingConfig(**{**CFG.__dict__, "batch_size": 2}), ranks=(1,), max_rounds=2, out_dir=tmp_path,
                  data=make_fake_data(2, 16), progress=False)

    fit = load_calibration(tmp_path)
    if again.fit is not None:
        assert fit.rounds(4) == pytest.approx(again.fit.rounds(4))
        assert np.all(np.isfinite(fit.rounds(np.array([1, 2, 4, 8, 16]))))


def test_censored_points_bound_the_fit_from_below():
    """A censored point only says T > bound: a fit above it pays nothing, one below pays like a miss."""
    r = [1, 2, 4, 8, 16, 1]
    t = [100.0, 60.0, 40.0, 30.0, 25.0, 500.0]
    free = calibration.fit_censored(r[:5], t[:5], [False] * 5)
    bound_below = calibration.fit_censored(r, t[:5] + [50.0], [False] * 5 + [True])  # already satisfied
    assert (bound_below["a"], bound_below["b"], bound_below["c"]) == pytest.approx((free["a"], free["b"], free["c"]),
                                                                                   rel=1e-6)
    pushed = calibration.fit_censored(r, t, [False] * 5 + [True])  # rank 1 needs more than 500
    assert calibration.rounds_model(1, pushed["a"], pushed["b"], pushed["c"]) > \
        calibration.rounds_model(1, free["a"], free["b"], free["c"])
    assert pushed["n_censored"] == 1


def test_bootstrap_interval_covers_the_fit_and_shrinks_with_agreeing_seeds():
    truth = lambda r: 1000 + 4000 * r ** -0.7  # noqa: E731
    rng = np.random.default_rng(0)
    noisy = {r: [(truth(r) * (1 + 0.2 * rng.standard_normal()), False) for _ in range(5)] for r in (1, 2, 4, 8, 16)}
    tight = {r: [(truth(r) * (1 + 0.01 * rng.standard_normal()), False) for _ in range(5)] for r in (1, 2, 4, 8, 16)}
    wide, narrow = calibration.bootstrap_fit(noisy, 100), calibration.bootstrap_fit(tight, 100)
    width = lambda b, r: b["prediction"][str(r)][1] - b["prediction"][str(r)][0]  # noqa: E731
    assert width(narrow, 4) < width(wide, 4)
    assert narrow["prediction"]["4"][0] <= truth(4) * 1.05 and narrow["prediction"]["4"][1] >= truth(4) * 0.95


def test_calibrate_argument_errors(tmp_path):
    with pytest.raises(ConfigError, match="ranks="):
        calibrate(CFG, ranks=(0,), max_rounds=1, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="max_rounds="):
        calibrate(CFG, ranks=(1,), max_rounds=0, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="target_rule"):
        calibrate(CFG, ranks=(1,), max_rounds=1, out_dir=tmp_path, target_rule="nonsense")
    with pytest.raises(ConfigError, match="does not exist"):
        load_calibration(tmp_path / "nothing.json")
    (tmp_path / "calibration.json").write_text(json.dumps({"schema": calibration.SCHEMA, "fit": None}))
    with pytest.raises(ConfigError, match="holds no fit"):
        load_calibration(tmp_path)


def test_transfer_check_predicts_b_from_a_and_refuses_different_targets():
    from fsllm_sim.training.transfer_check import transfer_report

    def doc(tokens, target=4.3):
        return {"unit": "tokens", "_path": "x", "tokens_per_round": 1024, "target": {"value": target},
                "fit": {"a": 1000.0, "b": 4000.0, "c": 1.0},
                "ranks": [{"rank": r, "tokens_to_target": {"mean": t, "ci95": None}, "censored_runs": 0, "runs": 2}
                          for r, t in tokens.items()]}

    report = transfer_report(doc({}), doc({1: 5000.0, 4: 4000.0}))
    errors = {row["rank"]: row["relative_error"] for row in report["ranks"]}
    assert errors[1] == pytest.approx(0.0) and errors[4] == pytest.approx(2000.0 / 4000.0 - 1.0)
    with pytest.raises(ConfigError, match="targets differ"):
        transfer_report(doc({}), doc({1: 5000.0}, target=4.0))


def test_stop_at_target_keeps_every_first_crossing_and_first_seed_trains_the_chosen_rate_only(tmp_path, monkeypatch):
    lrs, data = (2e-2, 5e-2), make_fake_data(2, 16)
    full = calibrate(CFG, ranks=(1, 4), max_rounds=4, out_dir=tmp_path / "full", data=data, seeds=2,
                     learning_rates=lrs, bootstrap=0, progress=False).document
    curve = next(e["val_losses"] for e in full["runs"] if e["rank"] == 4 and e["seed_index"] == 0)
    target = curve[2]  # met at round 2 by this run; others meet it earlier, later or never
    want = {(e["rank"], e["learning_rate"], e["seed_index"]): rounds_to_target(e["val_losses"], target)
            for e in full["runs"]}
    assert len({n for n, _ in want.values()}) > 1

    stopped = calibrate(CFG, ranks=(1, 4), max_rounds=4, out_dir=tmp_path / "stop", data=data, seeds=2,
                        learning_rates=lrs, bootstrap=0, progress=False, target_val_loss=target,
                        stop_at_target=True, learning_rate_search="first_seed").document
    assert stopped["stop_at_target"] and stopped["learning_rate_search"] == "first_seed"
    seed0 = {}
    for r in (1, 4):
        seed0[r] = min(lrs, key=lambda lr: (4 if want[(r, lr, 0)][1] else want[(r, lr, 0)][0]))
    for e in stopped["runs"]:
        key = (e["rank"], e["learning_rate"], e["seed_index"])
        n, censored = want[key]
        assert (e["rounds_to_target"], e["censored"]) == (n, censored)
        assert e["rounds_trained"] == (4 if censored else max(1, int(np.ceil(n))))
        ref = next(x["val_losses"] for x in full["runs"]
                   if (x["rank"], x["learning_rate"], x["seed_index"]) == key)
        assert e["val_losses"] == pytest.approx(ref[: len(e["val_losses"])], abs=1e-6)  # the same run, cut short
        if e["seed_index"] == 1:
            assert e["learning_rate"] == seed0[e["rank"]]  # only the rate chosen on seed 0
    assert len(stopped["runs"]) == 2 * 2 + 2
    assert [e["learning_rate"] for e in stopped["ranks"]] == [seed0[1], seed0[4]]
    assert {e["learning_rates_tried_on"] for e in stopped["ranks"]} == {"seed 0"}

    def no_training(*a, **k):
        raise AssertionError("curves that met the target must be reused")

    monkeypatch.setattr(calibration, "run_federated_training", no_training)
    again = calibrate(CFG, ranks=(1, 4), max_rounds=4, out_dir=tmp_path / "stop", data=data, seeds=2,
                      learning_rates=lrs, bootstrap=0, progress=False, target_val_loss=target,
                      stop_at_target=True, learning_rate_search="first_seed").document
    assert all(e["resumed"] for e in again["runs"])
    # a stopped curve cannot serve a harder target it never reached: that run would be trained again
    harder = min(min(e["val_losses"]) for e in stopped["runs"] if e["rounds_trained"] < 4) - 1.0
    with pytest.raises(AssertionError, match="must be reused"):
        calibrate(CFG, ranks=(1, 4), max_rounds=4, out_dir=tmp_path / "stop", data=data, seeds=2,
                  learning_rates=lrs, bootstrap=0, progress=False, target_val_loss=harder, stop_at_target=True)


def test_stop_at_target_and_first_seed_need_an_absolute_target(tmp_path):
    for kwargs, field in (({"stop_at_target": True}, "stop_at_target"),
                          ({"learning_rate_search": "first_seed"}, "learning_rate_search")):
        with pytest.raises(ConfigError, match=f"calibration.{field}.*target_val_loss"):
            calibrate(CFG, ranks=(1,), max_rounds=1, out_dir=tmp_path, **kwargs)
    with pytest.raises(ConfigError, match="learning_rate_search='best'.*all_seeds, first_seed"):
        calibrate(CFG, ranks=(1,), max_rounds=1, out_dir=tmp_path, learning_rate_search="best")
