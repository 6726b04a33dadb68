"""The main server (MS): blocks ℓ+1..J, final norm, LM head and loss, with its server-side LoRA adapter(s).

``server_mode``:

* ``"v1"`` (SplitFed-V1): one server adapter copy θ_s,k (and optimiser) per client; at round end
  :meth:`MainServer.aggregate` replaces every copy by the sample-weighted average Σ n_k/Σn θ_s,k.
* ``"v2"`` (SplitFed-V2): one shared server adapter, updated by each :meth:`MainServer.step` in the order the
  steps are called (= the order the event engine serves requests).

:meth:`MainServer.step` is one request: forward from the received activations, loss, backward, optimiser
step, and the gradient ∂loss/∂A sent back at the gradient wire precision.

Each server optimiser step goes through :meth:`OptimizerSpec.step <fsllm_sim.training.optim.OptimizerSpec.step>`
(scheduled learning rate, gradient clipping of that adapter). Step index of the schedule: v1, the number of
requests that client's copy has served (= the client's local iterations); v2, the number of requests the shared
adapter has served divided by the number of clients — the schedule's ``total_steps``/``warmup_steps`` count
*local* steps of one client over the run, and the shared adapter serves K requests per local step, so this
keeps the shared adapter's lr curve on the same run-long time axis as the clients' (counting raw requests would
end a cosine/linear schedule after 1/K of the run). Resetting the optimiser state does not reset these counts.

``aggregation`` ("fedavg" | "product", see :mod:`fsllm_sim.training.fed_server`) is the v1 average of the copies.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.fed_server import aggregate_states, check_aggregation
from fsllm_sim.training.lora import (
    AdapterSlots,
    AdapterState,
    copy_into,
    detached_state,
    has_lora_dropout,
    set_lora_dropout_training,
)
from fsllm_sim.training.messages import ActivationMessage, GradientMessage
from fsllm_sim.training.optim import OptimizerSpec
from fsllm_sim.training.split import ServerPart
from fsllm_sim.training.wire import check_precision, tensor_bits, wire_cast

SERVER_MODES = ("v1", "v2")


class MainServer:
    def __init__(self, part: ServerPart, slots: AdapterSlots, initial_state: Mapping[str, torch.Tensor], *,
                 mode: str = "v1", optimizer: OptimizerSpec, client_weights: Mapping[int, float],
                 gradient_precision: str = "fp16", reset_optimizer_each_round: bool = False,
                 aggregation: str = "fedavg"):
        if mode not in SERVER_MODES:
            raise ConfigError(f"server_mode={mode!r} is not supported; allowed: {', '.join(SERVER_MODES)}")
        self.part = part
        self.slots = slots
        self.mode = mode
        self.optimizer_spec = optimizer
        self.gradient_precision = check_precision(gradient_precision, "gradient_precision")
        self.reset_optimizer_each_round = reset_optimizer_each_round
        self.aggregation = check_aggregation(aggregation)
        self.client_weights = {int(k): float(w) for k, w in client_weights.items()}
        self.client_ids = list(self.client_weights)
        self.steps_done = 0
        self.copy_steps_done: dict[int, int] = {k: 0 for k in self.client_ids}  # v1: per copy (lr schedule)
        self._dropout = has_lora_dropout(part)
        self.states: dict[int, AdapterState] = self._build_states(initial_state)
        self._optimizers: dict[int, torch.optim.Optimizer] = {}
        self._build_optimizers()

    def _build_states(self, initial_state: Mapping[str, torch.Tensor]) -> dict[int, AdapterState]:
        """Each client's server adapter: v1 its own copy, v2 the one shared dict."""
        if self.mode == "v1":
            return {k: self.slots.new_state_like(initial_state) for k in self.client_ids}
        shared = self.slots.new_state_like(initial_state)
        return {k: shared for k in self.client_ids}

    def _build_optimizers(self) -> None:
        if self.mode == "v1":
            self._optimizers = {k: self.optimizer_spec.build(s.values()) for k, s in self.states.items()}
        else:
            opt = self.optimizer_spec.build(next(iter(self.states.values())).values())
            self._optimizers = {k: opt for k in self.client_ids}

    def state_for(self, client_id: int) -> AdapterState:
        try:
            return self.states[client_id]
        except KeyError:
            raise ConfigError(f"client_id={client_id!r} is unknown to the main server; allowed: "
                              f"{self.client_ids}") from None

    def part_for(self, client_id: int) -> tuple[ServerPart, AdapterSlots]:
        """The server view (and its LoRA slots) that serves ``client_id``: one for all clients here; one per
        client split in :class:`~fsllm_sim.training.mixed_split.MixedMainServer`."""
        return self.part, self.slots

    def distinct_states(self) -> list[AdapterState]:
        """The server adapter copies, each once (v1: one per client; v2: the shared one)."""
        seen: dict[int, AdapterState] = {}
        for s in self.states.values():
            seen.setdefault(id(s), s)
        return list(seen.values())

    def step(self, msg: ActivationMessage) -> tuple[GradientMessage, float]:
        """Serve one request: forward, loss, backward, server-adapter update; returns (gradient message, loss)."""
        state = self.state_for(msg.client_id)
        part, slots = self.part_for(msg.client_id)
        opt = self._optimizers[msg.client_id]
        x = msg.activations.detach().requires_grad_(True)
        with slots.use(state), torch.enable_grad():
            if self._dropout:
                set_lora_dropout_training(part, True)
            try:
                loss = part(x, msg.attention_mask, msg.labels)
            finally:
                if self._dropout:
                    set_lora_dropout_training(part, False)
            loss.backward()
        self.optimizer_spec.step(opt, self.schedule_step(msg.client_id))
        opt.zero_grad(set_to_none=True)
        self.steps_done += 1
        self.copy_steps_done[msg.client_id] += 1
        grad = x.grad if x.grad is not None else torch.zeros_like(x)
        sent = wire_cast(grad, self.gradient_precision)
        loss_value = float(loss.detach())
        reply = GradientMessage(client_id=msg.client_id, seq=msg.seq, gradient=sent,
                                precision=self.gradient_precision,
                                payload_bits=tensor_bits(grad, self.gradient_precision), loss=loss_value)
        return reply, loss_value

    def schedule_step(self, client_id: int) -> float:
        """Index of the next optimiser step on ``client_id``'s server adapter, on the lr schedule's axis."""
        if self.mode == "v1":
            return self.copy_steps_done[client_id]
        return self.steps_done / len(self.client_ids)

    def _average(self, weights: Mapping[int, float] | None) -> dict[str, torch.Tensor]:
        weights = self.client_weights if weights is None else weights
        ids = [k for k in self.client_ids if k in weights]
        if not ids:
            raise ConfigError("the aggregation weights name none of the main server's clients; cannot aggregate")
        states = [self.states[k] for k in ids]
        if self.aggregation == "product" and all(
                torch.equal(s[key], states[0][key]) for s in states[1:] for key in states[0]):
            return detached_state(states[0])  # identical copies (right after aggregate): that copy, not a re-SVD
        return aggregate_states(states, [weights[k] for k in ids], self.aggregation)

    def aggregate(self, weights: Mapping[int, float] | None = None) -> None:
        """Round end. v1: every server copy := Σ n_k/Σn θ_s,k (weights default to the clients' n_k; with
        ``aggregation="product"`` the rank-r SVD of the average products instead). v2: no-op."""
        if self.mode == "v1":
            avg = self._average(weights)
            for k in self.client_ids:
                copy_into(self.states[k], avg)
        if self.reset_optimizer_each_round:
            self._build_optimizers()

    def global_state(self) -> dict[str, torch.Tensor]:
        """Server adapter of the global model: v2 the shared one; v1 the n_k-weighted average of the copies
        (equal to each copy right after :meth:`aggregate`)."""
        if self.mode == "v2":
            return detached_state(self.states[self.client_ids[0]])
        return self._average(None)
