"""Benchmarks of the training engine, measured side by side in one run (``python -m fsllm_sim.benchmarks.training``).

1. Split-vs-unsplit step time. One training step of the split system (client forward -> MS step -> client
   backward, with its adapter swapping, wire casting and two optimisers) against one step of the plain
   unsplit peft model (forward, backward, AdamW) on the same batch, same rank, same threads. Repetitions are
   interleaved (unsplit, split, unsplit, split, ...) after warm-up, so drifts of a shared machine hit both
   alike, and medians are compared. Target: ratio ≤ 1.05.
2. Peak memory of one process training K = 32 clients vs K = 1 (target ≤ 1.3×). Each K runs in a fresh
   subprocess (one round: every client one iteration, upload, FedAvg, broadcast — so every client's adapter,
   its AdamW moments and, in v1, its server copy exist) and reports its peak resident set size.
   Peak RSS is used rather than tracemalloc because tensor storage is allocated by torch's C++ allocator,
   which tracemalloc does not see; the peak RSS covers weights, adapters, optimiser state, activations and
   allocator caches, and the two processes differ only in K. On Linux the peak is read from ``VmHWM`` in
   ``/proc/self/status`` rather than ``getrusage().ru_maxrss``: the latter survives fork+exec, so a child of
   this (large) benchmark process would report the *parent's* peak. The child also resets the peak counter
   (``/proc/self/clear_refs``) after building the system, so it reports the whole-process peak and the peak
   of the training phase alone; both ratios are printed.
3. Steps per second of SmolLM2 LoRA training on this CPU (split system, b = 4, L = 128) with
   ``torch.get_num_threads()`` threads.
4. Per device and compute dtype (``--devices``, ``--dtypes``; default: the CPU at float32 and bfloat16, and
   every CUDA card torch sees at float32 and bfloat16): training tokens per second of the split step (b L /
   median step time, the device synchronised around each step) and its peak memory — torch's CUDA peak
   allocation counter on a card, the process's resident-set peak of the training phase (VmHWM after a reset) on
   the CPU. A device the host lacks is reported as absent in one line, not skipped silently.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from fsllm_sim.training.device import process_peak_rss_bytes as peak_rss_bytes
from fsllm_sim.training.device import reset_process_peak_rss as _reset_vm_hwm

DEFAULT_MODEL = "smollm2-135m"


def _batch(vocab: int, batch_size: int, seq_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch_size, seq_len), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def step_time_ratio(model_name: str, *, batch_size: int, seq_len: int, reps: int, warmup: int = 2,
                    split: int | None = None, rank: int = 8, activation_precision: str = "fp16",
                    device: str = "cpu", dtype: str = "float32") -> dict:
    """Median step times of the unsplit peft model and the split system, interleaved, on one device and
    compute dtype (both under the same autocast)."""
    from fsllm_sim.training.device import resolve_compute
    from fsllm_sim.training.lora import LoraSpec, attach_lora
    from fsllm_sim.training.models import load_model
    from fsllm_sim.training.optim import OptimizerSpec
    from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem

    compute = resolve_compute(device, dtype, field="bench")
    opt_spec = OptimizerSpec("adamw", lr=1e-4)
    ref = load_model(model_name, seed=0)
    ref.model.to(compute.device)
    peft_model = attach_lora(ref.model, ref.family, LoraSpec(rank=rank), seed=0)
    ref_opt = opt_spec.build(p for p in peft_model.parameters() if p.requires_grad)
    system = SplitFedSystem(load_model(model_name, seed=0),
                            SplitFedConfig(split=split, rank=rank, learning_rate=1e-4,
                                           activation_precision=activation_precision, device=device, dtype=dtype),
                            num_clients=1)
    batch = _batch(ref.vocab_size, batch_size, seq_len)
    on_device = {k: v.to(compute.device) for k, v in batch.items()}

    def unsplit_step():
        with compute.autocast():
            loss = peft_model(**on_device).loss
        loss.backward()
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)

    def split_step():
        system.iteration(0, batch)

    for _ in range(warmup):
        unsplit_step()
        split_step()
    t_unsplit, t_split = [], []
    for i in range(reps):
        order = (unsplit_step, split_step) if i % 2 == 0 else (split_step, unsplit_step)
        for fn in order:
            compute.synchronize()
            t0 = time.perf_counter()
            fn()
            compute.synchronize()
            (t_unsplit if fn is unsplit_step else t_split).append(time.perf_counter() - t0)
    mu, ms = statistics.median(t_unsplit), statistics.median(t_split)
    return {"model": model_name, "batch_size": batch_size, "seq_len": seq_len, "split": system.split,
            "rank": rank, "reps": reps, "threads": torch.get_num_threads(), "device": str(compute.device),
            "dtype": dtype, "unsplit_s": mu, "split_s": ms,
            "ratio": ms / mu, "split_steps_per_s": 1.0 / ms, "unsplit_steps_per_s": 1.0 / mu}


def default_devices() -> list[str]:
    """The CPU and every CUDA card torch sees."""
    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def device_throughput(model_name: str, *, device: str, dtype: str, batch_size: int, seq_len: int, reps: int,
                      warmup: int = 2, split: int | None = None, rank: int = 8) -> dict:
    """Training tokens per second of the split step and the training phase's peak memory on one device at one
    compute dtype (see the module doc); ``{"absent": reason}`` when the host has no such device."""
    from fsllm_sim.errors import ConfigError
    from fsllm_sim.training.device import resolve_compute
    from fsllm_sim.training.models import load_model
    from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem

    try:
        compute = resolve_compute(device, dtype, field="bench")
    except ConfigError as exc:
        return {"device": device, "dtype": dtype, "absent": str(exc)}
    lm = load_model(model_name, seed=0)
    system = SplitFedSystem(lm, SplitFedConfig(split=split, rank=rank, learning_rate=1e-4, device=device,
                                               dtype=dtype), num_clients=1)
    batch = _batch(lm.vocab_size, batch_size, seq_len)
    for _ in range(warmup):
        system.iteration(0, batch)
    compute.synchronize()
    compute.reset_peak_memory()
    cpu_reset = (not compute.is_cuda) and _reset_vm_hwm()
    times = []
    for _ in range(reps):
        compute.synchronize()
        t0 = time.perf_counter()
        system.iteration(0, batch)
        compute.synchronize()
        times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    if compute.is_cuda:
        peak, counter = compute.peak_memory_bytes(), "torch.cuda.max_memory_allocated"
    else:
        peak, counter = (peak_rss_bytes() if cpu_reset else None), "process VmHWM (training phase)"
    out = {"device": str(compute.device), "dtype": dtype, "model": model_name, "batch_size": batch_size,
           "seq_len": seq_len, "rank": rank, "split": system.split, "reps": reps, "step_s": step,
           "tokens_per_s": batch_size * seq_len / step, "peak_memory_bytes": peak, "memory_counter": counter}
    if compute.is_cuda:
        out["device_name"] = torch.cuda.get_device_name(compute.device)
    return out


def _memory_child(model_name: str, num_clients: int, batch_size: int, seq_len: int, split: int | None, rank: int,
                  server_mode: str) -> dict:
    import gc

    from fsllm_sim.training.models import load_model
    from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem

    lm = load_model(model_name, seed=0)
    system = SplitFedSystem(lm, SplitFedConfig(split=split, rank=rank, server_mode=server_mode),
                            num_clients=num_clients)
    batch = _batch(lm.vocab_size, batch_size, seq_len)
    gc.collect()
    # the load peak would hide the training phase: remember the peak so far, then reset the kernel's peak
    # counter so that the final VmHWM covers training only
    setup_peak = peak_rss_bytes()
    reset = _reset_vm_hwm()
    t0 = time.perf_counter()
    for k in range(num_clients):
        system.iteration(k, batch)
    system.finish_round()
    rep = system.memory_report()
    train_peak = peak_rss_bytes()
    if setup_peak is not None and train_peak is not None:
        whole = max(setup_peak, train_peak)
    else:  # not Linux: ru_maxrss (may include the parent's peak, see the module doc)
        whole = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"num_clients": num_clients, "maxrss_bytes": whole, "train_peak_bytes": train_peak if reset else None,
            "param_bytes": rep.total_param_bytes, "base_param_bytes": rep.base_param_bytes,
            "round_s": time.perf_counter() - t0}


def peak_memory_ratio(model_name: str, *, clients=(1, 32), batch_size: int, seq_len: int, split: int | None = None,
                      rank: int = 8, server_mode: str = "v1", threads: int | None = None) -> dict:
    """Run each K in its own subprocess and compare peak RSS."""
    results = {}
    for k in clients:
        cmd = [sys.executable, "-m", "fsllm_sim.benchmarks.training", "--memory-child", str(k), "--model", model_name,
               "--batch-size", str(batch_size), "--seq-len", str(seq_len), "--rank", str(rank),
               "--server-mode", server_mode] + (["--split", str(split)] if split is not None else []) \
            + (["--threads", str(threads)] if threads is not None else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ})
        if out.returncode != 0:
            raise RuntimeError(f"memory child K={k} failed: {out.stderr.strip().splitlines()[-1:]}")
        results[k] = json.loads(out.stdout.strip().splitlines()[-1])
    lo, hi = min(clients), max(clients)
    out = {"model": model_name, "batch_size": batch_size, "seq_len": seq_len, "rank": rank,
           "server_mode": server_mode, "runs": results,
           "ratio": results[hi]["maxrss_bytes"] / results[lo]["maxrss_bytes"], "train_ratio": None}
    if results[hi].get("train_peak_bytes") and results[lo].get("train_peak_bytes"):
        out["train_ratio"] = results[hi]["train_peak_bytes"] / results[lo]["train_peak_bytes"]
    return out


def _fmt_table(rows: list[tuple[str, str, str]]) -> str:
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]}" for r in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fsllm_sim.benchmarks.training", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--split", type=int, default=None)
    p.add_argument("--server-mode", default="v1")
    p.add_argument("--reps", type=int, default=7, help="interleaved repetitions of the step-time comparison")
    p.add_argument("--clients", type=int, default=32, help="K of the memory comparison (against K=1)")
    p.add_argument("--quick", action="store_true", help="tiny model only (smoke run, seconds)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--devices", default=None,
                   help="comma-separated devices of the tokens/s and memory table (default: cpu and every CUDA card)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated compute dtypes of that table")
    p.add_argument("--device-reps", type=int, default=5, help="timed steps per device and dtype")
    p.add_argument("--skip-devices", action="store_true", help="leave out the per-device table")
    p.add_argument("--step-device", default=None,
                   help="also compare split and unsplit step times on this device (e.g. cuda)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)

    if a.memory_child is not None:
        print(json.dumps(_memory_child(a.model, a.memory_child, a.batch_size, a.seq_len, a.split, a.rank,
                                       a.server_mode)))
        return 0

    t0 = time.perf_counter()
    results: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    rows = [("benchmark", "value", "target / note")]
    tiny = step_time_ratio("tiny-llama", batch_size=a.batch_size, seq_len=a.seq_len, reps=max(a.reps, 31),
                           rank=a.rank)
    results["tiny_step_ratio"] = tiny
    rows.append(("split/unsplit step time, tiny-llama", f"{tiny['ratio']:.3f}",
                 f"<= 1.05  ({tiny['split_s'] * 1e3:.1f} ms vs {tiny['unsplit_s'] * 1e3:.1f} ms, "
                 f"b={a.batch_size} L={a.seq_len}, median of {tiny['reps']})"))
    if not a.quick:
        big = step_time_ratio(a.model, batch_size=a.batch_size, seq_len=a.seq_len, reps=a.reps, split=a.split,
                              rank=a.rank)
        results["step_ratio"] = big
        rows.append((f"split/unsplit step time, {a.model}", f"{big['ratio']:.3f}",
                     f"<= 1.05  ({big['split_s']:.2f} s vs {big['unsplit_s']:.2f} s, ℓ={big['split']}, "
                     f"r={a.rank}, median of {a.reps})"))
        rows.append((f"steps/s, {a.model} split LoRA training", f"{big['split_steps_per_s']:.3f}",
                     f"b={a.batch_size} L={a.seq_len}, {big['threads']} threads "
                     f"(unsplit: {big['unsplit_steps_per_s']:.3f})"))
    if a.step_device and not a.quick:
        dev = step_time_ratio(a.model, batch_size=a.batch_size, seq_len=a.seq_len, reps=a.reps, split=a.split,
                              rank=a.rank, device=a.step_device)
        results["step_ratio_device"] = dev
        rows.append((f"split/unsplit step time, {a.model}, {dev['device']}", f"{dev['ratio']:.3f}",
                     f"<= 1.05  ({dev['split_s'] * 1e3:.1f} ms vs {dev['unsplit_s'] * 1e3:.1f} ms, median of "
                     f"{a.reps})"))
    if not a.skip_memory:
        model = "tiny-llama" if a.quick else a.model
        mem = peak_memory_ratio(model, clients=(1, a.clients), batch_size=a.batch_size, seq_len=a.seq_len,
                                split=a.split, rank=a.rank, server_mode=a.server_mode, threads=a.threads)
        results["memory"] = mem
        lo, hi = mem["runs"][1], mem["runs"][a.clients]
        rows.append((f"peak RSS K={a.clients} / K=1, {model} (whole process)", f"{mem['ratio']:.3f}",
                     f"<= 1.3  ({hi['maxrss_bytes'] / 2**20:.0f} MiB vs {lo['maxrss_bytes'] / 2**20:.0f} MiB, "
                     f"{a.server_mode}, r={a.rank}; incl. loading)"))
        if mem["train_ratio"] is not None:
            rows.append((f"peak RSS K={a.clients} / K=1, {model} (training phase)", f"{mem['train_ratio']:.3f}",
                         f"<= 1.3  ({hi['train_peak_bytes'] / 2**20:.0f} MiB vs "
                         f"{lo['train_peak_bytes'] / 2**20:.0f} MiB; parameters {hi['param_bytes'] / 2**20:.1f} "
                         f"vs {lo['param_bytes'] / 2**20:.1f} MiB)"))
    if not a.skip_devices:
        model = "tiny-llama" if a.quick else a.model
        devices = a.devices.split(",") if a.devices else default_devices()
        table = []
        for dev in devices:
            for dt in a.dtypes.split(","):
                r = device_throughput(model, device=dev.strip(), dtype=dt.strip(), batch_size=a.batch_size,
                                      seq_len=a.seq_len, reps=a.device_reps, split=a.split, rank=a.rank)
                table.append(r)
                if "absent" in r:
                    rows.append((f"tokens/s, {model}, {dev} {dt}", "absent", r["absent"]))
                    continue
                mem = (f"{r['peak_memory_bytes'] / 2**20:.0f} MiB peak ({r['memory_counter']})"
                       if r["peak_memory_bytes"] is not None else "peak memory: no counter on this host")
                rows.append((f"tokens/s, {model}, {r['device']} {dt}", f"{r['tokens_per_s']:.0f}",
                             f"{mem}; b={a.batch_size} L={a.seq_len} r={a.rank}, median of {a.device_reps} steps"
                             + (f", {r['device_name']}" if "device_name" in r else "")))
        results["devices"] = table
    results["wall_s"] = time.perf_counter() - t0
    print(_fmt_table(rows))
    print(f"(total {results['wall_s']:.0f} s, torch {torch.__version__}, {torch.get_num_threads()} threads)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
