"""`fsllm-sim calibrate`: real split federated training at every candidate rank and seed, then the T(r) fit.

The scenario's model, data, partition, clients, split, batch, sequence length, local iterations, optimiser,
LoRA scaling and wire precisions fix the run; the rank, the seed (``calibration.seeds``) and optionally the
learning rate (``calibration.learning_rates``, best per rank) vary. Each finished run is saved at once, so
rerunning with the same ``--out`` resumes. The result is a calibration JSON in training tokens with its full
provenance and a figure, which a scenario names in ``convergence.calibration``.
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
    tr = scenario.training
    echo(f"calibrating T(r) for {scenario.model.name}: ranks {list(scenario.lora.ranks)}, {cal.seeds} seeds, "
         f"{cal.max_rounds} rounds each, K={scenario.clients.count}, b={tr.batch_size}, L={tr.seq_len}, "
         f"E={tr.local_iterations}, split {scenario.split.layer}; results in {out}")
    result = calibrate(training_config(scenario), ranks=list(scenario.lora.ranks), max_rounds=cal.max_rounds,
                       out_dir=out, target_val_loss=cal.target_val_loss,
                       target_rule=None if cal.target_val_loss is not None else cal.target_rule,
                       seeds=cal.seeds, learning_rates=cal.learning_rates, bootstrap=cal.bootstrap,
                       stop_at_target=cal.stop_at_target, learning_rate_search=cal.learning_rate_search,
                       progress=progress, command=" ".join(shlex.quote(a) for a in ["fsllm-sim", *sys.argv[1:]]))
    doc = result.document
    rows = []
    for e in doc["ranks"]:
        t = e["tokens_to_target"]
        ci = t["ci95"]
        rows.append([e["rank"], e["learning_rate"], "censored" if t["mean"] is None else t["mean"],
                     "" if ci is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]", f"{e['censored_runs']}/{e['runs']}"])
    echo(f"target validation loss {doc['target']['value']:.4f} ({doc['target'].get('rule', 'absolute')}); "
         f"{doc['tokens_per_round']} tokens per round")
    echo(format_table(["rank", "lr", "tokens to target", "95 % CI", "censored"], rows))
    fit = doc["fit"]
    if fit:
        boot = fit.get("bootstrap") or {}
        band = "".join(f", {k} in [{boot[k][0]:.3g}, {boot[k][1]:.3g}]" for k in ("a", "b", "c") if k in boot)
        echo(f"fit: T(r) = {fit['a']:.4g} + {fit['b']:.4g} r^-{fit['c']:.4g} tokens ({fit['n_censored']} censored "
             f"runs{band})")
    else:
        echo("no fit: every run was censored (raise calibration.max_rounds or loosen the target)")
    echo(f"calibration file: {result.path} (figure: {result.path.parent / 'calibration.png'}); training took "
         f"{doc['compute']['train_wall_s']:.0f} s over {doc['compute']['runs']} runs")
    if not out_dir:
        mark_complete(out)
    return result.path
