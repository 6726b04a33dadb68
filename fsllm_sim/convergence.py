"""Convergence model N(r) = a + b * r^(-c): global rounds to reach a target validation loss.

The parameters are fitted from the project's own training runs (``fsllm-sim calibrate``); the
fit's JSON carries its provenance, and ``source`` says which file a model came from.
"""
from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .delay import convergence_rounds
from .errors import ConfigError


@dataclass(frozen=True)
class ConvergenceModel:
    a: float
    b: float
    c: float
    source: str = "scenario"

    def __post_init__(self):
        for name in ("a", "b", "c"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"convergence.{name}={value} must be a finite number >= 0")
        if self.a + self.b <= 0:
            raise ConfigError("convergence: a + b must be > 0 (N(1) would be zero rounds)")

    def rounds(self, rank):
        """N(r) for a rank or an array of ranks (a real number: expected rounds, not rounded)."""
        rank_arr = np.asarray(rank, dtype=float)
        if np.any(rank_arr < 1):
            raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
        return convergence_rounds(rank_arr, self.a, self.b, self.c)


BUILTIN_CALIBRATION = "builtin"


def builtin_calibration_path():
    """The calibration file shipped with the package (produced by a real run; see its provenance)."""
    return Path(__file__).parent / "data" / "calibration-smollm2-135m.json"


CALIBRATION_SCHEMA = "fsllm-sim/calibration/v1"


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
    if not isinstance(doc, dict) or doc.get("schema") != CALIBRATION_SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise ConfigError(f"calibration file {shown} has schema {_short(schema)}; expected {CALIBRATION_SCHEMA!r}")
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


def load_calibration_fit(path) -> ConvergenceModel:
    """The fitted N(r) of a calibration file written by `fsllm-sim calibrate`."""
    doc = read_calibration_document(path)
    fit = doc["fit"]
    try:
        return ConvergenceModel(a=float(fit["a"]), b=float(fit["b"]), c=float(fit["c"]), source=doc["_path"])
    except ConfigError as exc:
        raise ConfigError(f"calibration file {doc['_path']!r}: {exc}") from None


def load_convergence(scenario) -> ConvergenceModel:
    """The scenario's N(r): from its calibration file, the shipped one, or its explicit a, b, c."""
    cfg = scenario.convergence
    if cfg.calibration is None:
        return ConvergenceModel(a=cfg.a, b=cfg.b, c=cfg.c, source="scenario")
    path = builtin_calibration_path() if cfg.calibration == BUILTIN_CALIBRATION else cfg.calibration
    return load_calibration_fit(path)
