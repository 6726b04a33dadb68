"""The federated server (FS): FedAvg of the client adapters, θ_c^{t+1} = Σ_k (n_k / Σ_j n_j) θ_c,k.

``aggregation`` (:data:`AGGREGATIONS`):

* ``"fedavg"`` (default): every tensor averaged on its own, so A and B of a LoRA module are averaged
  separately, as the split-federated LoRA literature does — the update of the result, B_avg A_avg, is *not*
  the average of the clients' updates Σ w_k B_k A_k.
* ``"product"``: per LoRA module, the exact weighted average of the products M = Σ_k w_k B_k A_k, refactored
  to rank r by a truncated SVD M = U S Vᵀ: B' = U_r √S_r, A' = √S_r V_rᵀ. B' A' is the best rank-r
  approximation of M (Eckart–Young), hence M itself when rank M ≤ r. Tensors that are not A/B factors are
  averaged as in fedavg. Note that a module whose average product is 0 (e.g. every contributor still has
  B = 0) gets A' = B' = 0, and directions with zero singular value get zero factors in both A' and B'.

The FS is a separate party from the main server: it only ever sees client adapters (AdapterMessage), never
activations or server adapters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.lora import detached_state, lora_factor_pairs
from fsllm_sim.training.messages import AdapterMessage, BroadcastMessage
from fsllm_sim.training.wire import cast_state, check_precision, state_bits


def fedavg(states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """Σ_k w_k θ_k / Σ_k w_k, key by key (accumulated in float64, returned in the states' dtype)."""
    if len(states) == 0:
        raise ConfigError("fedavg needs at least one adapter state; got none")
    if len(weights) != len(states):
        raise ConfigError(f"fedavg got {len(states)} states but {len(weights)} weights; they must match")
    w = [float(x) for x in weights]
    if any(not x >= 0 for x in w) or sum(w) <= 0:
        raise ConfigError(f"fedavg weights={w!r} are invalid; allowed: non-negative numbers with a positive sum")
    total = sum(w)
    keys = list(states[0].keys())
    for i, s in enumerate(states[1:], 1):
        if set(s.keys()) != set(keys):
            raise ConfigError(f"fedavg: state {i} has different keys from state 0")
    out = {}
    with torch.no_grad():
        for k in keys:
            acc = torch.zeros(states[0][k].shape, dtype=torch.float64, device=states[0][k].device)
            for s, wk in zip(states, w):
                if wk:
                    acc += s[k].detach().to(torch.float64) * (wk / total)
            out[k] = acc.to(states[0][k].dtype)
    return out


AGGREGATIONS = ("fedavg", "product")


def check_aggregation(method: str) -> str:
    if method not in AGGREGATIONS:
        raise ConfigError(f"aggregation={method!r} is not supported; allowed: {', '.join(AGGREGATIONS)}")
    return method


def product_average(states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """Per LoRA module: the rank-r truncated SVD factors of Σ_k w_k B_k A_k / Σ_k w_k (see the module doc)."""
    avg = fedavg(states, weights)  # validates; gives the non-factor tensors
    pairs, _ = lora_factor_pairs(states[0].keys())
    w = [float(x) for x in weights]
    total = sum(w)
    with torch.no_grad():
        for ka, kb in pairs:
            a0, b0 = states[0][ka], states[0][kb]
            r = int(a0.shape[0])
            m = torch.zeros((b0.shape[0], a0.shape[1]), dtype=torch.float64, device=b0.device)
            for s, wk in zip(states, w):
                if wk:
                    m += (s[kb].detach().to(torch.float64) @ s[ka].detach().to(torch.float64)) * (wk / total)
            u, sv, vh = torch.linalg.svd(m, full_matrices=False)
            q = min(r, int(sv.numel()))
            root = sv[:q].clamp_min(0).sqrt()
            new_b = torch.zeros((b0.shape[0], r), dtype=torch.float64, device=b0.device)
            new_a = torch.zeros((r, a0.shape[1]), dtype=torch.float64, device=a0.device)
            new_b[:, :q] = u[:, :q] * root
            new_a[:q] = root[:, None] * vh[:q]
            avg[ka] = new_a.to(a0.dtype)
            avg[kb] = new_b.to(b0.dtype)
    return avg


def aggregate_states(states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float],
                     method: str = "fedavg") -> dict[str, torch.Tensor]:
    """The aggregate of adapter states by ``method`` (:data:`AGGREGATIONS`)."""
    if check_aggregation(method) == "product":
        return product_average(states, weights)
    return fedavg(states, weights)


class FederatedServer:
    """Collects :class:`AdapterMessage` uploads and aggregates them into a :class:`BroadcastMessage`."""

    def __init__(self, initial_state: Mapping[str, torch.Tensor], *, broadcast_precision: str = "fp32",
                 aggregation: str = "fedavg"):
        self.broadcast_precision = check_precision(broadcast_precision, "adapter_precision")
        self.aggregation = check_aggregation(aggregation)
        self.global_state: dict[str, torch.Tensor] = detached_state(initial_state)
        self.round = 0
        self._inbox: dict[int, AdapterMessage] = {}

    @property
    def pending_uploads(self) -> list[int]:
        return sorted(self._inbox)

    def receive(self, msg: AdapterMessage) -> None:
        if set(msg.state) != set(self.global_state):
            raise ConfigError(f"adapter upload of client {msg.client_id} has keys that do not match the global "
                              f"client adapter (different split or rank?)")
        self._inbox[msg.client_id] = msg

    def aggregate(self) -> BroadcastMessage:
        """Aggregate (FedAvg or product, weights n_k) the uploads received this round; returns the broadcast."""
        if not self._inbox:
            raise ConfigError("the federated server received no adapter upload this round; nothing to aggregate")
        msgs = [self._inbox[k] for k in sorted(self._inbox)]
        self.global_state = aggregate_states([m.state for m in msgs], [m.num_samples for m in msgs],
                                             self.aggregation)
        self._inbox.clear()
        self.round += 1
        return self.broadcast(contributors=[m.client_id for m in msgs])

    def broadcast(self, contributors: list[int] | None = None) -> BroadcastMessage:
        """The current global client adapter as a downlink broadcast (also used at round 0)."""
        sent = cast_state(self.global_state, self.broadcast_precision)
        return BroadcastMessage(round=self.round, state=sent, precision=self.broadcast_precision,
                                payload_bits=state_bits(sent, self.broadcast_precision),
                                contributors=list(contributors or []))
