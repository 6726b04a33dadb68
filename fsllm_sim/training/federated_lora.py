"""protocol ``fl``: federated LoRA without a split. Every client holds the whole model and LoRA adapters on all J
blocks; a local iteration is the forward, loss and backward of the whole model on the device and an optimiser
step; at a round's end the clients upload their adapters and the federated server averages them (FedAvg,
weights n_k, or the product average) and broadcasts the result.

Same memory layout as :class:`~fsllm_sim.training.system.SplitFedSystem`: one frozen base with LoRA slots, and per
client only its adapter and optimiser state. The whole model is the two views of a split at ℓ = 1 run back to
back in one autograd graph (no wire between them: nothing leaves the device but the adapter), which the split
tests show to be the unsplit peft model; the adapter keys are ``blocks.0..J-1``, as in the split system.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack

import torch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.client import adapter_message, normalise_batch
from fsllm_sim.training.device import resolve_compute
from fsllm_sim.training.evaluation import EvalResult, evaluate_split
from fsllm_sim.training.fed_server import FederatedServer
from fsllm_sim.training.lora import AdapterSlots, attach_lora, copy_into
from fsllm_sim.training.messages import AdapterMessage, BroadcastMessage
from fsllm_sim.training.models import LoadedModel
from fsllm_sim.training.split import check_batch, split_model
from fsllm_sim.training.system import SplitFedConfig
from fsllm_sim.training.wire import check_precision, state_bits


class _Slots:
    """The LoRA slots of both views, addressed by global keys, used together."""

    def __init__(self, *slots: AdapterSlots):
        self.parts = slots

    def use(self, state):
        stack = ExitStack()
        for s in self.parts:
            stack.enter_context(s.use(state))
        return stack

    def current_state(self) -> dict:
        out = {}
        for s in self.parts:
            out.update(s.current_state())
        return out

    def new_state_like(self, values) -> dict:
        out = {}
        for s in self.parts:
            out.update(s.new_state_like(values))
        return out


class FederatedLoraClient:
    """One device: the whole model with its own adapter θ_k (all J blocks) and optimiser."""

    def __init__(self, client_id: int, system: FederatedLoraSystem, initial_state, *, num_samples: int, batches):
        self.client_id = int(client_id)
        self.system = system
        self.state = system.slots.new_state_like(initial_state)
        self.optimizer_spec = system.optimizer_spec
        self.optimizer = self.optimizer_spec.build(self.state.values())
        self.num_samples = int(num_samples)
        self.batches = batches
        self.iterations_done = 0
        self._pending: torch.Tensor | None = None

    def next_batch(self):
        if self.batches is None:
            raise ConfigError(f"client {self.client_id} has no data iterator; pass a batch")
        return next(self.batches)

    def forward(self, batch=None) -> float:
        """Forward and loss of the whole model on ``batch`` (else the next of its data); the graph is kept for
        :meth:`backward`. Returns the training loss."""
        if self._pending is not None:
            raise RuntimeError(f"client {self.client_id}: forward() while an iteration awaits backward()")
        ids, mask, labels = normalise_batch(self.next_batch() if batch is None else batch)
        sys_ = self.system
        check_batch(ids, mask, sys_.vocab_size, sys_.max_positions)
        with sys_.slots.use(self.state), torch.enable_grad():
            loss = sys_.server_part(sys_.client_part(ids, mask), mask, labels)
        self._pending = loss
        return float(loss.detach())

    def backward(self) -> None:
        """Backward of the pending loss and the optimiser step (the iteration ends)."""
        if self._pending is None:
            raise RuntimeError(f"client {self.client_id}: backward() without a pending forward()")
        loss, self._pending = self._pending, None
        loss.backward()  # the graph holds this client's adapter tensors: no slots needed
        self.optimizer_spec.step(self.optimizer, self.iterations_done)
        self.optimizer.zero_grad(set_to_none=True)
        self.iterations_done += 1

    def cancel_pending(self) -> None:
        self._pending = None

    def adapter_upload(self) -> AdapterMessage:
        return adapter_message(self.client_id, self.state, self.num_samples, self.system.adapter_precision)

    def receive_broadcast(self, msg: BroadcastMessage) -> None:
        copy_into(self.state, msg.state)
        if self.system.config.reset_optimizer_each_round:
            self.optimizer = self.optimizer_spec.build(self.state.values())


class FederatedLoraSystem:
    """K clients training LoRA on the whole model, and the federated server (see the module doc)."""

    def __init__(self, model: LoadedModel, config: SplitFedConfig = SplitFedConfig(), *, data=None,
                 num_clients: int | None = None, batch_size: int | None = None):
        self.model = model
        self.config = config
        self.compute = resolve_compute(config.device, config.dtype)
        self.adapter_precision = check_precision(config.adapter_precision, "adapter_precision")
        self.optimizer_spec = config.optimizer_spec()
        self.lora = config.lora_spec().validate(model.family)
        if data is not None:
            clients_data = list(data.clients)
            if batch_size is None:
                raise ConfigError("batch_size is required when data is given (clients draw b sequences per batch)")
            num_samples = [int(c.num_samples) for c in clients_data]
            iterators = [c.batches(batch_size) for c in clients_data]
        else:
            if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
                raise ConfigError(f"num_clients={num_clients!r} is invalid; allowed: an integer >= 1")
            num_samples, iterators = [1] * num_clients, [None] * num_clients
        if sum(num_samples) <= 0:
            raise ConfigError(f"num_samples={num_samples!r} is invalid; allowed: counts with a positive sum")
        model.model.to(self.compute.device)
        self.peft_model = attach_lora(model.model, model.family, self.lora, seed=config.seed)
        self.client_part, self.server_part = split_model(self.peft_model, 1, self.compute)
        self.first_slots = AdapterSlots(self.client_part, 0)
        self.rest_slots = AdapterSlots(self.server_part, 1)
        self.slots = _Slots(self.first_slots, self.rest_slots)
        cfg = self.client_part.config
        self.vocab_size, self.max_positions = int(cfg.vocab_size), int(cfg.max_position_embeddings)
        init = self.slots.current_state()
        self.fed_server = FederatedServer(init, broadcast_precision=self.adapter_precision,
                                          aggregation=config.aggregation)
        self.clients = [FederatedLoraClient(k, self, init, num_samples=num_samples[k], batches=iterators[k])
                        for k in range(len(num_samples))]
        first = self.fed_server.broadcast()
        for c in self.clients:
            c.receive_broadcast(first)
        self.round = 0

    @property
    def num_clients(self) -> int:
        return len(self.clients)

    @property
    def rank(self) -> int:
        return self.lora.rank

    @property
    def split(self) -> int:
        return self.model.num_blocks  # the whole model is on the device

    def adapter_bits(self) -> int:
        """S_c: bits of one whole-model adapter upload at the adapter precision."""
        return state_bits(self.clients[0].state, self.adapter_precision)

    def iteration(self, k: int, batch=None) -> float:
        loss = self.clients[k].forward(batch)
        self.clients[k].backward()
        return loss

    def finish_round(self, participants: Sequence[int] | None = None) -> BroadcastMessage:
        """Uploads of the (participating) clients, FedAvg, broadcast to every client."""
        ids = range(self.num_clients) if participants is None else participants
        for k in ids:
            self.fed_server.receive(self.clients[k].adapter_upload())
        msg = self.fed_server.aggregate()
        self.round = msg.round
        for c in self.clients:
            c.receive_broadcast(msg)
        return msg

    def global_state(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.fed_server.global_state.items()}

    def evaluate(self, validation, *, batch_size: int = 8, max_batches: int | None = None,
                 through_wire: bool = False) -> EvalResult:
        """Validation loss of the global model (nothing crosses a wire under fl: ``through_wire`` is moot)."""
        state = self.global_state()
        return evaluate_split(self.client_part, self.first_slots, state, self.server_part, self.rest_slots, state,
                              validation, batch_size=batch_size, max_batches=max_batches)
