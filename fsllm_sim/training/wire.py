"""Wire precision: what a tensor becomes when it is sent, and how many bits that takes.

Every message really casts its tensors (quantise -> dequantise back to the tensor's dtype) so training sees the
effect:

===========  ==========================================  =======================================================
name         bits                                        cast
===========  ==========================================  =======================================================
fp32         32 per element                              identity (a detached copy)
fp16         16 per element                              ``x.half()``, *saturating* at ±65504 (an overflow would
                                                         otherwise turn into inf; real links/codecs clamp too)
bf16         16 per element                              ``x.bfloat16()``
int8-tensor  8 per element + 32 per tensor               symmetric per-tensor: s = max|x| / 127 sent as one fp32
                                                         scale, q = round(x / s) clamped to [-127, 127], received
                                                         as q·s
int8         see :func:`int8_channel_bits`               per-channel with fp16 outlier channels (below)
===========  ==========================================  =======================================================

``int8`` (per-channel, outlier-aware)
-------------------------------------
A tensor of shape ``(..., C)`` is read as ``R × C`` (``R`` rows = tokens, ``C`` channels = the last dimension;
a 0-/1-D tensor is one channel). Per-tensor int8 is useless on LLM activations: SmolLM2-135M's hidden state at
split 15 has a few channels reaching ~2·10^4 while the median |value| is ~2, so one scale s = max|x|/127 ≈ 190
rounds >99 % of the values to 0. Per-token scales alone do not help (the outliers are in every token's few
channels), and per-channel scales alone neither: the first token of every sequence (the attention sink) carries
"massive activations" (~300 even outside the outlier channels, vs ~20 elsewhere) that blow every channel's scale
up 5-10x. So (``RATIO`` = :data:`OUTLIER_RATIO`, ``F`` = :data:`MAX_OUTLIER_FRACTION`):

1. outlier *rows*: row ``i`` is an outlier when its absmax exceeds ``RATIO ×`` the (lower) median row absmax,
   either over all channels or over the channels that are not provisional outliers (found as in 2. on all rows),
   at most ``ceil(F · R)`` of them (the largest). They are sent whole at fp16;
2. outlier *channels*, on the other rows: channel absmax ``a_j``; an outlier when ``a_j > RATIO · median(a)``,
   at most ``ceil(F · C)`` of them. Sent at fp16 (on the non-outlier rows);
3. everything else is symmetric int8 with one scale per channel ``s_j = a_j / 127`` sent as a bf16 number
   (:data:`INT8_CHANNEL_SCALE_BITS` = 16; bf16 keeps fp32's exponent range, so tiny gradients do not underflow):
   q = round(x / s_j) clamped to [-127, 127], received as q·s_j.

fp16 values saturate at ±65504 as with ``fp16``. Side information, all counted: the two outlier counts
(``ceil(log2(R+1))`` + ``ceil(log2(C+1))`` bits), the outlier indices (``ceil(log2 R)`` bits per row,
``ceil(log2 C)`` per channel), the scales and the fp16 values. With ``k_r`` outlier rows, ``k_c`` outlier
channels (:func:`int8_bits`)::

    bits = 16·k_r·C + 16·k_c·(R-k_r) + 8·(C-k_c)·(R-k_r) + 16·(C-k_c)
           + k_r·ceil(log2 R) + k_c·ceil(log2 C) + ceil(log2(R+1)) + ceil(log2(C+1))

:func:`tensor_bits` counts exactly what the cast of that very tensor sends. :func:`payload_bits` (the analytic
profile, which has no tensor) needs the channel count and assumes outlier counts (defaults
:data:`DEFAULT_OUTLIER_CHANNEL_FRACTION`, :data:`DEFAULT_OUTLIER_ROW_FRACTION`, measured on SmolLM2-135M); the
real messages carry the exact bits.

The error of an int8 element is ≤ ~s_j/2 (bf16 rounding of the scale adds ≤ 0.4 %), of an fp16 one fp16's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from fsllm_sim.errors import ConfigError

BITS_PER_ELEMENT: dict[str, int] = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8, "int8-tensor": 8}
INT8_SCALE_BITS = 32  # int8-tensor: one fp32 scale per tensor
INT8_CHANNEL_SCALE_BITS = 16  # int8: one bf16 scale per (non-outlier) channel
OUTLIER_VALUE_BITS = 16  # int8: outlier rows/channels travel at fp16
OUTLIER_RATIO = 6.0  # int8: an outlier row/channel has an absmax above 6x the median one
MAX_OUTLIER_FRACTION = 1 / 16  # int8: at most this fraction of the rows / of the channels (rounded up)
# int8, analytic profile (payload_bits) only: assumed outlier counts. Measured on SmolLM2-135M activations
# (Shakespeare, b=2, L=64 = 128 rows, C=576): 3-4 outlier channels at splits 1-29 (split 15: 3) and the first
# token of each sequence as outlier row at the deep splits (split 15: 2 rows of 128 = 1/64, i.e. one per
# sequence of L=64; pass outlier_rows=batch_size when b is known).
DEFAULT_OUTLIER_CHANNEL_FRACTION = 4 / 576
DEFAULT_OUTLIER_ROW_FRACTION = 1 / 64
FP16_MAX = 65504.0


def check_precision(precision: str, argname: str = "precision") -> str:
    if precision not in BITS_PER_ELEMENT:
        raise ConfigError(f"{argname}={precision!r} is not a wire precision; allowed: "
                          f"{', '.join(BITS_PER_ELEMENT)}")
    return precision


def bits_per_element(precision: str) -> int:
    """Bits of one (non-outlier) element; side information (scales, outliers) comes on top for int8*."""
    return BITS_PER_ELEMENT[check_precision(precision)]


def overhead_bits_per_tensor(precision: str) -> int:
    """Fixed side bits per tensor: the fp32 scale of int8-tensor (int8's side bits depend on the shape)."""
    return INT8_SCALE_BITS if check_precision(precision) == "int8-tensor" else 0


def _index_bits(n: int) -> int:
    return max(1, (int(n) - 1).bit_length())  # ceil(log2 n), at least 1


def _count_bits(n: int) -> int:
    return int(n).bit_length()  # ceil(log2(n + 1)): a count 0..n


def int8_bits(rows: int, channels: int, outlier_rows: int = 0, outlier_channels: int = 0) -> int:
    """Exact bits of one ``rows × channels`` tensor sent as ``int8`` with the given outlier counts."""
    R, C, kr, kc = int(rows), int(channels), int(outlier_rows), int(outlier_channels)
    if not (0 <= kr <= R and 0 <= kc <= C):
        raise ValueError(f"outlier_rows={kr} / outlier_channels={kc} out of range for a {R}×{C} tensor")
    return (OUTLIER_VALUE_BITS * kr * C + OUTLIER_VALUE_BITS * kc * (R - kr)
            + BITS_PER_ELEMENT["int8"] * (C - kc) * (R - kr) + INT8_CHANNEL_SCALE_BITS * (C - kc)
            + kr * _index_bits(R) + kc * _index_bits(C) + _count_bits(R) + _count_bits(C))


def payload_bits(numel: int, precision: str, num_tensors: int = 1, *, channels: int | None = None,
                 outlier_channels: int | None = None, outlier_rows: int | None = None) -> int:
    """Bits on the wire for ``num_tensors`` tensors holding ``numel`` elements in total.

    ``int8`` needs ``channels``: the last-dimension size (summed over the tensors when ``num_tensors > 1``);
    it assumes ``outlier_channels`` / ``outlier_rows`` in total go at fp16 (defaults
    ``round(DEFAULT_OUTLIER_CHANNEL_FRACTION · channels)`` and ``round(DEFAULT_OUTLIER_ROW_FRACTION · rows)``).
    With one tensor it equals :func:`tensor_bits` of a tensor with those outlier counts; with several it treats
    them as alike (``channels/num_tensors`` channels and ``numel/channels`` rows each). Without ``channels`` it
    falls back to one channel per tensor and no outliers: a *lower bound*, pass ``channels`` for a real size.
    """
    check_precision(precision)
    numel, num_tensors = int(numel), int(num_tensors)
    if precision != "int8":
        return numel * bits_per_element(precision) + num_tensors * overhead_bits_per_tensor(precision)
    if num_tensors <= 0 or numel == 0:
        return 0
    if channels is None:
        rows = max(1, numel // num_tensors)
        return numel * BITS_PER_ELEMENT["int8"] + num_tensors * (INT8_CHANNEL_SCALE_BITS + _count_bits(rows) + 1)
    channels = int(channels)
    if channels <= 0 or numel % channels:
        raise ValueError(f"channels={channels} must be positive and divide numel={numel}")
    R = numel // channels
    kc = round(DEFAULT_OUTLIER_CHANNEL_FRACTION * channels) if outlier_channels is None else int(outlier_channels)
    kr = round(DEFAULT_OUTLIER_ROW_FRACTION * R) if outlier_rows is None else int(outlier_rows)
    if num_tensors == 1:
        return int8_bits(R, channels, kr, kc)
    if not (0 <= kr <= R and 0 <= kc <= channels):
        raise ValueError(f"outlier_rows={kr} / outlier_channels={kc} out of range")
    c_t = max(1, round(channels / num_tensors))  # channels per tensor (rows: R each)
    return (OUTLIER_VALUE_BITS * kr * c_t + OUTLIER_VALUE_BITS * kc * (R - kr)
            + BITS_PER_ELEMENT["int8"] * (numel - kr * c_t - kc * (R - kr)) + INT8_CHANNEL_SCALE_BITS * (channels - kc)
            + kr * _index_bits(R) + kc * _index_bits(c_t) + num_tensors * (_count_bits(R) + _count_bits(c_t)))


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    """The ``R × C`` view the int8 codec works on (C = last dim; a 0-/1-D tensor is one channel)."""
    if x.dim() >= 2:
        return x.reshape(-1, x.shape[-1])
    return x.reshape(-1, 1)


def _check_finite(amax: float) -> None:
    if not math.isfinite(amax):
        raise ValueError("int8 wire cast of a tensor holding inf/nan (training diverged?)")


def _relative(amax: torch.Tensor) -> torch.Tensor:
    """absmax / its (lower) median (inf for a non-zero entry when the median is 0)."""
    med = float(amax.median()) if amax.numel() else 0.0
    if med > 0:
        return amax / med
    return torch.where(amax > 0, torch.full_like(amax, math.inf), torch.zeros_like(amax))


def _outliers(amax: torch.Tensor, score: torch.Tensor | None = None) -> torch.Tensor:
    """Indices (sorted) whose absmax exceeds OUTLIER_RATIO × the (lower) median (or whose ``score`` exceeds
    OUTLIER_RATIO), the largest ceil(F·n) of them."""
    n = amax.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=amax.device)
    score = _relative(amax) if score is None else score
    cand = torch.nonzero(score > OUTLIER_RATIO).flatten()
    cap = math.ceil(MAX_OUTLIER_FRACTION * n)
    if cand.numel() > cap:
        cand = cand[torch.argsort(amax[cand], descending=True, stable=True)[:cap]]
    return torch.sort(cand).values


def int8_outliers(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, channels)``: the indices (sorted) of the rows and channels ``int8`` sends at fp16."""
    x = _as_rows(t.detach().float())
    if x.numel() == 0:
        return (torch.zeros(0, dtype=torch.long, device=x.device),
                torch.zeros(0, dtype=torch.long, device=x.device))
    _check_finite(float(x.abs().max()))
    a = x.abs()
    # (a) provisional outlier channels on all rows, (b) outlier rows, on all channels or on the other channels
    # (a massive-activation token may stand out only there, not under the outlier channels), (c) outlier channels on the other rows
    prov = _outliers(a.amax(dim=0))
    keep_c = torch.ones(x.shape[1], dtype=torch.bool, device=x.device)
    keep_c[prov] = False
    r_all = a.amax(dim=1)
    score = _relative(r_all)
    if bool(keep_c.any()):
        score = torch.maximum(score, _relative(a[:, keep_c].amax(dim=1)))
    rows = _outliers(r_all, score)
    keep = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    keep[rows] = False
    chans = (_outliers(a[keep].amax(dim=0)) if bool(keep.any())
             else torch.zeros(0, dtype=torch.long, device=x.device))
    return rows, chans


def _fp16(x: torch.Tensor) -> torch.Tensor:
    return x.float().clamp(-FP16_MAX, FP16_MAX).half().float()


def _int8_channel_cast(t: torch.Tensor) -> torch.Tensor:
    x = _as_rows(t.detach().float())
    if x.numel() == 0:
        return t.detach().clone()
    out_rows, out_chans = int8_outliers(t)
    keep = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    keep[out_rows] = False
    if bool(keep.any()):
        amax = x[keep].abs().amax(dim=0)
    else:
        amax = torch.zeros(x.shape[1], device=x.device)
    # bf16 scale, as sent (round to nearest; the clamp absorbs a scale rounded down by ≤ 2^-8)
    scale = (amax / 127.0).to(torch.bfloat16).float()
    tiny = torch.finfo(torch.bfloat16).tiny
    scale = torch.where((amax > 0) & (scale < tiny), torch.full_like(scale, tiny), scale)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    y = torch.round(x / safe).clamp_(-127, 127) * scale  # a zero channel (scale 0) is all zeros
    if out_chans.numel():
        y[:, out_chans] = _fp16(x[:, out_chans])
    if out_rows.numel():
        y[out_rows] = _fp16(x[out_rows])
    return y.reshape(t.shape).to(t.dtype)


def _int8_tensor_cast(t: torch.Tensor) -> torch.Tensor:
    # symmetric per-tensor scale (the scale travels as one fp32 number)
    x = t.detach()
    xf = x.float()
    amax = float(xf.abs().max()) if xf.numel() else 0.0
    _check_finite(amax)
    if amax == 0.0:
        return torch.zeros_like(x)
    scale = torch.tensor(amax / 127.0, dtype=torch.float32).item()  # exactly what an fp32 scale holds
    q = torch.round(xf / scale).clamp_(-127, 127)
    return (q * scale).to(t.dtype)


def tensor_bits(t: torch.Tensor, precision: str) -> int:
    """Bits this very tensor takes on the wire at ``precision`` (int8: with its real outlier rows/channels)."""
    if check_precision(precision) != "int8":
        return payload_bits(t.numel(), precision, 1)
    if t.numel() == 0:
        return 0
    x = _as_rows(t)
    rows, chans = int8_outliers(t)
    return int8_bits(x.shape[0], x.shape[1], rows.numel(), chans.numel())


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
    if precision == "int8-tensor":
        return _int8_tensor_cast(t)
    return _int8_channel_cast(t)


def cast_state(state: Mapping[str, torch.Tensor], precision: str) -> dict[str, torch.Tensor]:
    return {k: wire_cast(v, precision) for k, v in state.items()}


def side_bits_per_token(vocab_size: int) -> int:
    """Uplink side information per token: the label id (one of V ids or 'ignored') plus one attention-mask bit."""
    return int(vocab_size).bit_length() + 1  # ceil(log2(V + 1)) bits for V+1 symbols, + 1 mask bit
