"""The one mapping from a scenario to the training engine's configuration (used by calibrate and the engine)."""
from __future__ import annotations

from ..seeding import stream_seed
from .federated_training import TrainingConfig


def training_config(scenario, rank: int | None = None, split: int | None = None):
    """The training engine's configuration for a scenario (one place that maps scenario → engine)."""
    tr, data, lora = scenario.training, scenario.data, scenario.lora
    r = lora.rank if rank is None else rank
    return TrainingConfig(
        model=scenario.model.name,
        data_source=data.source,
        data_format=data.format,
        data_mode=data.mode,
        partition=data.partition,
        dirichlet_alpha=data.dirichlet_alpha,
        validation_fraction=data.validation_fraction,
        global_validation_fraction=data.global_validation_fraction,
        max_tokens_per_client=data.max_tokens_per_client,
        num_clients=scenario.clients.count,
        batch_size=tr.batch_size,
        seq_len=tr.seq_len,
        rounds=scenario.simulation.rounds,
        local_iterations=tr.local_iterations,
        split=scenario.split.layer if split is None else split,
        rank=r,
        lora_alpha_per_rank=lora.alpha_per_rank,
        lora_dropout=lora.dropout,
        target_modules=tuple(lora.target_modules) if lora.target_modules else None,
        server_mode=tr.server_mode,
        optimizer=tr.optimizer,
        learning_rate=tr.learning_rate,
        activation_precision=tr.activation_precision,
        activation_noise_sigma=tr.activation_noise_sigma,
        adapter_precision=tr.adapter_precision,
        reset_optimizer_each_round=tr.optimizer_state_on_broadcast == "reset",
        lora_scaling=lora.scaling,
        lr_schedule=tr.lr_schedule,
        warmup_steps=tr.warmup_steps,
        grad_clip_norm=tr.grad_clip_norm,
        aggregation=tr.aggregation,
        device=tr.device,
        dtype=tr.dtype,
        eval_batch_size=scenario.evaluation.batch_size,
        max_eval_batches=scenario.evaluation.max_batches,
        eval_through_wire=scenario.evaluation.through_wire,
        eval_per_client=scenario.evaluation.per_client,
        seed=stream_seed(scenario.seed, "training"),
    )
