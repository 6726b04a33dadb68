"""Ratios of tokens to the target between two calibrations, rank by rank, paired by seed, with bootstrap intervals.

Used by the precision check (T_precision(r) / T_fp16(r)) and the transfer check's tokens-per-step exponent
(T_B(r) / T_A(r)). Both calibrations must be in tokens (schema v2) and reached with the same absolute target.

Per rank r
    The runs of each calibration at r and at its chosen learning rate (the per-rank best of its grid) are
    matched by seed value: the same seed means the same data partition and order and the same LoRA
    initialisation, so the pair differs only in what is compared. A censored run (target not reached) counts
    at its bound, ``censored_above_tokens`` (a lower bound of its tokens): a pair censored on the side of the
    numerator only makes the ratio a lower bound (``bound: "lower"``), on the denominator's side only an
    upper bound (``"upper"``), both ``"mixed"``; a pair censored on both sides says nothing about the ratio
    and is left out. ratio(r) = sum of the numerator's tokens / sum of the denominator's over the kept pairs
    (a ratio of means). Without any common seed the runs are not paired: each side's mean, censored runs at
    their bounds (``paired: false``).

Over ranks
    The factor is the geometric mean of the per-rank ratios, exp(mean ln ratio(r)) (ratios are
    multiplicative, so a rank that doubles and a rank that halves cancel).

Intervals
    Percentile bootstrap (2.5 %, 97.5 %): the kept pairs of every rank are resampled with replacement (the
    two sides of each pair together; unpaired sides independently) and the per-rank ratios and their
    geometric mean recomputed, with a fixed generator seed, so the interval is reproducible.
"""
from __future__ import annotations

import math

import numpy as np

from fsllm_sim.errors import ConfigError


def check_runs(doc: dict, what: str) -> None:
    """The per-rank and per-run records the ratios read, checked: one-line ConfigErrors naming the key."""
    where = f"{what}: calibration {doc.get('_path', '?')!r}"
    for key in ("ranks", "runs"):
        rows = doc.get(key)
        if not isinstance(rows, list) or not rows:
            raise ConfigError(f"{where}: {key} is {_short(rows)} (allowed: a non-empty list of mappings, as "
                              f"fsllm-sim calibrate writes)")
        for i, e in enumerate(rows):
            rank = e.get("rank") if isinstance(e, dict) else None
            if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= 100_000:
                raise ConfigError(f"{where}: {key}[{i}].rank is {_short(rank)} (allowed: an integer >= 1 and "
                                  f"<= 100000)")
            lr = e.get("learning_rate")
            if lr is not None and (not isinstance(lr, (int, float)) or isinstance(lr, bool)
                                   or not math.isfinite(lr) or lr <= 0):
                raise ConfigError(f"{where}: {key}[{i}].learning_rate is {_short(lr)} (allowed: a number > 0 or "
                                  f"null)")


def _short(value) -> str:
    from fsllm_sim.config.loader import shorten

    return shorten(value)


def chosen_learning_rate(doc: dict, rank: int) -> float | None:
    """The learning rate a calibration kept at ``rank`` (its per-rank best), or None when it has no such rank."""
    for e in doc.get("ranks", []):
        if int(e["rank"]) == int(rank):
            return None if e.get("learning_rate") is None else float(e["learning_rate"])
    return None


def rank_runs(doc: dict, rank: int) -> dict:
    """seed value -> (tokens, censored) of ``doc``'s runs at ``rank`` and its chosen learning rate; a censored
    run is at its bound. Raises a ConfigError when a run lacks the numbers."""
    lr = chosen_learning_rate(doc, rank)
    out = {}
    for e in doc.get("runs", []):
        if int(e["rank"]) != int(rank):
            continue
        if lr is not None and e.get("learning_rate") is not None and not math.isclose(float(e["learning_rate"]), lr,
                                                                                      rel_tol=1e-9):
            continue
        censored = bool(e.get("censored"))
        value = e.get("censored_above_tokens") if censored else e.get("tokens_to_target")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"calibration {doc.get('_path', '?')!r}: run at rank {rank}, seed {e.get('seed')} has "
                              f"tokens {value!r} (allowed: a finite number > 0)")
        seed = e.get("seed")
        out[seed if isinstance(seed, (int, str)) and not isinstance(seed, bool) else f"run {len(out)}"] = \
            (float(value), censored)
    return out


def pair_runs(num: dict, den: dict) -> dict:
    """The data of one rank's ratio num/den (see the module doc): paired by seed where seeds are shared."""
    common = [s for s in num if s in den]
    if common:
        pairs = [(num[s][0], den[s][0], num[s][1], den[s][1]) for s in sorted(common, key=str)]
        kept = [p for p in pairs if not (p[2] and p[3])]
        return {"paired": True, "pairs": kept, "dropped_censored_both": len(pairs) - len(kept),
                "bound": _bound([p[2] for p in kept], [p[3] for p in kept])}
    nv, dv = list(num.values()), list(den.values())
    return {"paired": False, "num": nv, "den": dv, "dropped_censored_both": 0,
            "bound": _bound([c for _, c in nv], [c for _, c in dv])}


def _bound(num_censored, den_censored) -> str | None:
    lower, upper = any(num_censored), any(den_censored)
    return "mixed" if lower and upper else "lower" if lower else "upper" if upper else None


def ratio_of(data: dict, idx_num=None, idx_den=None) -> float | None:
    """ratio of means of one rank's data, optionally on resampled indices."""
    if data["paired"]:
        pairs = data["pairs"]
        if not pairs:
            return None
        idx = range(len(pairs)) if idx_num is None else idx_num
        num = sum(pairs[i][0] for i in idx)
        den = sum(pairs[i][1] for i in idx)
    else:
        if not data["num"] or not data["den"]:
            return None
        inum = range(len(data["num"])) if idx_num is None else idx_num
        iden = range(len(data["den"])) if idx_den is None else idx_den
        num = float(np.mean([data["num"][i][0] for i in inum]))
        den = float(np.mean([data["den"][i][0] for i in iden]))
    return num / den if den > 0 else None


def sizes(data: dict) -> tuple[int, int]:
    return (len(data["pairs"]),) * 2 if data["paired"] else (len(data["num"]), len(data["den"]))


def geometric_mean(values) -> float:
    return float(math.exp(np.mean([math.log(v) for v in values])))


def bootstrap_ratios(per_rank: dict, resamples: int, seed: int = 0) -> dict:
    """Bootstrap of the per-rank ratios and their geometric mean: {"factor": samples, rank: samples} (arrays;
    a resample in which some rank has no ratio is skipped)."""
    rng = np.random.default_rng(seed)
    ranks = [r for r, d in per_rank.items() if ratio_of(d) is not None]
    samples = {r: [] for r in ranks}
    factor = []
    for _ in range(max(int(resamples), 0)):
        got = {}
        for r in ranks:
            d = per_rank[r]
            n_num, n_den = sizes(d)
            i_num = rng.integers(0, n_num, n_num)
            i_den = i_num if d["paired"] else rng.integers(0, n_den, n_den)
            got[r] = ratio_of(d, i_num, i_den)
        if any(v is None or v <= 0 for v in got.values()):
            continue
        for r in ranks:
            samples[r].append(got[r])
        factor.append(geometric_mean(got.values()))
    return {"factor": np.asarray(factor), **{r: np.asarray(v) for r, v in samples.items()}}


def percentile_interval(samples) -> list[float] | None:
    samples = np.asarray(samples, dtype=float)
    if samples.size == 0:
        return None
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


def check_same_target(doc_a: dict, doc_b: dict, what: str) -> float:
    """Both in tokens, with the same absolute target; returns it."""
    for d in (doc_a, doc_b):
        if d.get("unit") != "tokens":
            raise ConfigError(f"{what}: calibration {d.get('_path', '?')!r} is not in tokens (allowed: a schema v2 "
                              f"calibration from fsllm-sim calibrate)")
    ta, tb = ((d.get("target") or {}).get("value") for d in (doc_a, doc_b))
    if ta is None or tb is None:
        raise ConfigError(f"{what}: a calibration records no target value")
    if abs(ta - tb) > 1e-9 * max(1.0, abs(ta)):
        raise ConfigError(f"{what}: the targets differ ({ta:.6g} in {doc_a.get('_path', '?')!r}, {tb:.6g} in "
                          f"{doc_b.get('_path', '?')!r}); calibrate the second with the first's target "
                          f"(calibration.target_val_loss)")
    return float(ta)


def check_config_differs_only(base: dict, other: dict, may_differ, what: str) -> None:
    """The other calibration's recorded training configuration equals the base's except in ``may_differ``."""
    bc, oc = base.get("config") or {}, other.get("config") or {}
    for key in sorted(set(bc) | set(oc)):
        if key not in may_differ and bc.get(key) != oc.get(key):
            raise ConfigError(f"{what}: {other.get('_path', '?')!r} differs from {base.get('_path', '?')!r} in "
                              f"config.{key} ({oc.get(key)!r} vs {bc.get(key)!r}); only {', '.join(may_differ)} "
                              f"may differ")
