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
    censored = tuple(int(e["rank"]) for e in doc.get("ranks", []) if e.get("censored"))
    return CalibrationFit(a=float(fit["a"]), b=float(fit["b"]), c=float(fit["c"]), path=doc["_path"],
                          target_val_loss=doc.get("target", {}).get("value"), censored_ranks=censored,
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
                              censored_ranks=tuple(e["rank"] for e in self.document["ranks"] if e["censored"]),
                              degenerate=bool(f.get("degenerate")))

    @property
    def rounds_to_target(self) -> dict[int, float | None]:
        return {e["rank"]: e["rounds_to_target"] for e in self.document["ranks"]}


def calibrate(config: TrainingConfig, *, ranks: Sequence[int] = (1, 2, 4, 8, 16), max_rounds: int = 20,
              out_dir: str | os.PathLike, target_val_loss: float | None = None,
              target_rule: str | None = DEFAULT_RULE, resume: bool = True, progress: bool = True,
              command: str | None = None, data=None, cache=None) -> CalibrationResult:
    """Train at every rank for ``max_rounds`` rounds, read N(r) off the curves and fit a + b·r^(-c).

    ``config`` fixes everything but the rank and the number of rounds (model, data source/partition, K, b,
    L, E, split, optimiser, wire, seed). ``data`` optionally reuses already built federated data (it must
    match the config's tokenizer). Writes ``<out_dir>/curves/rank_<r>.json`` per rank (resumable) and
    ``<out_dir>/calibration.json``; returns the latter's content.
    """
    ranks = [int(r) for r in ranks]
    if not ranks or any(r < 1 for r in ranks) or len(set(ranks)) != len(ranks):
        raise ConfigError(f"ranks={ranks!r} is invalid; allowed: distinct integers >= 1")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ConfigError(f"max_rounds={max_rounds!r} is invalid; allowed: an integer >= 1")
    if target_val_loss is not None and not math.isfinite(float(target_val_loss)):
        raise ConfigError(f"target_val_loss={target_val_loss!r} is invalid; allowed: a finite number")
    if target_val_loss is None:
        resolve_target({1: [1.0, 0.5]}, None, target_rule)  # validate the rule before hours of training
    config = replace(config, rounds=max_rounds).validate()
    out = Path(out_dir)
    curves_dir = out / "curves"
    curves_dir.mkdir(parents=True, exist_ok=True)
    fingerprint, fp_config = _fingerprint(config)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    tokenizer = None
    first_model = None
    data_summary = None
    records: dict[int, dict] = {}
    for r in sorted(ranks):
        path = curves_dir / f"rank_{r}.json"
        if resume and path.is_file():
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                rec = None
            if rec and rec.get("fingerprint") == fingerprint and len(rec.get("val_losses", [])) >= max_rounds + 1:
                rec["val_losses"] = rec["val_losses"][: max_rounds + 1]
                rec["train_losses"] = rec["train_losses"][:max_rounds]
                rec["resumed"] = True
                records[r] = rec
                continue
            if rec and rec.get("fingerprint") != fingerprint:
                raise ConfigError(f"out_dir={str(out)!r} holds a rank-{r} curve from a different configuration "
                                  f"(fingerprint {rec.get('fingerprint')} != {fingerprint}); use another "
                                  f"out_dir or delete {path}")
        # a fresh model per rank (LoRA is injected in place); data built once and shared
        if data is None:
            first_model, data = prepare_model_and_data(config, cache=cache)
            tokenizer = first_model.tokenizer
        if first_model is not None:
            model, first_model = first_model, None
        else:
            model = load_model(config.model, tokenizer=tokenizer if config.model.startswith("tiny-") else None,
                               seed=config.seed, cache=cache)
            if tokenizer is None:
                tokenizer = model.tokenizer
        result = run_federated_training(replace(config, rank=r), model=model, data=data, progress=progress)
        data_summary = result.data_summary
        rec = {"rank": r, "fingerprint": fingerprint, "val_losses": result.val_losses,
               "train_losses": result.train_losses, "wall_s": result.wall_s, "split": result.config["split"],
               "model_source": model.source, "data_summary": result.data_summary,
               "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "versions": _versions()}
        _atomic_write_json(path, rec)
        records[r] = rec

    curves = {r: records[r]["val_losses"] for r in ranks}
    target, target_info = resolve_target(curves, target_val_loss, target_rule)
    per_rank = []
    for r in ranks:
        n, cens = rounds_to_target(curves[r], target)
        per_rank.append({"rank": r, "rounds_to_target": n, "censored": cens,
                         "censored_above": max_rounds if cens else None,
                         "val_losses": records[r]["val_losses"], "train_losses": records[r]["train_losses"],
                         "wall_s": records[r]["wall_s"], "resumed": bool(records[r].get("resumed"))})
    pts = [(e["rank"], e["rounds_to_target"]) for e in per_rank if not e["censored"]]
    fit = fit_rounds_model([p[0] for p in pts], [p[1] for p in pts])
    any_rec = records[ranks[0]]
    doc = {
        "schema": SCHEMA,
        "model": config.model,
        "model_source": any_rec.get("model_source"),
        "split": any_rec.get("split"),
        "data": {"source": config.data_source, "format": config.data_format, "partition": config.partition,
                 "dirichlet_alpha": config.dirichlet_alpha if config.partition == "dirichlet" else None,
                 "summary": data_summary or any_rec.get("data_summary")},
        "seeds": {"seed": config.seed},
        "config": fp_config,
        "fingerprint": fingerprint,
        "ranks_requested": ranks,
        "max_rounds": max_rounds,
        "target": target_info,
        "ranks": per_rank,
        "fit": fit,
        "model_formula": "N(r) = a + b * r**(-c)",
        "versions": _versions(),
        "started": started,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "host": {"platform": platform.platform(), "torch_threads": _torch_threads()},
    }
    final = out / "calibration.json"
    _atomic_write_json(final, doc)
    return CalibrationResult(path=final, document=doc)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()
