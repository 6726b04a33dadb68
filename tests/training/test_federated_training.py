"""The round driver and the evaluation of the global model."""

import math

import pytest
import torch
from training_helpers import learnable_batch, make_fake_data, padded_random_batch

from fsllm_sim.errors import ConfigError, DataError
from fsllm_sim.training.federated_training import TrainingConfig, run_federated_training
from fsllm_sim.training.models import load_model
from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem

TINY = dict(model="tiny-llama", num_clients=2, batch_size=4, seq_len=16, local_iterations=3, split=2, rank=4,
            learning_rate=1e-2, eval_batch_size=4)


def test_evaluation_is_the_token_weighted_loss_of_the_global_model():
    lm = load_model("tiny-gpt2")
    val = padded_random_batch(seed=0, batch_size=5, seq_len=12, lengths=[12, 3, 12, 7, 1])
    with torch.no_grad():
        ref = lm.model(**val).loss.item()  # one batch: HF's mean over every labelled position
    system = SplitFedSystem(lm, SplitFedConfig(split=1, rank=2), num_clients=1)
    ev = system.evaluate(val, batch_size=2)  # three batches, token-weighted
    assert abs(ev.loss - ref) < 1e-5 and abs(ev.perplexity - math.exp(ref)) < 1e-3
    assert ev.num_tokens == int((val["labels"][:, 1:] != -100).sum()) and ev.num_sequences == 5


def test_run_is_deterministic_and_learns():
    cfg = TrainingConfig(rounds=3, **TINY)
    a = run_federated_training(cfg, model=load_model("tiny-llama"), data=make_fake_data(2, 16), progress=False)
    b = run_federated_training(cfg, model=load_model("tiny-llama"), data=make_fake_data(2, 16), progress=False)
    assert a.val_losses == b.val_losses and a.train_losses == b.train_losses
    assert len(a.rounds) == 3 and len(a.val_losses) == 4
    assert a.val_losses[-1] < a.val_losses[0] - 0.05
    r = a.rounds[0]
    assert r.iterations == 2 * 3 and r.activation_bits == 6 * 4 * 16 * 64 * 16
    assert r.adapter_upload_bits == 2 * r.broadcast_bits
    c = run_federated_training(TrainingConfig(rounds=3, **{**TINY, "seed": 1}), model=load_model("tiny-llama"),
                               data=make_fake_data(2, 16), progress=False)
    assert c.val_losses != a.val_losses  # LoRA init follows the seed


@pytest.mark.parametrize("mode", ["v1", "v2"])
@pytest.mark.parametrize("schedule", ["round_robin", "sequential"])
def test_modes_and_schedules_run(mode, schedule):
    cfg = TrainingConfig(rounds=1, server_mode=mode, schedule=schedule, **{**TINY, "model": "tiny-gpt2"})
    res = run_federated_training(cfg, model=load_model("tiny-gpt2"), data=make_fake_data(2, 16), progress=False)
    assert res.config["server_mode"] == mode and math.isfinite(res.val_losses[-1])
    seen = []
    run_federated_training(cfg, model=load_model("tiny-gpt2"), data=make_fake_data(2, 16), progress=False,
                           on_round_end=seen.append)
    assert [log.round for log in seen] == [1]


def test_empty_validation_and_bad_config():
    data = make_fake_data(2, 16)
    data.global_validation = {"input_ids": torch.zeros((0, 16), dtype=torch.long)}
    with pytest.raises(DataError, match="empty"):
        run_federated_training(TrainingConfig(rounds=1, **TINY), model=load_model("tiny-llama"), data=data,
                               progress=False)
    with pytest.raises(ConfigError, match="rounds=0"):
        run_federated_training(TrainingConfig(rounds=0, **TINY), data=make_fake_data(), progress=False)
    with pytest.raises(ConfigError, match="schedule="):
        TrainingConfig(schedule="random").validate()


def test_real_data_pipeline_with_tiny_model_and_bpe():
    """Shakespeare through the data package, a 512-token BPE, a tiny Llama: one short round end to end."""
    cfg = TrainingConfig(model="tiny-llama", num_clients=2, batch_size=2, seq_len=32, rounds=1, local_iterations=2,
                         split=1, rank=2, max_tokens_per_client=4000, max_eval_batches=2, eval_batch_size=4)
    res = run_federated_training(cfg, progress=False)
    assert len(res.rounds) == 1 and math.isfinite(res.val_losses[-1])
    assert res.data_summary.get("source") == "shakespeare"


def test_learnable_batch_is_learnable():
    system = SplitFedSystem(load_model("tiny-llama"), SplitFedConfig(split=2, rank=8, learning_rate=2e-2), num_clients=1)
    g = torch.Generator().manual_seed(0)
    losses = [system.iteration(0, learnable_batch(g, 8, 16)) for _ in range(15)]
    assert losses[-1] < losses[0]
