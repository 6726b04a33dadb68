"""Does the token model transfer? Predict calibration B's tokens to the target from calibration A's fit.

Both calibrations must share the model, data and absolute target loss (``scenarios/calibrate_transfer.sh``
runs B with A's target) and differ in tokens per round. For every rank of B the prediction T_A(r) is compared
with B's measured mean (and its 95 % interval); the relative errors go to ``<B>/transfer.json`` (or ``--out``).

Tokens-per-step correction
    When A and B differ in tokens per client step s = b L (and in nothing else but the seed), the check also
    fits the exponent beta of T(r) ~ s^beta: per rank the ratio T_B(r) / T_A(r) of seed-paired runs
    (:mod:`fsllm_sim.training.ratios`), their geometric mean g over ranks, beta = ln g / ln(s_B / s_A), with a
    percentile bootstrap over seeds. It reports B predicted by T_A(r) (s_B / s_A)^beta twice:
    in-sample (beta fitted on the very ranks it predicts, so optimistic: with one rank the error would be zero
    by construction) and leave-one-rank-out (each rank predicted with beta fitted on the other ranks), the fairer
    number. ``--into FILE`` writes the exponent as the ``batch_scaling`` section
    ``{exponent, ci95, tokens_per_step_range, measured_from, ...}`` of a calibration file (atomically), which
    :mod:`fsllm_sim.convergence` then applies as T(r) (s / s_calibration)^beta.

    python -m fsllm_sim.training.transfer_check RUN_A RUN_B [--out REPORT.json] [--into CALIBRATION.json]
        [--bootstrap N]
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

from fsllm_sim.convergence import _check_batch_scaling, measured_at, read_calibration_document
from fsllm_sim.errors import USER_ERRORS, ConfigError
from fsllm_sim.report import format_table
from fsllm_sim.training.ratios import (
    bootstrap_ratios,
    check_config_differs_only,
    check_runs,
    check_same_target,
    geometric_mean,
    pair_runs,
    percentile_interval,
    rank_runs,
    ratio_of,
)

# Configuration keys two calibrations may differ in for the tokens-per-step exponent.
MAY_DIFFER = ("batch_size", "seq_len", "seed")
METHOD = ("per rank: T_B(r) / T_A(r), ratio of the mean tokens to the target over seeds paired by seed value (a "
          "censored run at its bound; pairs censored on both sides left out); beta = ln(geometric mean over ranks) / "
          "ln(s_B / s_A), s = b L tokens per client step; ci95: percentile bootstrap over seeds within ranks")


def _fit(doc: dict, rank: float) -> float:
    f = doc["fit"]
    return f["a"] + f["b"] * rank ** -f["c"]


def _steps(doc: dict) -> int | None:
    return measured_at(doc).get("tokens_per_step")


def batch_exponent(doc_a: dict, doc_b: dict, *, resamples: int = 2000, seed: int = 0) -> dict:
    """The ``batch_scaling`` section fitted from A and B (see the module doc), with per-rank ratios and each
    rank's leave-one-out exponent."""
    check_same_target(doc_a, doc_b, "batch exponent")
    for doc in (doc_a, doc_b):
        check_runs(doc, "batch exponent")
    sa, sb = _steps(doc_a), _steps(doc_b)
    if sa is None or sb is None:
        raise ConfigError("batch exponent: a calibration does not record batch_size and seq_len (integers)")
    if sa == sb:
        raise ConfigError(f"batch exponent: both calibrations train {sa} tokens per client step (b L); the exponent "
                          f"needs two different values")
    check_config_differs_only(doc_a, doc_b, MAY_DIFFER, "batch exponent")
    log_s = math.log(sb / sa)
    ranks_b = {int(e["rank"]) for e in doc_b.get("ranks", [])}
    ranks = sorted(int(e["rank"]) for e in doc_a.get("ranks", []) if int(e["rank"]) in ranks_b)
    per_rank = {r: pair_runs(rank_runs(doc_b, r), rank_runs(doc_a, r)) for r in ranks}
    usable = {r: d for r, d in per_rank.items() if ratio_of(d) is not None}
    if not usable:
        raise ConfigError("batch exponent: no common rank gives a ratio (every pair censored in both)")
    boot = bootstrap_ratios(usable, resamples, seed)
    to_beta = lambda g: math.log(g) / log_s  # noqa: E731
    g = geometric_mean(ratio_of(d) for d in usable.values())
    ci = percentile_interval(boot["factor"])
    rows = []
    for r in ranks:
        d = per_rank[r]
        ratio = ratio_of(d)
        others = [ratio_of(o) for q, o in usable.items() if q != r]
        rows.append({"rank": r, "ratio": ratio, "ratio_ci95": percentile_interval(boot[r]) if r in usable else None,
                     "exponent": None if ratio is None else to_beta(ratio),
                     "exponent_without_this_rank": to_beta(geometric_mean(others)) if others else None,
                     "pairs_used": len(d["pairs"]) if d["paired"] else None, "paired": d["paired"],
                     "dropped_censored_both": d["dropped_censored_both"], "bound": d["bound"]})
    return {
        "exponent": to_beta(g),
        "ci95": None if ci is None else sorted(to_beta(x) for x in ci),
        "tokens_per_step_range": [float(min(sa, sb)), float(max(sa, sb))],
        "method": METHOD, "resamples": int(len(boot["factor"])),
        "measured_from": {"calibration_a": doc_a.get("_path"), "calibration_b": doc_b.get("_path"),
                          "fingerprints": [doc_a.get("fingerprint"), doc_b.get("fingerprint")],
                          "tokens_per_step": [sa, sb],
                          "tokens_per_round": [doc_a.get("tokens_per_round"), doc_b.get("tokens_per_round")],
                          "learning_rates": [doc_a.get("learning_rates"), doc_b.get("learning_rates")],
                          "target": float(doc_a["target"]["value"]), "ranks_used": sorted(usable),
                          "ratio_geometric_mean": g, "per_rank": rows},
    }


def _rank_rows(doc: dict) -> list:
    """B's per-rank rows, each with a rank and a tokens_to_target mapping whose mean is a number or null."""
    rows = doc.get("ranks")
    where = f"transfer check: calibration {doc.get('_path', '?')!r}"
    if not isinstance(rows, list):
        raise ConfigError(f"{where}: ranks is not a list (allowed: the per-rank list fsllm-sim calibrate writes)")
    for i, e in enumerate(rows):
        t = e.get("tokens_to_target") if isinstance(e, dict) else None
        mean = t.get("mean") if isinstance(t, dict) else "missing"
        ok_rank = isinstance(e, dict) and isinstance(e.get("rank"), int) and e["rank"] >= 1
        ok_mean = mean is None or (isinstance(mean, (int, float)) and not isinstance(mean, bool)
                                   and math.isfinite(mean) and mean > 0)
        if not (ok_rank and ok_mean):
            raise ConfigError(f"{where}: ranks[{i}] needs an integer rank >= 1 and tokens_to_target.mean, a finite "
                              f"number > 0 or null")
    return rows


def transfer_report(doc_a: dict, doc_b: dict, *, resamples: int = 2000, seed: int = 0) -> dict:
    if doc_a.get("unit") != "tokens" or doc_b.get("unit") != "tokens":
        raise ConfigError("transfer check: both calibrations must be in tokens (schema v2)")
    ta = check_same_target(doc_a, doc_b, "transfer check")
    batch, why = None, None
    if _steps(doc_a) is not None and _steps(doc_b) is not None and _steps(doc_a) != _steps(doc_b):
        batch = batch_exponent(doc_a, doc_b, resamples=resamples, seed=seed)
    else:
        why = "the calibrations do not differ in tokens per client step (b L), or do not record it"
    per_rank = {row["rank"]: row for row in (batch or {}).get("measured_from", {}).get("per_rank", [])}
    scale = None if batch is None else _steps(doc_b) / _steps(doc_a)
    rows = []
    for e in _rank_rows(doc_b):
        measured = e["tokens_to_target"]["mean"]
        predicted = _fit(doc_a, e["rank"])
        row = {"rank": e["rank"], "predicted_tokens": predicted, "measured_tokens": measured,
               "measured_ci95": e["tokens_to_target"].get("ci95"),
               "relative_error": None if measured is None else predicted / measured - 1.0,
               "censored_runs": e.get("censored_runs"), "runs": e.get("runs")}
        if batch is not None:
            corrected = predicted * scale ** batch["exponent"]
            loo_beta = (per_rank.get(int(e["rank"])) or {}).get("exponent_without_this_rank")
            loo = None if loo_beta is None else predicted * scale ** loo_beta
            a_mean = next((x["tokens_to_target"]["mean"] for x in doc_a["ranks"] if x["rank"] == e["rank"]), None)
            loo_means = None if loo_beta is None or a_mean is None else a_mean * scale ** loo_beta
            row.update({"predicted_corrected_tokens": corrected,
                        "relative_error_corrected_in_sample": None if measured is None else corrected / measured - 1,
                        "exponent_leave_one_rank_out": loo_beta, "predicted_leave_one_rank_out_tokens": loo,
                        "relative_error_leave_one_rank_out": None if measured is None or loo is None
                        else loo / measured - 1.0,
                        "predicted_leave_one_rank_out_from_a_mean_tokens": loo_means,
                        "relative_error_leave_one_rank_out_from_a_mean": None if measured is None or loo_means is None
                        else loo_means / measured - 1.0})
        rows.append(row)

    def mean_abs(key):
        vals = [abs(r[key]) for r in rows if r.get(key) is not None]
        return float(sum(vals) / len(vals)) if vals else None

    summary = {"mean_abs_error_uncorrected": mean_abs("relative_error")}
    if batch is not None:
        summary.update({
            "exponent": batch["exponent"], "exponent_ci95": batch["ci95"],
            "mean_abs_error_corrected_in_sample": mean_abs("relative_error_corrected_in_sample"),
            "mean_abs_error_leave_one_rank_out": mean_abs("relative_error_leave_one_rank_out"),
            "mean_abs_error_leave_one_rank_out_from_a_mean": mean_abs("relative_error_leave_one_rank_out_from_a_mean"),
            "note": "in-sample: the exponent is fitted on the same ranks it predicts (optimistic; with a single rank "
                    "the error would be zero by construction); leave-one-rank-out: each rank predicted with the "
                    "exponent of the other ranks, the fairer number. Both use A's fit T_A(r), as the convergence "
                    "model does, so A's own fit error at a rank is part of them; ..._from_a_mean uses A's measured "
                    "mean at the rank instead (the exponent's error alone)."})
    return {"calibration_a": doc_a["_path"], "calibration_b": doc_b["_path"],
            "tokens_per_round": [doc_a["tokens_per_round"], doc_b["tokens_per_round"]],
            "tokens_per_step": [_steps(doc_a), _steps(doc_b)], "target": ta, "ranks": rows,
            "batch_scaling": batch, "batch_scaling_missing": why, "summary": summary}


def write_batch_scaling(section: dict, into, *, command: str) -> Path:
    """Add ``section`` as ``batch_scaling`` to the calibration file ``into`` (checked first), atomically."""
    from fsllm_sim.rundir import atomic_write_json

    doc = read_calibration_document(into)
    if measured_at(doc).get("tokens_per_step") is None:
        raise ConfigError(f"--into {doc['_path']!r}: its configuration does not record batch_size and seq_len, so "
                          f"the exponent has no reference tokens per step")
    with open(doc["_path"], encoding="utf-8") as fh:
        raw = json.load(fh)
    raw["batch_scaling"] = {**section, "command": command}
    _check_batch_scaling(json.loads(json.dumps(raw)), repr(doc["_path"]))  # what we write must read back
    atomic_write_json(doc["_path"], raw)
    return Path(doc["_path"])


def _pct(x, sign: bool = True) -> str:
    return "" if x is None else f"{100 * x:+.1f} %" if sign else f"{100 * x:.1f} %"


def main(argv=None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(prog="python -m fsllm_sim.training.transfer_check",
                                 description="Predict calibration B from calibration A; fit the tokens-per-step "
                                             "exponent.")
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--out", default=None, help="report file (default: RUN_B/transfer.json)")
    ap.add_argument("--into", default=None, help="calibration file to receive the batch_scaling section")
    ap.add_argument("--bootstrap", type=int, default=2000)
    args = ap.parse_args(args_list)
    try:
        if not 0 <= args.bootstrap <= 100_000:
            raise ConfigError(f"--bootstrap {args.bootstrap} is out of range (allowed: an integer >= 0 and "
                              f"<= 100000)")
        report = transfer_report(read_calibration_document(args.run_a), read_calibration_document(args.run_b),
                                 resamples=args.bootstrap)
        print(f"tokens per round {report['tokens_per_round'][0]} (A) -> {report['tokens_per_round'][1]} (B), "
              f"tokens per client step {report['tokens_per_step'][0]} -> {report['tokens_per_step'][1]}, "
              f"target {report['target']:.4f}")
        batch = report["batch_scaling"]
        headers = ["rank", "predicted from A", "measured in B", "error", "censored"]
        if batch:
            headers += ["corrected (in-sample)", "error", "leave-one-rank-out", "error"]
        rows = []
        for r in report["ranks"]:
            row = [r["rank"], r["predicted_tokens"], r["measured_tokens"], _pct(r["relative_error"]),
                   f"{r['censored_runs']}/{r['runs']}"]
            if batch:
                row += [r["predicted_corrected_tokens"], _pct(r["relative_error_corrected_in_sample"]),
                        r["predicted_leave_one_rank_out_tokens"], _pct(r["relative_error_leave_one_rank_out"])]
            rows.append(row)
        print(format_table(headers, rows))
        if batch:
            s = report["summary"]
            ci = batch["ci95"]
            print(f"tokens-per-step exponent beta = {batch['exponent']:.3f} (95 % CI "
                  f"{'' if ci is None else f'[{ci[0]:.3f}, {ci[1]:.3f}]'}, {batch['resamples']} resamples); mean "
                  f"|error| {_pct(s['mean_abs_error_uncorrected'], False)} uncorrected, "
                  f"{_pct(s['mean_abs_error_corrected_in_sample'], False)} corrected in-sample (optimistic), "
                  f"{_pct(s['mean_abs_error_leave_one_rank_out'], False)} leave-one-rank-out "
                  f"({_pct(s['mean_abs_error_leave_one_rank_out_from_a_mean'], False)} from A's measured means)")
        else:
            print(f"no tokens-per-step exponent: {report['batch_scaling_missing']}")
        out = Path(args.out or args.run_b)
        if out.is_dir() or (not args.out and out.suffix == ".json"):
            out = (out if out.is_dir() else out.parent) / "transfer.json"
        from fsllm_sim.rundir import atomic_write_json

        atomic_write_json(out, report)
        print(f"written: {out}")
        if args.into:
            if not batch:
                raise ConfigError(f"--into {args.into!r}: no exponent to write ({report['batch_scaling_missing']})")
            command = " ".join(shlex.quote(a) for a in ["python", "-m", "fsllm_sim.training.transfer_check",
                                                        *args_list])
            print(f"batch_scaling written into {write_batch_scaling(batch, args.into, command=command)}")
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
