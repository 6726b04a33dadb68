"""Wire precision: what a tensor becomes when it is sent, and how many bits that takes.

Every message really casts its tensors (quantise -> dequantise back to fp32) so training sees the effect:

=========  ==========================  =============================================================
name       bits per element            cast
=========  ==========================  =============================================================
fp32       32                          identity (a detached copy)
fp16       16                          ``x.half().float()``, *saturating* at ±65504 (an overflow would
                                       otherwise turn into inf; real links/codecs clamp too)
bf16       16                          ``x.bfloat16().float()``
int8       8 + 32 per tensor           symmetric per-tensor: s = max|x| / 127 sent as one fp32 scale,
                                       q = round(x / s) clamped to [-127, 127], received as q·s
=========  ==========================  =============================================================

Payload bits are counted from the real tensors: ``numel × bits`` (+ 32 scale bits per tensor for int8).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from fsllm_sim.errors import ConfigError

BITS_PER_ELEMENT: dict[str, int] = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8}
INT8_SCALE_BITS = 32
FP16_MAX = 65504.0


def check_precision(precision: str, argname: str = "precision") -> str:
    if precision not in BITS_PER_ELEMENT:
        raise ConfigError(f"{argname}={precision!r} is not a wire precision; allowed: "
                          f"{', '.join(BITS_PER_ELEMENT)}")
    return precision


def bits_per_element(precision: str) -> int:
    return BITS_PER_ELEMENT[check_precision(precision)]


def overhead_bits_per_tensor(precision: str) -> int:
    return INT8_SCALE_BITS if check_precision(precision) == "int8" else 0


def payload_bits(numel: int, precision: str, num_tensors: int = 1) -> int:
    """Bits on the wire for ``num_tensors`` tensors holding ``numel`` elements in total."""
    return int(numel) * bits_per_element(precision) + int(num_tensors) * overhead_bits_per_tensor(precision)


def tensor_bits(t: torch.Tensor, precision: str) -> int:
    return payload_bits(t.numel(), precision, 1)


def state_bits(state: Mapping[str, torch.Tensor], precision: str) -> int:
    return sum(tensor_bits(v, precision) for v in state.values())


def wire_cast(t: torch.Tensor, precision: str) -> torch.Tensor:
    """What the receiver gets: ``t`` quantised to ``precision`` and dequantised back (detached, t's dtype)."""
    check_precision(precision)
    x = t.detach()
    if precision == "fp32":
        return x.to(torch.float32).clone().to(t.dtype)
    if precision == "fp16":
        return x.float().clamp(-FP16_MAX, FP16_MAX).half().to(t.dtype)
    if precision == "bf16":
        return x.bfloat16().to(t.dtype)
    # int8, symmetric per-tensor scale (the scale travels as one fp32 number)
    xf = x.float()
    amax = float(xf.abs().max()) if xf.numel() else 0.0
    if not math.isfinite(amax):
        raise ValueError("int8 wire cast of a tensor holding inf/nan (training diverged?)")
    if amax == 0.0:
        return torch.zeros_like(x)
    scale = torch.tensor(amax / 127.0, dtype=torch.float32).item()  # exactly what an fp32 scale holds
    q = torch.round(xf / scale).clamp_(-127, 127)
    return (q * scale).to(t.dtype)


def cast_state(state: Mapping[str, torch.Tensor], precision: str) -> dict[str, torch.Tensor]:
    return {k: wire_cast(v, precision) for k, v in state.items()}


def side_bits_per_token(vocab_size: int) -> int:
    """Uplink side information per token: the label id (one of V ids or 'ignored') plus one attention-mask bit."""
    return int(vocab_size).bit_length() + 1  # ceil(log2(V + 1)) bits for V+1 symbols, + 1 mask bit
