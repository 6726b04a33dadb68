"""Validation loss and perplexity of the global model.

The global model at a round end is the frozen base + the aggregated client adapter θ_c (FedAvg, blocks < ℓ) +
the server adapter (v1: the n_k-weighted average of the per-client copies; v2: the shared one, blocks ≥ ℓ).
It is evaluated through the split parts (identical to the unsplit model, see the split tests). By default
without wire casting (evaluation is a measurement, not a protocol step); with ``wire_precision`` the activations
at the split are cast with :func:`~fsllm_sim.training.wire.wire_cast` before the server part, exactly as the
training uplink does, so a lossy wire format shows its cost in the loss (an ``fp32`` wire changes nothing).

:func:`evaluate_clients` evaluates the same global model on each client's own held-out sequences.

The loss is the token-weighted mean shifted cross-entropy over every labelled position of the validation set
(not a mean of per-batch means); perplexity = exp(loss).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fsllm_sim.errors import DataError
from fsllm_sim.training.lora import AdapterSlots
from fsllm_sim.training.split import ClientPart, ServerPart, causal_lm_loss_sum, complete_batch
from fsllm_sim.training.wire import check_precision, wire_cast


@dataclass(frozen=True)
class EvalResult:
    loss: float
    perplexity: float
    num_tokens: int
    num_sequences: int


def validation_tensors(validation) -> dict[str, torch.Tensor]:
    """Normalise a validation set to a dict of N×L tensors (input_ids, attention_mask, labels).

    Accepts a dict / mapping, an object with those attributes (e.g. the data package's split) or a bare
    LongTensor of input ids.
    """
    if isinstance(validation, torch.Tensor):
        d = {"input_ids": validation}
    elif isinstance(validation, Mapping):
        d = dict(validation)
    else:
        d = {k: getattr(validation, k) for k in ("input_ids", "attention_mask", "labels") if hasattr(validation, k)}
    ids = d.get("input_ids")
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
        raise DataError(f"validation set must provide 'input_ids' as an N×L tensor; got {type(validation).__name__}")
    if ids.shape[0] == 0:
        raise DataError("validation set is empty (0 sequences); allowed: at least one sequence")
    mask, labels = complete_batch(ids, d.get("attention_mask"), d.get("labels"))
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def evaluate_split(client_part: ClientPart, client_slots: AdapterSlots, client_state: Mapping[str, torch.Tensor],
                   server_part: ServerPart, server_slots: AdapterSlots, server_state: Mapping[str, torch.Tensor],
                   validation, *, batch_size: int = 8, max_batches: int | None = None,
                   wire_precision: str | None = None) -> EvalResult:
    """Token-weighted validation loss of (client part + client_state, server part + server_state).

    ``wire_precision``: cast the split activations to this wire format (:func:`wire_cast`) before the server
    part; None: no cast.
    """
    if wire_precision is not None:
        check_precision(wire_precision, "wire_precision")
    val = validation_tensors(validation)
    n = val["input_ids"].shape[0]
    total, count, seqs = 0.0, 0, 0
    with client_slots.use(client_state), server_slots.use(server_state):
        for i, start in enumerate(range(0, n, batch_size)):
            if max_batches is not None and i >= max_batches:
                break
            sl = slice(start, start + batch_size)
            ids, mask, labels = val["input_ids"][sl], val["attention_mask"][sl], val["labels"][sl]
            hidden = client_part(ids, mask)
            # never the activation noise (training.activation_noise_sigma): evaluation measures the model, not the wire
            if wire_precision is not None:
                hidden = wire_cast(hidden, wire_precision)
            logits = server_part.hidden_to_logits(hidden, mask)
            s, c = causal_lm_loss_sum(logits, labels)
            total += float(s)
            count += c
            seqs += ids.shape[0]
    if count == 0:
        raise DataError("validation set has no labelled next-token position (all labels -100)")
    loss = total / count
    return EvalResult(loss=loss, perplexity=math.exp(min(loss, 700.0)), num_tokens=count, num_sequences=seqs)


def client_validation_sets(clients: Sequence) -> list | None:
    """Each client's own held-out sequences (``client.validation``), or None when the clients carry none.

    None when no client has a ``validation`` attribute (e.g. a duck-typed data object without a per-client
    split); a client whose set is empty (``validation_fraction=0``) gets None in the list.
    """
    if not any(hasattr(c, "validation") for c in clients):
        return None
    sets = []
    for c in clients:
        val = getattr(c, "validation", None)
        n = None if val is None else (val.num_sequences if hasattr(val, "num_sequences")
                                      else int(validation_tensors(val)["input_ids"].shape[0]))
        sets.append(val if n else None)
    return sets


def evaluate_clients(system, clients: Sequence, *, batch_size: int = 8, max_batches: int | None = None,
                     through_wire: bool = False) -> list[float]:
    """Loss of the global model on each client's own held-out data: one float per client, client order.

    ``system`` is a :class:`~fsllm_sim.training.system.SplitFedSystem` (its ``evaluate``); NaN for a client
    without held-out sequences; [] when the clients carry no per-client validation split at all.
    """
    sets = client_validation_sets(clients)
    if sets is None:
        return []
    return [math.nan if val is None else
            float(system.evaluate(val, batch_size=batch_size, max_batches=max_batches,
                                  through_wire=through_wire).loss)
            for val in sets]
