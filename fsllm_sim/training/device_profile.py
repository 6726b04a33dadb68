"""Measure this host as a client device: the row ``fsllm-sim profile-device`` writes into a device trace.

The pieces timed are those the simulator's counted FLOP profile is made of
(:func:`~fsllm_sim.training.flop_count.count_component_flops`): the embedding forward, one transformer block with
LoRA of rank r (forward, and backward with the input requiring a gradient, as every client block but the first),
and the final norm + LM head + loss (forward and backward), at a b x L batch, on the chosen device and compute
dtype. Each piece runs ``warmup`` times, then ``reps`` times with the device synchronised around every repetition;
the median is the measurement and the interquartile range relative to the median is its noise.

The device's effective speed, the ``flops_per_s`` of the trace, is the block's counted FLOPs (forward + backward)
over its measured time: the simulator, timing compute as FLOPs / speed, then reproduces this host's block time
exactly, and the other pieces to the extent their FLOP/s match the block's (each piece's own achieved FLOP/s is
written beside it, so the difference is visible). ``memory_bytes`` is the memory the device offers training: the
card's total memory on CUDA, the physical memory on the CPU, unless given.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time
from dataclasses import dataclass

import torch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.device import Compute, process_peak_rss_bytes, reset_process_peak_rss, resolve_compute

# Columns after the three a device trace needs (client_id, flops_per_s, memory_bytes); the trace reader keeps
# them as metadata.
PROFILE_COLUMNS = (
    "client_id", "flops_per_s", "memory_bytes", "device_name", "device", "dtype", "model", "batch_size", "seq_len",
    "rank", "block_forward_s", "block_backward_s", "block_time_rel_noise", "embedding_forward_s",
    "head_forward_s", "head_backward_s", "block_forward_flops", "block_backward_flops", "embedding_forward_flops",
    "head_forward_flops", "head_backward_flops", "block_forward_flops_per_s", "block_backward_flops_per_s",
    "head_flops_per_s", "peak_memory_bytes", "memory_counter", "reps", "threads", "torch", "host", "measured_at",
)


@dataclass(frozen=True)
class Timing:
    median_s: float
    q1_s: float
    q3_s: float

    @property
    def rel_noise(self) -> float:
        return (self.q3_s - self.q1_s) / self.median_s if self.median_s > 0 else float("inf")


def time_op(fn, compute: Compute, *, reps: int, warmup: int = 2) -> Timing:
    """Median and quartiles of ``fn()``'s wall time, the device synchronised around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        compute.synchronize()
        t0 = time.perf_counter()
        fn()
        compute.synchronize()
        times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=4, method="inclusive")  # reps >= 3 (profile_device checks)
    return Timing(median_s=statistics.median(times), q1_s=q[0], q3_s=q[2])


def host_memory_bytes(compute: Compute) -> int:
    if compute.is_cuda:
        return int(torch.cuda.get_device_properties(compute.device).total_memory)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def host_device_name(compute: Compute) -> str:
    if compute.is_cuda:
        return torch.cuda.get_device_name(compute.device)
    return (platform.processor() or platform.machine() or "cpu") + f" ({os.cpu_count()} CPUs)"


def profile_device(model_name: str = "smollm2-135m", *, batch_size: int = 4, seq_len: int = 128, rank: int = 8,
                   target_modules=None, device: str = "cpu", dtype: str = "float32", reps: int = 10,
                   warmup: int = 2, memory_bytes: int | None = None, client_id: int = 0, model=None) -> dict:
    """One device-trace row (:data:`PROFILE_COLUMNS`) measured on this host; see the module doc."""
    from fsllm_sim.training.flop_count import count_component_flops, lora_block_copy
    from fsllm_sim.training.lora import LoraSpec
    from fsllm_sim.training.models import load_model
    from fsllm_sim.training.split import causal_lm_loss, prepare_block_inputs, run_block, split_model

    for name, value, lo, hi in (("batch_size", batch_size, 1, 4096), ("seq_len", seq_len, 2, 131_072),
                                ("rank", rank, 1, 4096), ("reps", reps, 3, 10_000), ("warmup", warmup, 0, 1000)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{name}={value!r} is invalid; allowed: an integer in [{lo}, {hi}]")
    compute = resolve_compute(device, dtype, field="profile-device")
    lm = model if model is not None else load_model(model_name)
    if seq_len > int(lm.config.max_position_embeddings):
        raise ConfigError(f"seq_len={seq_len} exceeds {lm.name}'s max_position_embeddings="
                          f"{lm.config.max_position_embeddings}; allowed: 2..{lm.config.max_position_embeddings}")
    flops = count_component_flops(lm, rank, batch_size, seq_len, target_modules=target_modules)
    spec = LoraSpec(rank=rank, target_modules=tuple(target_modules) if target_modules else None).validate(lm.family)

    hf, fam = lm.model, lm.family
    holder = lora_block_copy(lm, spec).to(compute.device)
    block = holder.blocks[0]
    hf.to(compute.device)
    client, server = split_model(hf, 1, compute)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, lm.vocab_size, (batch_size, seq_len), generator=g).to(compute.device)
    mask = torch.ones_like(ids)
    hidden0 = torch.randn(batch_size, seq_len, lm.hidden_size, generator=g).to(compute.device)
    inputs = prepare_block_inputs(fam, hf.config, hidden0, mask, server.rotary_emb)

    compute.reset_peak_memory()
    cpu_reset = (not compute.is_cuda) and reset_process_peak_rss()

    def block_forward():
        x = hidden0.detach().requires_grad_(True)
        with compute.autocast():
            return run_block(fam, block, x, inputs)

    def block_pair():  # forward then backward, timed as one (what the block's speed is made of)
        out = block_forward()
        out.backward(torch.ones_like(out))

    def head_forward():
        h = hidden0.detach().requires_grad_(True)
        with compute.autocast():
            logits = server.lm_head(server.norm(h))
        return causal_lm_loss(logits, ids)

    with torch.enable_grad():
        with torch.no_grad():
            t_emb = time_op(lambda: client.embed(ids), compute, reps=reps, warmup=warmup)
        t_bf = time_op(block_forward, compute, reps=reps, warmup=warmup)
        t_pair = time_op(block_pair, compute, reps=reps, warmup=warmup)
        t_hf = time_op(head_forward, compute, reps=reps, warmup=warmup)
        t_hpair = time_op(lambda: head_forward().backward(), compute, reps=reps, warmup=warmup)
    block_s = t_pair.median_s
    block_bwd_s = max(block_s - t_bf.median_s, 1e-12)
    head_bwd_s = max(t_hpair.median_s - t_hf.median_s, 1e-12)
    block_flops = flops.block_forward + flops.block_backward
    if compute.is_cuda:
        peak, counter = compute.peak_memory_bytes(), "torch.cuda.max_memory_allocated"
    else:
        peak, counter = (process_peak_rss_bytes() if cpu_reset else None), "process VmHWM"
    return {
        "client_id": int(client_id),
        "flops_per_s": block_flops / block_s,
        "memory_bytes": int(memory_bytes) if memory_bytes is not None else host_memory_bytes(compute),
        "device_name": host_device_name(compute), "device": str(compute.device), "dtype": dtype,
        "model": lm.name, "batch_size": batch_size, "seq_len": seq_len, "rank": rank,
        "block_forward_s": t_bf.median_s, "block_backward_s": block_bwd_s,
        "block_time_rel_noise": t_pair.rel_noise,
        "embedding_forward_s": t_emb.median_s, "head_forward_s": t_hf.median_s, "head_backward_s": head_bwd_s,
        "block_forward_flops": flops.block_forward, "block_backward_flops": flops.block_backward,
        "embedding_forward_flops": flops.embedding_forward, "head_forward_flops": flops.head_forward,
        "head_backward_flops": flops.head_backward,
        "block_forward_flops_per_s": flops.block_forward / t_bf.median_s,
        "block_backward_flops_per_s": flops.block_backward / block_bwd_s,
        "head_flops_per_s": (flops.head_forward + flops.head_backward) / t_hpair.median_s,
        "peak_memory_bytes": peak if peak is not None else "", "memory_counter": counter,
        "reps": reps, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "host": platform.node(), "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
