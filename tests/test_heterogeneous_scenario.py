"""scenarios/heterogeneous.yaml shows what it claims (docs/energy.md): per-client splits follow each device's memory
and never lose, and DVFS with the weighted objective trades a little delay for much less energy."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import solvers
from fsllm_sim.config.loader import load_scenario
from fsllm_sim.engine import build_world

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "heterogeneous.yaml"


@pytest.fixture(scope="module")
def problem():
    return build_world(load_scenario(SCENARIO), progress=False).problem


def _solve(problem, objective, per_client):
    return solvers.solve(dataclasses.replace(problem, objective=objective, per_client_split=per_client), "bcd")


def test_per_client_splits_follow_memory_and_never_lose(problem):
    common = _solve(problem, "delay", False)
    own = _solve(problem, "delay", True)
    assert own.objective_s <= common.objective_s * (1 + 1e-12)
    assert own.splits is not None
    allowed = problem.client_splits_allowed(own.rank)
    assert all(s in a for s, a in zip(own.splits, allowed))
    phones, laptops = own.splits[:3], own.splits[6:]
    assert np.all(phones <= 11) and np.all(laptops > phones.max())  # the phones' 0.5 GiB holds 11 blocks at most
    assert common.split <= 11  # one common split is held down by the phones


def test_weighted_objective_trades_delay_for_energy(problem):
    delay = _solve(problem, "delay", True)
    weighted = _solve(problem, "weighted", True)
    common = _solve(problem, "weighted", False)
    assert weighted.objective_s <= common.objective_s * (1 + 1e-12)
    assert weighted.training_energy_j < 0.6 * delay.training_energy_j
    assert weighted.training_delay_s >= delay.training_delay_s * (1 - 1e-9)
    f = weighted.frequency_hz
    assert np.any(f < problem.energy.f_max_hz * 0.9)
    assert np.all(f >= problem.energy.f_min_hz * (1 - 1e-12))


def test_a_split_a_device_cannot_hold_is_one_line_naming_the_deepest_that_fits(problem):
    from fsllm_sim.engine.allocation import equal_share
    from fsllm_sim.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^split\.layer: 20 at lora\.rank 8 needs [0-9.]+ GiB on the device, more "
                                          r"than client 0's 0\.5 GiB; allowed: .*\(at most 11\)$"):
        equal_share(problem, 20, 8)
