"""Fixtures of the engine tests (one torch thread, a small synthetic corpus)."""
from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def text_corpus(tmp_path):
    """A folder of small synthetic text documents (fast to tokenise, BPE trained on it in well under a second)."""
    rng = np.random.default_rng(0)
    words = ["the", "king", "queen", "sword", "crown", "night", "lord", "love", "fair", "death", "speak", "hence",
             "thou", "art", "my", "good", "noble", "friend", "heaven", "blood"]
    folder = tmp_path / "corpus"
    folder.mkdir()
    for d in range(12):
        lines = [" ".join(rng.choice(words, size=rng.integers(5, 12))) + "." for _ in range(60)]
        (folder / f"doc{d:02d}.txt").write_text("\n".join(lines))
    return str(folder)


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def smollm2_ready():
    """Make sure the SmolLM2 safetensors cache exists (converts the GGUF once per machine)."""
    from fsllm_sim.training.models import load_model

    load_model("smollm2-135m")
    return True
