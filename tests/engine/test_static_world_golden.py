"""A world that does not change writes today's bytes.

The golden files were written at commit 89c720b, before mobility, availability, round policies, link
outage and downlink fading existed (``golden/make_golden.py``). A scenario that leaves all of them at
their defaults (static, always, wait-all, no outage, static downlink) must reproduce trace.csv and
channel.csv byte for byte, and rounds.csv on the columns it had then, under every protocol, a fading
and a static channel, three server disciplines, the online policy and real training.
"""
from pathlib import Path

import pytest

from engine_helpers import write_corpus

import importlib.util

GOLDEN = Path(__file__).resolve().parent / "golden"
_spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)


@pytest.mark.parametrize("case", sorted(make_golden.CASES))
def test_a_static_always_wait_all_run_writes_the_bytes_of_commit_89c720b(case, tmp_path):
    produced = make_golden.outputs(case, write_corpus(tmp_path / "corpus"))
    for kind, text in produced.items():
        assert text == (GOLDEN / f"{case}.{kind}.csv").read_text(), f"{case}: {kind}.csv differs"
