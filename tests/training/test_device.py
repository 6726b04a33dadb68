"""Real training on a chosen device and compute dtype (``training.device``, ``training.dtype``).

On this CPU-only machine the CUDA cases report themselves as skipped with the command that runs them
(``scripts/gpu_check.sh`` on a CUDA host); every CPU case runs.
"""
import pytest
import torch
from training_helpers import make_fake_data, padded_random_batch

from fsllm_sim.config import scenario_from_dict
from fsllm_sim.errors import ConfigError
from fsllm_sim.training.device import resolve_compute
from fsllm_sim.training.federated_training import TrainingConfig, run_federated_training
from fsllm_sim.training.lora import LoraSpec, attach_lora, peft_name_to_key
from fsllm_sim.training.models import load_model
from fsllm_sim.training.split import split_model

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA device here; scripts/gpu_check.sh runs these on a CUDA machine"
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA))]
# split = unsplit to the compute dtype's unit roundoff (bf16 2^-7, fp16 2^-10), relative to the largest gradient:
# both sides run the same ops under the same autocast (on this CPU they agree bit for bit at every dtype)
TOL = {"float32": 1e-6, "bfloat16": 2.0 ** -7, "float16": 2.0 ** -10}


def _cfg(**kw):
    base = dict(model="tiny-llama", num_clients=2, batch_size=4, seq_len=16, local_iterations=3, split=2,
                learning_rate=2e-2, eval_batch_size=8, rounds=3, rank=4)
    return TrainingConfig(**{**base, **kw})


# Produced by the training code before the device option existed (commit 3e460e6), on the development machine.
# Their last bits depend on the CPU's SIMD kernels (CI's machine and an AMD EPYC give other bits than the Xeon that
# recorded them, at most 1.5e-6 nats away over these three rounds), so the pin holds to GOLDEN_TOL across machines;
# two runs on one machine agree bit for bit.
GOLDEN = {
    "fp16": (["0x1.8fb72aaaaaaabp+2", "0x1.8e48dbbbbbbbcp+2", "0x1.8b44377777777p+2", "0x1.8a30622222222p+2"],
             ["0x1.8fc1545555555p+2", "0x1.8d26ee5555555p+2", "0x1.8c279a0000000p+2"]),
    "int8": (["0x1.8fb72aaaaaaabp+2", "0x1.8e5b19999999ap+2", "0x1.8b61955555555p+2", "0x1.8a47d55555555p+2"],
             ["0x1.8fc229aaaaaabp+2", "0x1.8d282d0000000p+2", "0x1.8c0cf30000000p+2"]),
}
GOLDEN_TOL = 1e-5  # nats: a change to the training path moves these losses by 1e-3 or more


def assert_losses_of_before(result, precision):
    """``result``'s validation and training losses are the pinned ones of before, to GOLDEN_TOL."""
    for got, pinned in ((result.val_losses, GOLDEN[precision][0]), (result.train_losses, GOLDEN[precision][1])):
        want = [float.fromhex(h) for h in pinned]
        assert len(got) == len(want)
        assert max(abs(float(a) - b) for a, b in zip(got, want)) <= GOLDEN_TOL, (list(map(float, got)), want)


@pytest.mark.parametrize("precision", sorted(GOLDEN))
def test_explicit_cpu_float32_is_the_default_bit_for_bit_and_the_losses_of_before(precision):
    default, explicit = (run_federated_training(cfg, data=make_fake_data(2, 16), progress=False) for cfg in (
        _cfg(activation_precision=precision), _cfg(activation_precision=precision, device="cpu", dtype="float32")))
    assert [float(x).hex() for x in explicit.val_losses] == [float(x).hex() for x in default.val_losses]
    assert [float(x).hex() for x in explicit.train_losses] == [float(x).hex() for x in default.train_losses]
    assert_losses_of_before(default, precision)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_lower_precision_training_stays_near_float32(device, dtype):
    ref = run_federated_training(_cfg(device=device), data=make_fake_data(2, 16), progress=False)
    low = run_federated_training(_cfg(device=device, dtype=dtype), data=make_fake_data(2, 16), progress=False)
    diff = max(abs(a - b) for a, b in zip(ref.val_losses + ref.train_losses, low.val_losses + low.train_losses))
    assert diff <= 5e-3, diff  # stated tolerance: 5e-3 nats over 3 rounds of 3 local steps
    assert low.val_losses[-1] < low.val_losses[0]  # it trains


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", sorted(TOL))
@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_split_matches_unsplit_on_each_device_and_dtype(device, dtype, name):
    compute = resolve_compute(device, dtype)
    lm = load_model(name, seed=0)
    lm.model.to(compute.device)
    peft_model = attach_lora(lm.model, lm.family, LoraSpec(rank=4), seed=0)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_" in n:
                p.copy_((torch.randn(p.shape, generator=g) * 0.2).to(p.device))
    batch = padded_random_batch(seed=2, batch_size=3, seq_len=24, lengths=[24, 13, 5])
    with compute.autocast():
        ref_loss = peft_model(**{k: v.to(compute.device) for k, v in batch.items()}).loss.float()
    ref_loss.backward()
    ref = {peft_name_to_key(n): p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}
    peft_model.zero_grad(set_to_none=True)
    client, server = split_model(peft_model, 2, compute)
    hidden = client(batch["input_ids"], batch["attention_mask"])
    assert hidden.device.type == compute.device.type
    x = hidden.detach().requires_grad_(True)  # only the activations cross the wire
    loss = server(x, batch["attention_mask"], batch["labels"])
    loss.backward()
    hidden.backward(x.grad)
    tol = TOL[dtype]
    assert abs(loss.item() - ref_loss.item()) <= tol * max(1.0, abs(ref_loss.item()))
    for n, p in peft_model.named_parameters():
        if p.requires_grad:
            want = ref[peft_name_to_key(n)]
            err = (p.grad - want).abs().max().item()
            assert err <= tol * max(1.0, want.abs().max().item()), (n, err)


def test_an_absent_or_unknown_device_is_one_line():
    if not HAS_CUDA:
        with pytest.raises(ConfigError, match=r"training\.device='cuda': this host has no CUDA device.*allowed here: "
                                              r"auto, cpu"):
            _cfg(device="cuda").validate()
    with pytest.raises(ConfigError, match=r"training\.device='tpu' is invalid; allowed: auto, cpu, cuda"):
        _cfg(device="tpu").validate()
    with pytest.raises(ConfigError, match=r"training\.dtype='fp8' is invalid; allowed: float32, bfloat16, float16"):
        _cfg(dtype="fp8").validate()
    assert resolve_compute("auto").device.type == ("cuda" if HAS_CUDA else "cpu")
    with pytest.raises(ConfigError, match=r"training\.device.*allowed: auto, cpu, cuda, cuda:N"):
        scenario_from_dict({"training": {"device": "gpu0"}})
    with pytest.raises(ConfigError, match=r"training\.dtype"):
        scenario_from_dict({"training": {"dtype": "half"}})
    # a scenario may name cuda on a host without one: it fails only where real training would start
    assert scenario_from_dict({"training": {"device": "cuda"}}).training.device == "cuda"
