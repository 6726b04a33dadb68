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


def replay_training(scenario, orders, splits=None):
    """A SplitFedSystem built directly from the scenario's training config (with per-client ``splits`` when given),
    its iterations run by hand in the service order of each round (``orders``: per round, the client of each
    served request); (the system, per round (its global adapter over every block, validation loss))."""
    import dataclasses

    import torch

    from fsllm_sim.training.federated_training import prepare_model_and_data, validation_set
    from fsllm_sim.training.from_scenario import training_config
    from fsllm_sim.training.system import SplitFedSystem

    cfg = training_config(scenario)
    if splits is not None:
        cfg = dataclasses.replace(cfg, splits=tuple(splits))
    model, data = prepare_model_and_data(cfg)
    val = validation_set(data)
    torch.manual_seed(cfg.seed)
    system = SplitFedSystem(model, cfg.system_config(), data=data, batch_size=cfg.batch_size)
    ev = scenario.evaluation
    out = []
    for order in orders:
        for k in order:
            system.iteration(k)
        system.finish_round()
        out.append((system.global_state(), system.evaluate(val, batch_size=ev.batch_size,
                                                           max_batches=ev.max_batches).loss))
    return system, out
