"""Per-client split points ℓ_k: one ℓ for all is today's system bit for bit; mixed ℓ_k train and aggregate by
global block index exactly as K independent unsplit peft models averaged block by block (v1 and v2)."""

import pytest
import torch
from training_helpers import learnable_batch, make_fake_data

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.fed_server import FederatedServer
from fsllm_sim.training.federated_training import TrainingConfig, run_federated_training
from fsllm_sim.training.lora import attach_lora, peft_name_to_key
from fsllm_sim.training.mixed_split import (
    MixedFederatedServer,
    aggregate_by_block,
    block_index,
    pieces_v1,
    pieces_v2,
)
from fsllm_sim.training.models import load_model
from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem
from fsllm_sim.training.wire import state_bits

TOL = 1e-6
N = [3, 1, 5]  # n_k: unequal FedAvg weights
# fp32 wire: the split model is then the unsplit one to float rounding (test_split_equivalence)
CFG = dict(rank=2, activation_precision="fp32", learning_rate=1e-2)


def _batches(rounds, iters, clients, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[[learnable_batch(g, 2, 10) for _ in range(clients)] for _ in range(iters)] for _ in range(rounds)]


def _train(system, batches, participants=None):
    """Round-robin rounds (iteration e of every client, then e+1); the losses."""
    losses = []
    for rnd in batches:
        for per_client in rnd:
            for k, batch in enumerate(per_client):
                losses.append(system.iteration(k, batch))
        system.finish_round(participants)
    return losses


def _system(name, mode, n=N, **cfg):
    return SplitFedSystem(load_model(name, seed=0), SplitFedConfig(server_mode=mode, **{**CFG, **cfg}),
                          num_samples=n)


def _detached(state):
    return {k: v.detach().clone() for k, v in state.items()}


# --------------------------------------------------------------------------------------------- one ℓ for all


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_equal_splits_are_todays_single_split_bit_for_bit(mode):
    batches = _batches(2, 2, 3)
    one = _system("tiny-llama", mode, split=2)
    per_client = _system("tiny-llama", mode, splits=(2, 2, 2))
    assert per_client.split == 2 and isinstance(per_client.split, int) and per_client.splits == (2, 2, 2)
    assert type(per_client.fed_server) is FederatedServer and not per_client.mixed_splits
    assert _train(one, batches) == _train(per_client, batches)
    for a, b in ((one.global_client_state(), per_client.global_client_state()),
                 (one.global_server_state(), per_client.global_server_state())):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert per_client.adapter_bits() == one.adapter_bits() == per_client.adapter_bits_of(1)


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_the_block_rule_with_one_split_is_fedavg_plus_the_ms_average(mode):
    """aggregate_by_block on one split's pieces gives today's FS FedAvg and MS v1 average (v2: the shared copy
    untouched), tensor for tensor."""
    system = _system("tiny-gpt2", mode, split=2)
    for k, batch in enumerate(_batches(1, 1, 3)[0][0]):
        system.iteration(k, batch)
    clients = {k: _detached(c.state) for k, c in enumerate(system.clients)}
    servers = {k: _detached(s) for k, s in system.main_server.states.items()}
    weights = dict(enumerate(N))
    pieces = (pieces_v1(clients, servers, weights) if mode == "v1"
              else pieces_v2(clients, servers[0], {k: 2 for k in weights}, weights))
    got = aggregate_by_block(pieces)
    system.finish_round()
    expect = {**system.global_client_state(), **system.global_server_state()}
    assert got.keys() == expect.keys() and all(torch.equal(got[k], expect[k]) for k in got)
    if mode == "v2":
        assert all(torch.equal(got[k], servers[0][k]) for k in servers[0])


# --------------------------------------------------------------------------------------------- mixed ℓ_k


def _reference(name, mode, splits, n, batches, spec):
    """K separate unsplit peft models trained on the same batches, then averaged by global block index by hand.

    v1: client k's adapter and its server copy are one model's adapter, so model k trains all of its LoRA with one
    AdamW (per-tensor moments: the same updates as the system's separate client and server optimisers).
    v2: the models share ONE Parameter per LoRA tensor of block j ≥ min ℓ, wired into model k where j ≥ ℓ_k and
    stepped by one AdamW in serve order; model k's own tensors of blocks < ℓ_k by its own AdamW."""
    K = len(splits)
    models, own = [], []
    for _ in range(K):
        lm = load_model(name, seed=0)
        peft = attach_lora(lm.model, lm.family, spec.lora_spec(), seed=spec.seed)
        models.append(peft)
        own.append({peft_name_to_key(p): t for p, t in peft.named_parameters() if "lora_" in p})
    opt_spec = spec.optimizer_spec()
    shared = {}
    if mode == "v2":
        shared = {key: torch.nn.Parameter(t.detach().clone()) for key, t in own[0].items()
                  if block_index(key) >= min(splits)}
        for k, peft in enumerate(models):
            for pname, _ in list(peft.named_parameters()):
                if "lora_" in pname and block_index(peft_name_to_key(pname)) >= splits[k]:
                    mod, attr = pname.rsplit(".", 1)
                    peft.get_submodule(mod)._parameters[attr] = shared[peft_name_to_key(pname)]
            own[k] = {key: t for key, t in own[k].items() if block_index(key) < splits[k]}
    opts = [opt_spec.build(o.values()) for o in own]
    shared_opt = opt_spec.build(shared.values()) if shared else None

    def copy_of(k, key):  # the tensor that trained block j of ``key`` for client k
        return own[k][key] if key in own[k] else shared[key]

    keys = list({peft_name_to_key(p) for p, _ in models[0].named_parameters() if "lora_" in p})
    losses = []
    for rnd in batches:
        for per_client in rnd:
            for k, batch in enumerate(per_client):
                loss = models[k](**batch).loss
                loss.backward()
                losses.append(float(loss.detach()))
                for opt in [opts[k]] + ([shared_opt] if shared_opt else []):
                    opt.step()  # AdamW skips the shared tensors this client's request did not touch
                    opt.zero_grad(set_to_none=True)
        total = sum(n)
        glob = {key: sum(n[k] * copy_of(k, key).detach().double() for k in range(K)) / total for key in keys}
        with torch.no_grad():
            for k in range(K):
                for key, t in own[k].items():
                    t.copy_(glob[key])
            for key, t in shared.items():
                t.copy_(glob[key])
    return losses, {k: v.float() for k, v in glob.items()}


@pytest.mark.parametrize("mode", ["v1", "v2"])
@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_mixed_splits_equal_independent_unsplit_models_averaged_by_block(name, mode):
    splits = (1, 2, 3)
    batches = _batches(2, 2, 3, seed=1)
    system = _system(name, mode, splits=splits)
    init = system.global_state()
    losses = _train(system, batches)
    ref_losses, ref = _reference(name, mode, splits, N, batches, system.config)
    assert max(abs(a - b) for a, b in zip(losses, ref_losses)) <= 1e-5
    got = system.global_state()
    assert got.keys() == ref.keys() and len(got) == len(init)
    assert max((got[k] - ref[k]).abs().max().item() for k in got) <= TOL
    assert max((got[k] - init[k]).abs().max().item() for k in got) > 1e-3  # it trained
    # after the broadcast every client holds the global values of its blocks, every server copy those of its own
    for k, c in enumerate(system.clients):
        assert {block_index(key) for key in c.state} == set(range(splits[k]))
        assert all(torch.equal(c.state[key], got[key]) for key in c.state)
        s = system.main_server.states[k]
        assert {block_index(key) for key in s} == set(range(splits[k], system.num_blocks))
        assert all(torch.equal(s[key], got[key]) for key in s)


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_aggregation_over_participants_is_their_hand_fedavg_by_block(mode):
    splits, part = (1, 2, 3), [0, 2]
    system = _system("tiny-llama", mode, splits=splits)
    for per_client in _batches(1, 2, 3, seed=2)[0]:
        for k, batch in enumerate(per_client):
            system.iteration(k, batch)
    clients = [_detached(c.state) for c in system.clients]
    servers = [_detached(system.main_server.states[k]) for k in range(3)]  # v2: views of the shared copy
    msg = system.finish_round(part)
    assert msg.contributors == part and system.round == 1
    got = system.global_state()
    for key, value in got.items():
        j = block_index(key)
        copies = [clients[k][key] if j < splits[k] else servers[k][key] for k in part]
        expect = sum(N[k] * c for k, c in zip(part, copies)) / sum(N[k] for k in part)
        assert torch.allclose(value, expect, atol=1e-7, rtol=0), key
    # the left-out client gets the global values of its blocks too; every server copy is set
    mine = system.global_client_state_of(1)
    assert mine.keys() == system.clients[1].state.keys()
    assert all(torch.equal(system.clients[1].state[k], mine[k]) for k in mine)
    assert all(torch.equal(v, got[k]) for s in system.main_server.states.values() for k, v in s.items())


def test_interleaved_phases_of_clients_at_different_splits_equal_sequential_phases():
    batches = _batches(1, 1, 3, seed=3)[0][0]
    seq, inter = _system("tiny-llama", "v1", splits=(3, 1, 2)), _system("tiny-llama", "v1", splits=(3, 1, 2))
    for k in range(3):
        seq.iteration(k, batches[k])
    ups = [inter.clients[k].forward(batches[k]) for k in (2, 0, 1)]
    grads = {m.client_id: inter.main_server.step(m)[0] for m in reversed(ups)}
    for k in (1, 2, 0):
        inter.clients[k].backward(grads[k])
    for a, b in zip(seq.clients, inter.clients):
        assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    for k in range(3):
        sa, sb = seq.main_server.states[k], inter.main_server.states[k]
        assert all(torch.equal(sa[key], sb[key]) for key in sa)


def test_mixed_views_share_the_one_base_and_bits_count_the_real_tensors():
    system = _system("tiny-llama", "v2", splits=(1, 3, 1))
    uniform = _system("tiny-llama", "v2", split=1)
    layers = system.peft_model.base_model.model.model.layers
    for k, c in enumerate(system.clients):
        assert len(c.part.blocks) == system.splits[k]
        assert all(b is layers[i] for i, b in enumerate(c.part.blocks))
    assert system.clients[0].part is system.clients[2].part  # one view per distinct split
    ms = system.main_server
    assert all(ms.states[k][key] is ms.shared[key] for k in range(3) for key in ms.states[k])
    report, one = system.memory_report(), uniform.memory_report()
    assert report.base_param_bytes == one.base_param_bytes and report.num_server_copies == 1
    # bits: S_c(ℓ_k) from the tensors themselves, for the upload and for the client's part of the broadcast
    per_block = 32 * sum(v.numel() for key, v in system.clients[0].state.items())
    assert [system.adapter_bits_of(k) for k in range(3)] == [per_block, 3 * per_block, per_block]
    for k, c in enumerate(system.clients):
        assert c.adapter_upload().payload_bits == state_bits(c.state, "fp32") == system.adapter_bits_of(k)
    for k, batch in enumerate(_batches(1, 1, 3)[0][0]):
        system.iteration(k, batch)
    msg = system.finish_round()
    assert [system.broadcast_for(k, msg).payload_bits for k in range(3)] == [per_block, 3 * per_block, per_block]
    # the overlap blocks 1..2: the shared copy goes to the FS, the global values come back
    assert system.overlap_exchange_bits() == (2 * per_block, 2 * per_block)
    assert uniform.overlap_exchange_bits() == (0, 0)
    with pytest.raises(ConfigError, match=r"adapter_bits_of\(k\)"):
        system.adapter_bits()
    assert isinstance(system.fed_server, MixedFederatedServer) and system.split == 1


def test_run_federated_training_with_per_client_splits():
    cfg = TrainingConfig(model="tiny-llama", num_clients=2, batch_size=2, seq_len=12, local_iterations=2, rounds=1,
                         splits=(1, 3), rank=2, learning_rate=1e-2, eval_batch_size=4)
    assert cfg.system_config().splits == (1, 3)
    res = run_federated_training(cfg, model=load_model("tiny-llama"), data=make_fake_data(2, 12), progress=False)
    assert res.config["split"] == 1 and res.config["splits"] == [1, 3]
    assert res.val_losses[-1] == res.val_losses[-1]  # finite, not NaN
    log = res.rounds[0]
    assert log.adapter_upload_bits == 4 * log.broadcast_bits // 3  # S_c(1) + S_c(3) = 4/3 of S_c(3)


# --------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [(1, 2), (1, 2, 3, 1), (0, 1, 2), (1, 2, 4), (1, True, 2), (1, 2.0, 3), 2])
def test_bad_splits_are_one_line_config_errors(bad):
    with pytest.raises(ConfigError, match=r"^splits=.* allowed: 3 integers \(one per client\), each in 1\.\.3$"):
        _system("tiny-llama", "v1", splits=bad)
    if not (isinstance(bad, tuple) and len(bad) == 3 and all(type(s) is int and s >= 1 for s in bad)):
        with pytest.raises(ConfigError, match=r"^splits=.* allowed: 3 integers \(one per client\), each in 1\.\.J-1$"):
            TrainingConfig(model="tiny-llama", num_clients=3, splits=bad).validate()
