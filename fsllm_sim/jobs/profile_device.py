"""`fsllm-sim profile-device`: measure this host as a client device and write device-trace rows.

The rows are in the format ``devices.speed.distribution: trace`` reads (``client_id, flops_per_s, memory_bytes``
and the measurement's details as further columns, which the trace reader keeps as metadata), so a phone, a Jetson
or a laptop measured once becomes simulated clients: run this on the device, copy the CSV back, point
``devices.speed.trace_path`` at it. ``--count N`` writes N clients of this device; ``--append`` adds them after
the rows already in the file (client ids continue), so one file can hold a mixed fleet. The same file read as
``simulation.host_profile`` gives ``simulation.timing: measured`` this host's speed instead of a matrix-product
micro-benchmark. What is measured: :mod:`fsllm_sim.training.device_profile`.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import ConfigError
from ..rundir import atomic_write_text
from ..training.device import resolve_compute
from ..training.device_profile import PROFILE_COLUMNS, profile_device

MAX_COUNT = 100_000


def _existing_rows(path: Path) -> list[dict]:
    from ..devices import read_csv_file_text

    text = read_csv_file_text(path, f"--append {path}", "a device profile")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    if rows and list(rows[0].keys())[:3] != list(PROFILE_COLUMNS[:3]):
        raise ConfigError(f"--append {path}: the file's columns {list(rows[0].keys())[:3]} are not a device trace's "
                          f"({', '.join(PROFILE_COLUMNS[:3])}); allowed: a file written by profile-device")
    return rows


def run_profile_device(*, out: str, model: str = "smollm2-135m", batch_size: int = 4, seq_len: int = 128,
                       rank: int = 8, device: str = "cpu", dtype: str = "float32", reps: int = 10,
                       memory_bytes: int | None = None, count: int = 1, append: bool = False, echo=print) -> Path:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise ConfigError(f"--count={count!r} is invalid; allowed: an integer in [1, {MAX_COUNT}]")
    if memory_bytes is not None and not 1 <= memory_bytes <= 2 ** 50:
        raise ConfigError(f"--memory-bytes={memory_bytes!r} is invalid; allowed: 1..{2 ** 50}")
    for flag, value, lo, hi in (("--batch", batch_size, 1, 4096), ("--seq-len", seq_len, 2, 131_072),
                                ("--rank", rank, 1, 4096), ("--reps", reps, 3, 10_000)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{flag}={value!r} is invalid; allowed: an integer in [{lo}, {hi}]")
    path = Path(out)
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"--out {out!r}: allowed: a path ending in .csv")
    if path.exists() and not path.is_file():
        raise ConfigError(f"--out {out!r} exists and is not a file; allowed: a .csv file path")
    previous = _existing_rows(path) if append and path.is_file() else []
    resolve_compute(device, dtype, field="profile-device")  # an absent device fails before the model loads
    echo(f"profiling {model} on {device} ({dtype}): b={batch_size}, L={seq_len}, r={rank}, {reps} repetitions")
    row = profile_device(model, batch_size=batch_size, seq_len=seq_len, rank=rank, device=device, dtype=dtype,
                         reps=reps, memory_bytes=memory_bytes)
    first = 1 + max((int(r["client_id"]) for r in previous), default=-1)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(PROFILE_COLUMNS), extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(previous)
    writer.writerows({**row, "client_id": first + i} for i in range(count))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())
    echo(f"{row['device_name']}: {row['flops_per_s'] / 1e12:.4g} TFLOP/s effective (block forward + backward, "
         f"noise ±{100 * row['block_time_rel_noise'] / 2:.1f} % of the median), block forward "
         f"{row['block_forward_s'] * 1e3:.3g} ms, backward {row['block_backward_s'] * 1e3:.3g} ms, head "
         f"{(row['head_forward_s'] + row['head_backward_s']) * 1e3:.3g} ms; memory {row['memory_bytes'] / 2**30:.1f} "
         f"GiB; peak during the measurement "
         + (f"{row['peak_memory_bytes'] / 2**20:.0f} MiB" if row["peak_memory_bytes"] != "" else "not available"))
    echo(f"wrote {count} client row(s) (ids {first}..{first + count - 1}) to {path}; use it with "
         f"devices.speed.distribution: trace, devices.speed.trace_path: {path}")
    return path
