"""Fixtures shared by every test folder: one torch thread, and the SmolLM2 cache for integration tests.

One thread: the unit tests multiply tiny matrices (thread synchronisation would cost more than it saves), and on
the shared 2-core CI box OpenMP with 2 threads was 2-3x slower whenever another process held a core.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
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
