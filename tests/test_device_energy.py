"""Device energy parameters from the scenario and the device trace (docs/energy.md), and their bad input."""
import numpy as np
import pytest

from fsllm_sim.config.loader import scenario_from_dict
from fsllm_sim.devices import make_fleet
from fsllm_sim.errors import ConfigError
from fsllm_sim.seeding import stream


def _fleet(data, k=3, base_dir=None):
    s = scenario_from_dict({"clients": {"count": k}, **data}, base_dir=base_dir)
    return make_fleet(s.devices, k, stream(s.seed, "devices"))


def test_defaults_reproduce_each_devices_speed_at_f_max():
    fleet = _fleet({})
    en = fleet.energy
    np.testing.assert_allclose(en.flops_per_cycle * en.f_max_hz, fleet.flops_per_s, rtol=1e-15)
    assert np.all(en.kappa == 5e-27) and np.all(np.isinf(en.battery_j))
    # P = kappa f^3: 5 W at 1 GHz
    assert en.kappa[0] * en.f_max_hz[0] ** 3 == pytest.approx(5.0)


def test_trace_energy_columns_override_per_device(tmp_path):
    trace = tmp_path / "devices.csv"
    trace.write_text("client_id,flops_per_s,memory_bytes,kappa,f_max_hz,f_min_hz,battery_j\n"
                     "0,1e12,4e9,1e-27,2e9,0.5e9,1000\n"
                     "1,2e12,8e9,,,,\n")
    fleet = _fleet({"devices": {"speed": {"distribution": "trace", "trace_path": str(trace)}}}, k=2)
    en = fleet.energy
    assert en.kappa.tolist() == [1e-27, 5e-27]
    assert en.f_max_hz.tolist() == [2e9, 1e9]
    assert en.flops_per_cycle.tolist() == [500.0, 2000.0]
    assert en.battery_j[0] == 1000 and np.isinf(en.battery_j[1])


@pytest.mark.parametrize("row, message", [
    ("0,1e12,4e9,-1,,", r"kappa: client 0: -1 is out of range; allowed: a finite number > 0"),
    ("0,1e12,4e9,,2e9,3e9", r"f_min_hz: client 0: 3e\+09 is out of range; allowed: at most the client's f_max_hz"),
    ("0,1e12,4e9,abc,,", r"line 2 \(kappa\): 'abc' is not a finite number"),
])
def test_bad_trace_energy_values_are_one_line_errors(tmp_path, row, message):
    trace = tmp_path / "devices.csv"
    trace.write_text("client_id,flops_per_s,memory_bytes,kappa,f_max_hz,f_min_hz\n" + row + "\n")
    with pytest.raises(ConfigError, match=message) as err:
        _fleet({"devices": {"speed": {"distribution": "trace", "trace_path": str(trace)}}}, k=1)
    assert "\n" not in str(err.value)


def test_trace_phi_and_f_max_must_agree_with_the_speed(tmp_path):
    trace = tmp_path / "devices.csv"
    trace.write_text("client_id,flops_per_s,memory_bytes,flops_per_cycle,f_max_hz\n0,1e12,4e9,100,2e9\n")
    with pytest.raises(ConfigError, match=r"line 2: flops_per_cycle 100 x f_max_hz 2e\+09 = 2e\+11 FLOP/s differs"):
        _fleet({"devices": {"speed": {"distribution": "trace", "trace_path": str(trace)}}}, k=1)


@pytest.mark.parametrize("data, message", [
    ({"devices": {"energy": {"kappa": 0}}}, r"devices\.energy\.kappa"),
    ({"devices": {"energy": {"f_min_hz": 2e9, "f_max_hz": 1e9}}},
     r"devices\.energy\.f_min_hz: 2e\+09 Hz is above devices\.energy\.f_max_hz=1e\+09 Hz"),
    ({"objective": {"kind": "delay-under-energy"}}, r"objective\.budget_j: a per-client energy budget"),
    ({"objective": {"kind": "weighted"}, "protocol": "sl"}, r"objective\.kind: weighted is supported under protocol "
                                                             r"sfl only"),
    ({"objective": {"kind": "cheapest"}}, r"objective\.kind"),
    ({"split": {"per_client": True}, "protocol": "fl"}, r"split\.per_client: per-client splits need protocol sfl"),
])
def test_bad_energy_fields_are_one_line_errors(data, message):
    with pytest.raises(ConfigError, match=message) as err:
        scenario_from_dict(data)
    assert "\n" not in str(err.value)
