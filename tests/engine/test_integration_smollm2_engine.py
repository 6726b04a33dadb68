"""Integration: the engine drives real SmolLM2-135M training over the fading radio, end to end through the CLI."""
import csv
import json
import math

import pytest
import yaml

from fsllm_sim.cli import main


@pytest.mark.integration
def test_engine_trains_smollm2_and_writes_the_run(smollm2_ready, tmp_path):
    scenario = {
        "name": "smollm2-engine",
        "clients": {"count": 2},
        "split": {"layer": 15},
        "lora": {"rank": 4},
        "training": {"batch_size": 2, "seq_len": 32, "local_iterations": 2},
        "data": {"max_tokens_per_client": 20000},
        "evaluation": {"max_batches": 1, "batch_size": 4},
        "server": {"discipline": "processor-sharing"},
        "simulation": {"rounds": 2, "training": "real", "target_val_loss": 100.0},
    }
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(scenario))
    assert main(["run", str(f), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    run = next((tmp_path / "runs").iterdir())
    rounds = list(csv.DictReader((run / "rounds.csv").open()))
    assert len(rounds) == 2 and all(math.isfinite(float(r["val_loss"])) for r in rounds)
    summary = json.loads((run / "results.json").read_text())["summary"]
    assert 1.0 < summary["initial_val_loss"] < 8.0  # pretrained, far below ln(49152)
    # a generous target is reached at the end of the first round, in simulated seconds
    assert summary["simulated_time_to_target_s"] == pytest.approx(float(rounds[0]["end_s"]))
    assert (run / "loss_vs_time.png").is_file() and (run / "gantt_round1.png").is_file()
    trace = list(csv.DictReader((run / "trace.csv").open()))
    assert {r["phase"] for r in trace} >= {"forward", "uplink", "server", "downlink", "backward", "adapter_upload",
                                           "aggregation", "broadcast"}
