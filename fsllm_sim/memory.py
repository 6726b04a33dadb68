"""Client-side training memory (spec section 3, optional constraint M_k), as an explicit estimate.

    memory = frozen weights (embedding + ℓ blocks) + adapters × (weights + gradients + 2 AdamW moments)
             + activations kept for backward over ℓ blocks

The activation term counts the tensors autograd keeps per block for a Llama block (inputs of the norms,
q/k/v/o, gate/up/down projections, the SiLU product) or a GPT-2 block: about 10·d + 3·d_ff values per token
for Llama and 10·d + 2·d_ff for GPT-2; attention itself keeps O(L) with SDPA kernels. It is an estimate
(allocator slack and temporaries are not modelled), used to exclude splits that clearly do not fit.
"""
from __future__ import annotations

from .flops import TransformerDims, lora_params_per_block

BYTES_PER_PARAM = {"float32": 4, "bfloat16": 2}
ACTIVATION_VALUES_PER_TOKEN = {"llama": (10, 3), "gpt2": (10, 2)}  # (× d, × d_ff)


def block_parameters(dims: TransformerDims) -> int:
    """Weights of one block: its linears (norm gains and biases are negligible and not counted)."""
    return sum(d_in * d_out for _, d_in, d_out in dims.linears())


def client_memory_bytes(dims: TransformerDims, split: int, rank: int, batch_size: int, seq_len: int,
                        targets=None, dtype: str = "float32") -> int:
    """Estimated peak memory of a client training blocks 1..split at LoRA rank ``rank``."""
    pbytes = BYTES_PER_PARAM[dtype]
    frozen = (dims.vocab_size * dims.d_model + split * block_parameters(dims)) * pbytes
    adapters = split * lora_params_per_block(dims, rank, targets) * 4 * 4  # fp32 weights, grads, 2 moments
    per_d, per_ff = ACTIVATION_VALUES_PER_TOKEN[dims.family]
    activations = split * batch_size * seq_len * (per_d * dims.d_model + per_ff * dims.d_ff) * pbytes
    return int(frozen + adapters + activations)
