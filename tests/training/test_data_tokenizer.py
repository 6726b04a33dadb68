"""The small byte-level BPE: determinism, round trip, save/load, special ids of any tokenizer."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from fsllm_sim.errors import ConfigError, DataError
from fsllm_sim.training.data.tokenizer import (
    EOS_TOKEN,
    PAD_TOKEN,
    encode_texts,
    load_tokenizer,
    save_tokenizer,
    special_ids,
    train_bpe_tokenizer,
)

TEXTS = [
    "HAMLET:\nTo be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(TEXTS, vocab_size=300)


def test_training_is_deterministic(tokenizer):
    again = train_bpe_tokenizer(TEXTS, vocab_size=300)
    assert again.get_vocab() == tokenizer.get_vocab()
    assert again.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()
    different = train_bpe_tokenizer(TEXTS[:2] * 40, vocab_size=300)
    assert different.get_vocab() != tokenizer.get_vocab()


def test_vocab_and_special_tokens(tokenizer):
    assert 258 < len(tokenizer) <= 300  # merges were learnt on top of bytes + 2 specials
    assert tokenizer.convert_tokens_to_ids([PAD_TOKEN, EOS_TOKEN]) == [0, 1]
    assert special_ids(tokenizer).pad_id == 0 and special_ids(tokenizer).eos_id == 1


@pytest.mark.parametrize("text", ["To be, or not to be", "  leading spaces\nand lines", "naïve café — ünïcode ✓"])
def test_round_trip(tokenizer, text):
    ids = encode_texts(tokenizer, [text])[0]
    assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token_id not in ids  # no special tokens added by encoding


def test_encode_texts_matches_the_transformers_call(tokenizer):
    expected = tokenizer(TEXTS[:4], add_special_tokens=False)["input_ids"]
    assert encode_texts(tokenizer, TEXTS[:4]) == expected
    assert encode_texts(tokenizer, []) == []


def test_frequent_words_are_merged(tokenizer):
    # BPE learnt the corpus: a frequent phrase costs fewer tokens than its bytes.
    assert len(encode_texts(tokenizer, ["outrageous fortune"])[0]) < len("outrageous fortune")
    assert len(encode_texts(tokenizer, [" the"])[0]) == 1


def test_save_and_load(tokenizer, tmp_path):
    save_tokenizer(tokenizer, tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert encode_texts(loaded, TEXTS[:4]) == encode_texts(tokenizer, TEXTS[:4])
    assert special_ids(loaded) == special_ids(tokenizer)


def test_load_missing_directory(tmp_path):
    with pytest.raises(DataError, match="tokenizer.json does not exist"):
        load_tokenizer(tmp_path / "nowhere")


def test_vocab_size_too_small():
    with pytest.raises(ConfigError, match="vocab_size=100 must be >= 258"):
        train_bpe_tokenizer(TEXTS, vocab_size=100)


def _word_level(**specials) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordLevel({"<unk>": 0, "</s>": 1, "a": 2}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, **specials)


def test_pad_falls_back_to_eos():
    ids = special_ids(_word_level(eos_token="</s>"))
    assert ids.eos_id == 1 and ids.pad_id == 1


def test_tokenizer_without_eos_is_rejected():
    with pytest.raises(ConfigError, match="has no eos_token_id"):
        special_ids(_word_level())


def test_encode_texts_never_truncates():
    # A backend configured to truncate goes through transformers' call, which encodes in full.
    tokenizer = _word_level(eos_token="</s>")
    tokenizer.backend_tokenizer.enable_truncation(max_length=1)
    assert encode_texts(tokenizer, ["a a a", "a"]) == [[2, 2, 2], [2]]
