"""Measured leakage files (``fsllm-sim privacy`` writes them) and the split floor a leakage limit sets.

A file (``privacy.json``, schema ``fsllm-sim/privacy/v1``) holds the model it was measured on, its settings and
provenance, and one row per (split, attack, defence) with token accuracy, ROUGE-L F1 and exact recovery, each
with its 95 % interval over held-out texts (``docs/privacy.md``). A limit (``privacy.max_token_accuracy`` or
``privacy.max_rouge_l``) makes a measured split infeasible when, at the scenario's wire precision and noise,
the largest upper bound over the attacks exceeds it. The floor is the smallest measured split from which every
deeper measured split meets the limit; unmeasured splits above it are allowed on the reading that leakage does not
grow with depth between measured points, which the measured curve shows (the file says where it does not).

Pure Python: the optimiser's side reads this module; the attacks live in :mod:`fsllm_sim.training.inversion`.
"""
from __future__ import annotations

import functools
import json
import math
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

PRIVACY_SCHEMA = "fsllm-sim/privacy/v1"
ATTACKS = ("linear", "mlp", "optimisation", "frequency")
BASELINE = "frequency"
METRICS = {"max_token_accuracy": "token_acc", "max_rouge_l": "rouge_l"}
MAX_PRIVACY_BYTES = 16 * 1024 * 1024
ROW_FIELDS = ("split", "attack", "defence", "strength", "wire", "token_acc", "token_acc_lo", "token_acc_hi",
              "rouge_l", "rouge_l_lo", "rouge_l_hi", "exact", "exact_lo", "exact_hi", "texts", "tokens")
METRIC_FIELDS = tuple(f for f in ROW_FIELDS if f.split("_")[0] in ("token", "rouge", "exact"))  # each in [0, 1]


def builtin_privacy_path() -> Path:
    return Path(__file__).parent / "data" / "privacy-smollm2-135m.json"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_privacy_file(path) -> dict:
    """The file as a dict, checked: schema, model, and every row's fields and ranges (one line per problem).

    Read once per version of the file (path, size, modification time): loading a scenario, stating its problem and
    reporting its floor all ask for it. The dict is shared between callers; do not change it."""
    p = builtin_privacy_path() if str(path) == "builtin" else Path(path)
    shown = "builtin" if str(path) == "builtin" else str(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"privacy.file {shown} does not exist; measure one with `fsllm-sim privacy SCENARIO`") \
            from None
    except OSError as exc:
        raise ConfigError(f"privacy.file {shown} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"privacy.file {shown} is not a regular file (allowed: a privacy.json)")
    if st.st_size > MAX_PRIVACY_BYTES:
        raise ConfigError(f"privacy.file {shown} is {st.st_size} bytes, more than the {MAX_PRIVACY_BYTES} allowed")
    return _read_checked(str(p), shown, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _read_checked(p: str, shown: str, size: int, mtime_ns: int) -> dict:
    p = Path(p)
    try:
        with p.open("rb") as fh:
            doc = json.loads(fh.read(MAX_PRIVACY_BYTES + 1))
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"privacy.file {shown} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("schema") != PRIVACY_SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else None
        raise ConfigError(f"privacy.file {shown} has schema {_short(got)}; expected {PRIVACY_SCHEMA!r}")
    if not isinstance(doc.get("model"), str):
        raise ConfigError(f"privacy.file {shown}: model is {_short(doc.get('model'))} (allowed: the model's name)")
    rows = doc.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"privacy.file {shown}: rows is {_short(rows)} (allowed: a non-empty list of rows)")
    for i, row in enumerate(rows):
        where = f"privacy.file {shown}: rows[{i}]"
        if not isinstance(row, dict) or any(k not in row for k in ROW_FIELDS):
            missing = [k for k in ROW_FIELDS if not isinstance(row, dict) or k not in row]
            raise ConfigError(f"{where} lacks {', '.join(missing[:4])} (allowed: rows as `fsllm-sim privacy` "
                              f"writes them)")
        if not isinstance(row["split"], int) or isinstance(row["split"], bool) or not 0 <= row["split"] <= 1023:
            raise ConfigError(f"{where}.split={_short(row['split'])} (allowed: an integer 0..1023)")
        if row["attack"] not in ATTACKS:
            raise ConfigError(f"{where}.attack={_short(row['attack'])} (allowed: {', '.join(ATTACKS)})")
        for key in METRIC_FIELDS:
            v = row[key]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (math.isfinite(v) and 0 <= v <= 1):
                raise ConfigError(f"{where}.{key}={_short(v)} (allowed: a number in [0, 1])")
        sigma = row["strength"]
        if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not (math.isfinite(sigma) and sigma >= 0):
            raise ConfigError(f"{where}.strength={_short(sigma)} (allowed: a noise sigma >= 0)")
    return doc


@dataclass(frozen=True)
class PrivacyFloor:
    """The smallest split the limit allows, and what it was read from (printed and saved by the optimiser)."""
    split: int
    metric: str
    limit: float
    source: str
    wire: str
    noise_sigma: float
    measured: dict  # split -> (largest upper bound over attacks, the attack that reaches it)

    @property
    def description(self) -> str:
        worst = self.measured[self.split]
        return (f"privacy floor: split >= {self.split} from {self.source} ({self.metric} upper 95 % bound <= "
                f"{self.limit:g} at wire {self.wire}, noise {self.noise_sigma:g}; at split {self.split} the "
                f"leakiest attack, {worst[1]}, reaches {worst[0]:.3f})")


def leakage_by_split(doc: dict, metric: str, wire: str, noise_sigma: float, source: str = "the file") -> dict:
    """split -> (largest upper 95 % bound over the attacks, that attack) at one wire precision and noise."""
    hi = f"{metric}_hi"
    out: dict[int, tuple[float, str]] = {}
    for row in doc["rows"]:
        if row["wire"] != wire or abs(float(row["strength"]) - noise_sigma) > 1e-12 * max(1.0, noise_sigma):
            continue
        value = float(row[hi])
        if row["split"] not in out or value > out[row["split"]][0]:
            out[row["split"]] = (value, row["attack"])
    if not out:
        pairs = sorted({(r["wire"], float(r["strength"])) for r in doc["rows"]})
        have = ", ".join(f"{w} with noise {s:g}" for w, s in pairs[:8])
        raise ConfigError(f"privacy.file {source} has no measurement at the scenario's wire {wire!r} with noise "
                          f"{noise_sigma:g} (training.activation_precision, training.activation_noise_sigma); it "
                          f"has: {have}")
    return out


def privacy_floor(doc: dict, *, limit_field: str, limit: float, wire: str, noise_sigma: float, model: str,
                  source: str) -> PrivacyFloor:
    """The split floor a limit sets (see the module text); one line when no measured split meets it."""
    if doc["model"] != model:
        raise ConfigError(f"privacy.file {source} was measured on model {doc['model']!r}, the scenario uses "
                          f"{model!r} (measure this model: fsllm-sim privacy SCENARIO)")
    metric = METRICS[limit_field]
    measured = leakage_by_split(doc, metric, wire, noise_sigma, source)
    floor = None
    for split in sorted(measured, reverse=True):
        if measured[split][0] > limit:
            break
        floor = split
    if floor is None:
        least = min(measured, key=lambda s: measured[s][0])
        some = "no split" if all(v > limit for v, _ in measured.values()) else "no split with every deeper one"
        raise ConfigError(f"privacy.{limit_field}={limit:g}: {some} measured in {source} meets it at wire {wire} "
                          f"with noise {noise_sigma:g}; the least leaky is split {least} ({metric} upper bound "
                          f"{measured[least][0]:.3f}, attack {measured[least][1]}); allow more leakage or add a "
                          f"defence (training.activation_noise_sigma)")
    return PrivacyFloor(split=max(1, floor), metric=metric, limit=float(limit), source=source, wire=wire,
                        noise_sigma=float(noise_sigma), measured=measured)


def scenario_privacy_floor(scenario) -> PrivacyFloor | None:
    """The floor of a scenario's ``privacy`` limits (the tighter of the two when both are set), or None."""
    pv = scenario.privacy
    limits = [(f, getattr(pv, f)) for f in METRICS if getattr(pv, f) is not None]
    if not limits:
        return None
    if pv.file is None:
        raise ConfigError(f"privacy.{limits[0][0]} needs privacy.file (builtin or a privacy.json that "
                          f"`fsllm-sim privacy` wrote)")
    doc = load_privacy_file(pv.file)
    noise = float(scenario.training.activation_noise_sigma)
    floors = [privacy_floor(doc, limit_field=f, limit=v, wire=scenario.training.activation_precision,
                            noise_sigma=noise, model=scenario.model.name, source=str(pv.file)) for f, v in limits]
    return max(floors, key=lambda f: f.split)


def privacy_record(floor: PrivacyFloor) -> dict:
    """The floor as saved with a solution: the split, the limit, the file and the leakage per measured split."""
    return {"split": floor.split, "metric": floor.metric, "limit": floor.limit, "file": floor.source,
            "wire": floor.wire, "noise_sigma": floor.noise_sigma, "description": floor.description,
            "upper_bound_by_split": {str(s): {"upper_bound": v, "attack": a}
                                     for s, (v, a) in sorted(floor.measured.items())}}


def effective_min_split(scenario) -> int:
    """split.min_layer, raised to the measured privacy floor where a limit is set."""
    floor = scenario_privacy_floor(scenario)
    return scenario.split.min_layer if floor is None else max(scenario.split.min_layer, floor.split)
