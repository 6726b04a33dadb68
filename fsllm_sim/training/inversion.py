"""How much of a client's text an honest-but-curious main server recovers from the activations at split ℓ.

The threat model is ``docs/privacy.md``: the attacker sees the smashed data exactly as sent (the wire precision and
the noise defence applied), knows the pretrained base weights (embedding matrix E and blocks 1..ℓ), does not know
the client's LoRA adapters, and may train on public text disjoint from the clients' data. Measurements use the base
model: at the start of training every adapter adds nothing (B = 0), so this is the leakage of round 1 exactly and a
first-order estimate later (the adapters are small next to the frozen weights).

Attacks, each decoding a sequence token by token:

* ``linear``: a ridge regression W (d x d, closed form) from the activation h_ℓ of a token to its embedding row
  e(t); decoded as the token whose embedding is nearest in cosine to h_ℓ W. Trained on public text.
* ``mlp``: a two-layer MLP (d -> 2d -> d, GELU) trained with Adam on a cosine loss to the same target, decoded the
  same way. Trained on public text.
* ``optimisation``: white-box: input embeddings X (one row per position) are optimised with Adam so that blocks
  1..ℓ applied to X match the observed activations (relative squared error); decoded by the nearest embedding row.
  Uses no public text; at ℓ = 0 it is the nearest-embedding decoder itself.
* ``frequency``: the baseline: every position decoded as the public text's most frequent token.

The attacker knows the defence (Kerckhoffs): a learned inverter is trained on public activations with the same
noise and wire cast applied. Metrics per held-out text (:func:`text_metrics`): token accuracy, ROUGE-L F1 of the
decoded text (the ``rouge-score`` package) and exact recovery; :func:`interval` gives 95 % intervals over texts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fsllm_sim.errors import ConfigError
from fsllm_sim.privacy import ATTACKS
from fsllm_sim.training.defences import check_noise_sigma, gaussian_noise
from fsllm_sim.training.split import decoder_blocks, prepare_block_inputs, run_block, unwrap_causal_lm
from fsllm_sim.training.models import family_of
from fsllm_sim.training.wire import check_precision, wire_cast

LEARNED = ("linear", "mlp")


@dataclass(frozen=True)
class Defence:
    """What the client applies before sending: Gaussian noise of ``noise_sigma`` (relative), then the wire cast."""
    wire: str = "fp16"
    noise_sigma: float = 0.0

    def __post_init__(self):
        check_precision(self.wire, "wire precision")
        check_noise_sigma(self.noise_sigma, "noise sigma")

    @property
    def name(self) -> str:
        if self.noise_sigma > 0:
            return "noise" if self.wire == "fp16" else f"noise+{self.wire}"
        return "none" if self.wire == "fp16" else self.wire

    def apply(self, hidden: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return wire_cast(gaussian_noise(hidden, self.noise_sigma, generator), self.wire).float()


@dataclass(frozen=True)
class AttackSettings:
    """Sizes of the attacks (what bounds the cost; see ``docs/privacy.md`` for the shipped budget)."""
    ridge: float = 1e-2            # of the linear inverter, relative to the mean diagonal of H^T H
    mlp_steps: int = 300
    mlp_batch_tokens: int = 1024
    mlp_learning_rate: float = 3e-3
    optimisation_steps: int = 150
    optimisation_learning_rate: float = 0.05
    optimisation_texts: int = 16   # the optimisation attack runs on the first this many held-out texts
    optimisation_max_split: int = 1023  # and only up to this split (its cost grows with the split)


class BaseModel:
    """The frozen base model as the attacker holds it: embedding matrix and the blocks, run to any split."""

    def __init__(self, model: nn.Module):
        hf = unwrap_causal_lm(model)
        self.family = family_of(hf)
        if self.family != "llama":
            raise ConfigError("privacy: the attacks run on Llama-family models (their embeddings carry no "
                              "position term); GPT-2 is not supported")
        self.config = hf.config
        self.embed_tokens = hf.model.embed_tokens
        self.rotary_emb = hf.model.rotary_emb
        self.blocks = decoder_blocks(hf)
        self.embedding = self.embed_tokens.weight.detach().float()  # V x d
        self._unit_embedding = nn.functional.normalize(self.embedding, dim=-1)  # every decode compares with it

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def run(self, hidden: torch.Tensor, attention_mask: torch.Tensor, splits) -> dict[int, torch.Tensor]:
        """The hidden states after each split in ``splits`` (0: the embedding output itself), from ``hidden``."""
        wanted = sorted(set(int(s) for s in splits))
        if wanted and (wanted[0] < 0 or wanted[-1] > self.num_blocks - 1):
            raise ConfigError(f"privacy.splits: {wanted} must lie in 0..{self.num_blocks - 1} "
                              f"(the model has {self.num_blocks} blocks)")
        out = {}
        if 0 in wanted:
            out[0] = hidden
        inputs = prepare_block_inputs(self.family, self.config, hidden, attention_mask, self.rotary_emb)
        for j, block in enumerate(self.blocks[:max(wanted, default=0)], start=1):
            hidden = run_block(self.family, block, hidden, inputs)
            if j in wanted:
                out[j] = hidden
        return out

    @torch.no_grad()
    def activations(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, splits,
                    batch_size: int = 16) -> dict[int, torch.Tensor]:
        """Activations (float32, N x L x d) at each split for token rows ``input_ids`` (N x L)."""
        parts: dict[int, list] = {}
        for i in range(0, input_ids.shape[0], batch_size):
            ids, mask = input_ids[i:i + batch_size], attention_mask[i:i + batch_size]
            for s, h in self.run(self.embed_tokens(ids), mask, splits).items():
                parts.setdefault(s, []).append(h.float())
        return {s: torch.cat(v) for s, v in parts.items()}

    def nearest_tokens(self, vectors: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """The token whose embedding row is nearest in cosine to each vector (... x d -> ...)."""
        flat = vectors.reshape(-1, vectors.shape[-1]).float()
        emb = self._unit_embedding
        out = torch.empty(flat.shape[0], dtype=torch.long)
        for i in range(0, flat.shape[0], chunk):
            out[i:i + chunk] = (nn.functional.normalize(flat[i:i + chunk], dim=-1) @ emb.T).argmax(dim=-1)
        return out.reshape(vectors.shape[:-1])


def _tokens_of(h: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keep = mask.bool()
    return h[keep], ids[keep]


def fit_linear(base: BaseModel, h: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, ridge: float) -> torch.Tensor:
    """Ridge map W (d x d) from public activations to the embedding rows of their tokens (closed form)."""
    x, t = _tokens_of(h, ids, mask)
    x = x.double()
    y = base.embedding[t].double()
    gram = x.T @ x
    lam = ridge * float(torch.diagonal(gram).mean()) + 1e-12
    return torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), x.T @ y).float()


class MLPInverter(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        return self.net(x)


def fit_mlp(base: BaseModel, h: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, settings: AttackSettings,
            seed: int) -> MLPInverter:
    """The MLP inverter, trained with Adam on the cosine loss to the tokens' embedding rows."""
    x, t = _tokens_of(h, ids, mask)
    y = base.embedding[t]
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MLPInverter(x.shape[-1])
    opt = torch.optim.Adam(net.parameters(), lr=settings.mlp_learning_rate)
    n = x.shape[0]
    with torch.enable_grad():
        for _ in range(settings.mlp_steps):
            idx = torch.randint(n, (min(settings.mlp_batch_tokens, n),), generator=gen)
            loss = 1.0 - nn.functional.cosine_similarity(net(x[idx]), y[idx], dim=-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net


def optimisation_attack(base: BaseModel, observed: torch.Tensor, mask: torch.Tensor, split: int,
                        settings: AttackSettings) -> torch.Tensor:
    """Input embeddings whose activations at ``split`` match ``observed`` (N x L x d); the decoded tokens."""
    if split == 0:
        return base.nearest_tokens(observed)
    start = base.embedding.mean(dim=0)
    x = start.expand(observed.shape).clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=settings.optimisation_learning_rate)
    weight = mask.unsqueeze(-1).float()
    scale = (observed.pow(2) * weight).sum().clamp_min(1e-30)
    with torch.enable_grad():
        for _ in range(settings.optimisation_steps):
            h = base.run(x, mask, [split])[split].float()
            loss = ((h - observed).pow(2) * weight).sum() / scale
            opt.zero_grad()
            loss.backward()
            opt.step()
    return base.nearest_tokens(x.detach())


def frequency_token(ids: torch.Tensor, mask: torch.Tensor) -> int:
    """The public text's most frequent token (ties: the smallest id)."""
    counts = torch.bincount(ids[mask.bool()])
    return int(counts.argmax())


# -- metrics -------------------------------------------------------------------------------------------------

def _rouge_scorer():
    try:
        from rouge_score import rouge_scorer
    except ImportError:  # pragma: no cover - a dependency of the package
        raise ConfigError("privacy: the rouge-score package is missing; reinstall fsllm-sim (make setup)") from None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def token_lcs(a, b) -> int:
    """Length of the longest common subsequence of two token lists (ROUGE-L's core), O(len a x len b)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def text_metrics(true_ids: torch.Tensor, guess_ids: torch.Tensor, mask: torch.Tensor, tokenizer=None) -> dict:
    """Per held-out text (row): token accuracy, ROUGE-L F1 and exact recovery, as arrays.

    ROUGE-L is that of the ``rouge-score`` package on the decoded strings when a tokenizer is given; without one
    (tiny models in tests) the F1 of the token LCS."""
    acc, rouge, exact = [], [], []
    scorer = _rouge_scorer() if tokenizer is not None else None
    for t_row, g_row, m_row in zip(true_ids, guess_ids, mask):
        keep = m_row.bool()
        t, g = t_row[keep].tolist(), g_row[keep].tolist()
        hits = sum(int(x == y) for x, y in zip(t, g))
        acc.append(hits / max(len(t), 1))
        exact.append(float(t == g))
        if scorer is not None:
            rouge.append(scorer.score(tokenizer.decode(t), tokenizer.decode(g))["rougeL"].fmeasure)
        else:
            lcs = token_lcs(t, g)
            rouge.append(0.0 if lcs == 0 else 2 * lcs / (len(t) + len(g)))
    return {"token_acc": np.array(acc), "rouge_l": np.array(rouge), "exact": np.array(exact)}


def interval(values, *, seed: int = 0, resamples: int = 2000, binary: bool = False) -> tuple[float, float, float]:
    """(mean, low, high): the 95 % interval over texts; Wilson's for a 0/1 outcome, else a percentile bootstrap."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if binary:
        z = 1.959963984540054
        centre = (mean + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return (mean, max(0.0, centre - half), min(1.0, centre + half))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return (mean, float(lo), float(hi))


# -- one measurement ---------------------------------------------------------------------------------------

@dataclass
class TextSets:
    """Token rows (N x L) and masks of the public text (attack training) and of the clients' held-out text."""
    public_ids: torch.Tensor
    public_mask: torch.Tensor
    heldout_ids: torch.Tensor
    heldout_mask: torch.Tensor


def group_key(split: int, defence: Defence) -> str:
    """The name of one (split, defence) group of rows, as resumed runs store it."""
    return f"split{int(split)}-{defence.wire}-sigma{defence.noise_sigma:g}"


def measure(base: BaseModel, texts: TextSets, splits, attacks, defences, *, settings: AttackSettings = AttackSettings(),
            seed: int = 0, tokenizer=None, progress=None, done=frozenset(), on_group=None) -> list[dict]:
    """Every (split, defence, attack) on the held-out texts: one row each with the metrics and their intervals.

    ``progress`` (optional) is called with a short line before each (split, defence). Groups whose
    :func:`group_key` is in ``done`` are skipped (a resumed run has them); ``on_group(key, rows)`` is called as each
    group finishes. Every group draws its own noise streams, so skipping some leaves the others' numbers alone."""
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ConfigError(f"privacy.attacks: {unknown} not among {', '.join(ATTACKS)}")
    splits = sorted(set(int(s) for s in splits))
    public = base.activations(texts.public_ids, texts.public_mask, splits) if any(a in LEARNED for a in attacks) else {}
    heldout = base.activations(texts.heldout_ids, texts.heldout_mask, splits)
    base_token = frequency_token(texts.public_ids, texts.public_mask)
    rows = []
    for s in splits:
        for d_index, defence in enumerate(defences):
            if group_key(s, defence) in done:
                continue
            if progress:
                progress(f"split {s}, defence {defence.name} {defence.noise_sigma:g}")
            # one noise stream per (split, defence) and role, so adding a defence leaves the others' draws alone
            g_pub = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * s + 31 * d_index + 1)
            g_held = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * s + 31 * d_index + 2)
            seen = defence.apply(heldout[s], g_held)
            group = []
            for attack in attacks:
                if attack == "optimisation" and s > settings.optimisation_max_split:
                    continue
                ids, mask = texts.heldout_ids, texts.heldout_mask
                if attack == "frequency":
                    guess = torch.full_like(ids, base_token)
                elif attack == "linear":
                    w = fit_linear(base, defence.apply(public[s], g_pub), texts.public_ids, texts.public_mask,
                                   settings.ridge)
                    guess = base.nearest_tokens(seen @ w)
                elif attack == "mlp":
                    net = fit_mlp(base, defence.apply(public[s], g_pub), texts.public_ids, texts.public_mask,
                                  settings, seed + 101 * s + d_index)
                    with torch.no_grad():
                        guess = base.nearest_tokens(net(seen))
                else:
                    n = min(settings.optimisation_texts, ids.shape[0])
                    ids, mask = ids[:n], mask[:n]
                    guess = optimisation_attack(base, seen[:n], mask, s, settings)
                m = text_metrics(ids, guess, mask, tokenizer)
                acc, rouge, exact = (interval(m["token_acc"], seed=seed), interval(m["rouge_l"], seed=seed),
                                     interval(m["exact"], binary=True))
                group.append({"split": s, "attack": attack, "defence": defence.name, "strength": defence.noise_sigma,
                             "wire": defence.wire,
                             "token_acc": acc[0], "token_acc_lo": acc[1], "token_acc_hi": acc[2],
                             "rouge_l": rouge[0], "rouge_l_lo": rouge[1], "rouge_l_hi": rouge[2],
                             "exact": exact[0], "exact_lo": exact[1], "exact_hi": exact[2],
                             "texts": int(ids.shape[0]), "tokens": int(mask.sum())})
            rows += group
            if on_group is not None:
                on_group(group_key(s, defence), group)
    return rows


def split_public_heldout(documents, tokenizer, *, seq_len: int, public_fraction: float, public_tokens: int,
                         heldout_texts: int, seed: int) -> tuple[TextSets, dict]:
    """Public text for the attacker and held-out client text, from disjoint groups (plays for Shakespeare).

    The groups (``Document.groups['group']``) are shuffled with ``seed``; the first ``public_fraction`` of them
    are public, the rest are the clients'. Each side is one token stream (documents joined by EOS) cut into rows
    of ``seq_len``: the public side keeps its first rows up to ``public_tokens``; the held-out side draws
    ``heldout_texts`` rows at random. Returns the sets and a record of which groups went where."""
    from fsllm_sim.training.data.packing import pack_stream, token_stream
    from fsllm_sim.training.data.tokenizer import encode_texts, special_ids

    if not 0.0 < float(public_fraction) < 1.0:
        raise ConfigError(f"privacy.public_fraction={public_fraction!r} must lie strictly between 0 and 1")
    groups = sorted({doc.groups.get("group", doc.source) for doc in documents})
    if len(groups) < 2:
        raise ConfigError(f"privacy: the text has {len(groups)} group(s); public and held-out text need at least "
                          f"2 disjoint groups (plays, files)")
    order = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    n_public = min(len(groups) - 1, max(1, round(public_fraction * len(groups))))
    public_groups, client_groups = set(order[:n_public]), set(order[n_public:])
    ids = special_ids(tokenizer)

    def rows(which):
        docs = [d.text for d in documents if d.groups.get("group", d.source) in which]
        stream = token_stream(encode_texts(tokenizer, docs), ids.eos_id)
        packed = pack_stream(stream, seq_len, ids.pad_id)
        return packed.input_ids, packed.attention_mask

    pub_ids, pub_mask = rows(public_groups)
    keep = max(1, min(pub_ids.shape[0], int(public_tokens) // seq_len))
    held_ids, held_mask = rows(client_groups)
    if held_ids.shape[0] < heldout_texts:
        raise ConfigError(f"privacy.heldout_texts={heldout_texts} is more than the {held_ids.shape[0]} rows of "
                          f"{seq_len} tokens the clients' text holds")
    pick = np.sort(np.random.default_rng(seed + 1).choice(held_ids.shape[0], size=heldout_texts, replace=False))
    pick_t = torch.as_tensor(pick)
    sets = TextSets(pub_ids[:keep], pub_mask[:keep], held_ids[pick_t], held_mask[pick_t])
    return sets, {"public_groups": sorted(public_groups), "client_groups": sorted(client_groups),
                  "public_tokens": int(sets.public_mask.sum()), "heldout_tokens": int(sets.heldout_mask.sum())}
