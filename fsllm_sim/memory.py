"""Client-side training memory (spec section 3, optional constraint M_k), as an explicit estimate.

    memory = frozen weights (embedding + ℓ blocks) + adapters × (weights + gradients + 2 AdamW moments)
             + activations kept for backward over ℓ blocks

The activation term counts the tensors autograd keeps per block for a Llama block (inputs of the norms,
q/k/v/o, gate/up/down projections, the SiLU product) or a GPT-2 block: about 10·d + 3·d_ff values per token
for Llama and 10·d + 2·d_ff for GPT-2; attention itself keeps O(L) with SDPA kernels. It is an estimate
(allocator slack and temporaries are not modelled), used to exclude splits that clearly do not fit.

Without a split (``protocol: fl``) the device trains the whole model, so it also holds the final norm's input
and the LM head's logits for the loss's backward (:func:`unsplit_memory_bytes`); a device that cannot hold it
does not take part (:func:`fl_participants`).
"""
from __future__ import annotations

import numpy as np

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


LOGIT_BYTES = 4  # logits and their softmax are kept in float32 for the cross-entropy's backward


def unsplit_memory_bytes(dims: TransformerDims, rank: int, batch_size: int, seq_len: int, targets=None,
                         dtype: str = "float32", tied_head: bool = True) -> int:
    """Estimated peak memory of a device training the whole model (``protocol: fl``) at LoRA rank ``rank``.

    = :func:`client_memory_bytes` at split J (embedding, all J blocks, their adapters and activations)
    + the final norm's input (b L d values) + the logits and their softmax (2 b L V float32 values) kept for
    the loss's backward + the LM head's weights when they are not tied to the embedding (V d).
    """
    pbytes = BYTES_PER_PARAM[dtype]
    tokens = batch_size * seq_len
    head_weights = 0 if tied_head else dims.vocab_size * dims.d_model * pbytes
    head_activations = tokens * dims.d_model * pbytes + 2 * tokens * dims.vocab_size * LOGIT_BYTES
    return int(client_memory_bytes(dims, dims.n_blocks, rank, batch_size, seq_len, targets, dtype)
               + head_weights + head_activations)


def fl_participants(memory_limit_bytes, needed_bytes: float) -> np.ndarray:
    """Indices of the devices whose memory holds the whole model (``needed_bytes``), in client order."""
    return np.flatnonzero(np.asarray(memory_limit_bytes, dtype=float) >= float(needed_bytes))


def fl_exclusion_line(memory_limit_bytes, needed_bytes: float) -> str:
    """One line naming the devices ``protocol: fl`` leaves out for lack of memory ('' when none is)."""
    limits = np.asarray(memory_limit_bytes, dtype=float)
    out = np.flatnonzero(limits < float(needed_bytes))
    if out.size == 0:
        return ""
    names = ", ".join(str(int(k)) for k in out)
    return (f"protocol fl: {out.size} of {limits.size} clients cannot hold the whole model ({needed_bytes / 2**30:.3g} "
            f"GiB at the smallest rank, devices.memory_bytes) and take no part: client(s) {names}")
