"""The cyclic garbage collector's settings for an event loop (the engine's, and the bare SimPy model it is timed
against, so that the two compare the same machinery).

Everything alive when the loop starts (imported libraries, the world, the model) lives through it: frozen, the
collector's full passes skip it and scan only what the loop creates (a third of the event loop at K = 10,000 went
to those passes), and young collections come every 50,000 allocations rather than 700 (the loop allocates a few
objects per event, nearly all freed by reference counting). Both are undone when the loop ends.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager

LOOP_THRESHOLDS = (50_000, 20, 100)


@contextmanager
def loop_collector():
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(*LOOP_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
