"""The split model is the unsplit peft model: same loss, same LoRA gradients (≤ 1e-6, fp32), both families."""

import pytest
import torch
from training_helpers import padded_random_batch

from fsllm_sim.errors import ConfigError, DataError
from fsllm_sim.training.lora import LoraSpec, attach_lora, peft_name_to_key, split_state_keys
from fsllm_sim.training.models import load_model
from fsllm_sim.training.split import ClientPart, ServerPart, split_model
from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem

TOL = 1e-6


def _randomise_lora(peft_model, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _reference(peft_model, batch):
    """Loss and LoRA gradients (global keys) of the unsplit peft model."""
    peft_model.zero_grad(set_to_none=True)
    out = peft_model(**batch)
    out.loss.backward()
    grads = {peft_name_to_key(n): p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}
    peft_model.zero_grad(set_to_none=True)
    return out.loss.detach(), grads


BATCHES = {
    "full": dict(seed=1, batch_size=3, seq_len=24, lengths=[24, 24, 24]),
    "right_padded": dict(seed=2, batch_size=3, seq_len=24, lengths=[24, 13, 5]),
    "left_padded": dict(seed=4, batch_size=2, seq_len=20, lengths=[20, 9], left=True),
}


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("batch_kind", list(BATCHES))
def test_split_views_match_unsplit_model(name, batch_kind):
    lm = load_model(name, seed=0)
    peft_model = attach_lora(lm.model, lm.family, LoraSpec(rank=4), seed=0)
    _randomise_lora(peft_model)
    batch = padded_random_batch(**BATCHES[batch_kind])
    ref_loss, ref_grads = _reference(peft_model, batch)
    for split in range(1, lm.num_blocks):
        client, server = split_model(peft_model, split)
        hidden = client(batch["input_ids"], batch["attention_mask"])
        x = hidden.detach().requires_grad_(True)  # only the activations cross the wire
        loss = server(x, batch["attention_mask"], batch["labels"])
        loss.backward()
        hidden.backward(x.grad)
        assert abs(loss.item() - ref_loss.item()) <= TOL
        grads = {peft_name_to_key(n): p.grad for n, p in peft_model.named_parameters() if p.requires_grad}
        assert set(grads) == set(ref_grads)
        for k, g in grads.items():
            assert (g - ref_grads[k]).abs().max().item() <= TOL, (split, k)
        peft_model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("split", [1, 2, 3])
def test_system_phases_match_unsplit_model(name, split):
    """Through the real phase calls (adapter swapping, messages at fp32 wire) the gradients are the unsplit ones."""
    lm = load_model(name, seed=0)
    cfg = SplitFedConfig(split=split, rank=2, activation_precision="fp32", optimizer="sgd", learning_rate=1.0)
    system = SplitFedSystem(lm, cfg, num_clients=2)
    # give client 1 and its server copy random adapters, and mirror them into the peft model's own slots
    g = torch.Generator().manual_seed(7)
    client = system.clients[1]
    server_state = system.main_server.states[1]
    with torch.no_grad():
        for state in (client.state, server_state):
            for p in state.values():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    full = {**{k: v.detach().clone() for k, v in client.state.items()},
            **{k: v.detach().clone() for k, v in server_state.items()}}
    peft = system.peft_model
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if p.requires_grad:
                p.copy_(full[peft_name_to_key(n)])
    batch = padded_random_batch(seed=5, batch_size=2, seq_len=16, lengths=[16, 7])
    ref_loss, ref_grads = _reference(peft, batch)

    # SGD with lr=1 -> update = -grad: read the gradients off the parameter change
    msg = client.forward(batch)
    grad_msg, loss = system.main_server.step(msg)
    client.backward(grad_msg)
    assert abs(loss - ref_loss.item()) <= TOL
    for k, p in {**client.state, **server_state}.items():
        got = full[k] - p.detach()
        assert (got - ref_grads[k]).abs().max().item() <= TOL, k
    client_keys, server_keys = split_state_keys(ref_grads, split)
    assert set(client.state) == set(client_keys) and set(server_state) == set(server_keys)


@pytest.mark.parametrize("bad", [0, 4, -1, 1.5, True, "2"])
def test_split_out_of_range_is_a_config_error(bad):
    lm = load_model("tiny-llama")
    with pytest.raises(ConfigError, match=r"split=.*allowed: an integer in 1\.\.3"):
        ClientPart(lm.model, bad)
    with pytest.raises(ConfigError):
        ServerPart(lm.model, bad)


def test_client_and_server_hold_disjoint_blocks_and_share_the_base():
    lm = load_model("tiny-llama")
    client, server = split_model(lm.model, 1)
    assert len(client.blocks) == 1 and len(server.blocks) == 3
    assert client.blocks[0] is lm.model.model.layers[0]
    assert server.blocks[0] is lm.model.model.layers[1]
    # tied head: the server's LM head is the (frozen) embedding matrix, not a trained copy
    assert server.lm_head.weight.data_ptr() == client.embed_tokens.weight.data_ptr()
    assert not server.lm_head.weight.requires_grad


def test_gpt2_split_includes_position_embedding_on_the_client():
    lm = load_model("tiny-gpt2")
    client, server = split_model(lm.model, 2)
    assert client.wpe is lm.model.transformer.wpe and client.wte is lm.model.transformer.wte
    assert server.norm is lm.model.transformer.ln_f


def test_batch_errors_are_data_errors():
    lm = load_model("tiny-llama")
    system = SplitFedSystem(lm, SplitFedConfig(split=2, rank=2), num_clients=1)
    with pytest.raises(DataError, match="vocabulary"):
        system.clients[0].forward({"input_ids": torch.full((1, 8), 600)})
    with pytest.raises(DataError, match="max_position_embeddings"):
        system.clients[0].forward({"input_ids": torch.zeros((1, 2000), dtype=torch.long)})
    with pytest.raises(DataError, match="LongTensor"):
        system.clients[0].forward({"input_ids": torch.zeros((1, 8))})
