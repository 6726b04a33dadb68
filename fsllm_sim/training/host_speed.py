"""Effective float32 speed of the simulating host, for the engine's ``timing: measured``.

A measured op's simulated duration is its wall time here times (host speed / device speed), so the
host speed must be of the same kind as the devices' effective speeds: a sustained float32 matrix
product of the shapes a small transformer block multiplies.
"""
from __future__ import annotations

import time


def measure_host_flops_per_s(rows: int = 512, inner: int = 576, cols: int = 1536, min_seconds: float = 0.3) -> float:
    """FLOP/s of ``rows x inner @ inner x cols`` float32 products, repeated for at least ``min_seconds``."""
    import torch

    a = torch.randn(rows, inner)
    b = torch.randn(inner, cols)
    for _ in range(3):
        a @ b
    reps, start = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return 2.0 * rows * inner * cols * reps / elapsed
