"""Convergence model: global rounds N(r) to reach a target validation loss at LoRA rank r.

The parameters are fitted from the project's own training runs (``fsllm-sim calibrate``); the
fit's JSON carries its provenance, and ``source`` says which file a model came from.

What transfers is the number of training tokens to the target, T(r) = a + b r^(-c), not the
number of rounds: a round trains K E b L tokens, so a fit measured at K = 4, b = 2, L = 64, E = 2
(1,024 tokens per round) says little about rounds at K = 8, b = 4, L = 128, E = 5 (20,480). A
calibration file is read as tokens (its own K E b L converts its rounds) and the scenario's
N(r) = T(r) / (K E b L of the scenario), to first order (equal tokens to the target whatever the
batch shape). Some differences the token model does not cover at all: another model, another wire
precision, LoRA scaling, learning rate or partition. Each is reported by :meth:`ConvergenceModel.regime_warnings`
as one line, so no number is used silently out of the regime it was measured in. With
``convergence.calibration: null`` the scenario's own a, b, c are N(r) in rounds, as given.
"""
from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .delay import convergence_rounds
from .errors import ConfigError


# Settings of a calibration the token model does not carry over: (label, scenario value, calibration key).
REGIME_FIELDS = (
    ("model", lambda s: s.model.name, "model"),
    ("activation precision", lambda s: s.training.activation_precision, "activation_precision"),
    ("LoRA scaling", lambda s: s.lora.scaling, "lora_scaling"),
    ("LoRA alpha per rank", lambda s: float(s.lora.alpha_per_rank), "lora_alpha_per_rank"),
    ("learning rate", lambda s: float(s.training.learning_rate), "learning_rate"),
    ("partition", lambda s: s.data.partition, "partition"),
)


def tokens_per_round(num_clients: int, local_iterations: int, batch_size: int, seq_len: int) -> int:
    """Training tokens of one global round: K E b L."""
    return int(num_clients) * int(local_iterations) * int(batch_size) * int(seq_len)


def scenario_tokens_per_round(scenario) -> int:
    tr = scenario.training
    return tokens_per_round(scenario.clients.count, tr.local_iterations, tr.batch_size, tr.seq_len)


@dataclass(frozen=True)
class ConvergenceModel:
    """N(r) = a + b r^(-c) in rounds (``unit: rounds``), or T(r) = a + b r^(-c) training tokens divided by
    ``tokens_per_round`` (``unit: tokens``). ``measured_at`` records the calibration's settings."""

    a: float
    b: float
    c: float
    source: str = "scenario"
    unit: str = "rounds"
    tokens_per_round: float | None = None
    measured_at: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for name in ("a", "b", "c"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"convergence.{name}={value} must be a finite number >= 0")
        if self.a + self.b <= 0:
            raise ConfigError("convergence: a + b must be > 0 (N(1) would be zero rounds)")
        if self.unit not in ("rounds", "tokens"):
            raise ConfigError(f"convergence unit {self.unit!r} is not one of rounds, tokens")
        if self.unit == "tokens" and not (self.tokens_per_round and self.tokens_per_round > 0):
            raise ConfigError("convergence in tokens needs the scenario's tokens per round (K E b L > 0)")

    def rounds(self, rank):
        """N(r) for a rank or an array of ranks (a real number: expected rounds, not rounded)."""
        rank_arr = np.asarray(rank, dtype=float)
        if np.any(rank_arr < 1):
            raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
        n = convergence_rounds(rank_arr, self.a, self.b, self.c)
        return n if self.unit == "rounds" else n / self.tokens_per_round

    def tokens(self, rank):
        """T(r): training tokens to the target (a token model only)."""
        if self.unit != "tokens":
            raise ConfigError("this convergence model is in rounds; it has no token count")
        return convergence_rounds(np.asarray(rank, dtype=float), self.a, self.b, self.c)

    def regime_warnings(self, scenario) -> list[str]:
        """One line per setting where the scenario leaves the regime the calibration was measured in."""
        out = []
        for label, get, key in REGIME_FIELDS:
            if key not in self.measured_at:
                continue
            measured, wanted = self.measured_at[key], get(scenario)
            if measured != wanted:
                out.append(f"convergence: {self.source} was measured with {label} {measured!r}, the scenario uses "
                           f"{wanted!r}, which N(r) does not account for (calibrate at the scenario's settings: "
                           f"fsllm-sim calibrate)")
        return out


BUILTIN_CALIBRATION = "builtin"


def builtin_calibration_path():
    """The calibration file shipped with the package (produced by a real run; see its provenance)."""
    return Path(__file__).parent / "data" / "calibration-smollm2-135m.json"


CALIBRATION_SCHEMA = "fsllm-sim/calibration/v1"  # N(r) in rounds at the calibration's own K E b L
CALIBRATION_SCHEMAS = (CALIBRATION_SCHEMA, "fsllm-sim/calibration/v2")  # v2: T(r) in tokens, multi-seed


MAX_CALIBRATION_BYTES = 64 * 1024 * 1024  # the shipped file is a few KiB; refuse larger files unread


def _fit_specs() -> dict:
    """fit key -> the Spec of the scenario field it stands for (``convergence.a/b/c``); the target value obeys
    ``calibration.target_val_loss``. Read from the schema, so a file and a scenario obey one range."""
    from .config.loader import field_spec
    from .config.schema import Scenario

    specs = {k: field_spec(Scenario, f"convergence.{k}") for k in ("a", "b", "c")}
    specs["target"] = field_spec(Scenario, "calibration.target_val_loss")
    return specs


def _read_calibration_text(p: Path, shown: str) -> str:
    try:
        size = p.stat().st_size
        raw = b""
        if size <= MAX_CALIBRATION_BYTES:
            with p.open("rb") as fh:
                raw = fh.read(MAX_CALIBRATION_BYTES + 1)
            size = max(size, len(raw))
    except FileNotFoundError:
        raise ConfigError(f"calibration file {shown} does not exist; run `fsllm-sim calibrate` (or set "
                          f"convergence.calibration to null and give a, b, c)") from None
    except OSError as exc:
        raise ConfigError(f"calibration file {shown} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if size > MAX_CALIBRATION_BYTES:
        raise ConfigError(f"calibration file {shown} is {size / 2 ** 20:.1f} MiB ({size} bytes), larger than the "
                          f"{MAX_CALIBRATION_BYTES / 2 ** 20:g} MiB ({MAX_CALIBRATION_BYTES} bytes) allowed")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"calibration file {shown} is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start}; allowed: a JSON file in UTF-8)") from None


def read_calibration_document(path) -> dict:
    """Read a calibration JSON (or a folder holding ``calibration.json``), checking its schema and fit.

    The file is untrusted: read with a size limit (:data:`MAX_CALIBRATION_BYTES`), UTF-8 only, and the fit's
    a, b, c (and the recorded target loss) must be numbers in the ranges of the scenario fields
    ``convergence.a/b/c`` (``calibration.target_val_loss``). Every problem is a one-line ConfigError."""
    import json

    from .config.loader import _display_path, check_number

    p = Path(path)
    if _mode(p) is not None and stat.S_ISDIR(_mode(p)):
        p = p / "calibration.json"
    shown = repr(_display_path(p))
    mode = _mode(p)
    if mode is not None and not stat.S_ISREG(mode):
        raise ConfigError(f"calibration file {shown} is not a regular file (allowed: a calibration JSON file)")
    text = _read_calibration_text(p, shown)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"calibration file {shown} is not readable JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"calibration file {shown} is not readable JSON: nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("schema") not in CALIBRATION_SCHEMAS:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise ConfigError(f"calibration file {shown} has schema {_short(schema)}; expected one of "
                          f"{', '.join(repr(x) for x in CALIBRATION_SCHEMAS)}")
    fit = doc.get("fit")
    if fit is not None and not isinstance(fit, dict):
        raise ConfigError(f"calibration file {shown}: fit is {_short(fit)} (allowed: a mapping with a, b, c, or null)")
    if not fit or not all(k in fit for k in ("a", "b", "c")):
        raise ConfigError(f"calibration file {shown} holds no fit (every rank was censored); rerun with more "
                          f"max_rounds or a looser target")
    specs = _fit_specs()
    for k in ("a", "b", "c"):
        fit[k] = check_number(fit[k], specs[k], f"calibration file {shown}: fit.{k} (convergence.{k})")
    target = doc.get("target")
    if target is not None and not isinstance(target, dict):
        raise ConfigError(f"calibration file {shown}: target is {_short(target)} (allowed: a mapping or null)")
    if target and target.get("value") is not None:
        target["value"] = check_number(target["value"], specs["target"],
                                       f"calibration file {shown}: target.value (calibration.target_val_loss)")
    doc["_path"] = str(p)
    return doc


def _mode(p: Path) -> int | None:
    """``p``'s st_mode, or None when it cannot be stat'ed (missing, or a name the OS refuses): reading it then
    reports the reason in one line."""
    try:
        return p.stat().st_mode
    except OSError:
        return None


def _short(value) -> str:
    from .config.loader import shorten

    return shorten(value)


def measured_at(doc: dict) -> dict:
    """The settings a calibration was measured at, from its recorded training configuration (older files
    name ``lr`` and ``local_iters``; LoRA scaling was always standard before it became a choice)."""
    cfg = doc.get("config") or {}
    get = lambda *keys, default=None: next((cfg[k] for k in keys if k in cfg), default)  # noqa: E731
    out = {"model": doc.get("model", get("model")), "num_clients": get("num_clients"),
           "local_iterations": get("local_iterations", "local_iters"), "batch_size": get("batch_size"),
           "seq_len": get("seq_len"), "activation_precision": get("activation_precision"),
           "lora_scaling": get("lora_scaling", default="standard"), "lora_alpha_per_rank": get("lora_alpha_per_rank"),
           "learning_rate": get("learning_rate", "lr"), "partition": get("partition")}
    for key in ("lora_alpha_per_rank", "learning_rate"):
        if isinstance(out[key], (int, float)):
            out[key] = float(out[key])
    return {k: v for k, v in out.items() if v is not None}


def load_calibration_fit(path, scenario_tokens_per_round: float | None = None) -> ConvergenceModel:
    """The fit of a calibration file written by `fsllm-sim calibrate`.

    With ``scenario_tokens_per_round`` the fit is read as training tokens to the target (rounds of the
    calibration times its own K E b L) and evaluated in the scenario's rounds; without it, in the
    calibration's own rounds."""
    doc = read_calibration_document(path)
    fit, where = doc["fit"], doc["_path"]
    regime = measured_at(doc)
    try:
        a, b, c = float(fit["a"]), float(fit["b"]), float(fit["c"])
        if scenario_tokens_per_round is None:
            return ConvergenceModel(a=a, b=b, c=c, source=where, measured_at=regime)
        if doc.get("unit") == "tokens":
            scale = 1.0
        else:
            try:
                scale = float(tokens_per_round(regime["num_clients"], regime["local_iterations"],
                                               regime["batch_size"], regime["seq_len"]))
            except KeyError as exc:
                raise ConfigError(f"its configuration does not record {exc.args[0]}, so its rounds cannot be "
                                  f"converted to tokens") from None
        return ConvergenceModel(a=a * scale, b=b * scale, c=c, source=where, unit="tokens",
                                tokens_per_round=float(scenario_tokens_per_round), measured_at=regime)
    except ConfigError as exc:
        raise ConfigError(f"calibration file {where!r}: {exc}") from None


def load_convergence(scenario) -> ConvergenceModel:
    """The scenario's N(r): tokens to the target from its calibration file (or the shipped one) over the
    scenario's tokens per round, or its explicit a, b, c in rounds."""
    cfg = scenario.convergence
    if cfg.calibration is None:
        return ConvergenceModel(a=cfg.a, b=cfg.b, c=cfg.c, source="scenario")
    path = builtin_calibration_path() if cfg.calibration == BUILTIN_CALIBRATION else cfg.calibration
    return load_calibration_fit(path, scenario_tokens_per_round(scenario))
