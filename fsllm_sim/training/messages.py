"""The messages exchanged by clients, the main server (MS) and the federated server (FS).

Each carries its tensors *as received* (already cast to the wire precision and back, see
:mod:`fsllm_sim.training.wire`) and ``payload_bits`` counted from those real tensors. The discrete-event engine
times a transfer of ``payload_bits`` (plus ``side_bits`` where it models them) on the relevant band.

=====================  ========================  ===========================  ================================
message                from -> to, band          payload_bits                 side_bits
=====================  ========================  ===========================  ================================
ActivationMessage      client -> MS, s-band      S_a = b·L·d·q_a + int8 side  labels + attention mask:
                                                                              b·L·(ceil(log2(V+1)) + 1)
GradientMessage        MS -> client, downlink    S_g = b·L·d·q_g (= S_a)      0
AdapterMessage         client -> FS, f-band      S_c = Σ numel·q_c (+side, int8*)  0
BroadcastMessage       FS -> clients, downlink   S_c                          0
=====================  ========================  ===========================  ================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ActivationMessage:
    client_id: int
    seq: int  # the client's iteration counter (matches the GradientMessage answering it)
    activations: torch.Tensor  # b×L×d, fp32 tensor holding the wire-cast values
    attention_mask: torch.Tensor  # b×L
    labels: torch.Tensor  # b×L, -100 where ignored
    precision: str
    payload_bits: int  # S_a
    side_bits: int  # labels + attention mask

    @property
    def total_bits(self) -> int:
        return self.payload_bits + self.side_bits

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


@dataclass
class GradientMessage:
    client_id: int
    seq: int
    gradient: torch.Tensor  # ∂loss/∂A, b×L×d, wire-cast
    precision: str
    payload_bits: int  # S_g
    loss: float  # the training loss of this iteration (a scalar the MS may report; not counted)
    side_bits: int = 0

    @property
    def total_bits(self) -> int:
        return self.payload_bits + self.side_bits


@dataclass
class AdapterMessage:
    client_id: int
    state: dict[str, torch.Tensor]  # client adapter θ_c,k (global keys), wire-cast
    num_samples: int  # n_k, the FedAvg weight
    precision: str
    payload_bits: int  # S_c
    side_bits: int = 0

    @property
    def total_bits(self) -> int:
        return self.payload_bits + self.side_bits


@dataclass
class BroadcastMessage:
    round: int
    state: dict[str, torch.Tensor]  # aggregated client adapter θ_c^{t+1}, wire-cast
    precision: str
    payload_bits: int
    contributors: list[int] = field(default_factory=list)
    side_bits: int = 0

    @property
    def total_bits(self) -> int:
        return self.payload_bits + self.side_bits
