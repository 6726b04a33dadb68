"""Random problem instances for tests and benchmarks, drawn with realistic magnitudes.

Costs follow the shape of a uniform transformer: client FLOPs grow linearly with the split ℓ,
server FLOPs shrink with it, activations do not depend on ℓ, adapter bits grow with ℓ·r.
Gains come from a log-distance path loss with Rayleigh fading, so instances resemble the
default scenario without depending on the scenario machinery.
"""
from __future__ import annotations

import numpy as np

from fsllm_sim.convergence import ConvergenceModel

from .problem import Problem, SplitRankProfile


def synthetic_profile(num_blocks: int = 30, ranks=(1, 2, 4, 8, 16), splits=None, batch_size: int = 4,
                      seq_len: int = 128, width: int = 576, flops_per_block_token: float = 2 * 3.4e6,
                      activation_bits_per_element: int = 16) -> SplitRankProfile:
    """A transformer-shaped profile (SmolLM2-like by default) for instances that need no model."""
    splits = np.arange(1, num_blocks) if splits is None else np.asarray(splits)
    ranks = np.asarray(ranks)
    tokens = batch_size * seq_len
    ell = splits[:, None].astype(float)
    r = ranks[None, :].astype(float)
    lora_fwd = 2 * tokens * r * (2 * width + 2 * width)  # q and v adapters: A (d×r) and B (r×d) each
    fwd_block = flops_per_block_token * tokens + lora_fwd
    fwd = ell * fwd_block
    bwd = 2.0 * fwd
    server = (num_blocks - ell) * 3.0 * fwd_block + 6.0 * tokens * width * 49152
    act = np.full_like(fwd, tokens * width * activation_bits_per_element)
    adapter = ell * r * 2 * (2 * width) * 32
    return SplitRankProfile(splits=splits, ranks=ranks, client_forward_flops=fwd, client_backward_flops=bwd,
                            server_flops=server, activation_bits=act, adapter_bits=adapter)


def random_problem(rng: np.random.Generator, num_clients: int = 4, num_subchannels_s: int = 8,
                   num_subchannels_f: int = 6, profile: SplitRankProfile | None = None,
                   subchannel_bandwidth_hz: float = 360e3, p_max_dbm: float = 23.0,
                   total_cap_s_w: float | None = None, total_cap_f_w: float | None = None,
                   local_iterations: int = 5, min_split: int = 1) -> Problem:
    """A random instance: clients 35–300 m from the BS, log-distance path loss, Rayleigh fading."""
    k, m, n = num_clients, num_subchannels_s, num_subchannels_f
    d_km = rng.uniform(0.035, 0.3, size=k)
    path_loss_db = 128.1 + 37.6 * np.log10(d_km) + rng.normal(0.0, 8.0, size=k)
    large = 10.0 ** (-path_loss_db / 10.0)
    gain_s = large[:, None] * rng.exponential(1.0, size=(k, m))
    gain_f = large[:, None] * rng.exponential(1.0, size=(k, n))
    noise_psd = 10 ** ((-174.0 + 7.0 - 30.0) / 10.0)
    device = 0.5e12 * rng.lognormal(0.0, 0.6, size=k)
    downlink = rng.uniform(20e6, 200e6, size=k)
    return Problem(
        gain_s=gain_s,
        gain_f=gain_f,
        bandwidth_s_hz=np.full(m, subchannel_bandwidth_hz),
        bandwidth_f_hz=np.full(n, subchannel_bandwidth_hz),
        noise_psd_w_per_hz=noise_psd,
        p_max_w=np.full(k, 10 ** ((p_max_dbm - 30.0) / 10.0)),
        local_iterations=local_iterations,
        device_flops_per_s=device,
        server_flops_per_s=50e12 / k,
        downlink_rate_bps=downlink,
        broadcast_rate_bps=float(downlink.min()),
        aggregation_time_s=0.01,
        profile=synthetic_profile() if profile is None else profile,
        convergence=ConvergenceModel(a=20.0, b=30.0, c=0.7, source="synthetic"),
        p_total_s_w=total_cap_s_w,
        p_total_f_w=total_cap_f_w,
        min_split=min_split,
    )
