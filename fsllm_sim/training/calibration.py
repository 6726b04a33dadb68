"""Calibration of the convergence model N(r) = a + b·r^(-c) from real split-federated training (spec §4).

For each LoRA rank r the same federated run (same model, data, partition, split, seeds; only r differs) is
trained for ``max_rounds`` rounds and its global validation loss recorded after every round. The number of
rounds N(r) needed to reach a target validation loss is read off each curve, and a + b·r^(-c) is fitted.

Reading N(r) off a curve
    N = the first crossing of the target, linearly interpolated between the two rounds around it
    (N = t-1 + (v[t-1] - target)/(v[t-1] - v[t])); N = 0 if the untrained model already meets it.
    A rank whose curve never reaches the target within ``max_rounds`` is **censored**: all we know is
    N(r) > max_rounds. Censored ranks are reported (``censored: true``) and left out of the fit — the fitted
    curve may therefore underestimate N there; raise ``max_rounds`` or loosen the target to remove them.

Target
    ``target_val_loss`` (absolute), or a rule evaluated on the recorded curves:
    ``best_fraction:F`` (default F = 0.8) -> L0 - F·(L0 - L_best), with L0 the untrained loss (identical for
    every rank: LoRA B starts at 0) and L_best the lowest loss any rank reached; this target is reached by
    at least one rank by construction. ``initial_ratio:X`` -> X·L0.

Fit
    ≥ 4 uncensored points: least squares by ``scipy.optimize.curve_fit`` with bounds a ≥ 0, b ≥ 0, 0 ≤ c ≤ 8
    (b ≥ 0, c ≥ 0: more rank never needs more rounds in this model), started from a global grid search over
    c (for fixed c the model is linear in a, b, solved by non-negative least squares) so the local solver
    cannot get lost; the grid optimum is kept if curve_fit fails. 3 points: the same procedure, but 3
    parameters through 3 points interpolate exactly (zero residual, no uncertainty) — flagged
    ``degenerate``. 2 points: c is fixed to 1 and (a, b) solved exactly — flagged. 1 point: N(r) constant.
    0 points: no fit (``fit`` is null).

Resumable
    Each rank's finished curve is written atomically (tmp file + ``os.replace``) to
    ``<out_dir>/curves/rank_<r>.json`` together with a fingerprint of the run configuration; a rerun skips
    ranks whose curve exists with the same fingerprint and at least ``max_rounds`` rounds. The final
    ``<out_dir>/calibration.json`` holds the provenance (model, data, seeds, library versions, timestamp,
    command), every raw curve, the target, N(r) per rank and the fit.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from fsllm_sim.errors import ConfigError, DataError
from fsllm_sim.convergence import CALIBRATION_SCHEMA, read_calibration_document
from fsllm_sim.training.federated_training import TrainingConfig, prepare_model_and_data, run_federated_training
from fsllm_sim.training.models import load_model

SCHEMA = CALIBRATION_SCHEMA
SCHEMA_V2 = "fsllm-sim/calibration/v2"
C_MAX = 8.0
DEFAULT_RULE = "best_fraction:0.8"


# --------------------------------------------------------------------------------------------- N(r) from curves


def rounds_to_target(val_losses: Sequence[float], target: float) -> tuple[float | None, bool]:
    """(N, censored) for a curve v[0..R] (v[0] = before training). N is interpolated; None when censored."""
    v = [float(x) for x in val_losses]
    if not v:
        raise DataError("empty validation-loss curve")
    if v[0] <= target:
        return 0.0, False
    for t in range(1, len(v)):
        if v[t] <= target:
            drop = v[t - 1] - v[t]
            frac = (v[t - 1] - target) / drop if drop > 0 else 1.0
            return (t - 1) + min(max(frac, 0.0), 1.0), False
    return None, True


def resolve_target(curves: dict[int, Sequence[float]], target_val_loss: float | None,
                   target_rule: str | None) -> tuple[float, dict]:
    """The target loss and a record of how it was obtained."""
    initial = [float(c[0]) for c in curves.values()]
    l0 = float(np.mean(initial))
    info = {"initial_val_loss": l0, "initial_val_loss_spread": float(np.ptp(initial)) if initial else 0.0}
    if target_val_loss is not None:
        return float(target_val_loss), {**info, "rule": "absolute", "value": float(target_val_loss)}
    from fsllm_sim.config.loader import parse_target_rule

    rule = target_rule or DEFAULT_RULE
    try:
        name, x = parse_target_rule(rule)
    except ConfigError as exc:
        raise ConfigError(f"target_rule: {exc}, or give target_val_loss") from None
    if name == "best_fraction":
        best = min(float(min(c)) for c in curves.values())
        target = l0 - x * (l0 - best)
        return target, {**info, "rule": rule, "best_val_loss": best, "value": target}
    return x * l0, {**info, "rule": rule, "value": x * l0}


# --------------------------------------------------------------------------------------------- the fit


def rounds_model(r, a: float, b: float, c: float):
    """N(r) = a + b·r^(-c) (numpy-vectorised)."""
    return a + b * np.power(np.asarray(r, dtype=float), -c)


def _nnls_ab(r: np.ndarray, n: np.ndarray, c: float) -> tuple[float, float, float]:
    from scipy.optimize import nnls

    A = np.column_stack([np.ones_like(r), r ** (-c)])
    (a, b), res = nnls(A, n)
    return float(a), float(b), float(res) ** 2


def fit_rounds_model(ranks: Sequence[float], rounds: Sequence[float]) -> dict | None:
    """Fit a, b, c (see the module doc for the small-sample rules). Returns a JSON-ready dict or None."""
    from scipy.optimize import OptimizeWarning, curve_fit

    r = np.asarray(ranks, dtype=float)
    n = np.asarray(rounds, dtype=float)
    k = r.size
    if k == 0:
        return None
    if k == 1:
        return {"a": float(n[0]), "b": 0.0, "c": 0.0, "method": "constant", "n_points": 1, "degenerate": True,
                "note": "one uncensored rank: N(r) taken as constant", "sse": 0.0, "r2": None}
    if k == 2:
        a, b, sse = _nnls_ab(r, n, 1.0)
        return {"a": a, "b": b, "c": 1.0, "method": "c fixed to 1, (a, b) by non-negative least squares",
                "n_points": 2, "degenerate": True, "note": "two uncensored ranks cannot determine three "
                "parameters: c fixed to 1", "sse": sse, "r2": _r2(n, rounds_model(r, a, b, 1.0))}
    # global search over c (model linear in a, b for fixed c), then curve_fit refinement within bounds
    grid = np.linspace(0.0, C_MAX, 321)
    best = min((_nnls_ab(r, n, c) + (c,) for c in grid), key=lambda t: t[2])
    a0, b0, sse0, c0 = best
    params, method, cov = (a0, b0, c0), "grid search over c + NNLS", None
    try:
        p0 = [max(a0, 1e-9), max(b0, 1e-9), min(max(c0, 1e-6), C_MAX - 1e-6)]
        with warnings.catch_warnings():  # 3 points: no covariance, expected (see the module doc)
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, pcov = curve_fit(rounds_model, r, n, p0=p0,
                                   bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, C_MAX]), maxfev=20000)
        sse = float(np.sum((rounds_model(r, *popt) - n) ** 2))
        if sse <= sse0 + 1e-12:
            params, method = tuple(float(x) for x in popt), "scipy.optimize.curve_fit (bounded), grid start"
            cov = pcov
    except (RuntimeError, ValueError):
        pass
    a, b, c = params
    pred = rounds_model(r, a, b, c)
    out = {"a": a, "b": b, "c": c, "method": method, "n_points": int(k), "degenerate": k == 3,
           "sse": float(np.sum((pred - n) ** 2)), "r2": _r2(n, pred),
           "residuals": [float(x) for x in (n - pred)]}
    if k == 3:
        out["note"] = "three points, three parameters: exact interpolation (zero residual when feasible within " \
                      "the bounds), no uncertainty estimate"
    elif cov is not None and np.all(np.isfinite(cov)):
        out["stderr"] = [float(math.sqrt(max(x, 0.0))) for x in np.diag(cov)]
    return out


def _r2(n: np.ndarray, pred: np.ndarray) -> float | None:
    ss_tot = float(np.sum((n - n.mean()) ** 2))
    return None if ss_tot == 0 else 1.0 - float(np.sum((n - pred) ** 2)) / ss_tot


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CalibrationFit:
    """A loaded N(r) fit: ``fit.rounds(r)`` evaluates a + b·r^(-c)."""

    a: float
    b: float
    c: float
    path: str | None = None
    target_val_loss: float | None = None
    censored_ranks: tuple[int, ...] = ()
    degenerate: bool = False

    def rounds(self, r):
        return rounds_model(r, self.a, self.b, self.c)

    __call__ = rounds


def load_calibration(path: str | os.PathLike) -> CalibrationFit:
    """Read ``calibration.json`` (or a directory holding it) and return the fit with its caveats."""
    doc = read_calibration_document(path)
    fit = doc["fit"]
    return CalibrationFit(a=float(fit["a"]), b=float(fit["b"]), c=float(fit["c"]), path=doc["_path"],
                          target_val_loss=doc.get("target", {}).get("value"), censored_ranks=_censored_ranks(doc),
                          degenerate=bool(fit.get("degenerate")))


# --------------------------------------------------------------------------------------------- running


def _atomic_write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fingerprint(config: TrainingConfig) -> tuple[str, dict]:
    d = asdict(config)
    d.pop("rank")
    d.pop("rounds")
    # the device changes no result beyond float rounding (a calibration may resume on another machine); a compute
    # dtype other than float32 does, and float32 stays out so fingerprints from before the option are unchanged
    d.pop("device", None)
    if d.get("dtype") == "float32":
        d.pop("dtype")
    # activation noise changes the training; without it (0) the fingerprints of before the option are unchanged
    if d.get("activation_noise_sigma") == 0.0:
        d.pop("activation_noise_sigma")
    blob = json.dumps(d, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16], d


def _versions() -> dict:
    import peft
    import scipy
    import torch
    import transformers

    import fsllm_sim

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "fsllm_sim": fsllm_sim.__version__}


@dataclass
class CalibrationResult:
    path: Path
    document: dict

    @property
    def fit(self) -> CalibrationFit | None:
        f = self.document.get("fit")
        if not f:
            return None
        return CalibrationFit(a=f["a"], b=f["b"], c=f["c"], path=str(self.path),
                              target_val_loss=self.document["target"]["value"],
                              censored_ranks=_censored_ranks(self.document), degenerate=bool(f.get("degenerate")))

    @property
    def tokens_to_target(self) -> dict[int, float | None]:
        """Mean tokens to the target per rank over its uncensored seeds (None: every seed censored)."""
        return {e["rank"]: e["tokens_to_target"]["mean"] for e in self.document["ranks"]}


def _censored_ranks(doc: dict) -> tuple[int, ...]:
    """Ranks none of whose runs reached the target (v2), or censored ranks (v1)."""
    return tuple(int(e["rank"]) for e in doc.get("ranks", [])
                 if e.get("censored") or (e.get("runs") and e.get("censored_runs") == e.get("runs")))


def fit_censored(ranks: Sequence[float], values: Sequence[float], censored: Sequence[bool]) -> dict | None:
    """Fit y = a + b r^(-c) to points of which some are censored (only y > value is known).

    Least squares in which an uncensored point contributes (pred - y) and a censored one max(0, y - pred):
    a prediction above a censoring bound costs nothing, one below it costs like a miss (a one-sided, Tobit-like
    loss). Started from the grid + NNLS fit of the uncensored points, bounded a, b >= 0, 0 <= c <= C_MAX."""
    from scipy.optimize import least_squares

    r = np.asarray(ranks, dtype=float)
    y = np.asarray(values, dtype=float)
    cens = np.asarray(censored, dtype=bool)
    if (~cens).sum() == 0:
        return None
    start = fit_rounds_model(r[~cens], y[~cens])
    if (~cens).sum() < 3 or len(set(r[~cens].tolist())) < 3:
        start = dict(start, degenerate=True)
        if not cens.any():
            return dict(start, n_censored=0)
    x0 = [max(start["a"], 1e-9), max(start["b"], 1e-9), min(max(start["c"], 1e-6), C_MAX - 1e-6)]
    scale = max(float(np.max(y)), 1.0)

    def residuals(p):
        pred = rounds_model(r, *p)
        res = np.where(cens, np.maximum(0.0, y - pred), pred - y)
        return res / scale

    sol = least_squares(residuals, x0, bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, C_MAX]))
    a, b, c = (float(v) for v in sol.x)
    pred = rounds_model(r, a, b, c)
    return {"a": a, "b": b, "c": c, "method": "censored least squares (scipy.optimize.least_squares)",
            "n_points": int(r.size), "n_censored": int(cens.sum()),
            "degenerate": bool(start.get("degenerate")) and not cens.any(),
            "sse_uncensored": float(np.sum((pred[~cens] - y[~cens]) ** 2)),
            "censored_violations": int(np.sum(cens & (pred < y)))}


def bootstrap_fit(groups: dict, resamples: int, seed: int = 0) -> dict | None:
    """Percentile intervals (2.5 %, 97.5 %) of a, b, c and of the prediction at every rank, resampling the seeds
    of each rank with replacement. ``groups``: rank -> list of (value, censored)."""
    if resamples <= 0:
        return None
    rng = np.random.default_rng(seed)
    ranks = sorted(groups)
    params, preds = [], []
    for _ in range(resamples):
        rr, vv, cc = [], [], []
        for r in ranks:
            pts = groups[r]
            for i in rng.integers(0, len(pts), len(pts)):
                rr.append(r)
                vv.append(pts[i][0])
                cc.append(pts[i][1])
        f = fit_censored(rr, vv, cc)
        if f is not None:
            params.append((f["a"], f["b"], f["c"]))
            preds.append(rounds_model(np.asarray(ranks, dtype=float), f["a"], f["b"], f["c"]))
    if not params:
        return None
    params, preds = np.asarray(params), np.asarray(preds)
    lo, hi = np.percentile(params, [2.5, 97.5], axis=0)
    plo, phi = np.percentile(preds, [2.5, 97.5], axis=0)
    return {"resamples": int(len(params)), "a": [float(lo[0]), float(hi[0])], "b": [float(lo[1]), float(hi[1])],
            "c": [float(lo[2]), float(hi[2])],
            "prediction": {str(r): [float(l), float(h)] for r, l, h in zip(ranks, plo, phi)}}


def _mean_ci(values: Sequence[float]) -> dict:
    """Mean and a 95 % t interval of the uncensored values (no interval from fewer than two)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"mean": None, "ci95": None, "n": 0}
    if v.size == 1:
        return {"mean": float(v[0]), "ci95": None, "n": 1}
    from scipy.stats import t

    half = float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    # a token count is positive: the symmetric t interval is cut at 0 where a few seeds spread widely
    return {"mean": float(v.mean()), "ci95": [max(0.0, float(v.mean() - half)), float(v.mean() + half)],
            "n": int(v.size)}


LEARNING_RATE_SEARCHES = ("all_seeds", "first_seed")


def _tokens_or_bound(val_losses, target: float, tokens_per_round: int) -> float:
    """Tokens to the target of one curve, a censored curve at its bound (the rate choice never favours
    censoring)."""
    n, censored = rounds_to_target(val_losses, target)
    return (len(val_losses) - 1) * tokens_per_round if censored else n * tokens_per_round


def _reusable(val_losses, max_rounds: int, target_val_loss: float | None) -> bool:
    """A saved curve serves a calibration when it is as long as the calibration's runs, or when it stopped
    early after meeting the calibration's absolute target (its first crossing, all the fit reads, is in it)."""
    if len(val_losses) >= max_rounds + 1:
        return True
    return (target_val_loss is not None and len(val_losses) >= 1
            and not rounds_to_target(val_losses, target_val_loss)[1])


def _seed_value(base: int, index: int) -> int:
    return int(np.random.SeedSequence([int(base) % 2**63, int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def calibrate(config: TrainingConfig, *, ranks: Sequence[int] = (1, 2, 4, 8, 16), max_rounds: int = 20,
              out_dir: str | os.PathLike, target_val_loss: float | None = None,
              target_rule: str | None = DEFAULT_RULE, seeds: int = 1, learning_rates: Sequence[float] | None = None,
              bootstrap: int = 200, resume: bool = True, progress: bool = True, command: str | None = None,
              stop_at_target: bool = False, learning_rate_search: str = "all_seeds",
              data=None, cache=None) -> CalibrationResult:
    """Train every (rank, learning rate, seed) for ``max_rounds`` rounds and fit the tokens to the target,
    T(r) = a + b r^(-c), with per-rank intervals and a bootstrap of the fit.

    ``config`` fixes everything else (model, data, K, b, L, E, split, optimiser, wire, LoRA scaling). Seed i
    of ``seeds`` derives from ``config.seed`` and changes the data partition and order and the LoRA
    initialisation; ``data`` (reused for every seed) is only for tests. Each run's curve is written to
    ``<out_dir>/curves/`` (resumable); ``<out_dir>/calibration.json`` holds the provenance, every curve, the
    target, tokens to target per run and rank, the fit and its intervals.

    ``stop_at_target`` (needs the absolute ``target_val_loss``) ends each run after the round that first meets
    the target: its tokens to the target are those of the full run (the first crossing), at the cost the
    target needs; a run that never meets it trains all ``max_rounds`` (censored). ``learning_rate_search``:
    ``all_seeds`` trains every learning rate at every seed and keeps the best per rank over the seeds;
    ``first_seed`` (also needs the absolute target) chooses each rank's rate on the first seed alone and trains
    the other seeds at that rate only (a third of the runs of a two-rate grid at three seeds saved)."""
    ranks = [int(r) for r in ranks]
    if not ranks or any(r < 1 for r in ranks) or len(set(ranks)) != len(ranks):
        raise ConfigError(f"ranks={ranks!r} is invalid; allowed: distinct integers >= 1")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ConfigError(f"max_rounds={max_rounds!r} is invalid; allowed: an integer >= 1")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds={seeds!r} is invalid; allowed: an integer >= 1")
    if target_val_loss is not None and not math.isfinite(float(target_val_loss)):
        raise ConfigError(f"target_val_loss={target_val_loss!r} is invalid; allowed: a finite number")
    if target_val_loss is None:
        resolve_target({1: [1.0, 0.5]}, None, target_rule)  # validate the rule before hours of training
    if learning_rate_search not in LEARNING_RATE_SEARCHES:
        raise ConfigError(f"learning_rate_search={learning_rate_search!r} is invalid; allowed: "
                          f"{', '.join(LEARNING_RATE_SEARCHES)}")
    for flag, on in (("stop_at_target", stop_at_target),
                     ("learning_rate_search: first_seed", learning_rate_search == "first_seed")):
        if on and target_val_loss is None:
            raise ConfigError(f"calibration.{flag} needs calibration.target_val_loss (an absolute target, known "
                              f"before the runs); allowed: a loss > 0, or turn {flag.split(':')[0]} off")
    lrs = [float(x) for x in (learning_rates or [config.learning_rate])]
    config = replace(config, rounds=max_rounds).validate()
    out = Path(out_dir)
    curves_dir = out / "curves"
    curves_dir.mkdir(parents=True, exist_ok=True)
    fingerprint, fp_config = _fingerprint(config)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    tpr = config.num_clients * config.local_iterations * config.batch_size * config.seq_len

    records: dict = {}
    data_summary = None
    seed0_best: dict[int, float] = {}
    for i in range(seeds):
        seed = config.seed if i == 0 else _seed_value(config.seed, i)
        seed_data, tokenizer, first_model = data, None, None
        if i == 1 and learning_rate_search == "first_seed":
            seed0_best = {r: min(lrs, key=lambda lr: _tokens_or_bound(records[(r, lr, 0)]["val_losses"],
                                                                     target_val_loss, tpr)) for r in ranks}
        for r in sorted(ranks):
            for lr in ([seed0_best[r]] if seed0_best else lrs):
                key = (r, lr, i)
                path = curves_dir / f"rank_{r}_lr_{lr:g}_seed_{i}.json"
                if resume and path.is_file():
                    try:
                        rec = json.loads(path.read_text())
                    except (OSError, ValueError):
                        rec = None
                    if rec and rec.get("fingerprint") == fingerprint and _reusable(rec.get("val_losses", []),
                                                                                   max_rounds, target_val_loss):
                        rec["val_losses"] = rec["val_losses"][: max_rounds + 1]
                        rec["resumed"] = True
                        records[key] = rec
                        continue
                    if rec and rec.get("fingerprint") != fingerprint:
                        raise ConfigError(f"out_dir={str(out)!r} holds a curve from a different configuration "
                                          f"(fingerprint {rec.get('fingerprint')} != {fingerprint}); use another "
                                          f"out_dir or delete {path}")
                run_cfg = replace(config, rank=r, learning_rate=lr, seed=seed)
                if seed_data is None:
                    first_model, seed_data = prepare_model_and_data(run_cfg, cache=cache)
                    tokenizer = first_model.tokenizer
                if first_model is not None:
                    model, first_model = first_model, None
                else:
                    model = load_model(config.model, tokenizer=tokenizer if config.model.startswith("tiny-") else None,
                                       seed=seed, cache=cache)
                stop = ((lambda log: log.val_loss <= target_val_loss) if stop_at_target else None)
                result = run_federated_training(run_cfg, model=model, data=seed_data, progress=progress,
                                                stop_after=stop)
                data_summary = result.data_summary
                rec = {"rank": r, "learning_rate": lr, "seed_index": i, "seed": seed, "fingerprint": fingerprint,
                       "val_losses": result.val_losses, "train_losses": result.train_losses, "wall_s": result.wall_s,
                       "split": result.config["split"], "model_source": model.source,
                       "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
                _atomic_write_json(path, rec)
                records[key] = rec

    # the target from the seed-mean curves (every rank and learning rate)
    # the target from the seed-mean curves (every rank and learning rate; all full length without an absolute
    # target, since only a run that stops at an absolute target is short)
    mean_curves = {}
    for r in ranks:
        for lr in lrs:
            runs_rl = [records[k]["val_losses"] for k in sorted(records) if k[0] == r and k[1] == lr]
            if runs_rl:
                n_common = min(len(v) for v in runs_rl)
                mean_curves[(r, lr)] = np.mean([v[:n_common] for v in runs_rl], axis=0).tolist()
    target, target_info = resolve_target(mean_curves, target_val_loss, target_rule)
    per_run = []
    for (r, lr, i), rec in sorted(records.items()):
        n, cens = rounds_to_target(rec["val_losses"], target)
        per_run.append({"rank": r, "learning_rate": lr, "seed_index": i, "seed": rec["seed"],
                        "rounds_to_target": n, "censored": cens, "rounds_trained": len(rec["val_losses"]) - 1,
                        "tokens_to_target": None if cens else n * tpr,
                        "censored_above_tokens": (len(rec["val_losses"]) - 1) * tpr if cens else None,
                        "val_losses": rec["val_losses"], "train_losses": rec["train_losses"], "wall_s": rec["wall_s"],
                        "resumed": bool(rec.get("resumed"))})

    def runs_of(r, lr):
        return [e for e in per_run if e["rank"] == r and e["learning_rate"] == lr]

    def conservative_mean(runs):  # a censored run counts at its bound: the lr choice never favours censoring
        return float(np.mean([e["tokens_to_target"] if not e["censored"] else e["censored_above_tokens"]
                              for e in runs]))

    per_rank, groups = [], {}
    for r in ranks:
        if seed0_best:  # first_seed: the rate was chosen on seed 0 and only it ran at the other seeds
            best_lr = seed0_best[r]
            tried = {f"{lr:g}": conservative_mean([e for e in runs_of(r, lr) if e["seed_index"] == 0])
                     for lr in lrs}
        else:
            best_lr = min(lrs, key=lambda lr: conservative_mean(runs_of(r, lr)))
            tried = {f"{lr:g}": conservative_mean(runs_of(r, lr)) for lr in lrs}
        runs = runs_of(r, best_lr)
        done = [e["tokens_to_target"] for e in runs if not e["censored"]]
        stats = _mean_ci(done)
        per_rank.append({"rank": r, "learning_rate": best_lr, "tokens_to_target": stats,
                         "censored_runs": sum(e["censored"] for e in runs), "runs": len(runs),
                         "learning_rates_tried": tried,
                         "learning_rates_tried_on": "seed 0" if seed0_best else "every seed"})
        groups[r] = [(e["tokens_to_target"] if not e["censored"] else e["censored_above_tokens"], e["censored"])
                     for e in runs]
    rr = [r for r in ranks for _ in groups[r]]
    fit = fit_censored(rr, [v for r in ranks for v, _ in groups[r]], [c for r in ranks for _, c in groups[r]])
    if fit is not None:
        fit["bootstrap"] = bootstrap_fit(groups, bootstrap, seed=int(config.seed) % 2**32)
    any_rec = next(iter(records.values()))
    doc = {
        "schema": SCHEMA_V2,
        "unit": "tokens",
        "model": config.model,
        "model_source": any_rec.get("model_source"),
        "split": any_rec.get("split"),
        "data": {"source": config.data_source, "format": config.data_format, "partition": config.partition,
                 "dirichlet_alpha": config.dirichlet_alpha if config.partition == "dirichlet" else None,
                 "summary": data_summary},
        "seeds": {"base": config.seed, "count": seeds, "values": sorted({e["seed"] for e in per_run})},
        "learning_rates": lrs,
        "config": {**fp_config, "learning_rate": lrs[0] if len(lrs) == 1 else None},
        "tokens_per_round": tpr,
        "fingerprint": fingerprint,
        "ranks_requested": ranks,
        "max_rounds": max_rounds,
        "stop_at_target": bool(stop_at_target),
        "learning_rate_search": learning_rate_search,
        "target": target_info,
        "ranks": per_rank,
        "runs": per_run,
        "fit": fit,
        "model_formula": "T(r) = a + b * r**(-c) training tokens to the target; N(r) = T(r) / (K E b L)",
        "compute": {"train_wall_s": float(sum(e["wall_s"] for e in per_run)), "runs": len(per_run)},
        "versions": _versions(),
        "started": started,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "host": {"platform": platform.platform(), "torch_threads": _torch_threads()},
    }
    final = out / "calibration.json"
    _atomic_write_json(final, doc)
    try:
        from plots.calibration import plot_calibration

        plot_calibration(doc, out / "calibration.png")
    except ImportError:
        pass
    return CalibrationResult(path=final, document=doc)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()
