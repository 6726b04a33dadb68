"""Convergence model N(r) = a + b * r^(-c): global rounds to reach a target validation loss.

The parameters are fitted from the project's own training runs (``fsllm-sim calibrate``); the
fit's JSON carries its provenance, and ``source`` says which file a model came from.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    from pathlib import Path

    return Path(__file__).parent / "data" / "calibration-smollm2-135m.json"


CALIBRATION_SCHEMA = "fsllm-sim/calibration/v1"


def read_calibration_document(path) -> dict:
    """Read a calibration JSON (or a folder holding ``calibration.json``), checking its schema and fit."""
    import json
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        p = p / "calibration.json"
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"calibration file {str(p)!r} does not exist; run `fsllm-sim calibrate` (or set "
                          f"convergence.calibration to null and give a, b, c)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"calibration file {str(p)!r} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != CALIBRATION_SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise ConfigError(f"calibration file {str(p)!r} has schema {schema!r}; expected {CALIBRATION_SCHEMA!r}")
    fit = doc.get("fit")
    if not fit or not all(k in fit for k in ("a", "b", "c")):
        raise ConfigError(f"calibration file {str(p)!r} holds no fit (every rank was censored); rerun with more "
                          f"max_rounds or a looser target")
    doc["_path"] = str(p)
    return doc


def load_calibration_fit(path) -> ConvergenceModel:
    """The fitted N(r) of a calibration file written by `fsllm-sim calibrate`."""
    doc = read_calibration_document(path)
    fit = doc["fit"]
    return ConvergenceModel(a=float(fit["a"]), b=float(fit["b"]), c=float(fit["c"]), source=doc["_path"])


def load_convergence(scenario) -> ConvergenceModel:
    """The scenario's N(r): from its calibration file, the shipped one, or its explicit a, b, c."""
    cfg = scenario.convergence
    if cfg.calibration is None:
        return ConvergenceModel(a=cfg.a, b=cfg.b, c=cfg.c, source="scenario")
    path = builtin_calibration_path() if cfg.calibration == BUILTIN_CALIBRATION else cfg.calibration
    return load_calibration_fit(path)
