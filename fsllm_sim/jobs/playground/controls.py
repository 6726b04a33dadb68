"""The playground's controls: each one is a scenario field, with the range the page offers.

A control never bypasses the scenario loader: the page's values are written into the base scenario's
mapping and validated by :func:`fsllm_sim.config.scenario_from_dict`, so an out-of-range value gets the
loader's one-line message (shown on the page), and what the page evaluates is a scenario the CLI would run.
The page's ranges are only the sliders' travel; the loader's ranges are the law.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...config import scenario_from_dict, scenario_to_dict
from ...errors import ConfigError


@dataclass(frozen=True)
class Control:
    name: str           # the page's id: ctl-<name>
    path: str           # the scenario field it sets
    label: str
    unit: str = ""
    kind: str = "float"  # float | int | choice
    low: Optional[float] = None
    high: Optional[float] = None
    step: Optional[float] = None
    choices: tuple = ()
    scale: float = 1.0  # shown value = field value / scale (MHz shown for a field in Hz)

    def to_field(self, shown):
        if self.kind == "choice":
            if shown not in self.choices:
                raise ConfigError(f"{self.path}: {shown!r} is not one of {', '.join(map(str, self.choices))}")
            return shown
        try:
            value = float(shown)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.path}: {str(shown)[:40]!r} is not a number") from None
        value *= self.scale
        if self.kind == "int":
            if not value.is_integer():
                raise ConfigError(f"{self.path}: {shown!r} is not an integer")
            return int(value)
        return value

    def to_shown(self, value):
        if self.kind == "choice":
            return value
        shown = value / self.scale
        return int(round(shown)) if self.kind == "int" else float(shown)

    def describe(self) -> dict:
        return {"name": self.name, "path": self.path, "label": self.label, "unit": self.unit, "kind": self.kind,
                "low": self.low, "high": self.high, "step": self.step, "choices": list(self.choices)}


# The list (bandwidth of each band, clients, split, rank, power, speed spread, cell radius, wire
# precision, server discipline). Bandwidth moves by whole subchannels of the scenario's width.
CONTROLS: tuple[Control, ...] = (
    Control("clients", "clients.count", "clients K", kind="int", low=1, high=50, step=1),
    Control("s_subchannels", "channel.s_band.subchannels", "s-band subchannels M", kind="int", low=1, high=256,
            step=1),
    Control("f_subchannels", "channel.f_band.subchannels", "f-band subchannels N", kind="int", low=1, high=256,
            step=1),
    Control("split", "split.layer", "split point l", kind="int", low=1, high=29, step=1),
    Control("rank", "lora.rank", "LoRA rank r", kind="choice", choices=(1, 2, 4, 8, 16)),
    Control("power", "channel.power.client_max_dbm", "transmit power cap", unit="dBm", low=0, high=30, step=1),
    Control("speed_sigma", "devices.speed.sigma", "device speed spread sigma (ln f)", low=0.0, high=2.0, step=0.05),
    Control("radius", "clients.layout.radius_m", "cell radius", unit="m", low=50, high=1000, step=10),
    Control("precision", "training.activation_precision", "wire precision", kind="choice",
            choices=("fp32", "fp16", "bf16", "int8", "int8-tensor")),
    Control("discipline", "server.discipline", "server discipline", kind="choice",
            choices=("dedicated", "partitioned", "processor-sharing", "fifo")),
)
BY_NAME = {c.name: c for c in CONTROLS}


def _get(data: dict, path: str):
    node = data
    for key in path.split("."):
        node = node[key]
    return node


def _set(data: dict, path: str, value) -> None:
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def control_values(scenario) -> dict:
    """The controls' values (as shown) of a scenario."""
    data = scenario_to_dict(scenario)
    return {c.name: c.to_shown(_get(data, c.path)) for c in CONTROLS}


def apply_controls(base, values: dict):
    """The base scenario with the controls' values; unknown controls and invalid values are one-line
    ConfigErrors (the loader's own message for a value out of the field's range)."""
    if not isinstance(values, dict):
        raise ConfigError("controls: expected a mapping of control names to values")
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"controls: unknown {', '.join(map(str, unknown))[:80]} (allowed: {', '.join(BY_NAME)})")
    data = scenario_to_dict(base)
    for name, shown in values.items():
        control = BY_NAME[name]
        _set(data, control.path, control.to_field(shown))
    # the rank the student picks must be one the optimiser may pick too
    rank = _get(data, "lora.rank")
    ranks = list(_get(data, "lora.ranks"))
    if rank not in ranks:
        _set(data, "lora.ranks", sorted(ranks + [rank]))
    return scenario_from_dict(data, source="playground")
