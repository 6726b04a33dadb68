"""Defences a client may apply to the smashed data before it leaves the device.

Gaussian noise: each token's activation vector h (length d) is sent as h + σ · rms(h) · z, z ~ N(0, I), with
rms(h) = sqrt(mean_i h_i²) of that vector. The noise is relative to each token's own scale because a Llama's hidden
states differ in norm by orders of magnitude between tokens (the first token's is the largest), so one absolute σ
would drown some tokens and leave others untouched. The scale is taken from the activations without gradient: the
noise is a constant offset for backpropagation, so the gradient the server returns passes through unchanged.

σ = 0 returns the tensor itself (the very object), so a run without the defence is bit for bit the run before it
existed. The int8 wire (``training.activation_precision: int8``) is the other defence; it lives in
:mod:`fsllm_sim.training.wire` because it is also a payload format.
"""
from __future__ import annotations

import math

import torch

from fsllm_sim.errors import ConfigError

MAX_NOISE_SIGMA = 100.0  # relative to the activations' own scale; beyond it nothing of the signal is left


def check_noise_sigma(sigma: float, where: str = "noise sigma") -> float:
    """σ as a float, or one line naming ``where`` and the allowed range."""
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}={sigma!r} must be a number in [0, {MAX_NOISE_SIGMA:g}]") from None
    if not math.isfinite(value) or not 0.0 <= value <= MAX_NOISE_SIGMA:
        raise ConfigError(f"{where}={sigma!r} must be a number in [0, {MAX_NOISE_SIGMA:g}]")
    return value


def token_rms(t: torch.Tensor) -> torch.Tensor:
    """Root mean square of each vector along the last dimension (shape of ``t`` without it, kept as size 1)."""
    return t.detach().float().pow(2).mean(dim=-1, keepdim=True).sqrt()


def gaussian_noise(t: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``t`` plus noise of σ times each token's rms (see the module text); ``t`` itself when σ = 0."""
    sigma = check_noise_sigma(sigma)
    if sigma == 0.0:
        return t
    z = torch.randn(t.shape, generator=generator, dtype=torch.float32, device="cpu").to(t.device)
    return t + (sigma * token_rms(t) * z).to(t.dtype)
