"""The dynamic engine benchmark at a small size: it runs its three variants on one world and its counts add up
(a fading downlink draws blocks that a static one does not; the deadline variant keeps its rounds)."""

import numpy as np

from fsllm_sim.benchmarks.engine import _rates_sum, dynamic_benchmark, floor_benchmark


def test_dynamic_benchmark_small():
    r = dynamic_benchmark(clients=12, subchannels=32, rounds=2)
    assert r["rounds_on"] >= 2
    assert r["wall_s_on"] > 0 and r["wall_s_off"] > 0 and r["wall_s_static_downlink"] > 0
    assert abs(r["ratio"] - r["wall_s_on"] / r["wall_s_off"]) < 1e-12
    # uplink fading is on in all three; only the fading downlink adds downlink blocks
    assert r["fading_blocks_off"] > 0
    assert r["fading_blocks_on"] > r["fading_blocks_static_downlink"]
    assert r["deadline_s"] > 0
    # every client walks: one large-scale update per client and 0.1 s step of the simulated time
    assert r["large_scale_updates"] > 0 and r["large_scale_updates"] % 12 == 0


def test_the_floor_times_two_normals_and_a_real_rate_per_block():
    """Rule: the floor's rate loop computes the blocks' rates (numpy's log1p of snr |h|^2, summed), and a block
    costs two normals and a rate, a large-scale update three normals."""
    rng = np.random.default_rng(2)
    re, im = rng.standard_normal(1000), rng.standard_normal(1000)
    assert abs(_rates_sum(re, im, 7.0) - np.log1p(7.0 * (re * re + im * im)).sum()) < 1e-9
    f = floor_benchmark(repeats=1, buffers=20)
    assert f["normal_s"] > 0 and f["rate_s"] > 0
    assert f["block_s"] == 2 * f["normal_s"] + f["rate_s"] and f["large_scale_update_s"] == 3 * f["normal_s"]
