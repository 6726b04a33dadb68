"""The dynamic engine benchmark at a small size: it runs its three variants on one world and its counts add up
(a fading downlink draws blocks that a static one does not; the deadline variant keeps its rounds)."""

from fsllm_sim.benchmarks.engine import dynamic_benchmark


def test_dynamic_benchmark_small():
    r = dynamic_benchmark(clients=12, subchannels=32, rounds=2)
    assert r["rounds_on"] >= 2
    assert r["wall_s_on"] > 0 and r["wall_s_off"] > 0 and r["wall_s_static_downlink"] > 0
    assert abs(r["ratio"] - r["wall_s_on"] / r["wall_s_off"]) < 1e-12
    # uplink fading is on in all three; only the fading downlink adds downlink blocks
    assert r["fading_blocks_off"] > 0
    assert r["fading_blocks_on"] > r["fading_blocks_static_downlink"]
    assert r["deadline_s"] > 0
