"""Evaluation across the federation: a stratified global held-out set, per-client losses, the wire.

Synthetic folder of .txt files (one work per file, one document per paragraph) and the tiny random models:
fast on a shared CPU.
"""

import json
import math

import numpy as np
import pytest
import torch

from fsllm_sim.training.data import build_federated_data, load_documents, train_bpe_tokenizer
from fsllm_sim.training.data.federated import held_out_counts
from fsllm_sim.training.data.tokenizer import encode_texts
from fsllm_sim.training.evaluation import evaluate_clients
from fsllm_sim.training.federated_training import TrainingConfig, prepare_model_and_data, run_federated_training
from fsllm_sim.training.models import load_model
from fsllm_sim.training.system import SplitFedConfig, SplitFedSystem
from fsllm_sim.training.wire import BITS_PER_ELEMENT

WORDS = ["the", "king", "queen", "sword", "crown", "night", "lord", "love", "fair", "death", "speak", "hence",
         "thou", "art", "my", "good", "noble", "friend", "heaven", "blood"]
# documents (paragraphs) per work: big and small works, one of two documents, one of a single document
WORK_SIZES = [40, 25, 12, 8, 5, 2, 1]
LOSSY = "int8-tensor" if "int8-tensor" in BITS_PER_ELEMENT else "fp16"


@pytest.fixture(scope="module")
def works(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("works")
    for w, n in enumerate(WORK_SIZES):
        paragraphs = ["\n".join(" ".join(rng.choice(WORDS, size=rng.integers(4, 10))) + "."
                                for _ in range(rng.integers(1, 4))) for _ in range(n)]
        (folder / f"work{w:02d}.txt").write_text("\n\n".join(paragraphs))
    return str(folder)


@pytest.fixture(scope="module")
def tokenizer(works):
    docs, _ = load_documents(works, "auto")
    return train_bpe_tokenizer([d.text for d in docs], vocab_size=300)


def build(tokenizer, source, **kwargs):
    args = dict(tokenizer=tokenizer, num_clients=3, seq_len=16, seed=0, partition="iid",
                global_validation_fraction=0.1)
    args.update(kwargs)
    return build_federated_data(source, **args)


def work_of(source):
    docs, _ = load_documents(source, "auto")
    return [d.groups["group"] for d in docs]


def test_held_out_counts_are_stratified():
    rng = np.random.default_rng(0)
    counts = held_out_counts([100, 2, 1, 50], 0.1, rng)
    assert counts.tolist() == [10, 1, 0, 5]  # floors 10, 0, 0, 5; the one left goes to the largest remainder
    assert counts.sum() == math.ceil(0.1 * 153)
    # at least one of every work of >= 2 documents, never its last one
    assert held_out_counts([2, 2, 3], 0.01, rng).tolist() == [1, 1, 1]
    assert held_out_counts([5, 5], 0.0, rng).tolist() == [0, 0]
    # only single-document works: some are held out whole, so the set is not empty
    assert held_out_counts([1] * 10, 0.05, rng).sum() == 1


def test_global_validation_covers_every_work_and_reports_its_size(tokenizer, works):
    data = build(tokenizer, works)
    labels = work_of(works)
    held = data.global_validation_documents
    per_work = {w: sum(1 for i in held if labels[i] == w) for w in set(labels)}
    for w, n in zip(sorted(set(labels)), WORK_SIZES):
        assert (1 <= per_work[w] <= n - 1) if n >= 2 else per_work[w] <= 1, (w, n, per_work[w])
    assert held.size >= math.ceil(0.1 * len(labels))
    multi = {w for w, n in zip(sorted(set(labels)), WORK_SIZES) if n >= 2}
    assert multi <= set(data.global_validation_works)
    # drawn across all clients' shares too: the held-out and client documents split the corpus exactly
    joined = np.concatenate([c.document_indices for c in data.clients] + [held])
    assert sorted(joined.tolist()) == list(range(len(labels)))
    # packed in a shuffled order (not corpus order), the same documents as the ascending list
    assert sorted(data.global_validation_order.tolist()) == held.tolist()
    assert data.global_validation_order.tolist() != held.tolist()
    summary = json.loads(json.dumps(data.summary()))
    gv = summary["global_validation"]
    assert gv == {"sequences": data.global_validation.num_sequences, "tokens": data.global_validation.num_tokens,
                  "documents": int(held.size), "works": len(data.global_validation_works),
                  "works_total": len(WORK_SIZES)}
    assert gv["sequences"] > 0 and gv["tokens"] > 0
    # tokens: every held-out document's tokens + one EOS each, packed whole (no cap)
    docs, _ = load_documents(works, "auto")
    encoded = encode_texts(tokenizer, [docs[i].text for i in held])
    assert gv["tokens"] == sum(len(e) + 1 for e in encoded)
    assert gv["sequences"] == math.ceil(gv["tokens"] / 16)

def test_global_validation_depends_on_the_seed(tokenizer, works):
    a = build(tokenizer, works)
    b = build(tokenizer, works, partition="dirichlet", num_clients=2, seq_len=24)
    c = build(tokenizer, works, seed=1)
    assert np.array_equal(a.global_validation_documents, b.global_validation_documents)
    assert np.array_equal(a.global_validation_order, b.global_validation_order)
    assert not np.array_equal(a.global_validation_documents, c.global_validation_documents)
    again = build(tokenizer, works)
    assert torch.equal(a.global_validation.input_ids, again.global_validation.input_ids)
    assert not torch.equal(a.global_validation.input_ids[: c.global_validation.num_sequences],
                           c.global_validation.input_ids[: a.global_validation.num_sequences])


def test_per_client_losses_one_finite_entry_per_client(works):
    cfg = TrainingConfig(model="tiny-llama", data_source=works, partition="iid", num_clients=3, batch_size=2,
                         seq_len=16, rounds=1, local_iterations=1, split=1, rank=2, eval_batch_size=4,
                         validation_fraction=0.2, global_validation_fraction=0.1, eval_per_client=True)
    res = run_federated_training(cfg, progress=False)
    assert len(res.initial_client_val_loss) == 3 and all(math.isfinite(x) for x in res.initial_client_val_loss)
    log = res.rounds[0]
    assert len(log.client_val_loss) == 3 and all(math.isfinite(x) for x in log.client_val_loss)
    assert json.loads(json.dumps(res.to_dict()))["rounds"][0]["client_val_loss"] == log.client_val_loss
    off = run_federated_training(TrainingConfig(**{**cfg.__dict__, "eval_per_client": False}), progress=False)
    assert off.rounds[0].client_val_loss == [] and off.val_losses == res.val_losses


def test_evaluate_clients_uses_each_clients_own_held_out_set(works):
    cfg = TrainingConfig(model="tiny-llama", data_source=works, partition="iid", num_clients=2, seq_len=16,
                         split=1, rank=2, validation_fraction=0.2, global_validation_fraction=0.1)
    model, data = prepare_model_and_data(cfg)
    system = SplitFedSystem(model, cfg.system_config(), data=data, batch_size=2)
    losses = evaluate_clients(system, data.clients, batch_size=4)
    assert losses == [system.evaluate(c.validation, batch_size=4).loss for c in data.clients]


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-gpt2"])
def test_through_wire_fp32_is_exact_and_a_lossy_wire_shows(model_name):
    g = torch.Generator().manual_seed(0)
    val = {"input_ids": torch.randint(0, 512, (6, 12), generator=g)}
    plain = {}
    for precision in ("fp32", LOSSY):
        system = SplitFedSystem(load_model(model_name, seed=0), SplitFedConfig(split=1, rank=2,
                                activation_precision=precision), num_clients=1)
        plain[precision] = system.evaluate(val, batch_size=4)
        wired = system.evaluate(val, batch_size=4, through_wire=True)
        if precision == "fp32":
            assert wired.loss == plain[precision].loss and wired.num_tokens == plain[precision].num_tokens
        else:
            assert wired.loss != plain[precision].loss and math.isfinite(wired.loss)
    assert plain["fp32"].loss == plain[LOSSY].loss  # without through_wire the wire format does not matter


def test_engine_reports_client_val_loss(tmp_path):
    from fsllm_sim.config.loader import scenario_from_dict
    from fsllm_sim.engine import simulate

    rng = np.random.default_rng(0)
    folder = tmp_path / "corpus"
    folder.mkdir()
    for d in range(6):
        (folder / f"doc{d:02d}.txt").write_text("\n\n".join(
            " ".join(rng.choice(WORDS, size=rng.integers(5, 12))) + "." for _ in range(12)))
    scenario = scenario_from_dict({
        "name": "eval-test", "seed": 3, "model": {"name": "tiny-llama"}, "split": {"layer": 2},
        "clients": {"count": 3}, "channel": {"s_band": {"subchannels": 6}, "f_band": {"subchannels": 4}},
        "lora": {"rank": 2, "ranks": [1, 2, 4]},
        "training": {"batch_size": 2, "seq_len": 16, "local_iterations": 1, "activation_precision": LOSSY},
        "convergence": {"calibration": None, "a": 5.0, "b": 10.0, "c": 0.5},
        "evaluation": {"max_batches": 2, "batch_size": 4, "through_wire": True, "per_client": True},
        "data": {"source": str(folder), "partition": "iid"},
        "simulation": {"rounds": 1, "training": "real"},
    })
    res = simulate(scenario, profile_source="analytic")
    metrics = res.rounds[0].metrics
    assert isinstance(metrics["client_val_loss"], list) and len(metrics["client_val_loss"]) == 3
    assert all(math.isfinite(x) for x in metrics["client_val_loss"]) and math.isfinite(metrics["val_loss"])
