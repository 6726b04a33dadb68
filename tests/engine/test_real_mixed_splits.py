"""Real training in the engine with per-client split points ℓ_k (an allocation's ``splits``, protocol sfl).

Client k of the engine trains at its own split through ``SplitFedSystem(splits=...)``: replaying the simulated
service order by hand on a system built directly with the same splits gives the engine's global adapter and
validation losses exactly; client k's upload is S_c(ℓ_k) of its real tensors and the broadcast the largest;
under ``timing: flops`` the timeline is the analytic backend's per-client one. All splits equal is the
single-split run, output for output; sl and fl refuse per-client splits in one line.
"""
import dataclasses
import math

import numpy as np
import pytest
import torch

from fsllm_sim.engine import build_world, simulate
from fsllm_sim.engine.allocation import equal_share
from fsllm_sim.engine.backends import TorchBackend
from fsllm_sim.errors import ConfigError
from fsllm_sim.training.federated_training import prepare_model_and_data
from fsllm_sim.training.from_scenario import training_config
from fsllm_sim.training.system import SplitFedSystem

from engine_helpers import make_scenario, replay_training

SPLITS = (1, 3, 2)  # tiny-llama: J = 4 blocks; three different splits, not sorted by client


def real_scenario(corpus, **extra):
    base = dict(data={"source": corpus, "partition": "iid"},
                simulation={"rounds": 2, "training": "real"},
                devices={"speed": {"sigma": 1.2}},  # different speeds: service order != index order
                server={"discipline": "fifo", "flops_per_s": 2e9},
                training={"batch_size": 2, "seq_len": 16, "local_iterations": 2, "learning_rate": 5e-3})
    for key, value in extra.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return make_scenario(**base)


def run(scenario, splits, *, profile="analytic", training=None):
    """simulate() with equal_share at min(splits) and the per-client ``splits`` (None: one split, the scenario's)."""
    world = build_world(scenario, profile_source=profile, progress=False)
    base = scenario.split.layer if splits is None else min(splits)
    alloc = equal_share(world.problem, base, scenario.lora.rank)
    if splits is not None:
        alloc = dataclasses.replace(alloc, splits=np.array(splits))
    return simulate(scenario, allocation=alloc, world=world, training=training)


def service_order(res, round_index):
    rows = [r for r in res.trace.rows if r[0] == round_index and r[3] == "server"]
    return [r[2] for r in sorted(rows, key=lambda r: (r[4], r[5]))]


def replay(scenario, splits, orders):
    """A SplitFedSystem built directly with ``splits``, driven in the given service order: (the system, per round
    its global adapter and validation loss)."""
    return replay_training(scenario, orders, splits)


@pytest.fixture
def captured(monkeypatch):
    """Every round's global adapter of the engine's real system (and the system itself), taken at the round end."""
    seen = {"states": [], "system": None}
    finish = TorchBackend.finish_round

    def spy(self, round_index, participants=None):
        out = finish(self, round_index, participants)
        seen["states"].append(self.system.global_state())
        seen["system"] = self.system
        return out
    monkeypatch.setattr(TorchBackend, "finish_round", spy)
    return seen


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_engine_with_per_client_splits_trains_the_directly_built_system(text_corpus, captured, mode):
    """Rule: splits (1, 3, 2): the engine's global adapter after each round and its validation losses equal those of
    a SplitFedSystem built with the same splits and driven in the simulated service order (exactly); the losses
    are finite and the adapter moved; each client's adapter_upload bits are adapter_bits_of(k), which differ, and
    the broadcast is the largest."""
    scenario = real_scenario(text_corpus, training={"server_mode": mode})
    res = run(scenario, SPLITS)
    system = captured["system"]
    assert system.mixed_splits and system.splits == SPLITS
    orders = [service_order(res, t) for t in (1, 2)]
    direct, rounds = replay(scenario, SPLITS, orders)
    assert len(captured["states"]) == len(rounds) == len(res.rounds) == 2
    for engine_state, (state, loss), rec in zip(captured["states"], rounds, res.rounds):
        assert engine_state.keys() == state.keys()
        assert all(torch.equal(engine_state[k], state[k]) for k in state)
        assert rec.metrics["val_loss"] == loss
        assert math.isfinite(rec.metrics["train_loss"]) and math.isfinite(loss)
    initial = initial_state(scenario, SPLITS)
    assert any(not torch.equal(initial[k], captured["states"][-1][k]) for k in initial)
    bits = [direct.adapter_bits_of(k) for k in range(3)]
    assert len(set(bits)) == 3
    uploads = [r for r in res.trace.rows if r[3] == "adapter_upload"]
    assert len(uploads) == 2 * 3
    for r in uploads:
        assert r[6] == bits[r[2]], r
    broadcasts = [r for r in res.trace.rows if r[3] == "broadcast"]
    assert broadcasts and all(r[6] == max(bits) for r in broadcasts)
    assert max(bits) == bits[SPLITS.index(max(SPLITS))]
    if mode == "v2":  # the shared server copy learns in service order: the index order learns something else
        assert orders[0] != [k for _ in range(2) for k in range(3)]
        assert replay(scenario, SPLITS, [[k for _ in range(2) for k in range(3)]] * 2)[1][-1][1] != rounds[-1][1]


def initial_state(scenario, splits):
    cfg = dataclasses.replace(training_config(scenario), splits=tuple(splits))
    model, data = prepare_model_and_data(cfg)
    return SplitFedSystem(model, cfg.system_config(), data=data, batch_size=cfg.batch_size).global_state()


def test_flops_timing_is_each_clients_own_split_and_payloads_the_profiles(text_corpus):
    """Rule: timing flops, counted profile: the real run's timeline (times, bits, FLOPs) is the analytic backend's
    with the same per-client splits: client k's forward/backward/server FLOPs are problem.client_costs' at its
    split, and the real payloads are the profile's."""
    scenario = real_scenario(text_corpus, simulation={"rounds": 1})
    real = run(scenario, SPLITS, profile="counted")
    analytic = run(scenario, SPLITS, profile="counted", training="analytic")
    assert [r[:8] for r in real.trace.rows] == [r[:8] for r in analytic.trace.rows]
    costs = real.world.problem.client_costs(np.array(SPLITS), scenario.lora.rank)
    field = {"forward": "client_forward_flops", "backward": "client_backward_flops", "server": "server_flops"}
    for r in real.trace.rows:
        if r[3] in field:
            assert r[7] == costs[field[r[3]]][r[2]], r
    assert len({r[7] for r in real.trace.rows if r[3] == "forward"}) == 3


def test_measured_timing_runs_with_per_client_splits(text_corpus):
    """Rule: timing measured: every compute phase is a scaled host time (> 0) and the run trains (finite losses)."""
    scenario = real_scenario(text_corpus, simulation={"rounds": 1, "timing": "measured", "host_flops_per_s": 1e11})
    res = run(scenario, SPLITS)
    compute = [r for r in res.trace.rows if r[3] in ("forward", "backward")]
    assert len(compute) == 2 * 3 * 2 and all(r[5] > r[4] for r in compute)
    assert all(math.isfinite(r.metrics["val_loss"]) for r in res.rounds)


def test_equal_splits_are_the_uniform_run_output_for_output(text_corpus):
    """Rule: splits (2, 2, 2) give exactly the single-split run at 2: same trace rows, round rows and metrics."""
    scenario = real_scenario(text_corpus, server={"discipline": "fifo"}, training={"server_mode": "v2"})
    uniform = run(scenario, None)
    equal = run(scenario, (2, 2, 2))
    assert equal.trace.rows == uniform.trace.rows
    assert equal.trace_table() == uniform.trace_table()
    assert [r.metrics for r in equal.rounds] == [r.metrics for r in uniform.rounds]
    assert equal.round_rows() == uniform.round_rows()
    assert equal.initial_val_loss == uniform.initial_val_loss


@pytest.mark.parametrize("protocol", ["sl", "fl"])
def test_sl_and_fl_refuse_per_client_splits_in_one_line(protocol):
    """Rule: real training under sl or fl with per-client splits: one ConfigError naming split.per_client, raised
    before any model is prepared (backend.configure and simulate alike)."""
    scenario = make_scenario(protocol=protocol, simulation={"rounds": 1, "training": "real"})
    world = build_world(scenario, profile_source="analytic", progress=False)
    k = world.problem.num_clients
    backend = TorchBackend(world.problem, scenario, progress=False)
    with pytest.raises(ConfigError, match=r"^split\.per_client: ") as err:
        backend.configure(2, scenario.lora.rank, splits=[1, 2, 3][:k])
    assert len(str(err.value).splitlines()) == 1 and f"protocol is {protocol}" in str(err.value)
    assert backend.system is None
    alloc = dataclasses.replace(equal_share(world.problem, 2, scenario.lora.rank), splits=np.array([1, 2, 3][:k]))
    with pytest.raises(ConfigError, match=r"^split\.per_client: "):
        simulate(scenario, allocation=alloc, world=world)


def test_the_splits_cannot_change_mid_run(text_corpus):
    """Rule: a real system keeps its splits: configure again with other splits (or one split) is one line."""
    scenario = real_scenario(text_corpus)
    world = build_world(scenario, profile_source="analytic", progress=False)
    backend = TorchBackend(world.problem, scenario, progress=False)
    backend.configure(1, scenario.lora.rank, splits=SPLITS)
    backend.configure(1, scenario.lora.rank, splits=list(SPLITS))  # the same splits again: nothing changes
    for splits in ((1, 2, 3), None):
        with pytest.raises(ConfigError, match="cannot change its per-client splits") as err:
            backend.configure(1, scenario.lora.rank, splits=splits)
        assert len(str(err.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="one split per client"):
        backend.configure(1, scenario.lora.rank, splits=(1, 2))
    with pytest.raises(ConfigError, match=r"use adapter_bits_of\(k\)|depends on the client"):
        backend.adapter_bits()
