"""What a simulation records: one row per phase, the rates the radio used, one row per round.

Rows are plain tuples while the simulation runs (cheap at K = 1000) and become CSV files at the end.
Floats are written with ``repr``, the shortest text that reads back to the same number, so the same
seed gives byte-identical files.
"""
from __future__ import annotations

import csv
import io

PHASES = ("forward", "uplink", "server_wait", "server", "downlink", "backward", "adapter_upload", "aggregation",
          "broadcast", "adapter_download")  # adapter_download: sl's hand-off, or the global adapter to a client
# that missed the last broadcast
# Marks of a changing world (docs/dynamics.md): a client becoming unavailable (drop, [t, t]); a transfer cut
# short ([t, t], bits: what had arrived); the round rule cancelling a client's work (cancel, [t, t]); a
# stretch in which every subchannel of a transfer was in outage (stall, [start, end]); a client's battery running
# out (battery, [t, t]: it leaves for good, docs/energy.md). A mark costs no energy (a stall lies inside its
# transfer's row, which counts it).
MARKS = ("drop", "abort", "cancel", "stall", "battery")
# A Trace row's fields; trace.csv adds each row's energy_j (fsllm_sim.engine.energy_account), computed when written.
ROW_COLUMNS = ("round", "iteration", "client", "phase", "start_s", "end_s", "bits", "flops")
TRACE_COLUMNS = ROW_COLUMNS + ("energy_j",)
CHANNEL_COLUMNS = ("client", "band", "start_s", "end_s", "rate_bps")
OUTAGE_COLUMN = "outage_subchannels"  # with an outage rule: the transfer's subchannels in outage in the segment
POSITION_COLUMNS = ("client", "t_s", "x_m", "y_m", "los")
ROUND_COLUMNS = ("round", "start_s", "end_s", "duration_s", "straggler", "analytic_round_s", "attempt", "selected",
                 "participants", "dropped", "cancelled", "deadline_hit", "aggregated_clients", "energy_j",
                 "worst_client_energy_j")
REAL_ROUND_COLUMNS = ("train_loss", "val_loss")
FS_CLIENT = -1  # the federated server's rows (aggregation, broadcast)
NO_ITERATION = -1


class Trace:
    """Phase rows ``(round, iteration, client, phase, start_s, end_s, bits, flops)`` in the order they end."""

    def __init__(self):
        self.rows: list[tuple] = []

    def add(self, round_index: int, iteration: int, client: int, phase: str, start_s: float, end_s: float,
            bits: float = 0.0, flops: float = 0.0) -> None:
        self.rows.append((round_index, iteration, client, phase, start_s, end_s, bits, flops))

    def as_dicts(self) -> list[dict]:
        return [dict(zip(ROW_COLUMNS, r)) for r in self.rows]


def csv_text(columns, rows) -> str:
    """CSV with a header; floats as their shortest round-trip text (``str`` of a float is its ``repr``: exact and
    deterministic), written by the csv module in one call (a run's trace has hundreds of thousands of rows)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def channel_rows(radio_rows) -> list[tuple]:
    """Flatten the radio's per-transfer arrays into ``(client, band, start_s, end_s, rate_bps)`` rows (and the
    subchannels in outage, when an outage rule is on)."""
    out = []
    for row in radio_rows:
        client, band, starts, ends, rates = row[:5]
        if len(row) == 6:
            out.extend((int(client), band, float(s), float(e), float(r), int(d))
                       for s, e, r, d in zip(starts, ends, rates, row[5]))
        else:
            out.extend((int(client), band, float(s), float(e), float(r)) for s, e, r in zip(starts, ends, rates))
    return out
