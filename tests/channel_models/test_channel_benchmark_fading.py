import math

from fsllm_sim.benchmarks import fading


def test_benchmark_runs_small_and_reports_ratio():
    r = fading.run(num_clients=20, num_subchannels=16, num_blocks=5, seed=1, repeats=2)
    for key in ("bare_s", "bare_float32_s", "block_fading_s", "block_fading_complex128_s", "ratio",
                "ratio_complex64_vs_bare_float32", "ratio_complex128"):
        assert r[key] > 0 and math.isfinite(r[key])
    assert r["ratio"] == r["block_fading_s"] / r["bare_s"]
    assert r["target_ratio"] == 1.5
