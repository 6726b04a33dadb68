"""protocol fl with real training: FedAvg over whole-model adapters equals independent peft models averaged by
hand."""
import copy

import pytest
import torch
from training_helpers import make_fake_data

from fsllm_sim.training.federated_lora import FederatedLoraSystem
from fsllm_sim.training.lora import LoraSpec, attach_lora, peft_name_to_key
from fsllm_sim.training.models import load_model
from fsllm_sim.training.optim import OptimizerSpec
from fsllm_sim.training.system import SplitFedConfig


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_fedavg_of_whole_model_adapters_equals_peft_models_averaged_by_hand(name):
    K, E, rounds, b = 3, 2, 2, 4
    data = make_fake_data(K, 16, num_samples=[10, 30, 20])
    cfg = SplitFedConfig(rank=4, learning_rate=5e-2, seed=0)
    system = FederatedLoraSystem(load_model(name, seed=0), cfg, data=data, batch_size=b)
    # the reference: K independent peft models of the same base and initial LoRA, AdamW each, FedAvg by hand
    lm = load_model(name, seed=0)
    ref = attach_lora(lm.model, lm.family, cfg.lora_spec(), seed=0)
    models = [copy.deepcopy(ref) for _ in range(K)]
    spec = OptimizerSpec("adamw", lr=cfg.learning_rate)
    opts = [spec.build(p for p in m.parameters() if p.requires_grad) for m in models]
    batches = [c.batches(b) for c in make_fake_data(K, 16, num_samples=[10, 30, 20]).clients]
    weights = torch.tensor([10.0, 30.0, 20.0], dtype=torch.float64) / 60.0
    for _ in range(rounds):
        for k in range(K):
            for e in range(E):
                batch = next(batches[k])
                loss_ref = models[k](**batch).loss
                loss_ref.backward()
                spec.step(opts[k], e)
                opts[k].zero_grad(set_to_none=True)
                loss_sys = system.clients[k].forward()
                system.clients[k].backward()
                assert loss_sys == pytest.approx(float(loss_ref.detach()), abs=1e-6)
        system.finish_round()
        with torch.no_grad():  # FedAvg by hand, then every model starts the next round from it
            named = [dict(m.named_parameters()) for m in models]
            for n in named[0]:
                if "lora_" in n:
                    avg = sum(w * nk[n].double() for w, nk in zip(weights, named)).float()
                    for nk in named:
                        nk[n].copy_(avg)
    global_state = system.global_state()
    seen = 0
    for n, p in models[0].named_parameters():
        if "lora_" in n:
            assert (global_state[peft_name_to_key(n)] - p).abs().max().item() <= 1e-6, n
            seen += 1
    targets = cfg.lora_spec().validate(lm.family).resolved_targets(lm.family)
    assert seen == len(global_state) == 2 * len(targets) * lm.num_blocks  # A and B of each target, every block
    assert system.adapter_bits() == 32 * sum(v.numel() for v in global_state.values())
