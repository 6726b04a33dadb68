"""Fixtures of the engine tests: a small synthetic corpus (one torch thread and SmolLM2: tests/conftest.py)."""
from __future__ import annotations

import numpy as np
import pytest


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
