"""Analytic FLOPs of split LoRA fine-tuning of a decoder-only transformer (Llama and GPT-2 families).

This is the *check* beside the counted FLOPs of :mod:`fsllm_sim.training.flop_count` (spec §3: Φ are counted
from the real PyTorch ops; the formula is kept beside them). Conventions, chosen to be the same as
``torch.utils.flop_counter.FlopCounterMode``:

* only matrix products are counted (mm/addmm/bmm and scaled-dot-product attention), 2 FLOPs per multiply-add;
  element-wise work (RMSNorm/LayerNorm, rotary embedding, softmax, SiLU/GELU, residual adds, dropout, the
  LoRA scaling, log-softmax + NLL of the loss, embedding look-ups) is not. For SmolLM2 at L = 128 that
  element-wise work is about 24 kFLOP per token and block against 7.4 MFLOP of matrix products (~0.3 %),
  and the loss adds ~5 FLOPs per logit against 2·d = 1152 for the LM head.
* attention is dense: QKᵀ and AV over the full L×L score matrix (4·b·H·L²·h_d forward), as the SDPA kernels
  compute it — causal masking does not halve the count. Backward of SDPA (flash/efficient kernels, and the
  CPU flash kernel) recomputes the scores: 5 products, 2.5 × forward (``attn_backward_factor``). With the
  ``eager`` attention implementation the backward is 2 × forward (4 bmm); pass ``attn_backward_factor=2``.
* T = b·L tokens. A frozen linear d_in -> d_out costs 2·T·d_in·d_out forward and, in backward, only its input
  gradient, 2·T·d_in·d_out, and only if its input requires a gradient (no weight gradient: the base is frozen).
* LoRA of rank r on a linear d_in -> d_out: forward 2·T·r·(d_in + d_out); backward the weight gradients of B
  and A (2·T·r·d_out + 2·T·r·d_in), the gradient through B (2·T·r·d_out) and, if the module's input requires a
  gradient, through A (2·T·r·d_in): 4·T·r·(d_in + d_out) in a generic block.
* The first client block is special in backward: its input (the embedding output) needs no gradient — the
  embedding is frozen — so autograd skips the input gradients of the modules reading it (q, k, v / c_attn
  base weights and their LoRA A). Client backward = first_block + (ℓ-1) generic blocks. On the MS every block
  is generic: the gradient w.r.t. the received activations is needed (it is the downlink payload).
* LM head (tied to the embedding, frozen): forward 2·T·d·V, backward 2·T·d·V (input gradient only).

Per mini-batch (spec §3): Φ^F_c = ℓ·block_fwd; Φ^B_c = first_block_bwd + (ℓ-1)·block_bwd;
Φ_s = (J-ℓ)·(block_fwd + block_bwd) + head_fwd + head_bwd.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SDPA_BACKWARD_FACTOR = 2.5
EAGER_BACKWARD_FACTOR = 2.0

DEFAULT_TARGETS = {"llama": ("q_proj", "v_proj"), "gpt2": ("c_attn",)}


@dataclass(frozen=True)
class TransformerDims:
    """Shape of a decoder-only transformer, as far as FLOPs are concerned."""

    family: str  # "llama" (gated MLP, separate q/k/v/o) or "gpt2" (fused c_attn, 2-matrix MLP)
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    vocab_size: int
    n_blocks: int

    @classmethod
    def from_config(cls, config) -> TransformerDims:
        mt = getattr(config, "model_type", None)
        if mt == "gpt2":
            d = int(config.n_embd)
            return cls("gpt2", d, int(config.n_head), int(config.n_head), d // int(config.n_head),
                       int(config.n_inner or 4 * d), int(config.vocab_size), int(config.n_layer))
        if mt == "llama":
            d = int(config.hidden_size)
            h = int(config.num_attention_heads)
            hd = int(getattr(config, "head_dim", None) or d // h)
            return cls("llama", d, h, int(config.num_key_value_heads or h), hd, int(config.intermediate_size),
                       int(config.vocab_size), int(config.num_hidden_layers))
        raise ValueError(f"model_type={mt!r} has no FLOP formula; allowed: gpt2, llama")

    def linears(self) -> list[tuple[str, int, int]]:
        """(module name, d_in, d_out) of every linear of one block, in forward order."""
        d, h, hkv, hd, f = self.d_model, self.n_heads, self.n_kv_heads, self.head_dim, self.d_ff
        if self.family == "llama":
            return [("q_proj", d, h * hd), ("k_proj", d, hkv * hd), ("v_proj", d, hkv * hd), ("o_proj", h * hd, d),
                    ("gate_proj", d, f), ("up_proj", d, f), ("down_proj", f, d)]
        # GPT-2: the attention output projection and the MLP output projection are both named c_proj
        return [("c_attn", d, 3 * d), ("c_proj", d, d), ("c_fc", d, f), ("c_proj", f, d)]


def linear_flops(tokens: int, d_in: int, d_out: int) -> int:
    return 2 * tokens * d_in * d_out


def attention_core_forward_flops(batch: int, seq_len: int, dims: TransformerDims) -> int:
    """QKᵀ and AV over the full L×L scores: 4·b·H·L²·h_d."""
    return 4 * batch * dims.n_heads * seq_len * seq_len * dims.head_dim


def lora_forward_flops(tokens: int, d_in: int, d_out: int, rank: int) -> int:
    return 2 * tokens * rank * (d_in + d_out)


def lora_backward_flops(tokens: int, d_in: int, d_out: int, rank: int, input_requires_grad: bool = True) -> int:
    flops = 2 * tokens * rank * d_out  # grad of B
    flops += 2 * tokens * rank * d_out  # grad through B (w.r.t. A's output)
    flops += 2 * tokens * rank * d_in  # grad of A
    if input_requires_grad:
        flops += 2 * tokens * rank * d_in  # grad through A (w.r.t. the module input)
    return flops


def _input_grad_flags(dims: TransformerDims, targets: set[str], input_requires_grad: bool) -> tuple[list[bool], bool]:
    """For each linear of the block: does its input require a gradient? And does the attention core run backward?"""
    t = targets
    if dims.family == "llama":
        x = input_requires_grad
        q = x or "q_proj" in t
        k = x or "k_proj" in t
        v = x or "v_proj" in t
        core = q or k or v  # attention output requires grad
        o_out = core or "o_proj" in t
        h1 = x or o_out
        gate = h1 or "gate_proj" in t
        up = h1 or "up_proj" in t
        down_in = gate or up
        return [x, x, x, core, h1, h1, down_in], core
    x = input_requires_grad
    qkv = x or "c_attn" in t
    core = qkv
    proj_out = core or "c_proj" in t
    h1 = x or proj_out
    fc_out = h1 or "c_fc" in t
    return [x, core, h1, fc_out], core


def block_forward_flops(batch: int, seq_len: int, dims: TransformerDims, rank: int,
                        targets: Iterable[str] | None = None) -> int:
    """One transformer block with LoRA of rank r on ``targets``, forward."""
    T = batch * seq_len
    targets = set(DEFAULT_TARGETS[dims.family] if targets is None else targets)
    flops = attention_core_forward_flops(batch, seq_len, dims)
    for name, din, dout in dims.linears():
        flops += linear_flops(T, din, dout)
        if name in targets and rank > 0:
            flops += lora_forward_flops(T, din, dout, rank)
    return flops


def block_backward_flops(batch: int, seq_len: int, dims: TransformerDims, rank: int,
                         targets: Iterable[str] | None = None, *, input_requires_grad: bool = True,
                         attn_backward_factor: float = SDPA_BACKWARD_FACTOR) -> int:
    """One block, backward with a frozen base: input gradients through the frozen weights + LoRA gradients.

    ``input_requires_grad=False`` is the first client block (its input, the embedding output, needs no grad).
    """
    T = batch * seq_len
    targets = set(DEFAULT_TARGETS[dims.family] if targets is None else targets)
    flags, core = _input_grad_flags(dims, targets, input_requires_grad)
    flops = 0
    if core:
        flops += int(round(attn_backward_factor * attention_core_forward_flops(batch, seq_len, dims)))
    for (name, din, dout), in_req in zip(dims.linears(), flags):
        if in_req:
            flops += linear_flops(T, din, dout)
        if name in targets and rank > 0:
            flops += lora_backward_flops(T, din, dout, rank, input_requires_grad=in_req)
    return flops


def embedding_forward_flops(batch: int, seq_len: int, dims: TransformerDims) -> int:
    """Embedding look-up (+ GPT-2 position embedding add): no matrix product -> 0 counted FLOPs."""
    return 0


def head_forward_flops(batch: int, seq_len: int, dims: TransformerDims) -> int:
    """LM head logits (2·T·d·V); the final norm and the cross-entropy are element-wise (not counted)."""
    return linear_flops(batch * seq_len, dims.d_model, dims.vocab_size)


def head_backward_flops(batch: int, seq_len: int, dims: TransformerDims) -> int:
    """Gradient w.r.t. the head input only (the tied head is frozen): 2·T·d·V."""
    return linear_flops(batch * seq_len, dims.d_model, dims.vocab_size)


@dataclass(frozen=True)
class AnalyticSplitFlops:
    client_forward: int
    client_backward: int
    server_forward: int
    server_backward: int

    @property
    def server(self) -> int:
        return self.server_forward + self.server_backward

    @property
    def total(self) -> int:
        return self.client_forward + self.client_backward + self.server


def split_flops(dims: TransformerDims, split: int, rank: int, batch: int, seq_len: int,
                targets: Sequence[str] | None = None, *,
                attn_backward_factor: float = SDPA_BACKWARD_FACTOR) -> AnalyticSplitFlops:
    """Φ^F_c, Φ^B_c and the MS forward/backward for split ℓ = ``split`` and LoRA rank r."""
    if not 1 <= split <= dims.n_blocks - 1:
        raise ValueError(f"split={split} is out of range; allowed: 1..{dims.n_blocks - 1}")
    fwd = block_forward_flops(batch, seq_len, dims, rank, targets)
    bwd = block_backward_flops(batch, seq_len, dims, rank, targets, attn_backward_factor=attn_backward_factor)
    first = block_backward_flops(batch, seq_len, dims, rank, targets, input_requires_grad=False,
                                 attn_backward_factor=attn_backward_factor)
    n_server = dims.n_blocks - split
    return AnalyticSplitFlops(
        client_forward=embedding_forward_flops(batch, seq_len, dims) + split * fwd,
        client_backward=first + (split - 1) * bwd,
        server_forward=n_server * fwd + head_forward_flops(batch, seq_len, dims),
        server_backward=n_server * bwd + head_backward_flops(batch, seq_len, dims),
    )


def lora_params_per_block(dims: TransformerDims, rank: int, targets: Iterable[str] | None = None) -> int:
    """Adapter parameters of one block: r·(d_in + d_out) per targeted linear."""
    targets = set(DEFAULT_TARGETS[dims.family] if targets is None else targets)
    return sum(rank * (din + dout) for name, din, dout in dims.linears() if name in targets)
