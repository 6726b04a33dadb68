"""Mini-batches for one client: an endless, reproducible stream of b sequences at a time.

Each epoch is a fresh permutation of the client's training rows, drawn from a NumPy generator seeded
by ``(root seed, BATCH_STREAM, client id)``, so clients never share a shuffle and a rerun with the
same seed replays the same batches. The permutations are laid end to end and cut into runs of b:
every batch has exactly b rows (the uplink payload b*L*d of the system model assumes a fixed b), an
epoch's leftover rows open the next batch, and every row is seen once per epoch. When a client has
fewer than b rows a batch repeats rows across epochs.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from fsllm_sim.errors import ConfigError, DataError

from .packing import SequenceSet

# Second word of the seed of batch shuffles; other streams of the same root seed use other words.
BATCH_STREAM = 2


def batch_rng(seed: int, client_id: int) -> np.random.Generator:
    """The shuffling generator of one client."""
    return np.random.default_rng([seed, BATCH_STREAM, client_id])


def batch_indices(num_rows: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless row-index arrays of length ``batch_size`` from consecutive epoch permutations."""
    pending = np.empty(0, dtype=np.int64)
    while True:
        while pending.size < batch_size:
            pending = np.concatenate([pending, rng.permutation(num_rows)])
        yield pending[:batch_size]
        pending = pending[batch_size:]


def iterate_batches(
    sequences: SequenceSet, batch_size: int, seed: int, client_id: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless ``{"input_ids", "attention_mask", "labels"}`` dicts of shape (b, L)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be an integer >= 1")
    if sequences.num_sequences == 0:
        raise DataError(f"client {client_id} has no training sequences to batch")
    for rows in batch_indices(sequences.num_sequences, batch_size, batch_rng(seed, client_id)):
        yield sequences.select(rows).as_batch()
