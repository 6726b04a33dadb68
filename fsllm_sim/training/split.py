"""Split a causal LM at block ℓ into a client part and a main-server part (Llama and GPT-2 families).

Client part (device k)                      Main-server part (MS)
--------------------------------------      -----------------------------------------------------------
token embedding (GPT-2: + position emb.)    blocks ℓ+1..J
blocks 1..ℓ                                 final norm (Llama RMSNorm / GPT-2 ln_f)
                                            LM head and the loss (shifted causal-LM cross-entropy,
                                            positions labelled -100 ignored)

What crosses the wire per iteration (see :mod:`fsllm_sim.training.messages`):

* uplink: the activations A (b×L×d) after block ℓ, at the activation wire precision (S_a = b·L·d·q_a bits);
  alongside them the attention mask (b×L, one bit per token) and the labels (b×L token ids), because the loss
  lives on the MS (spec §1). These side bits are counted separately (``side_bits``): for SmolLM2 they are
  17 bits per token against 576·16 for the activations (0.2 %). Note that causal-LM labels are the input
  tokens shifted by one, so this configuration does not hide the text from the MS (a property of the spec's
  split, not of this code).
* downlink: ∂loss/∂A (b×L×d), S_g = S_a.

Nothing else crosses: position ids, the 4-D causal+padding mask and the rotary embeddings (Llama) are
*recomputed* on each side from the shape and the 2-D attention mask, exactly as the unsplit transformers model
computes them (position ids = 0..L-1, as ``LlamaModel``/``GPT2Model`` use when no ``position_ids`` are given;
causal mask from :func:`transformers.masking_utils.create_causal_mask`). Right padding (what the data package
produces) and left padding both reproduce the unsplit model exactly.

Tied LM head: SmolLM2 and GPT-2 tie the LM head to the token embedding. In the protocol both parties hold the
matrix: the client for the embedding, the MS for the head, as a *frozen copy*. LoRA never targets it and the
base is frozen, so the two copies are equal forever; inside this one process the server part therefore refers
to the same frozen tensor instead of duplicating 113 MB (for SmolLM2) — observationally identical.

Both parts are thin views over the *one* frozen base model: they hold references to its modules, never copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fsllm_sim.errors import ConfigError, DataError
from fsllm_sim.training.device import CPU_FLOAT32, Compute
from fsllm_sim.training.models import family_of

IGNORE_INDEX = -100


def unwrap_causal_lm(model: nn.Module) -> nn.Module:
    """The transformers ``*ForCausalLM`` inside a peft wrapper (or the model itself)."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTuner

    inner = model
    if isinstance(inner, PeftModel):  # PeftModel -> LoraModel -> transformers model
        inner = inner.base_model
    if isinstance(inner, BaseTuner):
        inner = inner.model
    if "lm_head" in inner._modules and hasattr(inner, "config"):
        return inner
    raise ConfigError(f"model of type {type(model).__name__} is not a causal LM with an lm_head")


def decoder_blocks(hf_model: nn.Module) -> nn.ModuleList:
    fam = family_of(hf_model)
    return hf_model.model.layers if fam == "llama" else hf_model.transformer.h


def num_blocks(model: nn.Module) -> int:
    return len(decoder_blocks(unwrap_causal_lm(model)))


def check_split(split, n_blocks: int, model_name: str = "model") -> int:
    """ℓ must be an integer in 1..J-1 (both sides hold at least one block)."""
    if isinstance(split, bool) or not isinstance(split, int) or not 1 <= split <= n_blocks - 1:
        raise ConfigError(f"split={split!r} is out of range for {model_name} with J={n_blocks} blocks; "
                          f"allowed: an integer in 1..{n_blocks - 1}")
    return split


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Shifted causal-LM cross-entropy, mean over labelled positions (same as transformers' ForCausalLMLoss)."""
    logits = logits.float()
    labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].contiguous()
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1).to(logits.device),
                           ignore_index=IGNORE_INDEX)


def causal_lm_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Sum of the shifted cross-entropy and the number of labelled positions (for token-weighted means)."""
    logits = logits.float()
    labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].contiguous()
    total = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1).to(logits.device),
                            ignore_index=IGNORE_INDEX, reduction="sum")
    return total, int((labels != IGNORE_INDEX).sum())


# --------------------------------------------------------------------------------------------- block calls


@dataclass
class BlockInputs:
    """What every block of one side needs besides the hidden states, recomputed locally on that side."""

    mask: torch.Tensor | None  # 4-D causal+padding mask from create_causal_mask (None: plain causal)
    position_ids: torch.Tensor  # 1×L
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None  # Llama rotary (cos, sin); GPT-2: None


def prepare_block_inputs(family: str, config, hidden: torch.Tensor, attention_mask: torch.Tensor | None,
                         rotary_emb: nn.Module | None) -> BlockInputs:
    from transformers.masking_utils import create_causal_mask

    seq_len = hidden.shape[1]
    position_ids = torch.arange(seq_len, device=hidden.device).unsqueeze(0)
    if attention_mask is not None and attention_mask.ndim < 4:
        attention_mask = attention_mask.view(hidden.shape[0], -1)
    mask = create_causal_mask(config=config, inputs_embeds=hidden, attention_mask=attention_mask, cache=None,
                              position_ids=position_ids)
    pos_emb = rotary_emb(hidden, position_ids=position_ids) if family == "llama" else None
    return BlockInputs(mask=mask, position_ids=position_ids, position_embeddings=pos_emb)


def run_block(family: str, block: nn.Module, hidden: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
    if family == "llama":
        out = block(hidden, attention_mask=inputs.mask, position_ids=inputs.position_ids,
                    position_embeddings=inputs.position_embeddings)
    else:
        out = block(hidden, attention_mask=inputs.mask, position_ids=inputs.position_ids)
    return out[0] if isinstance(out, tuple) else out


def check_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, vocab_size: int,
                max_positions: int) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 or input_ids.dtype != torch.long:
        raise DataError(f"input_ids must be a b×L LongTensor; got "
                        f"{getattr(input_ids, 'dtype', type(input_ids).__name__)} of shape "
                        f"{tuple(getattr(input_ids, 'shape', ()))}")
    if input_ids.shape[1] > max_positions:
        raise DataError(f"seq_len={input_ids.shape[1]} exceeds the model's max_position_embeddings="
                        f"{max_positions}; allowed: seq_len <= {max_positions}")
    if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size):
        raise DataError(f"input_ids hold token ids in [{int(input_ids.min())}, {int(input_ids.max())}] but the "
                        f"model's vocabulary is 0..{vocab_size - 1}; use the model's tokenizer")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise DataError(f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids shape "
                        f"{tuple(input_ids.shape)}")


# --------------------------------------------------------------------------------------------- the parts


class ClientPart(nn.Module):
    """Embedding (+ GPT-2 position embedding) and blocks 1..ℓ. ``forward(input_ids, attention_mask) -> A``.
    Inputs go to ``compute``'s device and the blocks run under its autocast (:mod:`fsllm_sim.training.device`)."""

    compute: Compute = CPU_FLOAT32

    def __init__(self, model: nn.Module, split: int):
        super().__init__()
        hf = unwrap_causal_lm(model)
        self.family = family_of(hf)
        blocks = decoder_blocks(hf)
        self.split = check_split(split, len(blocks), getattr(hf.config, "_name_or_path", "") or "the model")
        self.block_offset = 0  # global index of self.blocks[0]
        self.config = hf.config
        if self.family == "llama":
            self.embed_tokens = hf.model.embed_tokens
            self.rotary_emb = hf.model.rotary_emb
        else:
            self.wte = hf.transformer.wte
            self.wpe = hf.transformer.wpe
            self.drop = hf.transformer.drop
            self.rotary_emb = None
        self.blocks = nn.ModuleList(list(blocks[:split]))

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.family == "llama":
            return self.embed_tokens(input_ids)
        pos = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        return self.drop(self.wte(input_ids) + self.wpe(pos))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        compute = self.compute
        input_ids, attention_mask = compute.put(input_ids), compute.put(attention_mask)
        with compute.autocast():
            hidden = self.embed(input_ids)
            inputs = prepare_block_inputs(self.family, self.config, hidden, attention_mask, self.rotary_emb)
            for block in self.blocks:
                hidden = run_block(self.family, block, hidden, inputs)
        return hidden


class ServerPart(nn.Module):
    """Blocks ℓ+1..J, final norm, LM head (tied: the frozen embedding matrix) and the loss, on ``compute``."""

    compute: Compute = CPU_FLOAT32

    def __init__(self, model: nn.Module, split: int):
        super().__init__()
        hf = unwrap_causal_lm(model)
        self.family = family_of(hf)
        blocks = decoder_blocks(hf)
        self.split = check_split(split, len(blocks), getattr(hf.config, "_name_or_path", "") or "the model")
        self.block_offset = split
        self.config = hf.config
        self.rotary_emb = hf.model.rotary_emb if self.family == "llama" else None
        self.blocks = nn.ModuleList(list(blocks[split:]))
        self.norm = hf.model.norm if self.family == "llama" else hf.transformer.ln_f
        self.lm_head = hf.lm_head

    def hidden_to_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        compute = self.compute
        hidden, attention_mask = compute.put(hidden), compute.put(attention_mask)
        with compute.autocast():
            inputs = prepare_block_inputs(self.family, self.config, hidden, attention_mask, self.rotary_emb)
            for block in self.blocks:
                hidden = run_block(self.family, block, hidden, inputs)
            logits = self.lm_head(self.norm(hidden))
        return logits.float()  # the loss in float32 whatever the compute dtype (a no-op at float32)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """Loss (labels given) or logits (labels None)."""
        logits = self.hidden_to_logits(hidden, attention_mask)
        if labels is None:
            return logits
        return causal_lm_loss(logits, labels)


def split_model(model: nn.Module, split: int, compute: Compute = CPU_FLOAT32) -> tuple[ClientPart, ServerPart]:
    """Client and server views of ``model`` (a transformers causal LM, with or without LoRA) at ℓ = ``split``,
    computing on ``compute`` (the model must already be on its device)."""
    client, server = ClientPart(model, split), ServerPart(model, split)
    client.compute = server.compute = compute
    return client, server


def labels_from_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Causal-LM labels: the input ids, -100 on padding."""
    labels = input_ids.clone()
    if attention_mask is not None:
        labels[attention_mask == 0] = IGNORE_INDEX
    return labels


def complete_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                   labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(attention_mask, labels) with the defaults filled in: no padding, and labels from the ids."""
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    return mask, (labels_from_batch(input_ids, mask) if labels is None else labels)
