"""One root seed, many independent named random streams.

Each aspect of a simulation (placement, LOS draws, shadowing, fading, device speeds, data order,
training) draws from its own stream, derived from the root seed and the stream's name. Switching
one aspect off or drawing more from it therefore never changes the draws of another.
"""
from __future__ import annotations

import zlib

import numpy as np

STREAMS = ("placement", "los", "shadowing", "fading", "devices", "data", "training", "solver", "mobility",
           "spatial", "availability", "selection", "downlink-fading")


def _name_key(name: str) -> int:
    # crc32 is stable across processes and Python versions, unlike hash().
    return zlib.crc32(name.encode("utf-8"))


def seed_sequence(root_seed: int, name: str) -> np.random.SeedSequence:
    if name not in STREAMS:
        raise ValueError(f"random stream {name!r} is not one of {', '.join(STREAMS)}")
    return np.random.SeedSequence(entropy=int(root_seed), spawn_key=(_name_key(name),))


def stream(root_seed: int, name: str) -> np.random.Generator:
    """The numpy Generator of stream ``name`` under ``root_seed``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(root_seed, name)))


def stream_seed(root_seed: int, name: str) -> int:
    """A 63-bit integer seed for libraries that take an int (torch), derived like :func:`stream`."""
    return int(seed_sequence(root_seed, name).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def describe(root_seed: int) -> dict:
    """Seeds of every stream, recorded in each run directory."""
    return {"root_seed": int(root_seed), "streams": {n: stream_seed(root_seed, n) for n in STREAMS}}
