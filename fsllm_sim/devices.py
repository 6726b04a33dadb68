"""Client devices (effective speed, memory) and the servers' compute models.

Speeds are *effective* FLOP/s (peak x utilisation), as the spec's f_k = peak_k * eta_k.
A device trace is a CSV file with the header ``client_id,flops_per_s,memory_bytes``; the optional energy columns
``kappa, flops_per_cycle, f_min_hz, f_max_hz, battery_j, rx_power_w, idle_power_w`` (docs/energy.md; an empty
cell takes the scenario's ``devices.energy`` value) override the scenario's per device, and further columns are
kept as metadata and ignored by the model. ``flops_per_s`` is the speed at f_max: with both ``flops_per_cycle``
and ``f_max_hz`` given they must agree with it (phi f_max = flops_per_s, within 1e-6). Rows beyond the number of
clients are ignored, and a trace with fewer rows than clients is an error. Pickle files are refused: loading one
runs code.
"""
from __future__ import annotations

import csv
import io
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .energy import DeviceEnergy, check_energy_parameters
from .errors import ConfigError

TRACE_COLUMNS = ("client_id", "flops_per_s", "memory_bytes")
ENERGY_COLUMNS = ("kappa", "flops_per_cycle", "f_min_hz", "f_max_hz", "battery_j", "rx_power_w", "idle_power_w")
_PICKLE_SUFFIXES = {".pkl", ".pickle", ".pk", ".p", ".npy", ".npz", ".pt", ".pth"}


@dataclass(frozen=True)
class DeviceFleet:
    """Per-client device characteristics, indexed by client 0..K-1."""

    flops_per_s: np.ndarray
    memory_bytes: np.ndarray
    source: str = "distribution"
    extra: dict = field(default_factory=dict)
    energy: DeviceEnergy | None = None  # set by make_fleet (device_energy): the scenario's and the trace's values
    trace_lines: tuple = ()  # a trace's line number of each client (for one-line errors), () when drawn

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


MAX_TRACE_BYTES = 64 * 1024 * 1024  # a trace of 10 000 clients is well under 1 MiB; refuse larger files unread


def _trace_specs() -> dict:
    """column -> the scenario fields whose ranges it must obey: flops_per_s every ``devices.speed.*_flops_per_s``,
    memory_bytes ``devices.memory_bytes`` (read from the schema, so the two cannot drift apart)."""
    from .config.fields import iter_fields
    from .config.schema import DevicesConfig, DeviceSpeedConfig

    speed = [(f"devices.speed.{f.name}", spec) for f, spec, _, _ in iter_fields(DeviceSpeedConfig)
             if f.name.endswith("_flops_per_s")]
    memory = [(f"devices.{f.name}", spec) for f, spec, _, _ in iter_fields(DevicesConfig) if f.name == "memory_bytes"]
    return {"flops_per_s": speed, "memory_bytes": memory}


def _read_trace_text(p: Path, where: str, what: str = "a device trace") -> str:
    try:
        size = p.stat().st_size
        if size > MAX_TRACE_BYTES:
            raw = b""
        else:
            with p.open("rb") as fh:
                raw = fh.read(MAX_TRACE_BYTES + 1)
            size = max(size, len(raw))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the file ({exc.strerror or type(exc).__name__})") from None
    if size > MAX_TRACE_BYTES:
        raise ConfigError(f"{where}: the file is {size / 2 ** 20:.1f} MiB ({size} bytes), larger than the "
                          f"{MAX_TRACE_BYTES / 2 ** 20:g} MiB ({MAX_TRACE_BYTES} bytes) allowed for {what}")
    if raw[:1] == b"\x80":
        raise ConfigError(f"{where}: looks like a pickle file, which is refused; use a CSV")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = raw.count(b"\n", 0, start) + 1
        column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        raise ConfigError(f"{where}: line {line}, column {column}: byte 0x{raw[start]:02x} is not UTF-8 (allowed: a "
                          f"CSV text file in UTF-8)") from None


def read_csv_file_text(p: Path, where: str, what: str = "a device trace") -> str:
    """The text of an untrusted CSV file: it must exist, be a regular file, fit the size limit, be UTF-8 and not
    a pickle; each problem one ConfigError line starting with ``where``."""
    try:
        mode = p.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{where}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the file ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{where}: not a regular file (allowed: a CSV file)")
    return _read_trace_text(p, where, what)


def load_device_trace(path: str | Path, num_clients: int, field: str = "devices.speed.trace_path") -> DeviceFleet:
    """Read the first ``num_clients`` rows of a device trace CSV (schema in the module docstring).

    The file is untrusted: it is read with a size limit (:data:`MAX_TRACE_BYTES`), must be UTF-8, and every
    flops_per_s and memory_bytes must lie in the range of the scenario fields it replaces
    (``devices.speed.*_flops_per_s``, ``devices.memory_bytes``). Problems are one-line ConfigErrors naming
    the file, line, column and the allowed range."""
    from .config.loader import _display_path, check_number

    p = Path(path)
    where = f"{field}: {_display_path(p)}"
    if p.suffix.lower() in _PICKLE_SUFFIXES:
        raise ConfigError(f"{where}: binary/pickle traces are refused (they can run code); use a CSV with columns "
                          f"{', '.join(TRACE_COLUMNS)}")
    text = read_csv_file_text(p, where)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        header = next(reader, [])
        missing = [c for c in TRACE_COLUMNS if c not in header]
        if missing:
            raise ConfigError(f"{where}: missing column(s) {', '.join(missing)} (required: {', '.join(TRACE_COLUMNS)})")
        for row in reader:
            if not row:  # a blank line
                continue
            rows.append((reader.line_num, row))
            if len(rows) == num_clients:
                break
    except csv.Error as exc:
        raise ConfigError(f"{where}: line {reader.line_num}: not readable as CSV ({exc})") from None
    if len(rows) < num_clients:
        raise ConfigError(f"{where}: {len(rows)} rows for {num_clients} clients (need at least one row per client)")
    specs = _trace_specs()
    columns = {name: header.index(name) for name in TRACE_COLUMNS}
    speeds, memory, extra = [], [], {}
    for line, row in rows:
        values = {}
        for name in ("flops_per_s", "memory_bytes"):
            col = columns[name]
            at = f"{where}: line {line}, column {col + 1} ({name})"
            if col >= len(row):
                raise ConfigError(f"{at}: missing value (the line has {len(row)} fields for {len(header)} columns)")
            for _, spec in specs[name]:  # every scenario field the column stands for
                values[name] = check_number(row[col], spec, at)
        speeds.append(float(values["flops_per_s"]))
        memory.append(float(values["memory_bytes"]))
        for i, key in enumerate(header):
            if key not in TRACE_COLUMNS:
                extra.setdefault(key, []).append(row[i] if i < len(row) else None)
    return DeviceFleet(np.array(speeds), np.array(memory), source=str(p), extra=extra,
                       trace_lines=tuple(line for line, _ in rows))


def _energy_column(fleet: DeviceFleet, name: str, where: str) -> np.ndarray:
    """A trace's energy column as floats, NaN where the cell is empty or there is no column; one line per bad
    cell."""
    from .config.loader import _parse_number

    k = fleet.num_clients
    out = np.full(k, np.nan)
    for i, cell in enumerate(fleet.extra.get(name, ())):
        text = "" if cell is None else str(cell).strip()
        if text == "":
            continue
        value = _parse_number(text)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(float(value)):
            raise ConfigError(f"{where}: line {fleet.trace_lines[i]} ({name}): {text[:40]!r} is not a finite number")
        out[i] = float(value)
    return out


def device_energy(cfg, fleet: DeviceFleet) -> DeviceEnergy:
    """Every client's energy parameters: the trace's energy columns where given, else ``devices.energy``.

    The speed ``flops_per_s`` is the speed at f_max, so phi and f_max are one free number: phi from the trace or
    ``devices.energy.flops_per_cycle`` sets f_max = speed / phi; otherwise f_max (trace, else the scenario's) sets
    phi = speed / f_max. Both given for a device (trace, or trace and scenario) must agree within 1e-6."""
    en = cfg.energy
    traced = bool(fleet.trace_lines)
    where = f"devices.speed.trace_path: {fleet.source}" if traced else "devices.energy"
    col = {name: _energy_column(fleet, name, where) for name in ENERGY_COLUMNS}

    def filled(name):
        default = getattr(en, name)
        return np.where(np.isnan(col[name]), np.nan if default is None else float(default), col[name])

    phi = filled("flops_per_cycle")
    f_max_traced = col["f_max_hz"]
    both = ~np.isnan(phi) & ~np.isnan(f_max_traced)
    mismatch = both & ~np.isclose(phi * np.nan_to_num(f_max_traced), fleet.flops_per_s, rtol=1e-6, atol=0.0)
    if np.any(mismatch):
        i = int(np.argmax(mismatch))
        raise ConfigError(f"{where}: line {fleet.trace_lines[i] if traced else i}: flops_per_cycle {phi[i]:.6g} x "
                          f"f_max_hz {f_max_traced[i]:.6g} = {phi[i] * f_max_traced[i]:.6g} FLOP/s differs from "
                          f"flops_per_s {fleet.flops_per_s[i]:.6g}; allowed: the speed at f_max (or leave one of the "
                          f"two empty)")
    f_max = np.where(np.isnan(phi), filled("f_max_hz"), fleet.flops_per_s / np.where(np.isnan(phi), 1.0, phi))
    phi = np.where(np.isnan(phi), fleet.flops_per_s / f_max, phi)
    battery = filled("battery_j")
    battery = np.where(np.isnan(battery), np.inf, battery)
    check_energy_parameters(filled("kappa"), phi, filled("f_min_hz"), f_max, battery, filled("rx_power_w"),
                            filled("idle_power_w"), where=where)
    source = "trace" if any(name in fleet.extra for name in ENERGY_COLUMNS) else "devices.energy"
    return DeviceEnergy(kappa=filled("kappa"), flops_per_cycle=phi, f_min_hz=filled("f_min_hz"), f_max_hz=f_max,
                        battery_j=battery, rx_power_w=filled("rx_power_w"), idle_power_w=filled("idle_power_w"),
                        source=source)


def make_fleet(cfg, num_clients: int, rng: np.random.Generator) -> DeviceFleet:
    """Device fleet from a scenario's ``devices`` section, with every client's energy parameters."""
    spd = cfg.speed
    if spd.distribution == "trace":
        fleet = load_device_trace(spd.trace_path, num_clients)
    else:
        speeds = draw_speeds_flops_per_s(rng, num_clients, spd.distribution,
                                         median_flops_per_s=spd.median_flops_per_s, sigma=spd.sigma,
                                         low_flops_per_s=spd.low_flops_per_s, high_flops_per_s=spd.high_flops_per_s)
        fleet = DeviceFleet(speeds, np.full(num_clients, float(cfg.memory_bytes)), source=spd.distribution)
    return replace(fleet, energy=device_energy(cfg, fleet))


def aggregation_time_s(num_clients: int, adapter_parameters: int, flops_per_s: float, overhead_s: float = 0.0) -> float:
    """Time of the federated server's weighted average of K adapters of P parameters.

    A weighted sum costs one multiply and one add per parameter per client: 2·K·P FLOPs.
    """
    return overhead_s + 2.0 * num_clients * adapter_parameters / flops_per_s
