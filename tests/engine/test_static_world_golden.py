"""A world that does not change writes today's bytes.

The golden files were written at commit 89c720b, before mobility, availability, round policies, link
outage and downlink fading existed (``golden/make_golden.py``). Those of the five cases with fading were
re-recorded once, when the compiled fading kernel changed the order of the draws (CHANGELOG.md, "The fading
kernel"): every row's round, iteration, client, phase, bits and FLOPs stayed the same and only the times moved;
the static case is still 89c720b's bytes. A scenario that leaves all of them at their defaults (static,
always, wait-all, no outage, static downlink) must reproduce trace.csv and channel.csv byte for byte, and
rounds.csv on the columns it had then, under every protocol, a fading and a static channel, three server
disciplines, the online policy and real training. The columns added since (energy_j of trace.csv, energy_j
and worst_client_energy_j of rounds.csv) are left out of the bytes and
checked on their own.
"""
from pathlib import Path

import numpy as np
import pytest

from engine_helpers import write_corpus

import importlib.util

GOLDEN = Path(__file__).resolve().parent / "golden"
_spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)


@pytest.mark.parametrize("case", sorted(make_golden.CASES))
def test_a_static_always_wait_all_run_writes_the_golden_bytes(case, tmp_path):
    """Every column that existed then, byte for byte; the energy columns added since (the last ones of trace.csv
    and rounds.csv) are dropped from the comparison and checked on their own: finite, >= 0, a number per row."""
    written = make_golden.written(case, write_corpus(tmp_path / "corpus"))
    strip = {"trace": len(make_golden.NEW_TRACE_COLUMNS), "rounds": len(make_golden.NEW_ROUND_COLUMNS), "channel": 0}
    for kind, text in written.items():
        old = make_golden.without_last_columns(text, strip[kind]) if strip[kind] else text
        assert old == (GOLDEN / f"{case}.{kind}.csv").read_text(), f"{case}: {kind}.csv differs"
    for kind in ("trace", "rounds"):
        lines = written[kind].splitlines()
        new = [line.rsplit(",", strip[kind])[1:] for line in lines]
        header = list(make_golden.NEW_TRACE_COLUMNS if kind == "trace" else make_golden.NEW_ROUND_COLUMNS)
        assert new[0] == header
        values = np.array([[float(x) for x in row] for row in new[1:]])
        assert values.size and np.all(np.isfinite(values)) and np.all(values >= 0), f"{case}: {kind} energy"
    # energy is spent: every round costs something
    assert np.all(np.array([float(x.rsplit(",", 2)[1]) for x in written["rounds"].splitlines()[1:]]) > 0)
