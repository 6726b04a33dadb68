"""`fsllm-sim calibrate`: real split federated training at every candidate rank, then the N(r) fit.

The scenario's model, data, partition, clients, split, batch, sequence length, local iterations, optimiser
and wire precisions fix the run; only the rank varies. Each finished rank is saved at once, so rerunning
with the same ``--out`` resumes. The result is a calibration JSON with its full provenance, which a
scenario names in ``convergence.calibration``.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..report import format_table
from ..training.from_scenario import training_config


def run_calibrate(scenario, *, out_dir: str | None = None, progress: bool = True, echo=print) -> Path:
    from ..rundir import create_run_dir, ensure_output_dir, mark_complete
    from ..training.calibration import calibrate

    out = ensure_output_dir(out_dir, "--out") if out_dir else create_run_dir(scenario, "calibrate")
    cal = scenario.calibration
    echo(f"calibrating N(r) for {scenario.model.name}: ranks {list(scenario.lora.ranks)}, {cal.max_rounds} rounds "
         f"each, K={scenario.clients.count}, b={scenario.training.batch_size}, L={scenario.training.seq_len}, "
         f"E={scenario.training.local_iterations}, split {scenario.split.layer}; results in {out}")
    result = calibrate(training_config(scenario), ranks=list(scenario.lora.ranks), max_rounds=cal.max_rounds,
                       out_dir=out, target_val_loss=cal.target_val_loss,
                       target_rule=None if cal.target_val_loss is not None else cal.target_rule,
                       progress=progress, command=" ".join(shlex.quote(a) for a in ["fsllm-sim", *sys.argv[1:]]))
    doc = result.document
    rows = [[e["rank"], "censored" if e["censored"] else e["rounds_to_target"], e["val_losses"][0],
             min(e["val_losses"]), e["wall_s"]] for e in doc["ranks"]]
    echo(f"target validation loss {doc['target']['value']:.4f} ({doc['target'].get('rule', 'absolute')})")
    echo(format_table(["rank", "N(r)", "val loss at 0", "best val loss", "train s"], rows))
    fit = doc["fit"]
    if fit:
        echo(f"fit: N(r) = {fit['a']:.4g} + {fit['b']:.4g} r^-{fit['c']:.4g}"
             f"{' (degenerate: exact through too few points)' if fit.get('degenerate') else ''}")
    else:
        echo("no fit: every rank was censored (raise calibration.max_rounds or loosen the target)")
    echo(f"calibration file: {result.path}")
    if not out_dir:
        mark_complete(out)
    return result.path
