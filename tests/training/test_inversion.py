"""The attacks of fsllm_sim/training/inversion.py on tiny models: sane where the answer is known, disjoint texts,
the defences, the metrics and their intervals."""
import itertools

import numpy as np
import pytest
import torch

from fsllm_sim.errors import ConfigError
from fsllm_sim.training import inversion as inv
from fsllm_sim.training.data import load_shakespeare, train_bpe_tokenizer
from fsllm_sim.training.defences import gaussian_noise
from fsllm_sim.training.models import load_model
from fsllm_sim.training.wire import wire_cast


@pytest.fixture(scope="module")
def world():
    docs = load_shakespeare()
    tok = train_bpe_tokenizer([d.text for d in docs[:3000]], vocab_size=512)
    texts, record = inv.split_public_heldout(docs, tok, seq_len=32, public_fraction=0.5, public_tokens=6000,
                                             heldout_texts=24, seed=3)
    return {"docs": docs, "tok": tok, "texts": texts, "record": record,
            "base": inv.BaseModel(load_model("tiny-llama", tokenizer=tok, seed=0).model),
            "other": inv.BaseModel(load_model("tiny-llama", tokenizer=tok, seed=1).model)}


FAST = inv.AttackSettings(mlp_steps=60, optimisation_steps=40, optimisation_texts=6)


def _rows(world, splits, attacks, defences=(inv.Defence(),)):
    rows = inv.measure(world["base"], world["texts"], splits, attacks, list(defences), settings=FAST, seed=0,
                       tokenizer=world["tok"])
    return {(r["split"], r["attack"], r["defence"]): r for r in rows}


def test_a_learned_inverter_recovers_the_tokens_from_the_embedding_output(world):
    rows = _rows(world, [0], ["linear", "mlp", "frequency"])
    for attack in ("linear", "mlp"):
        assert rows[(0, attack, "none")]["token_acc"] >= 0.95
        assert rows[(0, attack, "none")]["token_acc"] > rows[(0, "frequency", "none")]["token_acc_hi"]


def test_on_a_random_model_of_the_same_shape_the_inverter_falls_to_the_baseline(world):
    # Trained on the attacker's model, applied to the activations of another (random) model of the same shape:
    # what the attack recovers comes from knowing the weights, not from the labels or the text's statistics.
    texts, base, other = world["texts"], world["base"], world["other"]
    public = base.activations(texts.public_ids, texts.public_mask, [2])[2]
    w = inv.fit_linear(base, public, texts.public_ids, texts.public_mask, ridge=1e-2)
    own = base.activations(texts.heldout_ids, texts.heldout_mask, [2])[2]
    foreign = other.activations(texts.heldout_ids, texts.heldout_mask, [2])[2]
    acc_own = inv.text_metrics(texts.heldout_ids, base.nearest_tokens(own @ w), texts.heldout_mask)["token_acc"]
    acc_foreign = inv.text_metrics(texts.heldout_ids, base.nearest_tokens(foreign @ w),
                                   texts.heldout_mask)["token_acc"]
    baseline = _rows(world, [2], ["frequency"])[(2, "frequency", "none")]
    assert acc_own.mean() >= 0.95
    assert acc_foreign.mean() <= baseline["token_acc_hi"] + 0.02, (acc_foreign.mean(), baseline)


def test_public_and_heldout_text_are_disjoint(world):
    record, texts = world["record"], world["texts"]
    groups = {d.groups["group"] for d in world["docs"]}
    assert set(record["public_groups"]).isdisjoint(record["client_groups"])
    assert set(record["public_groups"]) | set(record["client_groups"]) == groups
    public_rows = {tuple(r.tolist()) for r in texts.public_ids}
    assert not any(tuple(r.tolist()) in public_rows for r in texts.heldout_ids)
    # the held-out texts are made of the client groups' text only: each decodes to a piece of it
    client_text = "\n".join(d.text for d in world["docs"] if d.groups["group"] in record["client_groups"])
    piece = world["tok"].decode(texts.heldout_ids[0][texts.heldout_mask[0].bool()][2:12].tolist())
    assert piece.strip() and piece.strip() in client_text


def test_the_optimisation_attack_beats_the_baseline_at_a_shallow_split(world):
    rows = _rows(world, [0, 1], ["optimisation", "frequency"])
    assert rows[(0, "optimisation", "none")]["token_acc"] == 1.0  # at l = 0: the nearest embedding itself
    assert rows[(1, "optimisation", "none")]["token_acc"] > rows[(1, "frequency", "none")]["token_acc_hi"]
    assert rows[(1, "optimisation", "none")]["texts"] == FAST.optimisation_texts


def test_noise_lowers_the_leakage_and_zero_noise_is_no_defence(world):
    h = torch.randn(2, 5, 64)
    assert gaussian_noise(h, 0.0) is h
    assert torch.equal(inv.Defence().apply(h, None), wire_cast(h, "fp16").float())
    rows = _rows(world, [3], ["linear"], [inv.Defence(), inv.Defence("fp16", 3.0)])
    assert rows[(3, "linear", "noise")]["token_acc"] < rows[(3, "linear", "none")]["token_acc"] - 0.2


def test_an_int8_wire_is_what_the_attacker_sees(world):
    h = world["base"].activations(world["texts"].heldout_ids[:2], world["texts"].heldout_mask[:2], [1])[1]
    seen = inv.Defence("int8").apply(h, None)
    assert torch.equal(seen, wire_cast(h, "int8").float()) and not torch.equal(seen, h)


def test_splits_outside_the_model_and_bad_defences_are_one_line(world):
    with pytest.raises(ConfigError, match=r"privacy.splits: \[4\] must lie in 0..3"):
        _rows(world, [4], ["frequency"])
    with pytest.raises(ConfigError, match="noise sigma=-1"):
        inv.Defence("fp16", -1)
    with pytest.raises(ConfigError, match="wire precision"):
        inv.Defence("fp64")


def test_token_lcs_is_the_longest_common_subsequence():
    rng = np.random.default_rng(0)
    for _ in range(30):
        a, b = rng.integers(0, 3, rng.integers(0, 7)).tolist(), rng.integers(0, 3, rng.integers(0, 7)).tolist()
        brute = max((k for k in range(len(a) + 1) for sub in itertools.combinations(a, k)
                     if _is_subsequence(sub, b)), default=0)
        assert inv.token_lcs(a, b) == brute


def _is_subsequence(sub, seq):
    it = iter(seq)
    return all(x in it for x in sub)


def test_rouge_l_is_the_packages_on_the_decoded_text(world):
    tok = world["tok"]
    ids = tok("To be, or not to be, that is the question", return_tensors="pt")["input_ids"]
    guess = ids.clone()
    guess[0, -3:] = tok("zzz")["input_ids"][0]
    m = inv.text_metrics(ids, guess, torch.ones_like(ids), tok)
    from rouge_score import rouge_scorer
    expected = rouge_scorer.RougeScorer(["rougeL"]).score(tok.decode(ids[0]), tok.decode(guess[0]))["rougeL"].fmeasure
    assert m["rouge_l"][0] == pytest.approx(expected) and 0 < expected < 1
    assert m["exact"][0] == 0.0 and m["token_acc"][0] == pytest.approx((ids == guess).float().mean().item())


def test_intervals():
    mean, lo, hi = inv.interval([0.0] * 8 + [1.0] * 2, binary=True)
    # Wilson's interval for 2 of 10
    assert (mean, round(lo, 4), round(hi, 4)) == (0.2, 0.0567, 0.5098)
    values = np.random.default_rng(1).uniform(size=50)
    mean, lo, hi = inv.interval(values, seed=0)
    assert lo < mean < hi and hi - lo == pytest.approx(2 * 1.96 * values.std(ddof=1) / np.sqrt(50), rel=0.25)
    assert inv.interval([0.5] * 5) == (0.5, 0.5, 0.5)
