"""Effective float32 speed of the simulating host, for the engine's ``timing: measured``.

A measured op's simulated duration is its wall time here times (host speed / device speed), so the
host speed must be of the same kind as the devices' effective speeds: a sustained float32 matrix
product of the shapes a small transformer block multiplies.
"""
from __future__ import annotations

import time


def measure_host_flops_per_s(rows: int = 512, inner: int = 576, cols: int = 1536, min_seconds: float = 0.3,
                             compute=None) -> float:
    """FLOP/s of ``rows x inner @ inner x cols`` products, repeated for at least ``min_seconds``, on the device
    and in the compute dtype real training uses (``compute``, a :class:`~fsllm_sim.training.device.Compute`;
    default the CPU at float32), so that measured wall times and this speed are of one kind."""
    import torch

    from fsllm_sim.training.device import CPU_FLOAT32

    compute = compute or CPU_FLOAT32
    a = torch.randn(rows, inner).to(compute.device)
    b = torch.randn(inner, cols).to(compute.device)
    with compute.autocast():
        for _ in range(3):
            a @ b
        compute.synchronize()
        reps, start = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            if reps % 8 == 0 or not compute.is_cuda:  # a CUDA launch returns at once: time whole batches
                compute.synchronize()
                elapsed = time.perf_counter() - start
                if elapsed >= min_seconds:
                    return 2.0 * rows * inner * cols * reps / elapsed


def host_speed_from_profile(path, config) -> tuple[float, list[str]]:
    """This host's effective speed from a ``profile-device`` CSV (its first row) and one line for each setting
    of ``config`` (a training config) that differs from the shape the profile was measured at (the speed is
    then used outside the configuration it holds for)."""
    from fsllm_sim.devices import load_device_trace

    fleet = load_device_trace(path, 1, field="simulation.host_profile")
    speed = float(fleet.flops_per_s[0])
    notes = []
    measured = {k: (v[0] if v else None) for k, v in fleet.extra.items()}
    for key, want in (("model", config.model), ("batch_size", config.batch_size), ("seq_len", config.seq_len),
                      ("rank", config.rank), ("dtype", config.dtype)):
        got = measured.get(key)
        if got is not None and str(got) != str(want):
            notes.append(f"simulation.host_profile {path} was measured with {key} {got}, this run trains with "
                         f"{want}: its speed {speed:.4g} FLOP/s is used outside the shape it was measured at")
    return speed, notes
