"""Shared fixtures of the training-engine tests (tiny models; one thread and SmolLM2: tests/conftest.py).

Unit tests run on the tiny random models with one torch thread (tiny matrices: thread synchronisation would
cost more than it saves, and it keeps timings steady on a shared 2-core machine). The SmolLM2 tests
(``@pytest.mark.integration``) use the real pretrained model; the first one converts the GGUF into the user
cache (~20-30 s), later loads take well under a second.
"""

from __future__ import annotations

import pytest

from fsllm_sim.training.models import load_model


@pytest.fixture
def tiny_llama():
    """A fresh tiny Llama (each system injects LoRA into the model it gets)."""
    return load_model("tiny-llama", seed=0)


@pytest.fixture
def tiny_gpt2():
    return load_model("tiny-gpt2", seed=0)
