"""Client devices (effective speed, memory) and the servers' compute models.

Speeds are *effective* FLOP/s (peak x utilisation), as the spec's f_k = peak_k * eta_k.
A device trace is a CSV file with the header ``client_id,flops_per_s,memory_bytes`` (further columns
are kept as metadata and ignored by the model); rows beyond the number of clients are ignored, and a
trace with fewer rows than clients is an error. Pickle files are refused: loading one runs code.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError

TRACE_COLUMNS = ("client_id", "flops_per_s", "memory_bytes")
_PICKLE_SUFFIXES = {".pkl", ".pickle", ".pk", ".p", ".npy", ".npz", ".pt", ".pth"}


@dataclass(frozen=True)
class DeviceFleet:
    """Per-client device characteristics, indexed by client 0..K-1."""

    flops_per_s: np.ndarray
    memory_bytes: np.ndarray
    source: str = "distribution"
    extra: dict = field(default_factory=dict)

    @property
    def num_clients(self) -> int:
        return int(self.flops_per_s.size)


def draw_speeds_flops_per_s(rng: np.random.Generator, num_clients: int, distribution: str, *,
                            median_flops_per_s: float = 0.5e12, sigma: float = 0.6,
                            low_flops_per_s: float = 0.1e12, high_flops_per_s: float = 1e12) -> np.ndarray:
    """Draw K effective speeds; lognormal has median ``median_flops_per_s`` and ln-std ``sigma``."""
    if distribution == "lognormal":
        return median_flops_per_s * rng.lognormal(mean=0.0, sigma=sigma, size=num_clients)
    if distribution == "uniform":
        return rng.uniform(low_flops_per_s, high_flops_per_s, size=num_clients)
    if distribution == "fixed":
        return np.full(num_clients, float(median_flops_per_s))
    raise ConfigError(f"devices.speed.distribution={distribution!r} is not one of lognormal, uniform, fixed, trace")


def load_device_trace(path: str | Path, num_clients: int) -> DeviceFleet:
    """Read the first ``num_clients`` rows of a device trace CSV (schema in the module docstring)."""
    p = Path(path)
    where = f"devices.speed.trace_path: {p}"
    if p.suffix.lower() in _PICKLE_SUFFIXES:
        raise ConfigError(f"{where}: binary/pickle traces are refused (they can run code); use a CSV with columns "
                          f"{', '.join(TRACE_COLUMNS)}")
    if not p.is_file():
        raise ConfigError(f"{where}: file not found")
    head = p.read_bytes()[:2]
    if head[:1] == b"\x80":
        raise ConfigError(f"{where}: looks like a pickle file, which is refused; use a CSV")
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in TRACE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{where}: missing column(s) {', '.join(missing)} (required: {', '.join(TRACE_COLUMNS)})")
        rows = list(reader)
    if len(rows) < num_clients:
        raise ConfigError(f"{where}: {len(rows)} rows for {num_clients} clients (need at least one row per client)")
    speeds, memory, extra = [], [], {}
    for i, row in enumerate(rows[:num_clients], start=2):
        try:
            s = float(row["flops_per_s"])
            m = float(row["memory_bytes"])
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: line {i}: flops_per_s and memory_bytes must be numbers") from None
        if not (np.isfinite(s) and s > 0) or not (np.isfinite(m) and m > 0):
            raise ConfigError(f"{where}: line {i}: flops_per_s={row['flops_per_s']} and "
                              f"memory_bytes={row['memory_bytes']} must be > 0")
        speeds.append(s)
        memory.append(m)
        for key, value in row.items():
            if key not in TRACE_COLUMNS:
                extra.setdefault(key, []).append(value)
    return DeviceFleet(np.array(speeds), np.array(memory), source=str(p), extra=extra)


def make_fleet(cfg, num_clients: int, rng: np.random.Generator) -> DeviceFleet:
    """Device fleet from a scenario's ``devices`` section."""
    spd = cfg.speed
    if spd.distribution == "trace":
        return load_device_trace(spd.trace_path, num_clients)
    speeds = draw_speeds_flops_per_s(rng, num_clients, spd.distribution, median_flops_per_s=spd.median_flops_per_s,
                                     sigma=spd.sigma, low_flops_per_s=spd.low_flops_per_s,
                                     high_flops_per_s=spd.high_flops_per_s)
    return DeviceFleet(speeds, np.full(num_clients, float(cfg.memory_bytes)), source=spd.distribution)


def aggregation_time_s(num_clients: int, adapter_parameters: int, flops_per_s: float, overhead_s: float = 0.0) -> float:
    """Time of the federated server's weighted average of K adapters of P parameters.

    A weighted sum costs one multiply and one add per parameter per client: 2·K·P FLOPs.
    """
    return overhead_s + 2.0 * num_clients * adapter_parameters / flops_per_s
