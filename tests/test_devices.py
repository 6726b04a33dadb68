import pickle

import numpy as np
import pytest

from fsllm_sim.config import scenario_from_dict
from fsllm_sim.devices import aggregation_time_s, draw_speeds_flops_per_s, load_device_trace, make_fleet
from fsllm_sim.errors import ConfigError


def test_lognormal_median_and_sigma():
    rng = np.random.default_rng(0)
    s = draw_speeds_flops_per_s(rng, 200_000, "lognormal", median_flops_per_s=0.5e12, sigma=0.6)
    assert np.median(s) == pytest.approx(0.5e12, rel=0.01)
    assert np.std(np.log(s)) == pytest.approx(0.6, rel=0.01)


def test_uniform_and_fixed():
    rng = np.random.default_rng(0)
    u = draw_speeds_flops_per_s(rng, 10_000, "uniform", low_flops_per_s=1e11, high_flops_per_s=2e11)
    assert u.min() >= 1e11 and u.max() <= 2e11 and np.mean(u) == pytest.approx(1.5e11, rel=0.01)
    assert np.all(draw_speeds_flops_per_s(rng, 3, "fixed", median_flops_per_s=7.0) == 7.0)


def test_trace_is_read_with_extra_columns(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("client_id,flops_per_s,memory_bytes,model\n0,1e12,4e9,phoneA\n1,2e11,2e9,phoneB\n2,3e11,1e9,x\n")
    fleet = load_device_trace(f, 2)
    assert fleet.flops_per_s.tolist() == [1e12, 2e11]
    assert fleet.memory_bytes.tolist() == [4e9, 2e9]
    assert fleet.extra["model"] == ["phoneA", "phoneB"]


@pytest.mark.parametrize("content, message", [
    ("client_id,flops_per_s\n0,1\n", "missing column(s) memory_bytes"),
    ("client_id,flops_per_s,memory_bytes\n0,1e12,4e9\n", "1 rows for 2 clients"),
    ("client_id,flops_per_s,memory_bytes\n0,fast,4e9\n1,1,1\n", "line 2, column 2 (flops_per_s): 'fast' is not a number"),
    ("client_id,flops_per_s,memory_bytes\n0,-1,4e9\n1,1,1\n", "line 2, column 2 (flops_per_s): -1 FLOP/s is out of range"),
])
def test_bad_traces(tmp_path, content, message):
    f = tmp_path / "t.csv"
    f.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_device_trace(f, 2)


def test_pickle_traces_are_refused(tmp_path):
    f = tmp_path / "t.pkl"
    f.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ConfigError, match="pickle traces are refused"):
        load_device_trace(f, 1)
    g = tmp_path / "disguised.csv"
    g.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ConfigError, match="looks like a pickle"):
        load_device_trace(g, 1)


def test_fleet_from_scenario_uses_memory_default():
    s = scenario_from_dict({})
    fleet = make_fleet(s.devices, 8, np.random.default_rng(1))
    assert fleet.num_clients == 8 and np.all(fleet.memory_bytes == 4 * 1024 ** 3)


def test_aggregation_time_counts_two_flops_per_parameter_per_client():
    assert aggregation_time_s(8, 1_000_000, 1e9, overhead_s=0.5) == pytest.approx(0.5 + 2 * 8 * 1e6 / 1e9)
