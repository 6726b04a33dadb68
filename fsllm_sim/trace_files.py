"""The two trace formats of a changing world, read as untrusted input (CSV only: never pickle).

Mobility trace (``mobility.model: trace``, ``mobility.trace_path``)::

    client,t_s,x_m,y_m
    0,0.0,120.0,0.0
    0,10.0,130.0,5.0
    3,0.0,-40.0,80.0

one row per knot: the scenario client's index (0..K-1), a time [s] >= 0 and a position [m] with the base
station at the origin. A client's rows come in non-decreasing time; its position is interpolated linearly
between its knots, held at its first knot before it and at its last knot after it (a client's position at
t = 0 is where it stands when the run starts). Every position lies in the cell, min_distance_m <=
hypot(x, y) <= radius_m of ``clients.layout``. Clients the trace does not name stay where they were placed.

Availability intervals (``availability.model: trace``, ``availability.trace_path``), in the style of the
FedScale client availability traces::

    client,start_s,end_s
    0,0.0,300.0
    0,420.0,900.0

one row per interval [start_s, end_s) in which the client is reachable (0 <= start_s < end_s). A client's
intervals must not overlap (touching ones are merged); the rows may come in any order. Clients the trace
does not name are always available.

Problems are one line: ``<field>: <file>: line <n>: <column>: <what is wrong> (allowed: ...)``.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from .devices import read_csv_file_text
from .errors import ConfigError

MOBILITY_COLUMNS = ("client", "t_s", "x_m", "y_m")
AVAILABILITY_COLUMNS = ("client", "start_s", "end_s")
MAX_ROWS = 2_000_000


def _rows(path, field: str, columns: tuple, what: str):
    """(where, [(line, {column: text})]) of a CSV with exactly ``columns``."""
    p = Path(path)
    shown = str(p) if str(p).isprintable() else ascii(str(p))
    where = f"{field}: {shown}"
    text = read_csv_file_text(p, where, what)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out = []
    try:
        header = [h.strip() for h in next(reader, [])]
        if tuple(header) != columns:
            raise ConfigError(f"{where}: line 1: the header is {','.join(header)[:80]!r} (allowed: exactly "
                              f"{','.join(columns)})")
        for row in reader:
            if not row:
                continue
            if len(row) != len(columns):
                raise ConfigError(f"{where}: line {reader.line_num}: {len(row)} fields (allowed: {len(columns)}: "
                                  f"{','.join(columns)})")
            out.append((reader.line_num, dict(zip(columns, (v.strip() for v in row)))))
            if len(out) > MAX_ROWS:
                raise ConfigError(f"{where}: more than {MAX_ROWS} rows (allowed: at most {MAX_ROWS})")
    except csv.Error as exc:
        raise ConfigError(f"{where}: line {reader.line_num}: not readable as CSV ({exc})") from None
    if not out:
        raise ConfigError(f"{where}: no rows after the header (allowed: at least one row)")
    return where, out


def _client(where, line, text, num_clients) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < num_clients:
        raise ConfigError(f"{where}: line {line}: client: {text[:40]!r} is not a client of the scenario (allowed: "
                          f"an integer from 0 to {num_clients - 1})")
    return value


def _number(where, line, name, text, low=-math.inf) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < low:
        allowed = "a finite number" + (f" >= {low:g}" if low > -math.inf else "")
        raise ConfigError(f"{where}: line {line}: {name}: {text[:40]!r} is not allowed (allowed: {allowed})")
    return value


def read_mobility_csv(path, num_clients: int, *, radius_m: float, min_distance_m: float) -> dict:
    """client -> (t_s (n,), xy_m (n, 2)) of a mobility trace (format in the module docstring)."""
    where, rows = _rows(path, "mobility.trace_path", MOBILITY_COLUMNS, "a mobility trace")
    knots: dict[int, list] = {}
    last: dict[int, tuple[float, int]] = {}
    for line, row in rows:
        c = _client(where, line, row["client"], num_clients)
        t = _number(where, line, "t_s", row["t_s"], 0.0)
        x = _number(where, line, "x_m", row["x_m"])
        y = _number(where, line, "y_m", row["y_m"])
        r = math.hypot(x, y)
        if not min_distance_m - 1e-9 <= r <= radius_m + 1e-9:
            raise ConfigError(f"{where}: line {line}: x_m, y_m: ({x:g}, {y:g}) is {r:.4g} m from the base station, "
                              f"outside the cell (allowed: {min_distance_m:g} to {radius_m:g} m, clients.layout)")
        if c in last and t < last[c][0]:
            raise ConfigError(f"{where}: line {line}: t_s: {t:g} s goes back in time for client {c} (line "
                              f"{last[c][1]} has {last[c][0]:g} s; allowed: non-decreasing times per client)")
        last[c] = (t, line)
        knots.setdefault(c, []).append((t, x, y))
    return {c: (np.array([k[0] for k in v]), np.array([[k[1], k[2]] for k in v])) for c, v in knots.items()}


def read_availability_csv(path, num_clients: int) -> dict:
    """client -> sorted, non-overlapping [(start_s, end_s)] of an availability trace (module docstring)."""
    where, rows = _rows(path, "availability.trace_path", AVAILABILITY_COLUMNS, "an availability trace")
    spans: dict[int, list] = {}
    for line, row in rows:
        c = _client(where, line, row["client"], num_clients)
        start = _number(where, line, "start_s", row["start_s"], 0.0)
        end = _number(where, line, "end_s", row["end_s"], 0.0)
        if end <= start:
            raise ConfigError(f"{where}: line {line}: end_s: {end:g} s is not after start_s {start:g} s (allowed: "
                              f"end_s > start_s)")
        spans.setdefault(c, []).append((start, end, line))
    out = {}
    for c, items in spans.items():
        items.sort()
        merged: list[list] = []
        for start, end, line in items:
            if merged and start < merged[-1][1]:
                raise ConfigError(f"{where}: line {line}: start_s: client {c}'s interval [{start:g}, {end:g}) s "
                                  f"overlaps the one of line {merged[-1][2]} (allowed: non-overlapping intervals "
                                  f"per client)")
            if merged and start == merged[-1][1]:
                merged[-1][1] = end
            else:
                merged.append([start, end, line])
        out[c] = [(s, e) for s, e, _ in merged]
    return out
