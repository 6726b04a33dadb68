"""SplitFedSystem: K clients, the main server and the federated server around ONE frozen base model.

Memory layout (what makes K = 32 clients cost barely more than K = 1):

* the frozen base weights exist once (the loaded transformers model, LoRA injected in place by peft);
* :class:`~fsllm_sim.training.split.ClientPart` / :class:`~fsllm_sim.training.split.ServerPart` are views over it;
* per client: its client adapter θ_c,k (blocks < ℓ) and optimiser state; in v1 also its server adapter copy
  θ_s,k (blocks ≥ ℓ) and that copy's optimiser state. Nothing else.

Every phase is a separate call so a discrete-event engine can interleave them::

    msg = system.clients[k].forward()              # uplink ActivationMessage (payload_bits = S_a)
    grad, loss = system.main_server.step(msg)      # MS compute, downlink GradientMessage (S_g)
    system.clients[k].backward(grad)               # client backward + update
    up = system.clients[k].adapter_upload()        # AdapterMessage (S_c) on the f-band
    system.fed_server.receive(up)
    bcast = system.aggregate()                     # FS FedAvg (+ MS v1 average) -> BroadcastMessage
    system.clients[k].receive_broadcast(bcast)     # for each client

``system.iteration(k)`` and ``system.finish_round()`` do the same in one call for in-process use.

Per-client split points (``SplitFedConfig.splits``, one ℓ_k per client; see :mod:`fsllm_sim.training.mixed_split`
for the aggregation by global block index, who sees what, and the privacy cost): client k holds blocks < ℓ_k
through its split's ClientPart view, the MS serves it through that split's ServerPart view (one pair of views per
distinct split, all over the one base). ``system.splits`` gives every ℓ_k. All ℓ_k equal is the single-split
system of that ℓ, exactly (same objects, same tensors). With different ℓ_k:

* ``system.split`` is min ℓ_k (an int, as existing callers expect): the views ``client_part`` / ``server_part``
  (evaluation, ``load_global_into_model``) are those of that split, and ``evaluate(through_wire=True)`` casts the
  activations at that split;
* ``system.fed_server`` / ``system.main_server`` are :class:`~fsllm_sim.training.mixed_split.MixedFederatedServer`
  / :class:`~fsllm_sim.training.mixed_split.MixedMainServer` (same ``receive`` / ``step``; they aggregate only
  together, through ``system.aggregate()``);
* ``aggregate()`` returns the broadcast of every block some client holds (blocks < max ℓ; its ``payload_bits``
  are those of one transmission carrying them all); client k's own part, payload S_c(ℓ_k), is
  ``system.broadcast_for(k, msg)``, which is what ``finish_round`` delivers;
* ``adapter_bits()`` (one S_c for all) raises: use ``adapter_bits_of(k)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training.client import SplitClient
from fsllm_sim.training.defences import check_noise_sigma
from fsllm_sim.training.device import resolve_compute
from fsllm_sim.training.evaluation import EvalResult, evaluate_split
from fsllm_sim.training.fed_server import FederatedServer
from fsllm_sim.training.lora import AdapterSlots, LoraSpec, attach_lora, copy_into, state_nbytes
from fsllm_sim.training.main_server import SERVER_MODES, MainServer
from fsllm_sim.training.messages import BroadcastMessage
from fsllm_sim.training.mixed_split import (
    MixedFederatedServer,
    MixedMainServer,
    aggregate_by_block,
    check_splits,
    overlap_exchange_bits,
    restrict,
)
from fsllm_sim.training.models import LoadedModel, load_model
from fsllm_sim.training.optim import OptimizerSpec
from fsllm_sim.training.split import check_split, split_model
from fsllm_sim.training.wire import check_precision, payload_bits, side_bits_per_token

# Second word of the seed of a client's activation-noise generator ([seed, NOISE_STREAM, client id]), beside the
# data package's streams 0..3 (global validation, partition, batches, token cap).
NOISE_STREAM = 4


def noise_generator(seed: int, client_id: int) -> torch.Generator:
    """Client ``client_id``'s own torch generator of activation noise under the training ``seed``."""
    state = np.random.SeedSequence([int(seed) % 2 ** 63, NOISE_STREAM, int(client_id)]).generate_state(1, np.uint64)
    return torch.Generator(device="cpu").manual_seed(int(state[0] >> np.uint64(1)))


@dataclass(frozen=True)
class SplitFedConfig:
    """Training-side knobs of one split-federated system."""

    split: int | None = None  # ℓ; None -> J // 2
    splits: tuple[int, ...] | None = None  # per-client ℓ_k, one per client (overrides split); None: all at split
    rank: int = 8
    lora_alpha: float | None = None  # absolute α; None -> lora_alpha_per_rank · r
    lora_alpha_per_rank: float = 2.0  # α = 2r by default (spec)
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None  # None -> per-family default
    server_mode: str = "v1"
    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    activation_precision: str = "fp16"  # q_a
    activation_noise_sigma: float = 0.0  # defence: Gaussian noise on the sent activations, σ x each token's rms
    gradient_precision: str | None = None  # None -> same as activations (S_g = S_a)
    adapter_precision: str = "fp32"  # q_c, uploads and broadcast
    reset_optimizer_each_round: bool = False
    lora_scaling: str = "standard"  # standard: alpha / r; rslora: alpha / sqrt(r)
    lr_schedule: str = "constant"  # constant, cosine or linear over schedule_total_steps local steps
    warmup_steps: int = 0
    schedule_total_steps: int | None = None  # local steps of the whole run (None: constant after warm-up)
    grad_clip_norm: float | None = None
    aggregation: str = "fedavg"  # fedavg (A and B separately) or product (exact average of B A, SVD to rank r)
    device: str = "cpu"  # cpu, cuda, cuda:N or auto (fsllm_sim.training.device)
    dtype: str = "float32"  # compute dtype: float32, or bfloat16 / float16 under autocast
    seed: int = 0

    def lora_spec(self) -> LoraSpec:
        targets = tuple(self.target_modules) if self.target_modules else None
        if not (isinstance(self.lora_alpha_per_rank, (int, float)) and self.lora_alpha_per_rank > 0):
            raise ConfigError(f"lora_alpha_per_rank={self.lora_alpha_per_rank!r} is invalid; allowed: a number > 0")
        alpha = self.lora_alpha if self.lora_alpha is not None else float(self.lora_alpha_per_rank) * self.rank
        return LoraSpec(rank=self.rank, alpha=alpha, dropout=self.lora_dropout, target_modules=targets,
                        scaling=self.lora_scaling)

    def optimizer_spec(self) -> OptimizerSpec:
        return OptimizerSpec(name=self.optimizer, lr=self.learning_rate, weight_decay=self.weight_decay,
                             momentum=self.momentum, schedule=self.lr_schedule, warmup_steps=self.warmup_steps,
                             total_steps=self.schedule_total_steps, grad_clip_norm=self.grad_clip_norm).validate()

    def resolved_gradient_precision(self) -> str:
        return self.gradient_precision or self.activation_precision


@dataclass(frozen=True)
class MemoryReport:
    base_param_bytes: int  # frozen weights, counted once (unique storages)
    client_adapter_bytes: int  # one client's θ_c,k (per-client splits: the largest)
    server_adapter_bytes: int  # one server adapter copy (per-client splits: the largest)
    num_server_copies: int  # v1: K, v2: 1
    total_param_bytes: int  # unique storages of everything the system holds (base + all adapters)
    optimizer_state_bytes: int  # all clients' and server copies' optimiser state (AdamW: 2 moments each)


class SplitFedSystem:
    def __init__(self, model: LoadedModel | str, config: SplitFedConfig = SplitFedConfig(), *,
                 num_clients: int | None = None, num_samples: Sequence[int] | None = None, data=None,
                 batch_size: int | None = None):
        if isinstance(model, str):
            model = load_model(model, seed=config.seed)
        self.model = model
        self.config = config
        J = model.num_blocks
        if config.splits is None:
            split = J // 2 if config.split is None else config.split
            self.split = check_split(split, J, model.name)
        if config.server_mode not in SERVER_MODES:
            raise ConfigError(f"server_mode={config.server_mode!r} is not supported; allowed: "
                              f"{', '.join(SERVER_MODES)}")
        self.activation_precision = check_precision(config.activation_precision, "activation_precision")
        self.gradient_precision = check_precision(config.resolved_gradient_precision(), "gradient_precision")
        self.adapter_precision = check_precision(config.adapter_precision, "adapter_precision")
        self.activation_noise_sigma = check_noise_sigma(config.activation_noise_sigma, "activation_noise_sigma")
        opt = config.optimizer_spec()
        lora = config.lora_spec().validate(model.family)
        self.lora = lora
        self.compute = resolve_compute(config.device, config.dtype)

        # clients and their data
        if data is not None:
            clients_data = list(data.clients)
            if num_clients is not None and num_clients != len(clients_data):
                raise ConfigError(f"num_clients={num_clients} differs from the data's {len(clients_data)} clients")
            num_clients = len(clients_data)
            if batch_size is None:
                raise ConfigError("batch_size is required when data is given (clients draw b sequences per batch)")
            num_samples = [int(c.num_samples) for c in clients_data]
            iterators = [c.batches(batch_size) for c in clients_data]
        else:
            if num_clients is None:
                num_clients = len(num_samples) if num_samples is not None else None
            if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
                raise ConfigError(f"num_clients={num_clients!r} is invalid; allowed: an integer >= 1")
            num_samples = [1] * num_clients if num_samples is None else [int(n) for n in num_samples]
            iterators = [None] * num_clients
        if len(num_samples) != num_clients or any(n < 0 for n in num_samples) or sum(num_samples) <= 0:
            raise ConfigError(f"num_samples={list(num_samples)!r} is invalid; allowed: {num_clients} "
                              f"non-negative counts with a positive sum")
        if config.splits is None:
            self.splits = (self.split,) * num_clients
        else:
            self.splits = check_splits(config.splits, num_clients, J, model.name)
            self.split = min(self.splits)
        # all ℓ_k equal is the single-split system, built exactly as before (same objects, same arithmetic)
        self.mixed_splits = len(set(self.splits)) > 1

        # ONE frozen base with LoRA slots; two views of it
        # the base moves to the device before LoRA is attached, so the adapters are created there
        model.model.to(self.compute.device)
        self.peft_model = attach_lora(model.model, model.family, lora, seed=config.seed)
        if self.mixed_splits:
            self._build_mixed(opt, num_samples, iterators)
            return
        self.client_part, self.server_part = split_model(self.peft_model, self.split, self.compute)
        self.client_slots = AdapterSlots(self.client_part, 0)
        self.server_slots = AdapterSlots(self.server_part, self.split)
        init_client = self.client_slots.current_state()
        init_server = self.server_slots.current_state()

        self.fed_server = FederatedServer(init_client, broadcast_precision=self.adapter_precision,
                                          aggregation=config.aggregation)
        self.clients = [self._client(k, self.client_part, self.client_slots, init_client, opt, num_samples, iterators)
                        for k in range(num_clients)]
        self.main_server = MainServer(self.server_part, self.server_slots, init_server, mode=config.server_mode,
                                      optimizer=opt, client_weights={k: num_samples[k] for k in range(num_clients)},
                                      gradient_precision=self.gradient_precision,
                                      reset_optimizer_each_round=config.reset_optimizer_each_round,
                                      aggregation=config.aggregation)
        # round 0: every client starts from the broadcast of the initial global adapter
        first = self.fed_server.broadcast()
        for c in self.clients:
            c.receive_broadcast(first)
        self.round = 0

    def _client(self, k: int, part, slots, initial_state, opt: OptimizerSpec, num_samples, iterators) -> SplitClient:
        return SplitClient(k, part, slots, initial_state, optimizer=opt, num_samples=num_samples[k],
                           batches=iterators[k], activation_precision=self.activation_precision,
                           adapter_precision=self.adapter_precision,
                           reset_optimizer_each_round=self.config.reset_optimizer_each_round,
                           activation_noise_sigma=self.activation_noise_sigma,
                           noise_generator=(noise_generator(self.config.seed, k) if self.activation_noise_sigma > 0
                                            else None))

    def _build_mixed(self, opt: OptimizerSpec, num_samples, iterators) -> None:
        """Per-client splits: a (ClientPart, ServerPart) pair of views per distinct ℓ, clients and MS on them."""
        config = self.config
        views = {s: split_model(self.peft_model, s, self.compute) for s in sorted(set(self.splits))}
        slots = {s: (AdapterSlots(c, 0), AdapterSlots(v, s)) for s, (c, v) in views.items()}
        self.client_part, self.server_part = views[self.split]
        self.client_slots, self.server_slots = slots[self.split]
        initial = {**self.client_slots.current_state(), **self.server_slots.current_state()}  # all J blocks
        K = len(self.splits)
        self.fed_server = MixedFederatedServer(initial, {k: slots[self.splits[k]][0].keys for k in range(K)},
                                               broadcast_precision=self.adapter_precision,
                                               aggregation=config.aggregation)
        self.clients = [self._client(k, views[s][0], slots[s][0], initial, opt, num_samples, iterators)
                        for k, s in enumerate(self.splits)]
        self.main_server = MixedMainServer({k: (views[s][1], slots[s][1]) for k, s in enumerate(self.splits)},
                                           initial, mode=config.server_mode, optimizer=opt,
                                           client_weights={k: num_samples[k] for k in range(K)},
                                           gradient_precision=self.gradient_precision,
                                           reset_optimizer_each_round=config.reset_optimizer_each_round,
                                           aggregation=config.aggregation)
        first = self.fed_server.broadcast()
        for c in self.clients:
            c.receive_broadcast(self.fed_server.broadcast_for(c.client_id, first))
        self.round = 0

    # ------------------------------------------------------------------ facts

    @property
    def num_clients(self) -> int:
        return len(self.clients)

    @property
    def num_blocks(self) -> int:
        return self.model.num_blocks

    @property
    def rank(self) -> int:
        return self.lora.rank

    @property
    def num_samples(self) -> dict[int, int]:
        return {c.client_id: c.num_samples for c in self.clients}

    def activation_bits(self, batch_size: int, seq_len: int) -> int:
        """S_a = b·L·d·q_a plus side information: a real ActivationMessage's payload_bits for every precision but
        int8, where the outlier count is the wire module's assumption (the real message counts its own)."""
        return payload_bits(batch_size * seq_len * self.model.hidden_size, self.activation_precision,
                            channels=self.model.hidden_size, outlier_rows=batch_size)

    def gradient_bits(self, batch_size: int, seq_len: int) -> int:
        return payload_bits(batch_size * seq_len * self.model.hidden_size, self.gradient_precision,
                            channels=self.model.hidden_size, outlier_rows=0, outlier_channels=0)

    def side_bits(self, batch_size: int, seq_len: int) -> int:
        return batch_size * seq_len * side_bits_per_token(self.model.vocab_size)

    def adapter_bits(self) -> int:
        """S_c: bits of one client adapter upload at the adapter precision (every client's, as they share ℓ).
        With per-client splits S_c(ℓ_k) differs by client: this raises; use :meth:`adapter_bits_of`."""
        if self.mixed_splits:
            raise ConfigError(f"adapter_bits() is one S_c for every client but the clients' splits differ "
                              f"({', '.join(map(str, self.splits))}); use adapter_bits_of(k)")
        return self.clients[0].adapter_bits()

    def adapter_bits_of(self, k: int) -> int:
        """S_c(ℓ_k): bits of client k's adapter upload at the adapter precision, counted from its real tensors
        (blocks < ℓ_k); also the payload of its part of the broadcast (:meth:`broadcast_for`)."""
        return self.clients[k].adapter_bits()

    def overlap_exchange_bits(self, participants: Sequence[int] | None = None) -> tuple[int, int]:
        """(MS -> FS, FS -> MS) bits a round's aggregation exchanges between the two servers with per-client
        splits (the overlap blocks min ℓ..max ℓ-1, at the adapter precision; :mod:`.mixed_split`); (0, 0) with one
        split. ``participants``: the clients aggregated (None: all)."""
        if not self.mixed_splits:
            return 0, 0
        ids = range(self.num_clients) if participants is None else participants
        pieces = self.main_server.pieces({k: self.clients[k].num_samples for k in ids})
        return overlap_exchange_bits(pieces, self.global_state(), self.splits, self.adapter_precision)

    # ------------------------------------------------------------------ in-process conveniences

    def client(self, k: int) -> SplitClient:
        return self.clients[k]

    def iteration_messages(self, k: int, batch=None):
        """One local iteration of client k: forward -> MS step -> backward.

        Returns (uplink ActivationMessage, downlink GradientMessage, training loss)."""
        client = self.clients[k]
        up = client.forward(batch)
        grad, loss = self.main_server.step(up)
        client.backward(grad)
        return up, grad, loss

    def iteration(self, k: int, batch=None) -> float:
        """One local iteration of client k; returns the training loss."""
        return self.iteration_messages(k, batch)[2]

    def aggregate(self) -> BroadcastMessage:
        """FS FedAvg of the uploads it received (+ MS v1 average of the server copies). Returns the broadcast.

        Per-client splits: the aggregation by global block index over the clients that uploaded (weights n_k
        renormalised over them), FS and MS together (:mod:`.mixed_split`); every server copy is set to the result
        and the returned broadcast holds every client-held block (``broadcast_for(k, msg)``: client k's part)."""
        if self.mixed_splits:
            return self._aggregate_mixed()
        msg = self.fed_server.aggregate()
        weights = {k: self.clients[k].num_samples for k in msg.contributors}
        self.main_server.aggregate(weights)
        self.round = msg.round
        return msg

    def _aggregate_mixed(self) -> BroadcastMessage:
        uploads = self.fed_server.take_uploads()
        weights = {m.client_id: m.num_samples for m in uploads}
        client_pieces = [(m.state, m.num_samples) for m in uploads]
        new = aggregate_by_block(client_pieces + self.main_server.pieces(weights), self.config.aggregation)
        msg = self.fed_server.set_global(new, contributors=sorted(weights))
        self.main_server.load_global(new)
        self.round = msg.round
        return msg

    def broadcast_for(self, k: int, msg: BroadcastMessage) -> BroadcastMessage:
        """Client k's part of the broadcast ``msg``: the global values of its blocks < ℓ_k, payload S_c(ℓ_k)
        (with one split: ``msg`` itself)."""
        return self.fed_server.broadcast_for(k, msg) if self.mixed_splits else msg

    def finish_round(self, participants: Sequence[int] | None = None) -> BroadcastMessage:
        """Upload every (participating) client adapter, aggregate, broadcast to all clients (per-client splits:
        each client gets its part, :meth:`broadcast_for`)."""
        ids = range(self.num_clients) if participants is None else participants
        for k in ids:
            self.fed_server.receive(self.clients[k].adapter_upload())
        msg = self.aggregate()
        for c in self.clients:
            c.receive_broadcast(self.broadcast_for(c.client_id, msg))
        return msg

    # ------------------------------------------------------------------ the global model

    def global_client_state(self) -> dict[str, torch.Tensor]:
        """The FS's global adapter: blocks < ℓ (per-client splits: every block some client holds, < max ℓ)."""
        return {k: v.clone() for k, v in self.fed_server.global_state.items()}

    def global_server_state(self) -> dict[str, torch.Tensor]:
        """The MS's global adapter: blocks ≥ ℓ (per-client splits: blocks ≥ min ℓ, as of the last aggregation)."""
        return self.main_server.global_state()

    def global_state(self) -> dict[str, torch.Tensor]:
        """The whole global adapter, all J blocks by global key (client and server states together)."""
        return {**self.global_client_state(), **self.global_server_state()}

    def global_client_state_of(self, k: int) -> dict[str, torch.Tensor]:
        """The global values of client k's blocks (< ℓ_k)."""
        return restrict(self.global_state(), lambda j: j < self.splits[k])

    def evaluate(self, validation, *, batch_size: int = 8, max_batches: int | None = None,
                 through_wire: bool = False) -> EvalResult:
        """Validation loss / perplexity of the global model (FedAvg client adapter + server adapter).

        ``through_wire``: the split activations go through the training uplink's wire format
        (``activation_precision``) before the server part, so a lossy format shows its cost.
        Never with the activation noise (``activation_noise_sigma``): evaluation measures the model, not the wire.
        """
        return evaluate_split(self.client_part, self.client_slots, self.global_client_state(),
                              self.server_part, self.server_slots, self.global_server_state(), validation,
                              batch_size=batch_size, max_batches=max_batches,
                              wire_precision=self.activation_precision if through_wire else None)

    def load_global_into_model(self) -> torch.nn.Module:
        """Copy the global adapters into the peft model's own LoRA parameters and return the (unsplit) peft
        model, e.g. for generation. Training state is unaffected."""
        state = {**self.global_client_state(), **self.global_server_state()}
        with torch.no_grad():
            for slots in (self.client_slots, self.server_slots):
                own = {k: m._parameters[a] for k, (m, a) in slots._slots.items()}
                copy_into(own, state)
        return self.peft_model

    def memory_report(self) -> MemoryReport:
        """Parameter memory by unique storage: shows that the base exists once whatever K is."""
        seen: set[int] = set()

        def unique_bytes(tensors) -> int:
            total = 0
            for t in tensors:
                key = t.untyped_storage().data_ptr()
                if key not in seen:
                    seen.add(key)
                    total += t.untyped_storage().nbytes()
            return total

        base = unique_bytes(p for n, p in self.peft_model.named_parameters() if "lora_" not in n)
        tensors = [p for n, p in self.peft_model.named_parameters() if "lora_" in n]
        for c in self.clients:
            tensors += list(c.state.values())
        copies = self.main_server.distinct_states()
        for s in copies:
            tensors += list(s.values())
        adapters = unique_bytes(tensors)
        optimizers = {id(o): o for o in [c.optimizer for c in self.clients]
                      + list(self.main_server._optimizers.values())}
        opt_bytes = sum(v.numel() * v.element_size() for o in optimizers.values() for st in o.state.values()
                        for v in st.values() if isinstance(v, torch.Tensor))
        return MemoryReport(
            base_param_bytes=base,
            client_adapter_bytes=max(state_nbytes(c.state) for c in self.clients),
            server_adapter_bytes=max(state_nbytes(s) for s in copies),
            num_server_copies=len(copies),
            total_param_bytes=base + adapters,
            optimizer_state_bytes=int(opt_bytes),
        )

