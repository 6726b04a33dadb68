"""Assemble the shipped convergence calibration from its parts (``scenarios/calibrate_default.sh``, step 3).

``python -m fsllm_sim.training.ship_calibration BASE --second-target GRID --carry-from OLD --out FILE``:

* BASE: the calibration whose fit is shipped (the default scenario's settings, the harder target);
* GRID: a calibration of the same settings at another target with a learning-rate grid. Its per-rank choice must
  be BASE's one rate at every rank (else BASE was trained at a rate the grid does not support, and this refuses);
  it is recorded as ``learning_rate_grid`` and its target, tokens and fit as ``second_target``, so the docs can
  say how T(r) grows with the target;
* OLD: the file being replaced; its measured ``precision_penalty`` (and ``precision_check``), ``noise_penalty``
  (and ``noise_check``) and
  ``batch_scaling`` sections are ratios, carried over with ``measured_with`` naming the settings they were
  measured at (they are not re-measured here).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path

from fsllm_sim.errors import ConfigError

CARRIED = ("precision_penalty", "precision_check", "noise_penalty", "noise_check", "batch_scaling")


def _read(path: str) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "calibration.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable calibration file ({exc})") from None


def assemble(base: dict, grid: dict, old: dict | None, *, base_path: str, grid_path: str, old_path: str | None,
             command: str) -> dict:
    if base.get("fingerprint") is None or base.get("fit") is None:
        raise ConfigError(f"{base_path}: a calibration with a fit is needed")
    rates = base.get("learning_rates") or []
    if len(rates) != 1:
        raise ConfigError(f"{base_path}: trained at {len(rates)} learning rates; the shipped fit needs one")
    chosen = {int(e["rank"]): float(e["learning_rate"]) for e in grid["ranks"]}
    other = {r: lr for r, lr in chosen.items() if abs(lr - rates[0]) > 1e-12 * rates[0]}
    if other:
        raise ConfigError(f"{grid_path}: the grid chose {other} (rank: rate), not {rates[0]:g} at every rank as "
                          f"{base_path} was trained")
    if {int(e["rank"]) for e in base["ranks"]} - set(chosen):
        raise ConfigError(f"{grid_path}: the grid lacks ranks of {base_path}")
    for key in ("tokens_per_round", "model", "split"):
        if base.get(key) != grid.get(key):
            raise ConfigError(f"{grid_path}: {key} {grid.get(key)!r} differs from {base_path}'s {base.get(key)!r}")
    doc = dict(base)
    doc["learning_rate_grid"] = {
        "source": grid_path, "target": grid["target"]["value"], "learning_rates": grid["learning_rates"],
        "search": grid.get("learning_rate_search", "all_seeds"),
        "per_rank": {str(e["rank"]): {"chosen": e["learning_rate"], "tokens_to_target_by_rate":
                                      e["learning_rates_tried"], "on": e.get("learning_rates_tried_on")}
                     for e in grid["ranks"]},
        "train_wall_s": grid["compute"]["train_wall_s"], "command": grid.get("command"),
    }
    doc["second_target"] = {
        "source": grid_path, "target": grid["target"], "fit": grid["fit"],
        "ranks": [{"rank": e["rank"], "tokens_to_target": e["tokens_to_target"], "censored_runs": e["censored_runs"]}
                  for e in grid["ranks"]],
    }
    if old is not None:
        cfg = old.get("config", {})
        measured_with = {"file": old_path, "command": old.get("command"), "target": old.get("target", {}).get("value"),
                         "num_clients": cfg.get("num_clients"), "local_iterations": cfg.get("local_iterations"),
                         "batch_size": cfg.get("batch_size"), "seq_len": cfg.get("seq_len")}
        for key in CARRIED:
            if old.get(key) is not None:
                section = dict(old[key])
                if key in ("precision_penalty", "noise_penalty"):  # keyed: the note goes into each entry
                    section = {prec: {**entry, "measured_with": measured_with} for prec, entry in section.items()}
                else:
                    section.setdefault("measured_with", measured_with)
                doc[key] = section
    doc["shipped"] = {"command": command, "base": base_path,
                      "assembled": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return doc


def main(argv: list[str] | None = None) -> int:
    from fsllm_sim.rundir import atomic_write_text

    ap = argparse.ArgumentParser(prog="python -m fsllm_sim.training.ship_calibration",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("--second-target", required=True)
    ap.add_argument("--carry-from", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", default=None)
    a = ap.parse_args(argv)
    try:
        old = _read(a.carry_from) if a.carry_from and Path(a.carry_from).exists() else None
        doc = assemble(_read(a.base), _read(a.second_target), old, base_path=a.base, grid_path=a.second_target,
                       old_path=a.carry_from, command=a.command or " ".join(sys.argv))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_write_text(a.out, json.dumps(doc, indent=2) + "\n")
    fit = doc["fit"]
    print(f"wrote {a.out}: T(r) = {fit['a']:.4g} + {fit['b']:.4g} r^-{fit['c']:.3g} tokens to "
          f"{doc['target']['value']:g}; second target {doc['second_target']['target']['value']:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
