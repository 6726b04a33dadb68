"""One frozen base for all clients; clients differ only in adapters; phases interleave in any order."""

import pytest
import torch
from training_helpers import learnable_batch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.lora import LoraSpec, attach_lora, make_lora_config
from fsllm_sim.training.models import load_model
from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem


def _system(name="tiny-llama", k=2, **cfg):
    cfg = {"split": 2, "rank": 4, "learning_rate": 1e-2, **cfg}
    return SplitFedSystem(load_model(name, seed=0), SplitFedConfig(**cfg), num_clients=k,
                          num_samples=list(range(1, k + 1)))


def _base_checksum(system) -> float:
    return sum(float(p.double().sum()) for n, p in system.peft_model.named_parameters() if "lora_" not in n)


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_parameter_memory_grows_only_by_adapters(mode):
    one = _system(k=1, server_mode=mode).memory_report()
    many = _system(k=16, server_mode=mode).memory_report()
    assert many.base_param_bytes == one.base_param_bytes  # the base exists once
    per_client = one.client_adapter_bytes + (one.server_adapter_bytes if mode == "v1" else 0)
    assert many.total_param_bytes - one.total_param_bytes == 15 * per_client
    assert many.num_server_copies == (16 if mode == "v1" else 1)


def test_all_clients_run_on_the_same_module_objects():
    system = _system(k=3)
    base_ptrs = {n: p.data_ptr() for n, p in system.peft_model.named_parameters() if "lora_" not in n}
    for c in system.clients:
        assert c.part is system.client_part
    system.iteration(0, learnable_batch(torch.Generator().manual_seed(0), 2, 8))
    assert {n: p.data_ptr() for n, p in system.peft_model.named_parameters() if "lora_" not in n} == base_ptrs


def test_only_adapters_train_and_clients_differ_only_in_adapters():
    system = _system(k=3)
    trainable = [n for n, p in system.peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    before = _base_checksum(system)
    s1 = {k: v.detach().clone() for k, v in system.clients[1].state.items()}
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        system.iteration(0, learnable_batch(g, 2, 8))
    assert _base_checksum(system) == before
    assert all(torch.equal(system.clients[1].state[k], s1[k]) for k in s1)  # untouched
    assert any(not torch.equal(system.clients[0].state[k], s1[k]) for k in s1)  # trained


def test_interleaved_phases_equal_sequential_phases_in_v1():
    """v1: each client has its own server copy, so any interleaving gives exactly the sequential result."""
    g = torch.Generator().manual_seed(1)
    b0, b1 = learnable_batch(g, 2, 12), learnable_batch(g, 2, 12)
    seq = _system(k=2, server_mode="v1")
    inter = _system(k=2, server_mode="v1")
    # sequential: client 0 whole iteration, then client 1
    for k, b in ((0, b0), (1, b1)):
        c = seq.clients[k]
        grad, _ = seq.main_server.step(c.forward(b))
        c.backward(grad)
    # interleaved: fwd 0, fwd 1, server 1, server 0, bwd 1, bwd 0
    c0, c1 = inter.clients
    m0, m1 = c0.forward(b0), c1.forward(b1)
    g1, _ = inter.main_server.step(m1)
    g0, _ = inter.main_server.step(m0)
    c1.backward(g1)
    c0.backward(g0)
    for k in range(2):
        for key, p in seq.clients[k].state.items():
            assert torch.equal(p, inter.clients[k].state[key])
        for key, p in seq.main_server.states[k].items():
            assert torch.equal(p, inter.main_server.states[k][key])


def test_v2_shared_server_adapter_follows_service_order():
    g = torch.Generator().manual_seed(2)
    b0, b1 = learnable_batch(g, 2, 12), learnable_batch(g, 2, 12)
    a, b = _system(k=2, server_mode="v2"), _system(k=2, server_mode="v2")
    assert a.main_server.states[0] is a.main_server.states[1]
    m0, m1 = a.clients[0].forward(b0), a.clients[1].forward(b1)
    a.main_server.step(m0)
    a.main_server.step(m1)
    n0, n1 = b.clients[0].forward(b0), b.clients[1].forward(b1)
    b.main_server.step(n1)
    b.main_server.step(n0)
    diff = max((a.main_server.states[0][k] - b.main_server.states[0][k]).abs().max().item()
               for k in a.main_server.states[0])
    assert diff > 0  # order matters for the shared adapter


def test_protocol_misuse_raises():
    system = _system(k=2)
    c0 = system.clients[0]
    batch = learnable_batch(torch.Generator().manual_seed(0), 1, 8)
    with pytest.raises(RuntimeError, match="without a pending"):
        grad, _ = system.main_server.step(system.clients[1].forward(batch))
        c0.backward(grad)
    m = c0.forward(batch)
    with pytest.raises(RuntimeError, match="awaits its gradient"):
        c0.forward(batch)
    with pytest.raises(RuntimeError, match="in flight"):
        c0.adapter_upload()
    grad0, _ = system.main_server.step(m)
    c0.backward(grad0)
    with pytest.raises(ConfigError, match="client_id"):
        m.client_id = 7
        system.main_server.step(m)


def test_lora_config_per_family_and_alpha_default():
    cfg = make_lora_config("llama", LoraSpec(rank=4))
    assert cfg.r == 4 and cfg.lora_alpha == 8 and set(cfg.target_modules) == {"q_proj", "v_proj"}
    cfg = make_lora_config("gpt2", LoraSpec(rank=2, alpha=3.0, dropout=0.1))
    assert set(cfg.target_modules) == {"c_attn"} and cfg.fan_in_fan_out and cfg.lora_alpha == 3.0
    lm = load_model("tiny-llama")
    peft_model = attach_lora(lm.model, "llama", LoraSpec(rank=4))
    layer = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == 2.0  # α / r = 2r / r
    with pytest.raises(ConfigError, match="already carries LoRA"):
        attach_lora(lm.model, "llama", LoraSpec(rank=4))


@pytest.mark.parametrize("spec, match", [
    (LoraSpec(rank=0), "rank=0"),
    (LoraSpec(rank=2, target_modules=("c_attn",)), "target_modules"),
    (LoraSpec(rank=2, dropout=1.0), "lora_dropout"),
    (LoraSpec(rank=2, alpha=-1), "lora_alpha"),
])
def test_bad_lora_spec_is_one_line_config_error(spec, match):
    with pytest.raises(ConfigError, match=match) as exc:
        spec.validate("llama")
    assert "\n" not in str(exc.value)


def test_lora_dropout_is_active_in_training_only():
    system = _system(k=1, lora_dropout=0.5)
    batch = learnable_batch(torch.Generator().manual_seed(0), 2, 8)
    # evaluation is deterministic (dropout off)
    e1 = system.evaluate(batch)
    e2 = system.evaluate(batch)
    assert e1.loss == e2.loss
    assert all(not m.training for n, m in system.peft_model.named_modules() if "lora_dropout" in n)


@pytest.mark.parametrize("kwargs, match", [
    ({"server_mode": "v3"}, "server_mode"),
    ({"optimizer": "adam"}, "optimizer"),
    ({"learning_rate": 0}, "learning_rate="),
    ({"activation_precision": "fp8"}, "activation_precision"),
])
def test_system_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        _system(k=1, **kwargs)


def test_sgd_and_adamw_both_update():
    for opt in ("sgd", "adamw"):
        system = _system(k=1, optimizer=opt, learning_rate=0.1)
        before = {k: v.detach().clone() for k, v in system.clients[0].state.items()}
        system.iteration(0, learnable_batch(torch.Generator().manual_seed(0), 2, 8))
        assert any(not torch.equal(before[k], system.clients[0].state[k]) for k in before)


def test_alpha_per_rank_scales_with_the_rank():
    system = _system(k=1, rank=4, lora_alpha_per_rank=3.0)
    layer = system.peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == 3.0 and system.lora.resolved_alpha() == 12.0
    with pytest.raises(ConfigError, match="lora_alpha_per_rank"):
        _system(k=1, lora_alpha_per_rank=0)


def test_preallocated_adamw_state_is_identical_to_lazy_state():
    from fsllm_sim.training.optim import OptimizerSpec

    g = torch.Generator().manual_seed(0)
    init = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    grads = [[torch.randn(t.shape, generator=g) for t in init] for _ in range(3)]
    spec = OptimizerSpec("adamw", lr=0.1, weight_decay=0.01)
    results = []
    for pre in (True, False):
        params = [torch.nn.Parameter(t.clone()) for t in init]
        opt = spec.build(params, preallocate=pre)
        assert (len(opt.state) == 2) is pre
        for step in grads:
            for p, gr in zip(params, step):
                p.grad = gr.clone()
            opt.step()
        results.append((params, opt))
    (pa, oa), (pb, ob) = results
    assert all(torch.equal(a, b) for a, b in zip(pa, pb))
    for a, b in zip(pa, pb):
        sa, sb = oa.state[a], ob.state[b]
        assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa)


def test_memory_report_counts_optimizer_state():
    rep = _system(k=3, server_mode="v1").memory_report()
    # AdamW: two moments per adapter tensor (+ a 4-byte step counter per tensor)
    n_tensors = 4 * 4  # 4 blocks × (q, v) × (A, B)
    assert rep.optimizer_state_bytes == 3 * (2 * (rep.client_adapter_bytes + rep.server_adapter_bytes) + 4 * n_tensors)
