"""Packing, per-example padding, validation split, token caps and batching."""

import numpy as np
import pytest
import torch

from fsllm_sim.errors import ConfigError, DataError
from fsllm_sim.training.data.batching import batch_indices, iterate_batches
from fsllm_sim.training.data.packing import (
    IGNORE_INDEX,
    SequenceSet,
    documents_covering,
    documents_within,
    pack_stream,
    pad_examples,
    split_tail,
    token_stream,
    validation_count,
)

EOS, PAD = 1, 0


def real_tokens(seqs: SequenceSet) -> np.ndarray:
    """Real tokens row by row, padding removed: the stream the rows were cut from."""
    return seqs.input_ids[seqs.attention_mask.bool()].numpy()


def test_token_stream_appends_eos_to_every_document():
    assert token_stream([[5, 6], [7], [8, 9, 10]], EOS).tolist() == [5, 6, 1, 7, 1, 8, 9, 10, 1]
    assert token_stream([], EOS).size == 0


@pytest.mark.parametrize("length", [2, 7, 8, 9, 16, 17, 23])
def test_pack_keeps_every_token_once_in_order(length):
    stream = np.arange(10, 10 + length)
    seqs = pack_stream(stream, seq_len=8, pad_id=PAD)
    tail = length % 8
    expected = stream if tail != 1 else stream[:-1]  # a one-token tail has nothing to predict
    assert real_tokens(seqs).tolist() == expected.tolist()
    assert seqs.input_ids.shape == (int(np.ceil(len(expected) / 8)), 8)
    assert seqs.input_ids.dtype == torch.long


def test_pack_pads_the_tail_with_masked_labels():
    # A one-token tail (9) is dropped; a two-token tail is padded.
    assert pack_stream(np.array([5, 6, 7, 8, 9]), seq_len=4, pad_id=PAD).input_ids.tolist() == [[5, 6, 7, 8]]
    seqs = pack_stream(np.array([5, 6, 7, 8, 9, 10]), seq_len=4, pad_id=PAD)
    assert seqs.input_ids.tolist() == [[5, 6, 7, 8], [9, 10, PAD, PAD]]
    assert seqs.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert seqs.labels.tolist() == [[5, 6, 7, 8], [9, 10, IGNORE_INDEX, IGNORE_INDEX]]


def test_padding_is_masked_by_position_even_when_pad_equals_eos():
    # SmolLM2 has no pad token: pad id == EOS id. Real EOS tokens must keep their labels.
    stream = token_stream([[5, 6, 7], [8]], EOS)  # 5 6 7 EOS 8 EOS
    seqs = pack_stream(stream, seq_len=4, pad_id=EOS)
    assert seqs.labels.tolist() == [[5, 6, 7, EOS], [8, EOS, IGNORE_INDEX, IGNORE_INDEX]]


def test_pad_examples_truncation_rule():
    seqs, truncated = pad_examples([[5, 6], [5, 6, 7], [5, 6, 7, 8, 9]], seq_len=4, eos_id=EOS, pad_id=PAD)
    assert truncated == 1
    assert seqs.input_ids.tolist() == [[5, 6, EOS, PAD], [5, 6, 7, EOS], [5, 6, 7, 8]]
    assert seqs.labels.tolist() == [[5, 6, EOS, IGNORE_INDEX], [5, 6, 7, EOS], [5, 6, 7, 8]]
    assert seqs.attention_mask.sum(dim=1).tolist() == [3, 4, 4]


def test_split_tail_and_validation_count():
    seqs = pack_stream(np.arange(2, 2 + 40), seq_len=4, pad_id=PAD)  # 10 rows
    train, val = split_tail(seqs, 0.15, "client 0")
    assert (train.num_sequences, val.num_sequences) == (8, 2)  # ceil(1.5) = 2
    assert torch.equal(torch.cat([train.input_ids, val.input_ids]), seqs.input_ids)
    assert validation_count(10, 0.0) == 0 and validation_count(10, 0.01) == 1
    train, val = split_tail(seqs, 0.0, "client 0")
    assert train.num_sequences == 10 and val.num_sequences == 0 and val.seq_len == 4


def test_split_tail_needs_a_training_row():
    one_row = pack_stream(np.arange(2, 6), seq_len=4, pad_id=PAD)
    with pytest.raises(DataError, match="client 7 has 1 sequence"):
        split_tail(one_row, 0.1, "client 7")


def test_caps():
    tokens = [3, 4, 5]
    assert documents_covering(tokens, None) == 3
    assert documents_covering(tokens, 3) == 1
    assert documents_covering(tokens, 4) == 2
    assert documents_covering(tokens, 100) == 3
    assert documents_within(tokens, 7) == 2
    assert documents_within(tokens, 6) == 1
    assert documents_within(tokens, 2) == 1  # always at least one example


def test_batch_indices_visit_each_row_once_per_epoch():
    stream = batch_indices(10, 3, np.random.default_rng(0))
    drawn = np.concatenate([next(stream) for _ in range(10)])  # 30 draws = 3 epochs
    for epoch in range(3):
        assert sorted(drawn[10 * epoch : 10 * (epoch + 1)].tolist()) == list(range(10))
    assert not np.array_equal(drawn[:10], drawn[10:20])  # reshuffled each epoch


def test_iterate_batches_shapes_and_determinism():
    seqs = pack_stream(np.arange(2, 2 + 5 * 8), seq_len=8, pad_id=PAD)  # 5 rows
    first = [next(iterate_batches(seqs, 2, seed=3, client_id=0)) for _ in range(2)]
    assert torch.equal(first[0]["input_ids"], first[1]["input_ids"])  # fresh iterator, same stream
    it_a = iterate_batches(seqs, 4, seed=3, client_id=0)
    it_b = iterate_batches(seqs, 4, seed=3, client_id=1)
    a = [next(it_a) for _ in range(5)]
    b = [next(it_b) for _ in range(5)]
    assert all(batch["input_ids"].shape == (4, 8) for batch in a)
    assert set(a[0]) == {"input_ids", "attention_mask", "labels"}
    assert not all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, b))


def test_iterate_batches_rejects_bad_batch_size():
    seqs = pack_stream(np.arange(2, 10), seq_len=4, pad_id=PAD)
    with pytest.raises(ConfigError, match="batch_size=0"):
        next(iterate_batches(seqs, 0, seed=0, client_id=0))
    with pytest.raises(DataError, match="no training sequences"):
        next(iterate_batches(SequenceSet.empty(4), 2, seed=0, client_id=0))
