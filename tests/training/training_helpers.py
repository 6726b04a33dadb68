"""Synthetic batches and a duck-typed FederatedData for the training-engine tests (no files, no tokenizer)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


# --------------------------------------------------------------------------------------------- synthetic data


def learnable_batch(generator: torch.Generator, batch_size: int, seq_len: int, vocab: int = 512,
                    pad_to: list[int] | None = None) -> dict[str, torch.Tensor]:
    """Rows of an arithmetic progression mod 64 + offset: a pattern a tiny model can learn quickly."""
    start = torch.randint(0, 64, (batch_size, 1), generator=generator)
    step = torch.randint(1, 4, (batch_size, 1), generator=generator)
    ids = (start + step * torch.arange(seq_len)) % 64 + 16
    ids = ids.clamp(max=vocab - 1)
    mask = torch.ones_like(ids)
    if pad_to is not None:
        for i, n in enumerate(pad_to):
            mask[i, n:] = 0
            ids[i, n:] = 0
    labels = ids.clone()
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def padded_random_batch(seed: int, batch_size: int, seq_len: int, lengths: list[int], vocab: int = 512,
                        left: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch_size, seq_len), generator=g)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        if left:
            mask[i, seq_len - n:] = 1
        else:
            mask[i, :n] = 1
    ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))
    labels = ids.clone()
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@dataclass
class FakeClient:
    client_id: int
    num_samples: int
    seed: int
    seq_len: int

    def batches(self, batch_size: int):
        g = torch.Generator().manual_seed(1000 + 17 * self.client_id + self.seed)
        while True:
            yield learnable_batch(g, batch_size, self.seq_len)


@dataclass
class FakeFederatedData:
    """Duck-typed stand-in for the data package's FederatedData (learnable synthetic sequences)."""

    clients: list
    global_validation: dict

    def summary(self) -> dict:
        return {"source": "synthetic", "num_clients": len(self.clients)}


def make_fake_data(num_clients: int = 2, seq_len: int = 16, num_samples=None, seed: int = 0,
                   num_val: int = 8) -> FakeFederatedData:
    num_samples = num_samples or [10 * (k + 1) for k in range(num_clients)]
    clients = [FakeClient(k, num_samples[k], seed, seq_len) for k in range(num_clients)]
    val = learnable_batch(torch.Generator().manual_seed(99), num_val, seq_len)
    return FakeFederatedData(clients=clients, global_validation=val)
