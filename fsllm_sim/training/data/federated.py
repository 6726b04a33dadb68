"""``build_federated_data``: from a text source to K clients' training and validation sequences.

Pipeline (each step is a module of this package):

1. :mod:`.sources` reads the source into documents (speeches, paragraphs, rows).
2. The tokenizer encodes every document once (:mod:`.tokenizer`); sizes are tokens plus one EOS.
3. A global validation set is held out, stratified by work (the ``group`` label: the play for
   Shakespeare, the file for a folder of .txt): ``ceil(global_validation_fraction * n)`` documents
   in all, shared out over the works in proportion to their document counts (largest remainder,
   ties broken at random), at least one from every work of >= 2 documents and never all of them
   (a single-document work may be held out whole). The documents are drawn from a generator that depends on ``seed`` only, so the set is the
   same for every partition, client count and sequence length run with that seed, and covers every
   work, hence every client's share of the corpus. It is packed (or padded) like a client's data,
   documents in a seeded shuffled order, so any leading part of it (``max_eval_batches``) is itself
   a sample of all the works rather than the first few plays of the corpus.
4. The remaining documents are partitioned over K clients (:mod:`.partition`).
5. Each client's documents, in corpus order, are capped at ``max_tokens_per_client`` and turned
   into sequences (:mod:`.packing`); the last ``ceil(validation_fraction * N)`` sequences are the
   client's validation set.
6. :mod:`.batching` serves each client's training sequences as endless shuffled mini-batches.

Random streams: all draws come from ``numpy.random.default_rng([seed, stream, ...])`` with a fixed
stream word per purpose (``GLOBAL_VALIDATION_STREAM``, ``PARTITION_STREAM``, ``BATCH_STREAM`` plus
the client id), so changing one purpose (say, the partition scheme) never shifts another's draws.

``max_tokens_per_client`` is a cap, for fast tests and calibration runs: a client keeps a seeded
random subset of its documents (drawn from ``[seed, CAP_STREAM, client id]``), still in corpus
order, just large enough to reach the cap; pack mode cuts that stream at exactly the cap, pad
mode keeps the whole examples that fit (at least one). The global validation set is capped the
same way (generator ``[seed, GLOBAL_VALIDATION_STREAM, GLOBAL_VALIDATION_CAP_WORD]``). Without a
cap nothing is drawn and every document is used.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from fsllm_sim.errors import ConfigError, DataError

from .batching import iterate_batches
from .documents import GROUP_DEFAULT, GROUP_PLAY, GROUP_ROLE, Document, group_labels
from .packing import (
    MODES,
    SequenceSet,
    documents_covering,
    documents_within,
    example_tokens,
    pack_stream,
    pad_examples,
    split_tail,
    token_stream,
)
from .partition import (
    PARTITIONS,
    check_nonempty,
    entropy_bits,
    partition_by_group,
    partition_dirichlet,
    partition_iid,
)
from .sources import load_documents
from .tokenizer import SpecialIds, encode_texts, special_ids

GLOBAL_VALIDATION_STREAM = 0
PARTITION_STREAM = 1
# (BATCH_STREAM = 2 lives in .batching.)
CAP_STREAM = 3  # + client id
GLOBAL_VALIDATION_CAP_WORD = 1  # [seed, GLOBAL_VALIDATION_STREAM, 1] caps the global set
# Group key and plural noun that the whole-group partitions split on.
_GROUP_PARTITIONS = {"by_play": (GROUP_PLAY, "plays"), "by_role": (GROUP_ROLE, "roles")}
_NAME_GROUPS_SHOWN = 3


def _label_noun(partition: str) -> str:
    """What the labels of a scheme are, for messages: documents, groups, plays or roles."""
    if partition in _GROUP_PARTITIONS:
        return _GROUP_PARTITIONS[partition][1]
    return "documents" if partition == "iid" else "groups"


@dataclass
class ClientData:
    """One client's private data.

    Attributes:
        client_id: 0..K-1.
        name: human-readable description, e.g. ``"by_play: 2 plays (Hamlet, Macbeth)"``.
        train: training sequences (N_k, L).
        validation: the client's held-out sequences (may have 0 rows when validation_fraction=0).
        document_indices: indices, into the source's document list, of the documents the client
            holds after the token cap (ascending = corpus order).
        groups: document count per group label (play, role or file) the client holds.
        truncated_examples: pad mode only: examples cut at seq_len.
        seed: root seed; with ``client_id`` it seeds the batch shuffles.
    """

    client_id: int
    name: str
    train: SequenceSet
    validation: SequenceSet
    document_indices: np.ndarray
    groups: dict[str, int]
    truncated_examples: int
    seed: int

    @property
    def num_documents(self) -> int:
        return int(self.document_indices.size)

    @property
    def num_samples(self) -> int:
        """n_k: training sequences, the client's FedAvg weight numerator."""
        return self.train.num_sequences

    def batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """Endless shuffled mini-batches of ``batch_size`` training rows (see :mod:`.batching`).

        Every call starts the same stream again: iterate one returned iterator across rounds.
        """
        return iterate_batches(self.train, batch_size, self.seed, self.client_id)

    def summary(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "documents": self.num_documents,
            "num_samples": self.num_samples,
            "train_sequences": self.train.num_sequences,
            "validation_sequences": self.validation.num_sequences,
            "train_tokens": self.train.num_tokens,
            "validation_tokens": self.validation.num_tokens,
            "groups": len(self.groups),
            "truncated_examples": self.truncated_examples,
        }


@dataclass
class FederatedData:
    """Everything the training engine needs from the data side.

    Attributes:
        clients: one :class:`ClientData` per client, index = client_id.
        global_validation: held-out sequences common to all clients (same documents for a seed).
        global_validation_documents: indices of the held-out documents in the source's document
            list (before the token cap), ascending.
        global_validation_order: the held-out documents actually packed (after the token cap), in
            the shuffled order they were packed in.
        global_validation_works: the works (``group`` labels) those documents come from, sorted.
        seq_len: L, tokens per sequence.
        mode: ``pack`` or ``pad``.
        ids: EOS and padding token ids used.
        settings: the arguments that built it (source, format, partition, seed, ...), for logs.
        label_entropy_bits: per-client entropy of the group-label distribution (skew statistic).
    """

    clients: list[ClientData]
    global_validation: SequenceSet
    global_validation_documents: np.ndarray
    seq_len: int
    mode: str
    ids: SpecialIds
    settings: dict[str, Any] = field(default_factory=dict)
    label_entropy_bits: np.ndarray = field(default_factory=lambda: np.zeros(0))
    global_validation_order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    global_validation_works: list[str] = field(default_factory=list)

    @property
    def num_clients(self) -> int:
        return len(self.clients)

    def num_samples(self) -> np.ndarray:
        """n_k of every client, shape (K,)."""
        return np.array([c.num_samples for c in self.clients], dtype=np.int64)

    def fedavg_weights(self) -> np.ndarray:
        """n_k / sum(n), shape (K,): the aggregation weights of the system model (section 1)."""
        n = self.num_samples().astype(float)
        return n / n.sum()

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable overview for logs: settings, totals and per-client counts."""
        clients = [c.summary() for c in self.clients]
        return {
            **self.settings,
            "seq_len": self.seq_len,
            "mode": self.mode,
            "num_clients": self.num_clients,
            "eos_id": self.ids.eos_id,
            "pad_id": self.ids.pad_id,
            "train_tokens_total": sum(c["train_tokens"] for c in clients),
            "train_sequences_total": sum(c["train_sequences"] for c in clients),
            "label_entropy_bits_mean": float(np.mean(self.label_entropy_bits))
            if self.label_entropy_bits.size
            else 0.0,
            "global_validation": {
                "sequences": self.global_validation.num_sequences,
                "tokens": self.global_validation.num_tokens,
                "documents": int(self.global_validation_order.size),
                "works": len(self.global_validation_works),
                "works_total": self.settings.get("works_total"),
            },
            "clients": clients,
        }


def _check_arguments(
    *,
    seed: int,
    num_clients: int,
    seq_len: int,
    partition: str,
    dirichlet_alpha: float,
    validation_fraction: float,
    global_validation_fraction: float,
    mode: str,
    max_context: int | None,
    max_tokens_per_client: int | None,
) -> None:
    if partition not in PARTITIONS:
        raise ConfigError(f"data.partition: '{partition}' is not one of {', '.join(PARTITIONS)}")
    if mode not in MODES:
        raise ConfigError(f"data.mode: '{mode}' is not one of {', '.join(MODES)}")
    if not isinstance(num_clients, int) or num_clients < 1:
        raise ConfigError(f"num_clients={num_clients!r} must be an integer >= 1")
    if not isinstance(seq_len, int) or seq_len < 2:
        raise ConfigError(
            f"seq_len={seq_len!r} must be an integer >= 2 (one token to predict from)"
        )
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be an integer >= 0")
    if max_context is not None and seq_len > max_context:
        raise DataError(f"seq_len={seq_len} exceeds the model context {max_context}")
    for name, value in (
        ("validation_fraction", validation_fraction),
        ("global_validation_fraction", global_validation_fraction),
    ):
        if not (0.0 <= value < 1.0):
            raise ConfigError(f"data.{name}={value!r} must be in [0, 1)")
    if not (dirichlet_alpha > 0.0 and math.isfinite(dirichlet_alpha)):
        raise ConfigError(f"data.dirichlet_alpha={dirichlet_alpha!r} must be > 0 and finite")
    if max_tokens_per_client is not None and (
        not isinstance(max_tokens_per_client, int) or max_tokens_per_client < 2
    ):
        raise ConfigError(
            f"data.max_tokens_per_client={max_tokens_per_client!r} must be an integer >= 2 or None"
        )


def stream_rng(seed: int, stream: int, *words: int) -> np.random.Generator:
    """Generator of one named purpose (``*_STREAM``, plus e.g. a client id) of a root seed."""
    return np.random.default_rng([seed, stream, *words])


def held_out_counts(work_sizes: Sequence[int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Documents to hold out of each work: a stratified ``ceil(fraction * n)`` in all.

    Each work gets ``floor(fraction * n_w)``; the rest of the total goes one by one to the works with the
    largest remainders (ties in a random order from ``rng``). Then every work of >= 2 documents holds out
    at least one and keeps at least one (which may move the total a little off ``ceil(fraction * n)`` when
    there are many small works); a work of a single document may be held out whole by the remainders.
    """
    sizes = np.asarray(work_sizes, dtype=np.int64)
    if fraction <= 0 or sizes.size == 0:
        return np.zeros(sizes.size, dtype=np.int64)
    total = int(math.ceil(fraction * int(sizes.sum())))
    quota = fraction * sizes.astype(float)
    counts = np.floor(quota).astype(np.int64)
    upper = np.where(sizes >= 2, sizes - 1, sizes)
    counts = np.minimum(counts, upper)
    remainder = quota - counts
    tie_break = rng.permutation(sizes.size)
    order = sorted(range(sizes.size), key=lambda w: (-remainder[w], tie_break[w]))
    left = total - int(counts.sum())
    for w in order:
        if left <= 0:
            break
        if counts[w] < upper[w]:
            counts[w] += 1
            left -= 1
    return np.maximum(counts, np.where(sizes >= 2, 1, 0))


def held_out_and_pool(
    num_documents: int, fraction: float, seed: int, works: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(global validation documents ascending, the same in packing order, documents left for the clients).

    Stratified by ``works`` (one label per document; None: one work), see :func:`held_out_counts`; every
    draw comes from a generator of ``seed`` alone, so the held-out set does not move when the partition,
    client count, sequence length or tokenizer change. The packing order is a seeded shuffle of the
    held-out documents, so that any prefix of the packed set mixes all works.
    """
    rng = stream_rng(seed, GLOBAL_VALIDATION_STREAM)
    labels = list(works) if works is not None else ["" for _ in range(num_documents)]
    if len(labels) != num_documents:
        raise ValueError(f"{len(labels)} work labels for {num_documents} documents")
    names = sorted(set(labels))
    members = {name: [] for name in names}
    for i, label in enumerate(labels):
        members[label].append(i)
    counts = held_out_counts([len(members[n]) for n in names], fraction, rng)
    drawn = [
        np.asarray(members[name], dtype=np.int64)[rng.permutation(len(members[name]))[:count]]
        for name, count in zip(names, counts)
    ]
    chosen = np.concatenate(drawn) if drawn else np.zeros(0, dtype=np.int64)
    packing_order = chosen[rng.permutation(chosen.size)]
    is_held_out = np.zeros(num_documents, dtype=bool)
    is_held_out[chosen] = True
    return np.flatnonzero(is_held_out), packing_order, np.flatnonzero(~is_held_out)


def partition_labels(documents: Sequence[Document], partition: str, num_clients: int) -> list[str]:
    """Labels the scheme splits on, checked before any tokenization is spent.

    ``iid``: one label per document; ``dirichlet``: the ``group`` key; ``by_play``/``by_role``: the
    ``play``/``role`` key (Shakespeare only). Fewer labels than clients (documents for iid) means an
    empty client, reported as :func:`check_nonempty` would report it.
    """
    if partition == "iid":
        labels = [str(i) for i in range(len(documents))]
    elif partition == "dirichlet":
        return group_labels(documents, GROUP_DEFAULT)
    else:
        key = _GROUP_PARTITIONS[partition][0]
        if any(key not in doc.groups for doc in documents):
            raise ConfigError(
                f"data.partition: {partition} needs the '{key}' of each document, which only "
                "source=shakespeare provides; use partition=iid or dirichlet"
            )
        labels = group_labels(documents, key)
    num_labels = len(set(labels))
    if num_labels < num_clients:
        # The first num_labels clients get one label each, so client num_labels is the first empty.
        check_nonempty(
            [np.ones(1)] * num_labels + [np.empty(0)] * (num_clients - num_labels),
            partition,
            num_labels,
            _label_noun(partition),
        )
    return labels


def partition_documents(
    labels: Sequence[str],
    sizes: np.ndarray,
    num_clients: int,
    partition: str,
    dirichlet_alpha: float,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Indices per client for a scheme of ``PARTITIONS`` (labels from :func:`partition_labels`)."""
    if partition == "iid":
        parts = partition_iid(len(labels), num_clients, rng)
    elif partition == "dirichlet":
        parts = partition_dirichlet(labels, num_clients, dirichlet_alpha, rng)
    else:
        parts = partition_by_group(labels, sizes, num_clients, rng)
    check_nonempty(parts, partition, len(set(labels)), _label_noun(partition))
    return parts


def capped_selection(
    doc_tokens: Sequence[int], mode: str, cap: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Ascending indices of the documents kept under the token cap (all when ``cap`` is None).

    Documents are taken in a random order drawn from ``rng`` until the cap is covered (pack) or
    filled with whole examples (pad), then put back in their given order. A random rather than a
    leading subset keeps a capped client representative of its whole partition: the first 5 000
    tokens of an IID client would all come from the alphabetically first play.
    """
    if cap is None:
        return np.arange(len(doc_tokens))
    order = rng.permutation(len(doc_tokens))
    shuffled_tokens = [doc_tokens[i] for i in order]
    fit = documents_covering if mode == "pack" else documents_within
    count = fit(shuffled_tokens, cap)
    return np.sort(order[:count])


def make_sequences(
    doc_ids: Sequence[list[int]],
    seq_len: int,
    mode: str,
    ids: SpecialIds,
    cap: int | None,
    rng: np.random.Generator,
) -> tuple[SequenceSet, np.ndarray, int]:
    """(sequences, kept document indices, truncated examples) of documents given in order.

    Pack mode cuts the kept documents' stream at exactly ``cap`` tokens.
    """
    if mode == "pack":
        kept = capped_selection([len(d) + 1 for d in doc_ids], mode, cap, rng)
        stream = token_stream([doc_ids[i] for i in kept], ids.eos_id)
        if cap is not None:
            stream = stream[:cap]
        return pack_stream(stream, seq_len, ids.pad_id), kept, 0
    kept = capped_selection([example_tokens(len(d), seq_len) for d in doc_ids], mode, cap, rng)
    sequences, truncated = pad_examples([doc_ids[i] for i in kept], seq_len, ids.eos_id, ids.pad_id)
    return sequences, kept, truncated


def _client_data(
    client_id: int,
    document_indices: Sequence[int],
    documents: Sequence[Document],
    encoded: Sequence[list[int]],
    partition: str,
    seq_len: int,
    mode: str,
    ids: SpecialIds,
    validation_fraction: float,
    max_tokens_per_client: int | None,
    seed: int,
) -> ClientData:
    """One client from its partition (indices into ``documents``, ascending)."""
    sequences, kept, truncated = make_sequences(
        [encoded[i] for i in document_indices], seq_len, mode, ids, max_tokens_per_client,
        stream_rng(seed, CAP_STREAM, client_id),
    )
    train, validation = split_tail(sequences, validation_fraction, f"client {client_id}")
    kept_indices = np.asarray(document_indices, dtype=np.int64)[kept]
    name_key = _GROUP_PARTITIONS.get(partition, (GROUP_DEFAULT, ""))[0]
    counts = Counter(documents[i].groups[name_key] for i in kept_indices)
    top = [g for g, _ in counts.most_common(_NAME_GROUPS_SHOWN)]
    more = ", ..." if len(counts) > len(top) else ""
    noun = _GROUP_PARTITIONS.get(partition, ("", "groups"))[1]
    return ClientData(
        client_id=client_id,
        name=(
            f"{partition}: {kept_indices.size} documents, {len(counts)} {noun} "
            f"({', '.join(top)}{more})"
        ),
        train=train,
        validation=validation,
        document_indices=kept_indices,
        groups=dict(counts),
        truncated_examples=truncated,
        seed=seed,
    )


def build_federated_data(
    source: str = "shakespeare",
    *,
    tokenizer: PreTrainedTokenizerBase,
    num_clients: int,
    seq_len: int,
    seed: int,
    partition: str = "by_play",
    dirichlet_alpha: float = 0.5,
    validation_fraction: float = 0.1,
    global_validation_fraction: float = 0.05,
    format: str = "auto",
    mode: str = "pack",
    max_context: int | None = None,
    max_tokens_per_client: int | None = None,
) -> FederatedData:
    """Read, tokenize, hold out, partition, pack and split a text source for K clients.

    Args:
        source: ``"shakespeare"`` or a path: folder of .txt, .txt, .jsonl (``text`` field) or
            E2E .csv (``mr``/``ref`` columns).
        tokenizer: any transformers tokenizer with an EOS token (padding falls back to EOS).
        num_clients: K >= 1.
        seq_len: L, tokens per sequence, >= 2 and <= ``max_context`` when given.
        seed: root seed of every random choice (held-out set, partition, batch shuffles).
        partition: ``iid``, ``by_play``, ``by_role`` (Shakespeare only) or ``dirichlet``.
        dirichlet_alpha: concentration alpha > 0 of the Dirichlet partition (smaller = more skew).
        validation_fraction: share of each client's sequences held out, in [0, 1).
        global_validation_fraction: share of documents held out for all clients, in [0, 1).
        format: ``auto``, ``shakespeare``, ``text``, ``jsonl`` or ``csv`` (alias ``e2e-csv``).
        mode: ``pack`` (stream cut into rows of L) or ``pad`` (one padded example per row).
        max_context: the model's context length, to reject a larger seq_len early.
        max_tokens_per_client: cap on tokens per client (and on the global validation set).

    Raises:
        ConfigError: an argument outside its allowed values.
        DataError: missing or malformed data, an empty client, seq_len above max_context.
    """
    _check_arguments(
        seed=seed,
        num_clients=num_clients,
        seq_len=seq_len,
        partition=partition,
        dirichlet_alpha=dirichlet_alpha,
        validation_fraction=validation_fraction,
        global_validation_fraction=global_validation_fraction,
        mode=mode,
        max_context=max_context,
        max_tokens_per_client=max_tokens_per_client,
    )
    ids = special_ids(tokenizer)
    documents, resolved_format = load_documents(source, format)
    held_out, held_out_order, pool = held_out_and_pool(
        len(documents), global_validation_fraction, seed, group_labels(documents, GROUP_DEFAULT)
    )
    labels = partition_labels([documents[i] for i in pool], partition, num_clients)

    encoded = encode_texts(tokenizer, [doc.text for doc in documents])
    pool_sizes = np.array([len(encoded[i]) + 1 for i in pool], dtype=np.int64)
    parts = partition_documents(
        labels, pool_sizes, num_clients, partition, dirichlet_alpha,
        stream_rng(seed, PARTITION_STREAM),
    )

    clients = [
        _client_data(k, [pool[i] for i in part], documents, encoded, partition, seq_len, mode, ids,
                     validation_fraction, max_tokens_per_client, seed)
        for k, part in enumerate(parts)
    ]
    kept_labels = [
        [documents[i].groups[GROUP_DEFAULT] for i in client.document_indices] for client in clients
    ]

    if held_out.size:
        global_validation, kept, _ = make_sequences(
            [encoded[i] for i in held_out_order], seq_len, mode, ids, max_tokens_per_client,
            stream_rng(seed, GLOBAL_VALIDATION_STREAM, GLOBAL_VALIDATION_CAP_WORD),
        )
        global_validation_order = held_out_order[kept]  # after the cap, still in packing order
    else:
        global_validation = SequenceSet.empty(seq_len)
        global_validation_order = np.zeros(0, dtype=np.int64)
    all_works = set(group_labels(documents, GROUP_DEFAULT))
    covered = {documents[i].groups[GROUP_DEFAULT] for i in global_validation_order}

    settings = {
        "source": source,
        "format": resolved_format,
        "partition": partition,
        "dirichlet_alpha": dirichlet_alpha if partition == "dirichlet" else None,
        "seed": seed,
        "validation_fraction": validation_fraction,
        "global_validation_fraction": global_validation_fraction,
        "max_tokens_per_client": max_tokens_per_client,
        "documents_total": len(documents),
        "documents_global_validation": int(held_out.size),
        "works_total": len(all_works),
    }
    return FederatedData(
        clients=clients,
        global_validation=global_validation,
        global_validation_documents=held_out,
        global_validation_order=global_validation_order,
        global_validation_works=sorted(covered),
        seq_len=seq_len,
        mode=mode,
        ids=ids,
        settings=settings,
        label_entropy_bits=np.array([entropy_bits(labels_k) for labels_k in kept_labels]),
    )
