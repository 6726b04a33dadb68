"""``fsllm-sim privacy SCENARIO``: measure how much of the clients' text the activations leak at each split.

For every split of ``privacy.splits``, every defence (``privacy.wires`` x ``privacy.noise_sigmas``) and every attack
of ``privacy.attacks`` (:mod:`fsllm_sim.training.inversion`), the attack is scored on held-out client text. Writes,
in a run directory: ``privacy.csv`` (one row per split, attack and defence, with 95 % intervals), ``privacy.json``
(the same rows with the model, settings, text split and provenance: what ``privacy.file`` reads),
``leakage_vs_split.png`` and ``leakage_vs_noise.png``. Threat model and reading: ``docs/privacy.md``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import ConfigError
from ..privacy import PRIVACY_SCHEMA, ROW_FIELDS
from ..rundir import atomic_write_csv, atomic_write_json, create_run_dir, mark_complete, package_versions


def default_splits(num_blocks: int) -> list[int]:
    """0, 1, 2, 4, 8, ... below J - 1, and J - 1."""
    out, s = [0], 1
    while s < num_blocks - 1:
        out.append(s)
        s *= 2
    return out + [num_blocks - 1]


def _model_and_documents(scenario):
    """The frozen base model, its tokenizer and the scenario's documents (tiny models: a BPE tokenizer learnt
    from the text, as training does)."""
    from ..training.data import load_documents, train_bpe_tokenizer
    from ..training.from_scenario import training_config
    from ..training.models import load_model

    config = training_config(scenario)
    documents, _ = load_documents(config.data_source, config.data_format)
    if config.model.startswith("tiny-"):
        tokenizer = train_bpe_tokenizer([d.text for d in documents], vocab_size=config.bpe_vocab_size)
        model = load_model(config.model, tokenizer=tokenizer, seed=config.seed)
    else:
        model = load_model(config.model)
        tokenizer = model.tokenizer
        if tokenizer is None:
            raise ConfigError(f"model.name {config.model!r} has no tokenizer: the held-out text cannot be encoded")
    return model, tokenizer, documents


def _settings_record(scenario, splits, seq_len) -> dict:
    pv = scenario.privacy
    return {"model": scenario.model.name, "splits": splits, "attacks": list(pv.attacks), "wires": list(pv.wires),
            "noise_sigmas": [float(x) for x in pv.noise_sigmas], "seq_len": seq_len,
            "heldout_texts": pv.heldout_texts, "public_tokens": pv.public_tokens,
            "public_fraction": pv.public_fraction, "mlp_steps": pv.mlp_steps,
            "optimisation_steps": pv.optimisation_steps, "optimisation_texts": pv.optimisation_texts,
            "optimisation_max_split": pv.optimisation_max_split, "seed": scenario.seed,
            "data_source": scenario.data.source}


def _finished_groups(out: Path, settings: dict) -> dict:
    """key -> rows of the (split, defence) groups a previous run into ``out`` finished (its parts/ folder); a
    folder measured with other settings is refused in one line."""
    import json

    parts = out / "parts"
    if not parts.is_dir():
        return {}
    try:
        before = json.loads((parts / "settings.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"--out {out}: parts/ holds no readable settings.json (allowed: a folder a privacy run "
                          f"wrote, or a new one)") from None
    if before != json.loads(json.dumps(settings)):
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        raise ConfigError(f"--out {out} was measured with other privacy settings ({', '.join(changed)}); use "
                          f"another folder")
    groups = {}
    for path in sorted(parts.glob("split*.json")):
        try:
            groups[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a part being written when the run stopped: measured again
    return groups


def run_privacy(scenario, *, runs_dir: str | None = None, out_dir: str | None = None, progress: bool = True,
                echo=print) -> Path:
    """Measure, write the run directory (or ``out_dir``: rerun with the same folder to resume an interrupted
    measurement, one (split, defence) group at a time), return it."""
    import torch

    from ..rundir import ensure_output_dir, mark_running
    from ..training.inversion import AttackSettings, BaseModel, Defence, group_key, measure, split_public_heldout

    pv = scenario.privacy
    defences = [Defence(wire, float(sigma)) for wire in pv.wires for sigma in pv.noise_sigmas]
    start = time.perf_counter()
    model, tokenizer, documents = _model_and_documents(scenario)
    base = BaseModel(model.model)
    splits = list(pv.splits) if pv.splits is not None else default_splits(base.num_blocks)
    bad = [s for s in splits if not 0 <= s <= base.num_blocks - 1]
    if bad:
        raise ConfigError(f"privacy.splits: {bad} outside 0..{base.num_blocks - 1} ({model.name} has "
                          f"{base.num_blocks} blocks; 0 is the embedding output)")
    seq_len = pv.seq_len or scenario.training.seq_len
    if seq_len > model.max_positions:
        raise ConfigError(f"privacy.seq_len: {seq_len} exceeds the context of {model.name} ({model.max_positions})")
    texts, record = split_public_heldout(documents, tokenizer, seq_len=seq_len, public_fraction=pv.public_fraction,
                                         public_tokens=pv.public_tokens, heldout_texts=pv.heldout_texts,
                                         seed=scenario.seed)
    settings_record = _settings_record(scenario, splits, seq_len)
    if out_dir:
        run_dir = ensure_output_dir(out_dir, "--out")
        finished = _finished_groups(run_dir, settings_record)
        mark_running(run_dir, "privacy")
    else:
        run_dir, finished = create_run_dir(scenario, "privacy", runs_dir), {}
    (run_dir / "parts").mkdir(exist_ok=True)
    atomic_write_json(run_dir / "parts" / "settings.json", settings_record)
    echo(f"scenario {scenario.name!r}: {model.name}, splits {splits}, {len(defences)} defence(s), attacks "
         f"{', '.join(pv.attacks)}; public text {record['public_tokens']} tokens from "
         f"{len(record['public_groups'])} group(s), held-out {pv.heldout_texts} texts of {seq_len} tokens from "
         f"{len(record['client_groups'])} other group(s)")
    settings = AttackSettings(mlp_steps=pv.mlp_steps, optimisation_steps=pv.optimisation_steps,
                              optimisation_texts=pv.optimisation_texts,
                              optimisation_max_split=pv.optimisation_max_split)
    attacks = list(pv.attacks)
    keys = [group_key(s, d) for s in splits for d in defences]
    resumed = sum(k in finished for k in keys)
    if finished:
        echo(f"resumed: {resumed} of {len(keys)} (split, defence) groups were already measured in {run_dir}")

    def keep(key, group):  # each finished group on disk at once, so an interrupted run loses at most one
        finished[key] = group
        atomic_write_json(run_dir / "parts" / f"{key}.json", group)

    if resumed < len(keys):
        measure(base, texts, splits, attacks, defences, settings=settings, seed=scenario.seed, tokenizer=tokenizer,
                progress=(lambda line: echo(f"  {line} ({time.perf_counter() - start:.0f} s)")) if progress else None,
                done=frozenset(finished), on_group=keep)
    rows = [r for k in keys for r in finished[k]]
    wall_s = time.perf_counter() - start
    rows = [{k: r[k] for k in ROW_FIELDS} for r in rows]
    atomic_write_csv(run_dir / "privacy.csv", rows)
    doc = {"schema": PRIVACY_SCHEMA, "model": scenario.model.name, "num_blocks": base.num_blocks,
           "settings": {k: v for k, v in settings_record.items() if k != "model"},
           "text_split": record,
           "provenance": {"command": " ".join(["fsllm-sim", *sys.argv[1:]]) if sys.argv[1:2] == ["privacy"]
                          else f"run_privacy({scenario.name!r})", "run_dir": str(run_dir),
                          "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s": round(wall_s, 1),
                          "groups_resumed": resumed, "groups": len(keys),
                          "torch_threads": torch.get_num_threads(), "versions": package_versions()},
           "rows": rows}
    atomic_write_json(run_dir / "privacy.json", doc)
    from plots.privacy import plot_leakage_vs_noise, plot_leakage_vs_split

    plot_leakage_vs_split(rows, run_dir / "leakage_vs_split.png", title=f"{model.name}: leakage against split")
    plot_leakage_vs_noise(rows, run_dir / "leakage_vs_noise.png", title=f"{model.name}: leakage against noise")
    _report(rows, echo)
    mark_complete(run_dir)
    echo(f"privacy measured in {wall_s:.0f} s: {run_dir / 'privacy.csv'} and {run_dir / 'privacy.json'} "
         f"(use it with privacy.file and privacy.max_token_accuracy)")
    return run_dir


def _report(rows, echo) -> None:
    from ..report import format_table

    shown = [[r["split"], r["defence"], r["strength"], r["attack"], r["token_acc"], r["token_acc_hi"],
              r["rouge_l"], r["exact"]] for r in rows]
    echo(format_table(["split", "defence", "sigma", "attack", "token acc", "upper 95 %", "ROUGE-L", "exact"], shown,
                      digits=3))
