"""Smoke test of the training benchmark's building blocks (the full benchmark is `fsllm-sim bench training`)."""

from fsllm_sim.benchmarks import training as bench


def test_step_time_ratio_smoke():
    r = bench.step_time_ratio("tiny-gpt2", batch_size=2, seq_len=16, reps=2, warmup=1, rank=2)
    assert r["unsplit_s"] > 0 and r["split_s"] > 0 and r["ratio"] > 0 and r["split"] == 2


def test_memory_child_smoke():
    out = bench._memory_child("tiny-llama", 3, 2, 8, None, 2, "v1")
    assert out["num_clients"] == 3 and out["maxrss_bytes"] > out["param_bytes"] > out["base_param_bytes"]
