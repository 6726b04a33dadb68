"""What does a lossy wire (or the activation-noise defence) cost in convergence? The factor T_other(r) / T_base(r),
measured, for the token model.

The base calibration (fp16 on the wire, say) and one or more calibrations at another wire precision
(``training.activation_precision``) must share the model, data, K, E, b, L, split, LoRA and the absolute
target (``calibration.target_val_loss`` = the base's target value), and should train each rank with the
base's per-rank best learning rate (``scenarios/calibrate_builtin.sh`` runs one calibration per learning-rate
group of ranks). Only the wire precision and the learning rate may differ; several calibrations of one
precision (one per learning-rate group) are merged, their ranks must not overlap. For every precision the check
reports, per rank, the ratio of the tokens to the target with its 95 % interval, and their geometric mean over
ranks (the factor the convergence model applies), pairing runs by seed and treating censored runs as in
:mod:`fsllm_sim.training.ratios`.

It then writes the base calibration document with a ``precision_penalty`` section (atomically):
``{precision: {factor, ci95, ranks: [...], seeds, target, calibrations: [provenance of each], compute, ...}}``
and a ``precision_check`` record (command, host, versions, time). A scenario that names the merged file in
``convergence.calibration`` and uses one of those precisions gets T(r) times the factor
(:mod:`fsllm_sim.convergence`). A calibration that differs from the base in ``training.activation_noise_sigma``
instead (not in both) gives, the same way, a ``noise_penalty`` section keyed by sigma and a ``noise_check``
record; one call may measure both kinds.

    python -m fsllm_sim.training.precision_check BASE OTHER [OTHER ...] [--out FILE] [--bootstrap N]
        [--note TEXT]

``--out`` defaults to ``<BASE folder>/calibration-precision.json``; ``--note`` is recorded with the command
(e.g. the script that ran it).
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import math
import os
import platform
import shlex
import sys
from pathlib import Path

from fsllm_sim.convergence import (_check_noise_penalty, _check_precision_penalty, measured_at,
                                   read_calibration_document)
from fsllm_sim.errors import USER_ERRORS, ConfigError
from fsllm_sim.report import format_table
from fsllm_sim.training.ratios import (
    bootstrap_ratios,
    check_config_differs_only,
    check_runs,
    check_same_target,
    chosen_learning_rate,
    geometric_mean,
    pair_runs,
    percentile_interval,
    rank_runs,
    ratio_of,
)

# Configuration keys a precision calibration may change against its base (everything else must match).
MAY_DIFFER = ("activation_precision", "gradient_precision", "activation_noise_sigma", "learning_rate", "seed")
# What a calibration may differ in, and the section of the base file its penalty is written to.
KINDS = {"precision_penalty": "precision_check", "noise_penalty": "noise_check"}
PROVENANCE_KEYS = ("command", "compute", "host", "versions", "started", "finished", "fingerprint")
METHOD = ("per rank: ratio of the mean tokens to the target over seeds paired by seed value (a censored run at its "
          "bound; pairs censored on both sides left out), at each calibration's own chosen learning rate; factor: "
          "geometric mean over ranks; ci95: percentile bootstrap over seeds within ranks")


def _sigma(doc: dict) -> float:
    return float(measured_at(doc).get("activation_noise_sigma") or 0.0)


def _check_compatible(base: dict, other: dict) -> tuple[str, str]:
    """(section, key): ``precision_penalty`` and the other calibration's wire precision, or ``noise_penalty`` and
    its noise sigma, after checking that it differs from the base only where allowed (one of the two)."""
    where = f"precision check: {other.get('_path', '?')!r}"
    check_same_target(base, other, "precision check")
    if other.get("model") != base.get("model"):
        raise ConfigError(f"{where} is model {other.get('model')!r}, the base {base.get('model')!r} (allowed: the "
                          f"base's model)")
    check_config_differs_only(base, other, MAY_DIFFER, "precision check")
    if other.get("tokens_per_round") != base.get("tokens_per_round"):
        raise ConfigError(f"{where} has {other.get('tokens_per_round')} tokens per round, the base "
                          f"{base.get('tokens_per_round')} (allowed: the base's)")
    own, prec = measured_at(base).get("activation_precision"), measured_at(other).get("activation_precision")
    own_sigma, sigma = _sigma(base), _sigma(other)
    if prec != own and sigma != own_sigma:
        raise ConfigError(f"{where} differs from the base in both the wire precision ({prec!r} against {own!r}) and "
                          f"the activation noise ({sigma:g} against {own_sigma:g}) (allowed: one of them)")
    if sigma != own_sigma:
        return "noise_penalty", f"{sigma:g}"
    if prec is None or prec == own:
        raise ConfigError(f"{where} has activation precision {prec!r} and noise sigma {sigma:g}, as the base (allowed: "
                          f"another wire precision, or another noise sigma)")
    return "precision_penalty", prec


def _provenance(doc: dict) -> dict:
    ranks = [int(e["rank"]) for e in doc.get("ranks", [])]
    return {"path": doc.get("_path"), "ranks": ranks, "learning_rates": doc.get("learning_rates"),
            "target_rule": (doc.get("target") or {}).get("rule"),
            **{k: doc.get(k) for k in PROVENANCE_KEYS}}


def precision_penalty(base: dict, others: list[dict], *, resamples: int = 2000, seed: int = 0) -> dict:
    """{precision: section} from the base calibration document and the others (see the module doc)."""
    return penalty_sections(base, others, resamples=resamples, seed=seed).get("precision_penalty", {})


def penalty_sections(base: dict, others: list[dict], *, resamples: int = 2000, seed: int = 0) -> dict:
    """{"precision_penalty": {precision: section}, "noise_penalty": {sigma: section}}, the kinds the others
    measure (each other calibration differs from the base in its wire precision or in its noise sigma)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for doc in (base, *others):
        check_runs(doc, "precision check")
    for other in others:
        groups.setdefault(_check_compatible(base, other), []).append(other)
    own_of = {"precision_penalty": measured_at(base).get("activation_precision"), "noise_penalty": _sigma(base)}
    base_ranks = {int(e["rank"]) for e in base.get("ranks", [])}
    out: dict[str, dict] = {}
    for (kind, prec), docs in sorted(groups.items()):
        own = own_of[kind]
        per_rank, rows, where_rank = {}, [], {}
        for doc in docs:
            for e in doc.get("ranks", []):
                r = int(e["rank"])
                if r in where_rank:
                    raise ConfigError(f"precision check: rank {r} at {prec} is in both {where_rank[r]!r} and "
                                      f"{doc.get('_path')!r} (allowed: each rank in one calibration)")
                if r not in base_ranks:
                    raise ConfigError(f"precision check: rank {r} of {doc.get('_path')!r} is not a rank of the base "
                                      f"(allowed: {sorted(base_ranks)})")
                where_rank[r] = doc.get("_path")
                num, den = rank_runs(doc, r), rank_runs(base, r)
                data = pair_runs(num, den)
                per_rank[r] = data
                lr, base_lr = chosen_learning_rate(doc, r), chosen_learning_rate(base, r)
                ratio = ratio_of(data)
                if data["paired"]:
                    tok = [p[0] for p in data["pairs"]]
                    base_tok = [p[1] for p in data["pairs"]]
                else:
                    tok, base_tok = [v for v, _ in data["num"]], [v for v, _ in data["den"]]
                rows.append({"rank": r, "ratio": ratio, "ci95": None,
                             "tokens": float(sum(tok) / len(tok)) if tok else None,
                             "base_tokens": float(sum(base_tok) / len(base_tok)) if base_tok else None,
                             "learning_rate": lr, "base_learning_rate": base_lr,
                             "learning_rate_matches": lr is not None and base_lr is not None
                             and math.isclose(lr, base_lr, rel_tol=1e-9),
                             "paired": data["paired"], "pairs_used": len(data["pairs"]) if data["paired"] else None,
                             "dropped_censored_both": data["dropped_censored_both"], "bound": data["bound"],
                             "runs": len(num), "base_runs": len(den),
                             "censored_runs": sum(c for _, c in num.values()),
                             "base_censored_runs": sum(c for _, c in den.values())})
        usable = {r: d for r, d in per_rank.items() if ratio_of(d) is not None}
        if not usable:
            raise ConfigError(f"precision check: no rank at {prec} gives a ratio (every pair censored on both sides); "
                              f"raise calibration.max_rounds")
        boot = bootstrap_ratios(usable, resamples, seed)
        for row in rows:
            if row["rank"] in usable:
                row["ci95"] = percentile_interval(boot[row["rank"]])
        rows.sort(key=lambda x: x["rank"])
        factor = geometric_mean(ratio_of(d) for d in usable.values())
        bounds = sorted({row["bound"] for row in rows if row["bound"]})
        out.setdefault(kind, {})[prec] = {
            "factor": factor, "ci95": percentile_interval(boot["factor"]), "measured_against": own,
            "target": float(base["target"]["value"]), "method": METHOD, "resamples": int(len(boot["factor"])),
            "ranks_used": sorted(usable),
            "bound": None if not bounds else bounds[0] if len(bounds) == 1 else "mixed",
            "ranks": rows,
            "seeds": sorted({s for d in docs for s in (d.get("seeds") or {}).get("values", [])}),
            "calibrations": [_provenance(d) for d in docs],
            "compute": {"train_wall_s": float(sum((d.get("compute") or {}).get("train_wall_s", 0.0) for d in docs)),
                        "runs": int(sum((d.get("compute") or {}).get("runs", 0) for d in docs))},
        }
    return out


def _host() -> dict:
    host = {"platform": platform.platform(), "node": platform.node(), "cpus": os.cpu_count()}
    try:
        import torch

        host["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return host


def merged_document(base: dict, kinds: dict, *, command: str, note: str | None = None) -> dict:
    """The base calibration document as written on disk, with each section of ``kinds`` (``precision_penalty``,
    ``noise_penalty``: {key: section}, as :func:`penalty_sections` gives) replaced and its check record
    (``precision_check``, ``noise_check``) written; the file's other sections are kept."""
    with open(base["_path"], encoding="utf-8") as fh:
        raw = json.load(fh)
    from fsllm_sim.rundir import package_versions

    for kind, sections in kinds.items():
        raw[kind] = sections
        raw[KINDS[kind]] = {
            "command": command, "note": note, "base": base["_path"],
            "inputs": [c["path"] for s in sections.values() for c in s["calibrations"]],
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "host": _host(), "versions": package_versions(),
            "compute_train_wall_s": float((raw.get("compute") or {}).get("train_wall_s", 0.0)
                                          + sum(s["compute"]["train_wall_s"] for s in sections.values())),
        }
    return raw


def write_merged(doc: dict, out: str | os.PathLike) -> Path:
    from fsllm_sim.rundir import atomic_write_json

    _check_precision_penalty(copy.deepcopy(doc), repr(str(out)))  # what we write must read back
    _check_noise_penalty(copy.deepcopy(doc), repr(str(out)))
    out = Path(out)
    atomic_write_json(out, doc)
    return out


def _fmt_ci(ci) -> str:
    return "" if ci is None else f"[{ci[0]:.3g}, {ci[1]:.3g}]"


def main(argv=None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(prog="python -m fsllm_sim.training.precision_check",
                                 description="Penalty of other wire precisions against a base calibration.")
    ap.add_argument("base")
    ap.add_argument("others", nargs="+")
    ap.add_argument("--out", default=None)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--note", default=None)
    args = ap.parse_args(args_list)
    try:
        if not 0 <= args.bootstrap <= 100_000:
            raise ConfigError(f"--bootstrap {args.bootstrap} is out of range (allowed: an integer >= 0 and "
                              f"<= 100000)")
        base = read_calibration_document(args.base)
        others = [read_calibration_document(p, require_fit=False) for p in args.others]
        kinds = penalty_sections(base, others, resamples=args.bootstrap)
        for prec, s in [(("noise " + k) if kind == "noise_penalty" else k, v)
                        for kind, group in kinds.items() for k, v in group.items()]:
            print(f"{prec} against {s['measured_against']} at target {s['target']:.4f}:")
            print(format_table(["rank", "lr", "base lr", f"{s['measured_against']} tokens", f"{prec} tokens", "ratio",
                                "95 % CI", "censored", "bound"],
                               [[r["rank"], r["learning_rate"], r["base_learning_rate"], r["base_tokens"], r["tokens"],
                                 r["ratio"], _fmt_ci(r["ci95"]),
                                 f"{r['censored_runs']}/{r['runs']} vs {r['base_censored_runs']}/{r['base_runs']}",
                                 r["bound"] or ""] for r in s["ranks"]]))
            print(f"{prec}: T(r) x {s['factor']:.4g} (95 % CI {_fmt_ci(s['ci95'])}, geometric mean over ranks "
                  f"{s['ranks_used']}; {s['compute']['train_wall_s']:.0f} s of training over {s['compute']['runs']} "
                  f"runs)")
        command = " ".join(shlex.quote(a) for a in ["python", "-m", "fsllm_sim.training.precision_check",
                                                    *args_list])
        out = args.out or Path(base["_path"]).parent / "calibration-precision.json"
        written = write_merged(merged_document(base, kinds, command=command, note=args.note), out)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"written: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
