"""Small scenarios for the engine tests: the tiny random Llama (4 blocks), a few clients, synthetic text."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from fsllm_sim.config.loader import scenario_from_dict

BASE = {
    "name": "engine-test",
    "seed": 3,
    "model": {"name": "tiny-llama"},
    "split": {"layer": 2},
    "clients": {"count": 3},
    "channel": {"s_band": {"subchannels": 6}, "f_band": {"subchannels": 4}},
    "lora": {"rank": 2, "ranks": [1, 2, 4]},
    "training": {"batch_size": 2, "seq_len": 16, "local_iterations": 2},
    "convergence": {"calibration": None, "a": 5.0, "b": 10.0, "c": 0.5},
    "evaluation": {"max_batches": 2, "batch_size": 4},
    "simulation": {"rounds": 2, "training": "analytic"},
}


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def make_scenario(**override):
    return scenario_from_dict(merge(BASE, override))


WORDS = ["the", "king", "queen", "sword", "crown", "night", "lord", "love", "fair", "death", "speak", "hence",
         "thou", "art", "my", "good", "noble", "friend", "heaven", "blood"]


def write_corpus(folder) -> str:
    """A folder of small synthetic text documents (fast to tokenise, BPE trained on it in well under a second)."""
    rng = np.random.default_rng(0)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(12):
        lines = [" ".join(rng.choice(WORDS, size=rng.integers(5, 12))) + "." for _ in range(60)]
        (folder / f"doc{d:02d}.txt").write_text("\n".join(lines))
    return str(folder)
