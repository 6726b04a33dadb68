"""Training hygiene knobs: rsLoRA scaling, lr schedules with warm-up, gradient clipping, optimiser state on
broadcast (keep / reset), and LoRA aggregation (fedavg vs exact product average)."""

import math

import numpy as np
import pytest
import torch
from training_helpers import learnable_batch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.fed_server import FederatedServer, fedavg, product_average
from fsllm_sim.training.lora import LoraSpec, attach_lora, lora_factor_pairs
from fsllm_sim.training.messages import AdapterMessage
from fsllm_sim.training.models import load_model
from fsllm_sim.training.optim import OptimizerSpec
from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem


def _batches(seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    return [learnable_batch(g, 2, 8) for _ in range(n)]


def _system(**kw):
    cfg = dict(split=2, rank=2, learning_rate=0.05)
    cfg.update(kw)
    return SplitFedSystem(load_model("tiny-llama", seed=0), SplitFedConfig(**cfg), num_samples=[1, 3])


# --------------------------------------------------------------------------------------------- 1. scaling


@pytest.mark.parametrize("scaling", ["standard", "rslora"])
def test_lora_scaling_factor_on_the_layers(scaling):
    spec = LoraSpec(rank=4, alpha=8.0, scaling=scaling)
    expected = 8.0 / 4 if scaling == "standard" else 8.0 / math.sqrt(4)
    assert spec.scaling_factor() == pytest.approx(expected)
    peft_model = attach_lora(load_model("tiny-llama", seed=0).model, "llama", spec)
    layers = [m for m in peft_model.modules() if hasattr(m, "lora_A") and "default" in getattr(m, "scaling", {})]
    assert layers
    for m in layers:
        assert m.scaling["default"] == pytest.approx(expected)


def test_system_passes_lora_scaling_through():
    s = _system(rank=4, lora_alpha=8.0, lora_scaling="rslora")
    assert s.lora.scaling == "rslora"
    scalings = {m.scaling["default"] for m in s.peft_model.modules() if hasattr(m, "lora_A") and m.scaling}
    assert scalings and all(x == pytest.approx(4.0) for x in scalings)
    with pytest.raises(ConfigError, match="lora_scaling"):
        LoraSpec(scaling="bogus").validate("llama")


# --------------------------------------------------------------------------------------------- 2. schedules


def _formula(schedule, n, warmup, total):
    if n < warmup:
        return n / warmup
    if schedule == "constant":
        return 1.0
    p = min(max((n - warmup) / max(1, total - warmup), 0.0), 1.0)
    return 0.5 * (1 + math.cos(math.pi * p)) if schedule == "cosine" else 1.0 - p


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_lr_factor_formula(schedule):
    spec = OptimizerSpec(lr=0.1, schedule=schedule, warmup_steps=3, total_steps=10).validate()
    assert spec.lr_factor(0) == 0.0 and spec.lr_factor(3) == 1.0
    for n in range(14):
        assert spec.lr_at(n) == pytest.approx(0.1 * _formula(schedule, n, 3, 10), abs=1e-12)
    if schedule != "constant":
        assert spec.lr_at(10) == pytest.approx(0.0, abs=1e-12) and spec.lr_at(12) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_lr_seen_by_every_optimiser(schedule, mode):
    warmup, total, lr = 2, 5, 0.05
    s = _system(optimizer="sgd", lr_schedule=schedule, warmup_steps=warmup, schedule_total_steps=total,
                server_mode=mode)
    batches = _batches()
    for n in range(6):
        s.iteration(0, batches[n])
        want = lr * _formula(schedule, n, warmup, total)
        assert s.clients[0].optimizer.param_groups[0]["lr"] == pytest.approx(want, abs=1e-12)
        if mode == "v1":
            assert s.main_server._optimizers[0].param_groups[0]["lr"] == pytest.approx(want, abs=1e-12)
        else:  # shared adapter: its requests / K clients on the same run-long axis
            want_s = lr * _formula(schedule, n / 2, warmup, total)
            assert s.main_server._optimizers[0].param_groups[0]["lr"] == pytest.approx(want_s, abs=1e-12)
    assert s.clients[1].iterations_done == 0


def test_warmup_first_step_is_zero_lr_so_nothing_moves():
    s = _system(optimizer="sgd", warmup_steps=3)
    before = {k: v.detach().clone() for k, v in s.clients[0].state.items()}
    s.iteration(0, _batches()[0])
    assert all(torch.equal(before[k], v) for k, v in s.clients[0].state.items())


def test_constant_without_warmup_is_bit_identical_to_default():
    batches = _batches(n=3)
    a = _system()
    b = _system(lr_schedule="constant", warmup_steps=0, schedule_total_steps=100)
    for sys_ in (a, b):
        for n in range(3):
            sys_.iteration(n % 2, batches[n])
        sys_.finish_round()
        sys_.iteration(0, batches[0])
    for k, v in a.clients[0].state.items():
        assert torch.equal(v, b.clients[0].state[k])
    for k, v in a.main_server.global_state().items():
        assert torch.equal(v, b.main_server.global_state()[k])


def test_schedule_validation():
    with pytest.raises(ConfigError, match="lr_schedule"):
        OptimizerSpec(schedule="step").validate()
    with pytest.raises(ConfigError, match="warmup_steps"):
        OptimizerSpec(warmup_steps=-1).validate()
    with pytest.raises(ConfigError, match="grad_clip_norm"):
        OptimizerSpec(grad_clip_norm=0.0).validate()


# --------------------------------------------------------------------------------------------- 3. clipping


def test_clip_bounds_sgd_update_unit():
    p = torch.nn.Parameter(torch.zeros(3, 4))
    q = torch.nn.Parameter(torch.zeros(5))
    spec = OptimizerSpec(name="sgd", lr=1.0, grad_clip_norm=0.01)
    opt = spec.build([p, q])
    p.grad = torch.full((3, 4), 2.0)
    q.grad = torch.full((5,), -1.0)
    spec.step(opt, 0)
    change = torch.cat([p.detach().flatten(), q.detach().flatten()]).norm()
    assert change.item() == pytest.approx(0.01, rel=1e-4)
    # a gradient below the clip norm is left alone
    p2 = torch.nn.Parameter(torch.zeros(2))
    opt2 = spec.build([p2])
    p2.grad = torch.tensor([0.003, 0.004])
    spec.step(opt2, 0)
    assert torch.allclose(p2.detach(), -torch.tensor([0.003, 0.004]))


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_clip_bounds_client_and_server_updates(mode):
    clip = 1e-4
    s = _system(optimizer="sgd", learning_rate=1.0, grad_clip_norm=clip, server_mode=mode)
    c0 = {k: v.detach().clone() for k, v in s.clients[0].state.items()}
    s0 = {k: v.detach().clone() for k, v in s.main_server.state_for(0).items()}
    s.iteration(0, _batches()[0])

    def change(before, after):
        return torch.cat([(after[k].detach() - before[k]).flatten() for k in before]).norm().item()

    assert change(c0, s.clients[0].state) == pytest.approx(clip, rel=1e-3)
    assert change(s0, s.main_server.state_for(0)) == pytest.approx(clip, rel=1e-3)


# --------------------------------------------------------------------------------------------- 4. keep / reset


def _opt_tensors(opt):
    return [(id(p), name, v.clone()) for p, st in opt.state.items() for name, v in st.items()
            if isinstance(v, torch.Tensor)]


def test_keep_leaves_optimizer_state_untouched_by_broadcast():
    s = _system()
    batches = _batches()
    s.iteration(0, batches[0])
    s.iteration(1, batches[1])
    opt = s.clients[0].optimizer
    before = _opt_tensors(opt)
    assert any(name == "exp_avg" and v.abs().sum() > 0 for _, name, v in before)
    server_before = _opt_tensors(s.main_server._optimizers[0])
    s.finish_round()
    assert s.clients[0].optimizer is opt
    after = _opt_tensors(opt)
    assert [(i, n) for i, n, _ in before] == [(i, n) for i, n, _ in after]
    assert all(torch.equal(a, b) for (_, _, a), (_, _, b) in zip(before, after))
    assert all(torch.equal(a, b) for (_, _, a), (_, _, b) in zip(server_before,
                                                                   _opt_tensors(s.main_server._optimizers[0])))


def test_reset_gives_fresh_state_but_schedule_continues():
    warmup, total, lr = 2, 8, 0.05
    s = _system(reset_optimizer_each_round=True, lr_schedule="cosine", warmup_steps=warmup,
                schedule_total_steps=total)
    batches = _batches()
    for n in range(3):
        s.iteration(0, batches[n])
    old = s.clients[0].optimizer
    s.finish_round()
    opt = s.clients[0].optimizer
    assert opt is not old
    # fresh: no state, or (AdamW pre-allocated) step 0 and zero moments, exactly as a new optimiser
    for st in opt.state.values():
        assert float(st["step"]) == 0.0
        assert st["exp_avg"].abs().sum() == 0 and st["exp_avg_sq"].abs().sum() == 0
    for st in s.main_server._optimizers[0].state.values():
        assert float(st["step"]) == 0.0 and st["exp_avg"].abs().sum() == 0
    # the schedule does not restart: the 4th local step uses lr_at(3), not lr_at(0) = 0
    s.iteration(0, batches[3])
    want = lr * _formula("cosine", 3, warmup, total)
    assert want > 0
    assert s.clients[0].optimizer.param_groups[0]["lr"] == pytest.approx(want, abs=1e-12)
    assert s.main_server._optimizers[0].param_groups[0]["lr"] == pytest.approx(want, abs=1e-12)


# --------------------------------------------------------------------------------------------- 5. aggregation


KA, KB = "blocks.0.self_attn.q_proj.lora_A.default.weight", "blocks.0.self_attn.q_proj.lora_B.default.weight"


def _state(a, b, extra=0.0):
    return {KA: torch.tensor(a, dtype=torch.float32), KB: torch.tensor(b, dtype=torch.float32),
            "blocks.0.other": torch.tensor([extra])}


def test_factor_pairs_by_key():
    pairs, rest = lora_factor_pairs([KB, "blocks.0.other", KA])
    assert pairs == [(KA, KB)] and rest == ["blocks.0.other"]


def test_product_is_exact_average_when_rank_fits():
    g = torch.Generator().manual_seed(0)
    out_d, in_d, r = 5, 6, 2
    states, prods = [], []
    for k in range(2):  # rank-1 updates of rank-2 factors: avg product has rank <= 2 = r
        a = torch.zeros(r, in_d)
        b = torch.zeros(out_d, r)
        a[k % r] = torch.randn(in_d, generator=g)
        b[:, k % r] = torch.randn(out_d, generator=g)
        a[1 - k % r] = 0.0
        states.append(_state(a.tolist(), b.tolist(), extra=float(k)))
        prods.append(b.double() @ a.double())
    # the two clients use different columns/rows, so the fedavg product mixes them wrongly
    w = [1, 3]
    target = (prods[0] * 1 + prods[1] * 3) / 4
    avg = fedavg(states, w)
    assert not torch.allclose(avg[KB].double() @ avg[KA].double(), target, atol=1e-3)
    prod = product_average(states, w)
    assert torch.allclose(prod[KB].double() @ prod[KA].double(), target, atol=1e-5)
    assert prod[KA].shape == (r, in_d) and prod[KB].shape == (out_d, r)
    assert prod["blocks.0.other"].item() == pytest.approx(0.75)  # non-factor tensors: fedavg


def test_product_is_best_rank_r_approximation_otherwise():
    g = torch.Generator().manual_seed(1)
    out_d, in_d, r = 7, 5, 2
    states = [_state(torch.randn(r, in_d, generator=g).tolist(), torch.randn(out_d, r, generator=g).tolist())
              for _ in range(3)]
    w = [2, 1, 5]
    m = sum(wk * (s[KB].double() @ s[KA].double()) for s, wk in zip(states, w)) / sum(w)
    u, sv, vt = np.linalg.svd(m.numpy(), full_matrices=False)
    assert sv[r] > 1e-3  # really above rank r
    best = (u[:, :r] * sv[:r]) @ vt[:r]
    prod = product_average(states, w)
    got = (prod[KB].double() @ prod[KA].double()).numpy()
    np.testing.assert_allclose(got, best, atol=1e-5)
    # balanced factors: B' = U √S, A' = √S Vᵀ
    np.testing.assert_allclose(np.linalg.norm(prod[KB].numpy(), axis=0), np.sqrt(sv[:r]), rtol=1e-5)


def test_federated_server_product_aggregation():
    a1, b1 = [[1.0, 0.0, 0.0]], [[1.0], [0.0]]
    a2, b2 = [[0.0, 1.0, 0.0]], [[0.0], [2.0]]
    fs = FederatedServer(_state([[0.0] * 3], [[0.0], [0.0]]), aggregation="product")
    fs.receive(AdapterMessage(0, _state(a1, b1), num_samples=1, precision="fp32", payload_bits=0))
    fs.receive(AdapterMessage(1, _state(a2, b2), num_samples=1, precision="fp32", payload_bits=0))
    msg = fs.aggregate()
    m = (torch.tensor(b1) @ torch.tensor(a1) + torch.tensor(b2) @ torch.tensor(a2)) / 2  # rank 2 > r = 1
    u, sv, vt = np.linalg.svd(m.numpy())
    best = sv[0] * np.outer(u[:, 0], vt[0])
    np.testing.assert_allclose((msg.state[KB] @ msg.state[KA]).numpy(), best, atol=1e-6)
    with pytest.raises(ConfigError, match="aggregation"):
        FederatedServer(_state(a1, b1), aggregation="median")


def test_system_round_product_aggregation_on_client_and_v1_server_adapters():
    s = _system(aggregation="product", learning_rate=0.05)
    batches = _batches()
    for n in range(4):
        s.iteration(n % 2, batches[n])
    clients = [{k: v.detach().clone() for k, v in c.state.items()} for c in s.clients]
    servers = [{k: v.detach().clone() for k, v in s.main_server.state_for(k).items()} for k in range(2)]
    s.finish_round()
    w = [1, 3]
    for before, after in ((clients, s.fed_server.global_state), (servers, s.main_server.global_state())):
        pairs, rest = lora_factor_pairs(before[0].keys())
        assert pairs and not rest
        for ka, kb in pairs:
            m = sum(wk * (st[kb].double() @ st[ka].double()) for st, wk in zip(before, w)) / sum(w)
            u, sv, vt = np.linalg.svd(m.numpy(), full_matrices=False)
            r = before[0][ka].shape[0]
            best = (u[:, :r] * sv[:r]) @ vt[:r]
            np.testing.assert_allclose((after[kb].double() @ after[ka].double()).numpy(), best, atol=1e-6)
    # every v1 copy equals the aggregate, and the global server state is that copy
    g = s.main_server.global_state()
    for k in range(2):
        for key, v in s.main_server.state_for(k).items():
            assert torch.equal(v.detach(), g[key])
    # training goes on from the refactored adapters
    s.iteration(0, batches[4])
