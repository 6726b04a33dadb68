"""Fixtures of the engine tests: a small synthetic corpus (one torch thread and SmolLM2: tests/conftest.py)."""
from __future__ import annotations

import pytest

from engine_helpers import write_corpus


@pytest.fixture
def text_corpus(tmp_path):
    """A folder of small synthetic text documents (fast to tokenise, BPE trained on it in well under a second)."""
    return write_corpus(tmp_path / "corpus")
