"""Splitting documents among K clients: IID, whole groups (plays, roles) and Dirichlet label skew.

Every function works on document indices only (labels and sizes come in as arrays), draws all
randomness from the ``numpy.random.Generator`` it is given, and returns one ascending index array per
client. Ascending = corpus order: the partition decides *which* documents a client holds, while
their order stays the reading order, so a packed sequence keeps the dialogue around a speech.
Batching reshuffles sequences every epoch anyway.

Schemes (``PARTITIONS``):

* ``iid``: a seeded permutation cut into K parts whose document counts differ by at most one.
* ``by_play`` / ``by_role``: whole groups (a play, or one speaking role of one play) per client,
  balanced by token count with randomised greedy list scheduling: groups are taken in a seeded random
  order and each goes to the client holding the fewest tokens so far (ties: lowest client id). Every
  client gets a group before any gets a second, and the spread between the largest and smallest
  client is at most the largest group. Randomising the order (rather than largest-first) makes the
  partition change with the seed, so repeated runs sample different splits.
* ``dirichlet``: label skew in the style of NIID-Bench (Li et al., ICDE 2022): for each label
  (play), proportions q ~ Dir(alpha * 1_K) over the clients; the label's documents, in corpus order,
  are cut into K contiguous runs with sizes round(q * n) (cumulative rounding) and the runs are
  dealt to the clients in a seeded random order. Small alpha gives each client few labels (strong
  skew); alpha -> inf approaches an IID split of every label. Counts are in documents, as in the
  literature. Draws leaving a client empty are redrawn (up to ``DIRICHLET_MAX_DRAWS`` times) from
  the same generator, so the result is still a function of the seed.
"""

from __future__ import annotations

import heapq
from typing import Sequence

import numpy as np

from fsllm_sim.errors import DataError

PARTITIONS = ("iid", "by_play", "by_role", "dirichlet")
DIRICHLET_MAX_DRAWS = 100


def partition_iid(num_documents: int, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled equal split: client sizes differ by at most one document."""
    order = rng.permutation(num_documents)
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def partition_by_group(
    labels: Sequence[str], sizes: np.ndarray, num_clients: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Whole groups per client, balanced by ``sizes`` (tokens per document).

    Args:
        labels: group of each document (play title, or ``"<play>/<SPEAKER>"`` for roles).
        sizes: size of each document, shape (num_documents,), e.g. tokens including its EOS.
        num_clients: K.
        rng: shuffles the order in which groups are dealt.

    Returns:
        K ascending index arrays; a client may be empty when there are fewer groups than clients
        (the caller reports it with :func:`check_nonempty`).
    """
    groups = sorted(set(labels))
    label_array = np.asarray(labels, dtype=object)
    group_docs = {g: np.flatnonzero(label_array == g) for g in groups}
    group_size = {g: int(np.sum(sizes[group_docs[g]])) for g in groups}
    # Min-heap of (tokens held, client id): the least-loaded client, lowest id on ties.
    heap = [(0, k) for k in range(num_clients)]
    assigned: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for gi in rng.permutation(len(groups)):
        g = groups[gi]
        load, k = heapq.heappop(heap)
        assigned[k].append(group_docs[g])
        heapq.heappush(heap, (load + group_size[g], k))
    return [
        np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
        for parts in assigned
    ]


def _dirichlet_draw(
    label_docs: list[np.ndarray], num_clients: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    per_client: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for docs in label_docs:
        q = rng.dirichlet(np.full(num_clients, alpha))
        # Cumulative rounding: run j is docs[bounds[j]:bounds[j+1]]; runs tile the label exactly.
        bounds = np.concatenate([[0], np.round(np.cumsum(q) * len(docs)).astype(np.int64)])
        bounds[-1] = len(docs)
        dealing = rng.permutation(num_clients)
        for j, k in enumerate(dealing):
            run = docs[bounds[j] : bounds[j + 1]]
            if run.size:
                per_client[k].append(run)
    return [
        np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
        for parts in per_client
    ]


def partition_dirichlet(
    labels: Sequence[str], num_clients: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Label-skewed split: each label's documents spread over clients by q ~ Dir(alpha).

    Raises:
        DataError: when ``DIRICHLET_MAX_DRAWS`` draws all leave some client without documents.
    """
    label_array = np.asarray(labels, dtype=object)
    label_docs = [np.flatnonzero(label_array == g) for g in sorted(set(labels))]
    parts: list[np.ndarray] = []
    for _ in range(DIRICHLET_MAX_DRAWS):
        parts = _dirichlet_draw(label_docs, num_clients, alpha, rng)
        if all(p.size for p in parts):
            return parts
    empty = next(k for k, p in enumerate(parts) if not p.size)
    raise DataError(
        f"client {empty} has an empty partition in all {DIRICHLET_MAX_DRAWS} draws "
        f"(partition=dirichlet, dirichlet_alpha={alpha:g}, {len(label_array)} documents in "
        f"{len(label_docs)} groups over {num_clients} clients): use fewer clients or a larger "
        "dirichlet_alpha"
    )


def check_nonempty(parts: list[np.ndarray], scheme: str, num_groups: int, group_noun: str) -> None:
    """Raise DataError naming the first client without documents."""
    for k, part in enumerate(parts):
        if part.size == 0:
            raise DataError(
                f"client {k} has an empty partition (partition={scheme}, {num_groups} "
                f"{group_noun} over {len(parts)} clients): use fewer clients or partition=dirichlet"
            )


def entropy_bits(labels: Sequence[str]) -> float:
    """Entropy (bits) of the empirical distribution of ``labels``; 0 for one label or none."""
    if len(labels) == 0:
        return 0.0
    _, counts = np.unique(np.asarray(labels, dtype=object), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def label_entropy_bits(parts: list[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """Entropy (bits) of each client's label distribution, counted in documents; shape (K,).

    0 means the client holds a single label (maximal skew); log2(#labels) means uniform. The mean
    over clients is the skew statistic the summary reports and the Dirichlet tests compare.
    """
    label_array = np.asarray(labels, dtype=object)
    return np.array([entropy_bits(label_array[part]) for part in parts])
