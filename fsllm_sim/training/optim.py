"""Optimisers for adapter states (one instance per client adapter and per server adapter copy).

AdamW's moment buffers are allocated when the optimiser is built (:func:`preallocate_adam_state`), not lazily
at its first step: the result is the same, the process heap is less fragmented.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from fsllm_sim.errors import ConfigError

OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class OptimizerSpec:
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW only

    def validate(self) -> OptimizerSpec:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"optimizer={self.name!r} is not supported; allowed: {', '.join(OPTIMIZERS)}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"learning_rate={self.lr!r} is invalid; allowed: a number > 0")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay={self.weight_decay!r} is invalid; allowed: a number >= 0")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum={self.momentum!r} is invalid; allowed: 0 <= momentum < 1")
        return self

    def build(self, params: Iterable[torch.nn.Parameter], *, preallocate: bool = True) -> torch.optim.Optimizer:
        """The optimiser over ``params``; ``preallocate`` creates AdamW's moment buffers now (see module doc)."""
        self.validate()
        params = list(params)
        if self.name == "adamw":
            opt = torch.optim.AdamW(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay,
                                    foreach=True)
            if preallocate:
                preallocate_adam_state(opt)
            return opt
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                               foreach=True)


def preallocate_adam_state(opt: torch.optim.Optimizer) -> None:
    """Create Adam/AdamW state exactly as its lazy initialisation on the first step would (step 0, zero moments).

    Numerically identical to lazy creation (tested), but the small per-client buffers are allocated when the
    system is built instead of between the large activation tensors of the first iterations, which otherwise
    fragments the heap: with K = 32 SmolLM2 clients that fragmentation alone cost ~10 MB per client of peak RSS.
    """
    from torch.optim.optimizer import _get_scalar_dtype

    if not isinstance(opt, torch.optim.Adam):
        return
    for group in opt.param_groups:
        if group.get("fused") or group.get("capturable") or group.get("amsgrad"):
            return  # other state layouts: leave to the optimiser's own lazy initialisation
        for p in group["params"]:
            state = opt.state[p]
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype(), device="cpu")
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
