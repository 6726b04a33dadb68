"""Real split-federated LoRA fine-tuning of a pretrained causal LM (the training engine).

Modules (by role in the protocol of ``shared/spec/system-model.md`` §1):

* :mod:`.models`       model registry and loading (SmolLM2 from its offline GGUF, cached as safetensors;
                       tiny random Llama/GPT-2; any Hugging Face model);
* :mod:`.split`        client part (embedding + blocks 1..ℓ) and main-server part (blocks ℓ+1..J, norm, head,
                       loss) for the Llama and GPT-2 families;
* :mod:`.lora`         peft LoRA config per family; per-client adapter states swapped into ONE frozen base;
* :mod:`.wire`         wire precisions (fp32, fp16, bf16, int8 keeping outliers, int8-tensor) and payload bits;
* :mod:`.messages`     Activation/Gradient/Adapter/Broadcast messages with real payload sizes;
* :mod:`.client`       a client's phases: forward, backward, adapter upload, receive broadcast;
* :mod:`.main_server`  the MS step (forward+loss+backward+update), SplitFed v1 / v2 server adapters;
* :mod:`.fed_server`   the FS: FedAvg;
* :mod:`.system`       :class:`SplitFedSystem` tying them together;
* :mod:`.mixed_split`  per-client split points ℓ_k: the servers' views and the aggregation by global block index;
* :mod:`.evaluation`   validation loss / perplexity of the global model;
* :mod:`.federated_training`  the in-process round driver :func:`run_federated_training`;
* :mod:`.flop_count`   counted FLOPs (FlopCounterMode), cache, :func:`profile_table`;
* :mod:`.calibration`  N(r) = a + b·r^(-c) from real runs;
* :mod:`.data`         federated text data (Shakespeare, user text), tokenizers, partitions, batches.

The analytic FLOP formulas live in :mod:`fsllm_sim.flops`.

Imports here are lazy so that ``import fsllm_sim.training`` stays cheap (torch/transformers load on use).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LoadedModel": "models", "load_model": "models", "load_tokenizer": "models", "list_models": "models",
    "cache_dir": "models", "MODELS": "models",
    "ClientPart": "split", "ServerPart": "split", "split_model": "split",
    "LoraSpec": "lora", "DEFAULT_TARGET_MODULES": "lora",
    "wire_cast": "wire", "payload_bits": "wire",
    "ActivationMessage": "messages", "GradientMessage": "messages", "AdapterMessage": "messages",
    "BroadcastMessage": "messages",
    "SplitClient": "client", "MainServer": "main_server", "FederatedServer": "fed_server", "fedavg": "fed_server",
    "SplitFedConfig": "system", "SplitFedSystem": "system",
    "EvalResult": "evaluation",
    "TrainingConfig": "federated_training", "TrainingResult": "federated_training",
    "run_federated_training": "federated_training", "prepare_model_and_data": "federated_training",
    "ProfileTable": "flop_count", "profile_table": "flop_count", "count_split_flops": "flop_count",
    "count_component_flops": "flop_count",
    "calibrate": "calibration", "load_calibration": "calibration", "CalibrationFit": "calibration",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'fsllm_sim.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
