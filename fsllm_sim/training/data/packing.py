"""Turning token ids into fixed-length training sequences (``pack`` and ``pad`` modes).

Both modes produce a :class:`SequenceSet`: three LongTensors of shape (N, L) ready for a Hugging
Face causal LM, which shifts labels by one position internally.

``pack`` (language modelling): a client's documents are joined into one stream, each followed by
EOS (``d1 EOS d2 EOS ...``; no BOS), and the stream is cut into consecutive rows of L tokens. The
last, partial row is right-padded rather than dropped, so no text is lost on small clients; a tail of
a single token is dropped instead, because a one-token row has nothing to predict.

``pad`` (one example per row, e.g. E2E data-to-text): each document becomes ``tokens + EOS``
right-padded to L. A document longer than L - 1 tokens is truncated to its first L tokens with no
EOS (it did not end there, and its beginning, the E2E meaning representation, is what must stay).

In both modes ``attention_mask`` is 1 on real tokens and 0 on padding, and ``labels`` equals
``input_ids`` except -100 on padding. Padding is identified by position, not by id, because the pad
id falls back to EOS for tokenizers without a pad token and a real EOS must still be learned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from fsllm_sim.errors import DataError

MODES = ("pack", "pad")
IGNORE_INDEX = -100  # label value that torch.nn.CrossEntropyLoss (and HF models) skip


@dataclass(frozen=True)
class SequenceSet:
    """N sequences of L tokens.

    Attributes:
        input_ids: (N, L) int64 token ids (padding positions hold the pad id).
        attention_mask: (N, L) int64, 1 = real token, 0 = padding.
        labels: (N, L) int64, ``input_ids`` with -100 where ``attention_mask == 0``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    @property
    def num_sequences(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens."""
        return int(self.attention_mask.sum())

    def select(self, indices: np.ndarray | torch.Tensor | slice) -> "SequenceSet":
        """Rows ``indices`` (an index array keeps its order and may repeat rows)."""
        if not isinstance(indices, slice):
            indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return SequenceSet(self.input_ids[indices], self.attention_mask[indices], self.labels[indices])

    def as_batch(self) -> dict[str, torch.Tensor]:
        """``{"input_ids", "attention_mask", "labels"}``, the keyword arguments of a HF causal LM."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "labels": self.labels,
        }

    @staticmethod
    def empty(seq_len: int) -> "SequenceSet":
        zeros = torch.zeros((0, seq_len), dtype=torch.long)
        return SequenceSet(zeros, zeros.clone(), zeros.clone())


def _from_rows(ids: np.ndarray, lengths: np.ndarray, pad_id: int) -> SequenceSet:
    """Build a SequenceSet from an (N, L) id array whose row i has ``lengths[i]`` real tokens."""
    num_rows, seq_len = ids.shape
    mask = np.arange(seq_len)[None, :] < lengths[:, None]
    input_ids = np.where(mask, ids, pad_id)
    labels = np.where(mask, ids, IGNORE_INDEX)
    return SequenceSet(
        input_ids=torch.from_numpy(input_ids.astype(np.int64)),
        attention_mask=torch.from_numpy(mask.astype(np.int64)),
        labels=torch.from_numpy(labels.astype(np.int64)),
    )


def token_stream(documents_ids: Sequence[Sequence[int]], eos_id: int) -> np.ndarray:
    """``doc_1 EOS doc_2 EOS ... doc_n EOS`` as one int64 array."""
    pieces = []
    eos = np.array([eos_id], dtype=np.int64)
    for ids in documents_ids:
        pieces.append(np.asarray(ids, dtype=np.int64))
        pieces.append(eos)
    return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)


def pack_stream(stream: np.ndarray, seq_len: int, pad_id: int) -> SequenceSet:
    """Cut a token stream into rows of ``seq_len``; pad the last partial row (dropped if 1 token)."""
    n_full, tail = divmod(len(stream), seq_len)
    if tail == 1:
        tail = 0
    num_rows = n_full + (1 if tail else 0)
    ids = np.full((num_rows, seq_len), pad_id, dtype=np.int64)
    ids.reshape(-1)[: n_full * seq_len + tail] = stream[: n_full * seq_len + tail]
    lengths = np.full(num_rows, seq_len, dtype=np.int64)
    if tail:
        lengths[-1] = tail
    return _from_rows(ids, lengths, pad_id)


def pad_examples(
    documents_ids: Sequence[Sequence[int]], seq_len: int, eos_id: int, pad_id: int
) -> tuple[SequenceSet, int]:
    """One right-padded row per document; returns the rows and how many were truncated."""
    ids = np.full((len(documents_ids), seq_len), pad_id, dtype=np.int64)
    lengths = np.zeros(len(documents_ids), dtype=np.int64)
    truncated = 0
    for row, doc in enumerate(documents_ids):
        if len(doc) + 1 <= seq_len:
            tokens = list(doc) + [eos_id]
        else:
            tokens = list(doc[:seq_len])
            truncated += 1
        ids[row, : len(tokens)] = tokens
        lengths[row] = len(tokens)
    return _from_rows(ids, lengths, pad_id), truncated


def example_tokens(doc_len: int, seq_len: int) -> int:
    """Tokens a document of ``doc_len`` tokens occupies as one padded example (EOS included)."""
    return min(doc_len + 1, seq_len)


def documents_covering(doc_tokens: Sequence[int], max_tokens: int | None) -> int:
    """Fewest leading documents whose tokens reach ``max_tokens`` (all when None or never reached).

    Pack mode takes these documents and cuts their stream at exactly ``max_tokens``.
    """
    if max_tokens is None:
        return len(doc_tokens)
    cumulative = np.cumsum(np.asarray(doc_tokens, dtype=np.int64))
    return int(min(np.searchsorted(cumulative, max_tokens, side="left") + 1, len(doc_tokens)))


def documents_within(doc_tokens: Sequence[int], max_tokens: int | None) -> int:
    """Most leading whole documents whose tokens fit in ``max_tokens``, but at least one.

    Pad mode keeps whole examples, so it stops before the example that would cross the cap.
    """
    if max_tokens is None:
        return len(doc_tokens)
    cumulative = np.cumsum(np.asarray(doc_tokens, dtype=np.int64))
    return int(max(np.searchsorted(cumulative, max_tokens, side="right"), min(1, len(doc_tokens))))


def validation_count(num_sequences: int, fraction: float) -> int:
    """Rows held out for validation: ceil(fraction * N), so never zero when fraction > 0."""
    return int(math.ceil(fraction * num_sequences)) if fraction > 0 else 0


def split_tail(
    sequences: SequenceSet, fraction: float, who: str
) -> tuple[SequenceSet, SequenceSet]:
    """(train, validation): validation is the last ``ceil(fraction * N)`` rows.

    The tail rather than a random subset: rows of a packed stream are contiguous text, so a held-out
    contiguous block cannot share a document with the training rows except at its one boundary.

    Raises:
        DataError: when no training row would remain.
    """
    n = sequences.num_sequences
    n_val = validation_count(n, fraction)
    if n - n_val < 1:
        raise DataError(
            f"{who} has {n} sequence(s) of {sequences.seq_len} tokens: too few to train on with "
            f"validation_fraction={fraction:g}; use fewer clients, a shorter seq_len or more data"
        )
    return sequences.select(slice(0, n - n_val)), sequences.select(slice(n - n_val, n))
