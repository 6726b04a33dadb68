"""FLOPs counted from the real PyTorch operations, cached, and the per-(ℓ, r) profile table.

Counting uses :class:`torch.utils.flop_counter.FlopCounterMode`, which counts matrix products only
(mm/addmm/bmm/SDPA; 2 FLOPs per multiply-add). On CPU, transformers' SDPA attention dispatches to
``aten._scaled_dot_product_flash_attention_for_cpu`` (and ``..._backward``), which torch 2.13's counter does not
know; we register the counter's own SDPA formulas for them (forward QKᵀ + AV; backward 5 products incl. the
score recomputation) so attention is not silently missing.

Two ways to count, which the tests check against each other:

* :func:`count_split_flops` — direct: the real split model at (ℓ, r) runs one client forward, client backward
  and MS forward+backward on a b×L batch under the counter;
* :func:`count_component_flops` + composition — since the J blocks are identical, count once per rank r: the
  embedding, one block forward, one block backward (generic, and the first client block whose input needs no
  gradient), and head+loss forward/backward; then for every ℓ
  Φ^F_c = emb + ℓ·blk_f, Φ^B_c = first_b + (ℓ-1)·blk_b, Φ_s = (J-ℓ)(blk_f + blk_b) + head_f + head_b.

Results are cached in memory and on disk (``<cache>/flops/flop_counts.json``, written atomically), keyed by
model name + config hash, rank, targeted modules, b, L, attention implementation and the torch version.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.lora import LoraSpec, attach_lora, has_lora, make_lora_config
from fsllm_sim.training.models import LoadedModel, cache_dir, load_model
from fsllm_sim.training.split import (
    causal_lm_loss,
    check_split,
    decoder_blocks,
    prepare_block_inputs,
    run_block,
    split_model,
)
from fsllm_sim.training.wire import check_precision, payload_bits, side_bits_per_token

aten = torch.ops.aten


def _flash_cpu_forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _flash_cpu_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


#: Extra formulas for ops torch's FlopCounterMode does not cover (CPU flash attention).
CUSTOM_FLOP_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _flash_cpu_forward,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _flash_cpu_backward,
}


def flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOP_FORMULAS)


def _count(fn) -> tuple[int, object]:
    counter = flop_counter()
    with counter:
        out = fn()
    return int(counter.get_total_flops()), out


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SplitFlops:
    """Counted FLOPs of one mini-batch at (ℓ, r)."""

    client_forward: int
    client_backward: int
    server_forward: int
    server_backward: int

    @property
    def server(self) -> int:  # Φ_s = MS forward + backward
        return self.server_forward + self.server_backward


@dataclass(frozen=True)
class ComponentFlops:
    """Counted FLOPs of the repeated pieces at one rank (b×L batch)."""

    embedding_forward: int
    block_forward: int
    block_backward: int  # generic block (input requires grad)
    first_block_backward: int  # first client block (input = frozen embedding output)
    head_forward: int  # final norm + LM head + loss
    head_backward: int
    adapter_numel_per_block: int  # LoRA parameters of one block (counted from the real tensors)
    adapter_tensors_per_block: int

    def compose(self, split: int, num_blocks: int) -> SplitFlops:
        n_server = num_blocks - split
        return SplitFlops(
            client_forward=self.embedding_forward + split * self.block_forward,
            client_backward=self.first_block_backward + (split - 1) * self.block_backward,
            server_forward=n_server * self.block_forward + self.head_forward,
            server_backward=n_server * self.block_backward + self.head_backward,
        )


# --------------------------------------------------------------------------------------------- cache

_MEMORY_CACHE: dict[str, dict] = {}
_PROFILE_MEMO: dict[tuple, ProfileTable] = {}


def _cache_file(cache: str | os.PathLike | None) -> Path:
    d = cache_dir(cache) / "flops"
    d.mkdir(parents=True, exist_ok=True)
    return d / "flop_counts.json"


def _cache_key(kind: str, model: LoadedModel, rank: int, targets, batch: int, seq_len: int, extra: str = "") -> str:
    attn = getattr(model.config, "_attn_implementation", "sdpa")
    return (f"{kind}|{model.name}|{model.config_hash}|r={rank}|t={','.join(targets)}|b={batch}|L={seq_len}"
            f"|attn={attn}|torch={torch.__version__}{extra}")


def _cache_get(key: str, cache, use_cache: bool) -> dict | None:
    if not use_cache:
        return None
    if key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key]
    path = _cache_file(cache)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if key in data:
            _MEMORY_CACHE[key] = data[key]
            return data[key]
    return None


def _cache_put(key: str, value: dict, cache, use_cache: bool) -> None:
    if not use_cache:
        return
    _MEMORY_CACHE[key] = value
    path = _cache_file(cache)
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}
    data[key] = value
    fd, tmp = tempfile.mkstemp(prefix=".flop_counts.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def clear_memory_cache() -> None:
    _MEMORY_CACHE.clear()
    _PROFILE_MEMO.clear()


# --------------------------------------------------------------------------------------------- counting


def _resolve(model: LoadedModel | str, cache) -> LoadedModel:
    return load_model(model, cache=cache) if isinstance(model, str) else model


def _check_shape(batch_size: int, seq_len: int, model: LoadedModel) -> None:
    for name, v in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name}={v!r} is invalid; allowed: an integer >= 1")
    if seq_len > model.max_positions:
        raise ConfigError(f"seq_len={seq_len} exceeds {model.name}'s max_position_embeddings={model.max_positions}")


def _random_batch(model: LoadedModel, batch_size: int, seq_len: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, model.vocab_size, (batch_size, seq_len), generator=g)


def count_split_flops(model: LoadedModel | str, split: int, rank: int, batch_size: int, seq_len: int, *,
                      target_modules=None, cache=None, use_cache: bool = True) -> SplitFlops:
    """Direct count on the real split model: client forward, client backward, MS forward and backward.

    Builds a private LoRA copy of the model (the given one is not modified). The batch has no padding
    (FLOPs do not depend on the mask: attention is dense either way).
    """
    model = _resolve(model, cache)
    _check_shape(batch_size, seq_len, model)
    check_split(split, model.num_blocks, model.name)
    spec = LoraSpec(rank=rank, target_modules=tuple(target_modules) if target_modules else None).validate(model.family)
    targets = spec.resolved_targets(model.family)
    key = _cache_key("split", model, rank, targets, batch_size, seq_len, extra=f"|split={split}")
    hit = _cache_get(key, cache, use_cache)
    if hit is not None:
        return SplitFlops(**hit)

    hf = copy.deepcopy(model.model)
    peft_model = attach_lora(hf, model.family, spec, seed=0)
    client, server = split_model(peft_model, split)
    ids = _random_batch(model, batch_size, seq_len)
    mask = torch.ones_like(ids)
    with torch.enable_grad():
        cf, hidden = _count(lambda: client(ids, mask))
        x = hidden.detach().requires_grad_(True)
        sf, loss = _count(lambda: server(x, mask, ids))
        sb, _ = _count(lambda: loss.backward())
        cb, _ = _count(lambda: hidden.backward(x.grad))
    result = SplitFlops(client_forward=cf, client_backward=cb, server_forward=sf, server_backward=sb)
    _cache_put(key, asdict(result), cache, use_cache)
    return result


class _BlockHolder(nn.Module):
    def __init__(self, block: nn.Module):
        super().__init__()
        self.blocks = nn.ModuleList([block])


def lora_block_copy(model: LoadedModel, spec: LoraSpec) -> _BlockHolder:
    """One block of the real model with LoRA of ``spec`` (a copy: the loaded model stays untouched), only the LoRA
    factors trainable, in eval mode, in a holder whose parameter names the adapter slots recognise."""
    from peft import inject_adapter_in_model

    holder = _BlockHolder(copy.deepcopy(decoder_blocks(model.model)[0]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        inject_adapter_in_model(make_lora_config(model.family, spec), holder)
    for n, p in holder.named_parameters():
        p.requires_grad_("lora_" in n)
    return holder.eval()


def count_component_flops(model: LoadedModel | str, rank: int, batch_size: int, seq_len: int, *,
                          target_modules=None, cache=None, use_cache: bool = True) -> ComponentFlops:
    """Counted FLOPs of the embedding, one block (fwd; bwd generic and first) and head+loss at rank r."""
    model = _resolve(model, cache)
    _check_shape(batch_size, seq_len, model)
    spec = LoraSpec(rank=rank, target_modules=tuple(target_modules) if target_modules else None).validate(model.family)
    targets = spec.resolved_targets(model.family)
    key = _cache_key("components", model, rank, targets, batch_size, seq_len)
    hit = _cache_get(key, cache, use_cache)
    if hit is not None:
        return ComponentFlops(**hit)

    hf = model.model
    fam = model.family
    if has_lora(hf):
        raise ConfigError(f"model {model.name!r} already carries LoRA layers (used by a SplitFedSystem?); count "
                          f"FLOPs on a freshly loaded model")
    holder = lora_block_copy(model, spec)
    block = holder.blocks[0]
    lora_params = [p for n, p in holder.named_parameters() if "lora_" in n]

    ids = _random_batch(model, batch_size, seq_len)
    mask = torch.ones_like(ids)
    client, server = split_model(hf, 1)  # views only, used for the embedding/head pieces
    g = torch.Generator().manual_seed(1)
    hidden0 = torch.randn(batch_size, seq_len, model.hidden_size, generator=g)
    rotary = server.rotary_emb
    with torch.enable_grad():
        emb_f, _ = _count(lambda: client.embed(ids))
        inputs = prepare_block_inputs(fam, hf.config, hidden0, mask, rotary)
        # first client block: input needs no gradient
        fwd_first, out = _count(lambda: run_block(fam, block, hidden0, inputs))
        first_b, _ = _count(lambda: out.backward(torch.ones_like(out)))
        # generic block: input requires grad
        x = hidden0.clone().requires_grad_(True)
        blk_f, out = _count(lambda: run_block(fam, block, x, inputs))
        blk_b, _ = _count(lambda: out.backward(torch.ones_like(out)))
        # head + loss
        h = hidden0.clone().requires_grad_(True)
        head_f, loss = _count(lambda: causal_lm_loss(server.lm_head(server.norm(h)), ids))
        head_b, _ = _count(lambda: loss.backward())
    if fwd_first != blk_f:  # pragma: no cover - forward does not depend on grad requirements
        raise RuntimeError(f"block forward FLOPs differ between first ({fwd_first}) and generic ({blk_f}) block")
    result = ComponentFlops(
        embedding_forward=emb_f, block_forward=blk_f, block_backward=blk_b, first_block_backward=first_b,
        head_forward=head_f, head_backward=head_b,
        adapter_numel_per_block=sum(int(p.numel()) for p in lora_params),
        adapter_tensors_per_block=len(lora_params),
    )
    _cache_put(key, asdict(result), cache, use_cache)
    return result


# --------------------------------------------------------------------------------------------- profile table


@dataclass
class ProfileTable:
    """Per-(ℓ, r) compute and communication profile of one model at batch b, sequence L.

    Arrays are indexed ``[split_index, rank_index]`` with ``splits[i]``, ``ranks[j]``.
    """

    model: str
    family: str
    num_blocks: int
    hidden_size: int
    vocab_size: int
    batch_size: int
    seq_len: int
    wire_precision: str  # activations and gradients (q_a)
    adapter_precision: str  # client adapter uploads (q_c)
    target_modules: list[str]
    splits: list[int]
    ranks: list[int]
    client_forward_flops: np.ndarray  # Φ^F_c
    client_backward_flops: np.ndarray  # Φ^B_c
    server_flops: np.ndarray  # Φ_s (MS forward + backward)
    server_forward_flops: np.ndarray
    server_backward_flops: np.ndarray
    activation_bits: np.ndarray  # S_a = b·L·d·q_a (= gradient bits S_g)
    gradient_bits: np.ndarray
    adapter_bits: np.ndarray  # S_c, client adapter of blocks 1..ℓ at q_c
    server_adapter_bits: np.ndarray  # one server adapter (blocks ℓ+1..J) at q_c
    side_bits: int  # labels + attention mask sent with the activations (per iteration)
    components: dict[int, dict] = field(default_factory=dict)  # rank -> ComponentFlops as dict

    def index(self, split: int, rank: int) -> tuple[int, int]:
        try:
            return self.splits.index(split), self.ranks.index(rank)
        except ValueError:
            raise ConfigError(f"(split={split}, rank={rank}) is not in this table; splits {self.splits}, "
                              f"ranks {self.ranks}") from None

    def at(self, split: int, rank: int) -> dict:
        i, j = self.index(split, rank)
        return {
            "split": split, "rank": rank,
            "client_forward_flops": int(self.client_forward_flops[i, j]),
            "client_backward_flops": int(self.client_backward_flops[i, j]),
            "server_flops": int(self.server_flops[i, j]),
            "activation_bits": int(self.activation_bits[i, j]),
            "gradient_bits": int(self.gradient_bits[i, j]),
            "adapter_bits": int(self.adapter_bits[i, j]),
            "server_adapter_bits": int(self.server_adapter_bits[i, j]),
            "side_bits": int(self.side_bits),
        }

    def to_dict(self) -> dict:
        out = {}
        for k, v in asdict(self).items():
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        out["components"] = {str(r): c for r, c in self.components.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict) -> ProfileTable:
        d = dict(d)
        for k in ("client_forward_flops", "client_backward_flops", "server_flops", "server_forward_flops",
                  "server_backward_flops", "activation_bits", "gradient_bits", "adapter_bits",
                  "server_adapter_bits"):
            d[k] = np.asarray(d[k], dtype=np.int64)
        d["components"] = {int(r): c for r, c in d.get("components", {}).items()}
        return cls(**d)


def profile_table(model_name: str = "smollm2-135m", splits=None, ranks=(1, 2, 4, 8, 16), batch_size: int = 4,
                  seq_len: int = 128, wire_precision: str = "fp16", *, adapter_precision: str = "fp32",
                  target_modules=None, model: LoadedModel | None = None, cache=None,
                  use_cache: bool = True) -> ProfileTable:
    """Counted FLOPs and payload bits for every (ℓ, r): components counted once per rank, then composed.

    ``splits`` defaults to 1..J-1. ``model`` may be given to reuse a loaded model (its name and config hash
    key the cache); otherwise ``model_name`` is loaded.
    """
    check_precision(wire_precision, "wire_precision")
    check_precision(adapter_precision, "adapter_precision")
    memo_key = None
    if model is None and use_cache:
        memo_key = (model_name, None if splits is None else tuple(int(s) for s in splits), tuple(ranks), batch_size,
                    seq_len, wire_precision, adapter_precision,
                    None if target_modules is None else tuple(target_modules), str(cache_dir(cache)))
        if memo_key in _PROFILE_MEMO:
            return copy.deepcopy(_PROFILE_MEMO[memo_key])
    lm = model if model is not None else load_model(model_name, cache=cache)
    J = lm.num_blocks
    splits = list(range(1, J)) if splits is None else [check_split(int(s), J, lm.name) for s in splits]
    ranks = [int(r) for r in ranks]
    if not splits or not ranks:
        raise ConfigError(f"splits={splits!r} and ranks={ranks!r} must both be non-empty")
    S, R = len(splits), len(ranks)
    arrays = {k: np.zeros((S, R), dtype=np.int64) for k in (
        "client_forward_flops", "client_backward_flops", "server_flops", "server_forward_flops",
        "server_backward_flops", "activation_bits", "gradient_bits", "adapter_bits", "server_adapter_bits")}
    # int8: per-channel scales over d channels, outlier rows assumed one per sequence (the first token)
    s_a = payload_bits(batch_size * seq_len * lm.hidden_size, wire_precision, channels=lm.hidden_size,
                       outlier_rows=batch_size)
    components = {}
    targets = None
    for j, r in enumerate(ranks):
        comp = count_component_flops(lm, r, batch_size, seq_len, target_modules=target_modules, cache=cache,
                                     use_cache=use_cache)
        components[r] = asdict(comp)
        targets = LoraSpec(rank=r, target_modules=tuple(target_modules) if target_modules else None
                           ).resolved_targets(lm.family)
        for i, s in enumerate(splits):
            f = comp.compose(s, J)
            arrays["client_forward_flops"][i, j] = f.client_forward
            arrays["client_backward_flops"][i, j] = f.client_backward
            arrays["server_forward_flops"][i, j] = f.server_forward
            arrays["server_backward_flops"][i, j] = f.server_backward
            arrays["server_flops"][i, j] = f.server
            arrays["activation_bits"][i, j] = s_a
            arrays["gradient_bits"][i, j] = s_a
            arrays["adapter_bits"][i, j] = payload_bits(s * comp.adapter_numel_per_block, adapter_precision,
                                                        s * comp.adapter_tensors_per_block)
            arrays["server_adapter_bits"][i, j] = payload_bits((J - s) * comp.adapter_numel_per_block,
                                                               adapter_precision,
                                                               (J - s) * comp.adapter_tensors_per_block)
    table = ProfileTable(
        model=lm.name, family=lm.family, num_blocks=J, hidden_size=lm.hidden_size, vocab_size=lm.vocab_size,
        batch_size=batch_size, seq_len=seq_len, wire_precision=wire_precision,
        adapter_precision=adapter_precision, target_modules=list(targets), splits=splits, ranks=ranks,
        side_bits=batch_size * seq_len * side_bits_per_token(lm.vocab_size), components=components, **arrays,
    )
    if memo_key is not None:
        _PROFILE_MEMO[memo_key] = copy.deepcopy(table)
    return table
