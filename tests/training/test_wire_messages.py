"""Wire precision: real casting, payload bits from the real tensors, and the messages that carry them."""

import pytest
import torch
from training_helpers import learnable_batch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.models import load_model
from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem
from fsllm_sim.training.wire import (
    FP16_MAX,
    INT8_SCALE_BITS,
    bits_per_element,
    payload_bits,
    side_bits_per_token,
    state_bits,
    tensor_bits,
    wire_cast,
)


def test_bits_per_element_and_payload():
    assert [bits_per_element(p) for p in ("fp32", "fp16", "bf16", "int8", "int8-tensor")] == [32, 16, 16, 8, 8]
    assert payload_bits(100, "fp16") == 1600
    assert payload_bits(100, "int8-tensor") == 800 + INT8_SCALE_BITS
    assert payload_bits(100, "int8-tensor", num_tensors=3) == 800 + 3 * 32
    assert payload_bits(100, "int8", channels=10) > 800 + 10 * 16  # per-channel scales (see test_wire_int8)
    with pytest.raises(ConfigError, match="allowed: fp32, fp16, bf16, int8, int8-tensor"):
        bits_per_element("fp8")


def test_casts_really_change_the_values():
    x = torch.randn(64, 32) * 3
    assert torch.equal(wire_cast(x, "fp32"), x)
    assert torch.equal(wire_cast(x, "fp16"), x.half().float())
    assert torch.equal(wire_cast(x, "bf16"), x.bfloat16().float())
    assert not torch.equal(wire_cast(x, "fp16"), x)
    q = wire_cast(x, "int8-tensor")
    scale = x.abs().max() / 127
    assert (q - x).abs().max() <= scale / 2 + 1e-6
    assert len(torch.unique(q)) <= 255
    q = wire_cast(x, "int8")  # per channel: finer than per tensor
    assert ((q - x).abs() <= (x.abs().amax(0) / 127) * 0.51 + 1e-6).all()
    assert not torch.equal(q, x)
    assert wire_cast(x, "fp16").dtype == torch.float32 and not wire_cast(x.requires_grad_(), "fp16").requires_grad


def test_fp16_saturates_and_int8_handles_zero():
    x = torch.tensor([1e6, -1e6, 1.0])
    assert wire_cast(x, "fp16").tolist() == [FP16_MAX, -FP16_MAX, 1.0]
    assert torch.equal(wire_cast(torch.zeros(5), "int8"), torch.zeros(5))
    assert torch.equal(wire_cast(torch.zeros(5), "int8-tensor"), torch.zeros(5))
    assert torch.equal(wire_cast(torch.zeros(3, 4), "int8"), torch.zeros(3, 4))


def test_side_bits_per_token():
    assert side_bits_per_token(49152) == 16 + 1  # ceil(log2(49153)) + mask bit
    assert side_bits_per_token(512) == 10 + 1
    assert side_bits_per_token(511) == 9 + 1


@pytest.mark.parametrize("q_a, q_c", [("fp32", "fp32"), ("fp16", "fp32"), ("bf16", "fp16"), ("int8", "int8"),
                                       ("int8-tensor", "int8-tensor")])
def test_messages_carry_real_sizes_and_cast_tensors(q_a, q_c):
    lm = load_model("tiny-llama")
    system = SplitFedSystem(lm, SplitFedConfig(split=2, rank=4, activation_precision=q_a, adapter_precision=q_c),
                            num_clients=2)
    b, L, d = 3, 10, lm.hidden_size
    batch = learnable_batch(torch.Generator().manual_seed(0), b, L)
    client = system.clients[0]
    msg = client.forward(batch)
    hidden = client._pending[1]
    if q_a == "int8":  # the real bits depend on the outliers; the analytic S_a assumes a count
        assert msg.payload_bits == tensor_bits(hidden, q_a)
    else:
        assert msg.payload_bits == payload_bits(b * L * d, q_a) == system.activation_bits(b, L)
    assert msg.side_bits == b * L * side_bits_per_token(lm.vocab_size)
    assert torch.equal(msg.activations, wire_cast(hidden, q_a))  # the MS sees the cast values
    grad, loss = system.main_server.step(msg)
    assert grad.payload_bits == tensor_bits(grad.gradient, q_a)
    if q_a != "int8":
        assert grad.payload_bits == msg.payload_bits  # S_g = S_a
    assert grad.seq == msg.seq and grad.loss == loss
    assert torch.equal(grad.gradient, wire_cast(grad.gradient, q_a))  # idempotent: already on the grid
    client.backward(grad)
    up = client.adapter_upload()
    n_tensors = len(up.state)
    numel = sum(v.numel() for v in up.state.values())
    assert up.payload_bits == state_bits(up.state, q_c) == system.adapter_bits()
    if q_c != "int8":
        assert up.payload_bits == payload_bits(numel, q_c, n_tensors)
    # client adapter: 2 blocks × (q: 4·(64+64), v: 4·(64+32)) parameters
    assert numel == 2 * (4 * (64 + 64) + 4 * (64 + 32))
    for k, v in up.state.items():
        assert torch.equal(v, wire_cast(client.state[k], q_c))


def test_int8_activations_change_training_compared_with_fp32():
    def run(q):
        system = SplitFedSystem(load_model("tiny-llama"), SplitFedConfig(split=2, rank=4, activation_precision=q,
                                                                          learning_rate=1e-2), num_clients=1)
        g = torch.Generator().manual_seed(0)
        losses = [system.iteration(0, learnable_batch(g, 2, 12)) for _ in range(3)]
        return losses, system.global_server_state()

    l32, s32 = run("fp32")
    l8, s8 = run("int8")
    assert l32 != l8
    assert any(not torch.equal(s32[k], s8[k]) for k in s32)


def test_broadcast_bits_match_state_bits():
    system = SplitFedSystem(load_model("tiny-gpt2"), SplitFedConfig(split=1, rank=2, adapter_precision="bf16"),
                            num_clients=2)
    msg = system.finish_round()
    assert msg.payload_bits == state_bits(msg.state, "bf16") == system.adapter_bits()
    assert msg.contributors == [0, 1]
