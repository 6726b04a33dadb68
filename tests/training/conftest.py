"""Shared fixtures of the training-engine tests (tiny models, synthetic federated data, SmolLM2).

Unit tests run on the tiny random models with one torch thread (tiny matrices: thread synchronisation would
cost more than it saves, and it keeps timings steady on a shared 2-core machine). The SmolLM2 tests
(``@pytest.mark.integration``) use the real pretrained model; the first one converts the GGUF into the user
cache (~20-30 s), later loads take well under a second.
"""

from __future__ import annotations

import pytest
import torch

from fsllm_sim.training.models import load_model


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tiny_llama():
    """A fresh tiny Llama (each system injects LoRA into the model it gets)."""
    return load_model("tiny-llama", seed=0)


@pytest.fixture
def tiny_gpt2():
    return load_model("tiny-gpt2", seed=0)


@pytest.fixture(scope="session")
def smollm2_ready():
    """Make sure the SmolLM2 safetensors cache exists (converts the GGUF once per machine)."""
    load_model("smollm2-135m")
    return True
