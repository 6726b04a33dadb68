import numpy as np

from fsllm_sim.config import scenario_from_dict
from fsllm_sim.network import build_environment
from fsllm_sim.seeding import STREAMS, describe, stream, stream_seed


def test_streams_are_reproducible_and_distinct():
    a = stream(7, "fading").standard_normal(5)
    assert np.array_equal(a, stream(7, "fading").standard_normal(5))
    others = [stream(7, n).standard_normal(5) for n in STREAMS if n != "fading"]
    assert all(not np.allclose(a, o) for o in others)
    assert not np.allclose(a, stream(8, "fading").standard_normal(5))


def test_stream_seed_is_stable_across_processes():
    # crc32-derived keys: this literal must never change, or old runs stop reproducing.
    assert stream_seed(1, "training") == stream_seed(1, "training")
    assert describe(1)["streams"]["training"] == stream_seed(1, "training")
    assert 0 <= stream_seed(1, "data") < 2 ** 63


def test_switching_shadowing_off_leaves_placement_and_los_unchanged():
    on = build_environment(scenario_from_dict({}))
    off = build_environment(scenario_from_dict({"channel": {"path_loss": {"shadowing": False}}}))
    assert np.array_equal(on.positions_m, off.positions_m)
    assert np.array_equal(on.los, off.los)
    assert np.all(off.shadowing_db == 0) and np.any(on.shadowing_db != 0)
    assert np.allclose(on.path_loss_db, off.path_loss_db)


def test_same_seed_gives_the_same_environment():
    a = build_environment(scenario_from_dict({"seed": 3}))
    b = build_environment(scenario_from_dict({"seed": 3}))
    assert np.array_equal(a.large_scale_gain, b.large_scale_gain)
