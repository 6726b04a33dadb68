"""The channel log of a run: what the radio records of each uplink transfer, and how a run writes it.

``simulation.channel_log`` chooses the detail:

* ``summary`` (default): one row per transfer in ``channel.csv`` (:data:`SUMMARY_COLUMNS`): when it started and
  ended, the bits it carried (up to the interruption, for one cut short) and their mean rate, and with an outage
  rule the time it stalled. The radio keeps only these rows, so memory grows with transfers, not fading blocks.
* ``full``: also every piecewise-constant segment (one per fading block or mobility step) in
  ``channel_blocks.parquet`` (:data:`BLOCK_COLUMNS`, columnar and compressed), streamed to the file in row groups
  from the radio's per-transfer arrays, so no row list of the whole run is ever built.

Where no uplink transfer was recorded (``simulation.record_channel: false``) neither file is written.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .trace import CHANNEL_COLUMNS as BLOCK_COLUMNS, OUTAGE_COLUMN

CHANNEL_LOGS = ("summary", "full")
SUMMARY_COLUMNS = ("client", "band", "start_s", "end_s", "bits", "mean_rate_bps")
STALL_COLUMN = "stall_s"  # with an outage rule: seconds of the transfer in which every subchannel was in outage
BLOCK_FILE = "channel_blocks.parquet"
BANDS = ("f", "s")  # the uplink bands a transfer is recorded on (one dictionary for every row group)
ROW_GROUP_ROWS = 1 << 20  # segments per Parquet row group: about 30 MB of columns in memory at a time


def summary_row(client: int, band: str, start_s: float, end_s: float, bits: float,
                stall_s: float | None = None) -> tuple:
    """One transfer's summary row; ``stall_s`` only with an outage rule."""
    mean = bits / (end_s - start_s) if end_s > start_s else 0.0
    row = (int(client), band, float(start_s), float(end_s), float(bits), float(mean))
    return row if stall_s is None else row + (float(stall_s),)


def segments_summary_row(client: int, band: str, starts_s, ends_s, rates_bps, *, bits: float | None = None,
                         outage: bool = False) -> tuple:
    """The summary row of a transfer from its recorded segments: ``bits`` when the payload is known (a transfer
    that completed), else the integral of the rates (one cut short); the stall time with an outage rule."""
    starts, ends, rates = (np.asarray(x, dtype=float) for x in (starts_s, ends_s, rates_bps))
    durations = ends - starts
    if bits is None:
        bits = float(np.dot(durations, rates))
    stall = float(durations[rates <= 0].sum()) if outage else None
    return summary_row(client, band, starts[0], ends[-1], bits, stall)


def summary_from_blocks(radio_rows) -> list[tuple]:
    """The summary rows of a run recorded in full (one per transfer, in recording order): the bits are the
    integral of the recorded rates."""
    return [segments_summary_row(r[0], r[1], r[2], r[3], r[4], outage=len(r) == 6) for r in radio_rows]


def summary_columns(outage: bool) -> tuple:
    return SUMMARY_COLUMNS + ((STALL_COLUMN,) if outage else ())


def write_blocks_parquet(path: Path, radio_rows, row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Stream the radio's per-transfer segment arrays into a Parquet file, written atomically (a temporary file
    beside it, then renamed); returns the number of segments written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    outage = any(len(r) == 6 for r in radio_rows)
    types = (pa.int32(), pa.dictionary(pa.int8(), pa.string()), pa.float64(), pa.float64(), pa.float64())
    fields = [pa.field(name, kind) for name, kind in zip(BLOCK_COLUMNS, types)]
    if outage:
        fields.append(pa.field(OUTAGE_COLUMN, pa.int32()))
    schema = pa.schema(fields)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    written = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            chunk: list = []
            size = 0
            for row in radio_rows:
                chunk.append(row)
                size += len(row[2])
                if size >= row_group_rows:
                    written += _write_chunk(writer, schema, chunk, outage)
                    chunk, size = [], 0
            if chunk or not written:
                written += _write_chunk(writer, schema, chunk, outage)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return written


def _write_chunk(writer, schema, rows, outage: bool) -> int:
    import pyarrow as pa

    n = [len(r[2]) for r in rows]
    code = {b: i for i, b in enumerate(BANDS)}
    columns = [
        pa.array(np.repeat(np.array([r[0] for r in rows], dtype=np.int32), n), type=pa.int32()),
        pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.array([code[r[1]] for r in rows], dtype=np.int8), n),
                                                type=pa.int8()), pa.array(BANDS, type=pa.string())),
        pa.array(_cat([r[2] for r in rows]), type=pa.float64()),
        pa.array(_cat([r[3] for r in rows]), type=pa.float64()),
        pa.array(_cat([r[4] for r in rows]), type=pa.float64()),
    ]
    if outage:
        columns.append(pa.array(_cat([r[5] for r in rows]).astype(np.int32), type=pa.int32()))
    writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    return int(sum(n))


def _cat(arrays) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=float) for a in arrays]) if arrays else np.zeros(0)


def read_blocks(path: Path) -> list[tuple]:
    """The rows of a ``channel_blocks.parquet`` as ``(client, band, start_s, end_s, rate_bps[, outage])`` tuples,
    the order written (for tests and small runs; large logs are better read with pyarrow or pandas directly)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    cols = [table.column(name).to_pylist() for name in table.column_names]
    return list(zip(*cols))
