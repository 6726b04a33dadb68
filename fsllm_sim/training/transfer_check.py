"""Does the token model transfer? Predict calibration B's tokens to the target from calibration A's fit.

Both calibrations must share the model, data and absolute target loss (``scenarios/calibrate_transfer.sh``
runs B with A's target) and differ in tokens per round. For every rank of B the prediction T_A(r) is compared
with B's measured mean (and its 95 % interval); the relative errors go to ``<B>/transfer.json``.

    python -m fsllm_sim.training.transfer_check RUN_A RUN_B
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from fsllm_sim.convergence import read_calibration_document
from fsllm_sim.errors import ConfigError
from fsllm_sim.report import format_table


def transfer_report(doc_a: dict, doc_b: dict) -> dict:
    if doc_a.get("unit") != "tokens" or doc_b.get("unit") != "tokens":
        raise ConfigError("transfer check: both calibrations must be in tokens (schema v2)")
    ta, tb = doc_a["target"]["value"], doc_b["target"]["value"]
    if abs(ta - tb) > 1e-9 * max(1.0, abs(ta)):
        raise ConfigError(f"transfer check: the targets differ ({ta:.6g} vs {tb:.6g}); run B with A's target")
    fit = doc_a["fit"]
    rows = []
    for e in doc_b["ranks"]:
        measured = e["tokens_to_target"]["mean"]
        predicted = fit["a"] + fit["b"] * e["rank"] ** -fit["c"]
        rows.append({"rank": e["rank"], "predicted_tokens": predicted, "measured_tokens": measured,
                     "measured_ci95": e["tokens_to_target"]["ci95"],
                     "relative_error": None if measured is None else predicted / measured - 1.0,
                     "censored_runs": e["censored_runs"], "runs": e["runs"]})
    return {"calibration_a": doc_a["_path"], "calibration_b": doc_b["_path"],
            "tokens_per_round": [doc_a["tokens_per_round"], doc_b["tokens_per_round"]], "target": ta, "ranks": rows}


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m fsllm_sim.training.transfer_check RUN_A RUN_B", file=sys.stderr)
        return 2
    report = transfer_report(read_calibration_document(args[0]), read_calibration_document(args[1]))
    print(f"tokens per round {report['tokens_per_round'][0]} (A) -> {report['tokens_per_round'][1]} (B), "
          f"target {report['target']:.4f}")
    print(format_table(["rank", "predicted from A", "measured in B", "relative error", "censored"],
                       [[r["rank"], r["predicted_tokens"], r["measured_tokens"], r["relative_error"],
                         f"{r['censored_runs']}/{r['runs']}"] for r in report["ranks"]]))
    out = Path(args[1]) / "transfer.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
