"""Tokenizers: a small trained byte-level BPE for fast tests, and the ids every tokenizer must give.

The federated-data builder accepts any ``transformers`` tokenizer (the real SmolLM2 one loaded from
its GGUF file by the model code, or the small BPE trained here). It needs exactly two ids:
``eos_token_id`` (joins documents in a packed stream and ends a padded example) and the padding id,
which falls back to EOS when the tokenizer has no pad token (SmolLM2 has none). Labels never rely on
the padding id: padding is masked by position (``attention_mask == 0`` -> label -100), so a real EOS
that happens to share the padding id is still learned.

Why train a BPE at all: unit tests must not depend on the 135M model's files, and a 512-entry
vocabulary keeps embedding tables and test runtimes tiny. Training is deterministic: the
``tokenizers`` BPE trainer has no randomness (pair counts are order-independent sums and ties between
equally frequent pairs break on the pair itself), so the same texts and vocabulary size give the same
vocabulary and merges; ``tests/training/test_data_tokenizer.py`` checks this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from fsllm_sim.errors import ConfigError, DataError

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
# Byte-level BPE starts from all 256 byte symbols; the two special tokens come on top.
BYTE_ALPHABET_SIZE = 256
MIN_VOCAB_SIZE = BYTE_ALPHABET_SIZE + 2


@dataclass(frozen=True)
class SpecialIds:
    """Token ids the data pipeline writes itself."""

    eos_id: int
    pad_id: int  # == eos_id when the tokenizer has no pad token


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with special tokens ``<pad>`` (id 0) and ``<eos>`` (id 1).

    Args:
        texts: training texts; iterated once.
        vocab_size: final vocabulary size including the 256 byte symbols and the 2 special tokens
            (>= 258). The result can be smaller when the texts have fewer distinct merges.

    Deterministic: identical ``texts`` and ``vocab_size`` give an identical vocabulary and merges.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ConfigError(
            f"train_bpe_tokenizer: vocab_size={vocab_size} must be >= {MIN_VOCAB_SIZE} "
            f"({BYTE_ALPHABET_SIZE} byte symbols + {PAD_TOKEN} and {EOS_TOKEN})"
        )
    backend = Tokenizer(models.BPE())
    # add_prefix_space=False: a document's first word keeps its exact bytes, so decode(encode(t)) == t.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    backend.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: str | Path) -> Path:
    """Write the tokenizer (``tokenizer.json`` and config) to ``directory``; returns the folder."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(path))
    return path


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer written by :func:`save_tokenizer`."""
    path = Path(directory)
    if not (path / "tokenizer.json").is_file():
        raise DataError(f"tokenizer: {path / 'tokenizer.json'} does not exist")
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def special_ids(tokenizer: PreTrainedTokenizerBase) -> SpecialIds:
    """EOS and padding ids of any transformers tokenizer; padding falls back to EOS."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError(
            f"tokenizer {type(tokenizer).__name__} has no eos_token_id: documents cannot be "
            "separated; use a tokenizer with an EOS token"
        )
    pad = tokenizer.pad_token_id
    return SpecialIds(eos_id=int(eos), pad_id=int(eos if pad is None else pad))


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens (the packer adds EOS itself).

    A fast tokenizer is run through its Rust backend directly: the same ids as ``tokenizer(texts)``
    without transformers' per-text Python conversion, about a third of the time on the corpus.
    Other tokenizers, or a backend with truncation or padding configured, go through
    ``tokenizer(...)`` with ``verbose=False``, which silences the "longer than model_max_length"
    warning: texts are cut to ``seq_len`` later, by the packer, which is what bounds the model input.
    """
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        return [encoding.ids for encoding in backend.encode_batch(list(texts), add_special_tokens=False)]
    encoded = tokenizer(
        list(texts), add_special_tokens=False, return_attention_mask=False, verbose=False
    )
    return [list(ids) for ids in encoded["input_ids"]]
