"""A client (edge device): embedding + blocks 1..ℓ with its own LoRA adapter θ_c,k and optimiser.

Phases, each callable on its own (the event engine interleaves clients arbitrarily):

1. :meth:`SplitClient.forward` — forward on a mini-batch, returns the :class:`ActivationMessage` (uplink).
   The autograd graph stays with the client until step 3.
2. (the main server answers with a :class:`GradientMessage`)
3. :meth:`SplitClient.backward` — backpropagates the received gradient, optimiser step: iteration done.
4. :meth:`SplitClient.adapter_upload` — the :class:`AdapterMessage` for the federated server (f-band).
5. :meth:`SplitClient.receive_broadcast` — loads the aggregated adapter θ_c^{t+1}.

A client has at most one iteration in flight (forward -> backward), as in the protocol.

Activation noise (``activation_noise_sigma``, the scenario's ``training.activation_noise_sigma``; see
:mod:`fsllm_sim.training.defences`): the uplink carries ``wire_cast(hidden + noise)``, noise first, then the wire
format, as a device would; the client keeps the clean ``hidden`` and applies the received gradient to it
(straight-through), so the noise changes what the server sees and computes, not how the client backpropagates.

Optimiser state when the broadcast overwrites the adapter (``reset_optimizer_each_round``, the scenario's
``training.optimizer_state_on_broadcast``):

* ``keep`` (default, ``False``): the broadcast is copied *into* the client's Parameter objects, so the optimiser
  keeps its per-parameter state untouched — AdamW's moments (and step count, hence bias correction) still
  describe the client's own pre-broadcast adapter and trajectory, as most federated LoRA code does. They are
  applied to the new global adapter in the next round.
* ``reset`` (``True``): after each broadcast the optimiser is rebuilt — fresh, zero moments, step 0 for AdamW's
  bias correction. The learning-rate schedule does NOT restart: its position is the client's own count of
  local iterations done (:attr:`SplitClient.iterations_done`), which a reset leaves alone, because the schedule
  spans the whole run (see :mod:`fsllm_sim.training.optim`).

Every update goes through :meth:`OptimizerSpec.step <fsllm_sim.training.optim.OptimizerSpec.step>` with step
index = local iterations done so far: scheduled learning rate, then clipping of this adapter's gradients to
``grad_clip_norm``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from fsllm_sim.errors import DataError
from fsllm_sim.training.defences import check_noise_sigma, gaussian_noise
from fsllm_sim.training.lora import (
    AdapterSlots,
    AdapterState,
    copy_into,
    has_lora_dropout,
    set_lora_dropout_training,
)
from fsllm_sim.training.messages import ActivationMessage, AdapterMessage, BroadcastMessage, GradientMessage
from fsllm_sim.training.optim import OptimizerSpec
from fsllm_sim.training.split import ClientPart, check_batch, complete_batch
from fsllm_sim.training.wire import check_precision, side_bits_per_token, state_bits, tensor_bits, wire_cast


def normalise_batch(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, labels) from a dict batch (mask/labels derived when absent)."""
    if isinstance(batch, torch.Tensor):
        batch = {"input_ids": batch}
    if not isinstance(batch, Mapping) or "input_ids" not in batch:
        raise DataError(f"a batch must be a dict with 'input_ids' (and optionally 'attention_mask', 'labels'); "
                        f"got {type(batch).__name__}")
    ids = batch["input_ids"]
    mask, labels = complete_batch(ids, batch.get("attention_mask"), batch.get("labels"))
    if tuple(labels.shape) != tuple(ids.shape):
        raise DataError(f"labels shape {tuple(labels.shape)} differs from input_ids shape {tuple(ids.shape)}")
    return ids, mask, labels


def adapter_message(client_id: int, state, num_samples: int, precision: str) -> AdapterMessage:
    """A client's adapter upload: its state cast to the wire ``precision``, with the bits that takes."""
    sent = {k: wire_cast(v, precision) for k, v in state.items()}
    return AdapterMessage(client_id=client_id, state=sent, num_samples=num_samples, precision=precision,
                          payload_bits=state_bits(sent, precision))


class SplitClient:
    def __init__(self, client_id: int, part: ClientPart, slots: AdapterSlots, initial_state: Mapping[str, torch.Tensor],
                 *, optimizer: OptimizerSpec, num_samples: int, batches: Iterator | None = None,
                 activation_precision: str = "fp16", adapter_precision: str = "fp32",
                 reset_optimizer_each_round: bool = False, activation_noise_sigma: float = 0.0,
                 noise_generator: torch.Generator | None = None):
        self.client_id = int(client_id)
        self.part = part
        self.slots = slots
        self.state: AdapterState = slots.new_state_like(initial_state)
        self.optimizer_spec = optimizer
        self.optimizer = optimizer.build(self.state.values())
        self.num_samples = int(num_samples)
        self.batches = batches
        self.activation_precision = check_precision(activation_precision, "activation_precision")
        self.adapter_precision = check_precision(adapter_precision, "adapter_precision")
        self.reset_optimizer_each_round = reset_optimizer_each_round
        # defence: the sent activations carry Gaussian noise of σ x each token's rms, drawn from the client's own
        # generator (None: torch's global one); 0 sends them as computed
        self.activation_noise_sigma = check_noise_sigma(activation_noise_sigma, "activation_noise_sigma")
        self.noise_generator = noise_generator
        self.iterations_done = 0
        self._seq = 0
        self._pending: tuple[int, torch.Tensor] | None = None
        cfg = part.config
        self._vocab = int(cfg.vocab_size)
        self._max_pos = int(cfg.max_position_embeddings)
        self._dropout = has_lora_dropout(part)

    # ------------------------------------------------------------------ phases

    @property
    def has_pending(self) -> bool:
        return self._pending is not None

    def next_batch(self):
        if self.batches is None:
            raise DataError(f"client {self.client_id} has no data iterator; pass a batch to forward()")
        return next(self.batches)

    def forward(self, batch=None) -> ActivationMessage:
        """Client forward on ``batch`` (else the next batch of its data): returns the uplink message."""
        if self._pending is not None:
            raise RuntimeError(f"client {self.client_id}: forward() called while iteration {self._pending[0]} "
                               f"awaits its gradient (call backward() first)")
        ids, mask, labels = normalise_batch(self.next_batch() if batch is None else batch)
        check_batch(ids, mask, self._vocab, self._max_pos)
        dropout = self._dropout
        with self.slots.use(self.state), torch.enable_grad():
            if dropout:
                set_lora_dropout_training(self.part, True)
            try:
                hidden = self.part(ids, mask)
            finally:
                if dropout:
                    set_lora_dropout_training(self.part, False)
        self._seq += 1
        self._pending = (self._seq, hidden)  # un-noised: the received gradient is applied to it (straight-through)
        # the device adds the noise, then quantises: the server (and any eavesdropper) sees only the noisy values
        noisy = gaussian_noise(hidden.detach(), self.activation_noise_sigma, self.noise_generator)
        sent = wire_cast(noisy, self.activation_precision)
        return ActivationMessage(
            client_id=self.client_id, seq=self._seq, activations=sent, attention_mask=mask, labels=labels,
            precision=self.activation_precision, payload_bits=tensor_bits(noisy, self.activation_precision),
            side_bits=ids.numel() * side_bits_per_token(self._vocab),
        )

    def backward(self, msg: GradientMessage) -> None:
        """Backpropagate ∂loss/∂A through the client part and update θ_c,k (ends the iteration)."""
        if self._pending is None:
            raise RuntimeError(f"client {self.client_id}: backward() without a pending forward()")
        seq, hidden = self._pending
        if msg.client_id != self.client_id or msg.seq != seq:
            raise RuntimeError(f"client {self.client_id}: gradient for client {msg.client_id} iteration {msg.seq} "
                               f"does not answer pending iteration {seq}")
        if tuple(msg.gradient.shape) != tuple(hidden.shape):
            raise RuntimeError(f"client {self.client_id}: gradient shape {tuple(msg.gradient.shape)} != "
                               f"activation shape {tuple(hidden.shape)}")
        self._pending = None
        if hidden.requires_grad:
            hidden.backward(msg.gradient.to(hidden.dtype))
        self.optimizer_spec.step(self.optimizer, self.iterations_done)
        self.optimizer.zero_grad(set_to_none=True)
        self.iterations_done += 1

    def cancel_pending(self) -> None:
        """Drop an iteration in flight (e.g. a client that drops out); nothing is updated."""
        self._pending = None

    def adapter_upload(self) -> AdapterMessage:
        if self._pending is not None:
            raise RuntimeError(f"client {self.client_id}: adapter_upload() while iteration {self._pending[0]} "
                               f"is in flight")
        return adapter_message(self.client_id, self.state, self.num_samples, self.adapter_precision)

    def receive_broadcast(self, msg: BroadcastMessage) -> None:
        self.slots.check_state(msg.state)
        copy_into(self.state, msg.state)
        if self.reset_optimizer_each_round:
            # fresh moments; the lr schedule's position (iterations_done) carries on
            self.optimizer = self.optimizer_spec.build(self.state.values())

    # ------------------------------------------------------------------ helpers

    def adapter_bits(self) -> int:
        return state_bits(self.state, self.adapter_precision)
