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


def load_calibration_fit(path) -> ConvergenceModel:
    """Read the fitted (a, b, c) of a calibration JSON written by `fsllm-sim calibrate`."""
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"convergence.calibration: {p} does not exist (run `fsllm-sim calibrate` or set it to null "
                          f"and give a, b, c)")
    try:
        fit = json.loads(p.read_text())["fit"]
        return ConvergenceModel(a=float(fit["a"]), b=float(fit["b"]), c=float(fit["c"]), source=str(p))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"convergence.calibration: {p} is not a calibration file (missing fit.a/b/c: {exc})") from None


def load_convergence(scenario) -> ConvergenceModel:
    """The scenario's N(r): from its calibration file, the shipped one, or its explicit a, b, c."""
    cfg = scenario.convergence
    if cfg.calibration is None:
        return ConvergenceModel(a=cfg.a, b=cfg.b, c=cfg.c, source="scenario")
    path = builtin_calibration_path() if cfg.calibration == BUILTIN_CALIBRATION else cfg.calibration
    return load_calibration_fit(path)
