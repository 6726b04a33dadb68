"""The per-(split, rank) cost profile of a scenario's model: FLOPs per phase, payload bits, client memory.

:class:`SplitRankProfile` holds the table (the solvers take it as given: ``solvers.problem`` re-exports
it); :func:`scenario_profile` builds it for a scenario.

``counted`` (default) takes the FLOPs from the real PyTorch operations of the real model
(:func:`fsllm_sim.training.flop_count.profile_table`, cached on disk); ``analytic`` uses the closed-form
transformer formula of :mod:`fsllm_sim.flops`, which the tests keep within 10 % of the counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import ConfigError, SolverError
from .flops import DEFAULT_TARGETS, TransformerDims, lora_params_per_block, split_flops
from .memory import client_memory_bytes

PROFILE_SOURCES = ("counted", "analytic")
# Profiles depend only on the model and a few training fields, so sweeps over radio parameters reuse them.
_MEMO: dict = {}


@dataclass(frozen=True)
class SplitRankProfile:
    """Per-(split, rank) costs of one mini-batch iteration, from the training engine or the analytic model.

    Arrays are indexed ``[split_index, rank_index]`` over ``splits`` (ℓ values) and ``ranks`` (r values).
    ``client_memory_bytes`` is optional; when given, pairs that exceed a client's memory are infeasible.
    """

    splits: np.ndarray
    ranks: np.ndarray
    client_forward_flops: np.ndarray
    client_backward_flops: np.ndarray
    server_flops: np.ndarray
    activation_bits: np.ndarray
    adapter_bits: np.ndarray
    client_memory_bytes: Optional[np.ndarray] = None

    def __post_init__(self):
        splits = np.asarray(self.splits, dtype=int)
        ranks = np.asarray(self.ranks, dtype=int)
        object.__setattr__(self, "splits", splits)
        object.__setattr__(self, "ranks", ranks)
        shape = (splits.size, ranks.size)
        for name in ("client_forward_flops", "client_backward_flops", "server_flops", "activation_bits",
                     "adapter_bits", "client_memory_bytes"):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=float)
            if arr.shape != shape:
                raise SolverError(f"profile.{name} has shape {arr.shape}, expected (len(splits), len(ranks)) = {shape}")
            if np.any(~np.isfinite(arr)) or np.any(arr < 0):
                raise SolverError(f"profile.{name} must be finite and >= 0")
            object.__setattr__(self, name, arr)
        if splits.size == 0 or ranks.size == 0:
            raise SolverError("profile needs at least one split and one rank")

    def index(self, split: int, rank: int) -> tuple[int, int]:
        si = np.flatnonzero(self.splits == split)
        ri = np.flatnonzero(self.ranks == rank)
        if si.size == 0:
            raise SolverError(f"split={split} is not in the profile's splits {self.splits.tolist()}")
        if ri.size == 0:
            raise SolverError(f"rank={rank} is not in the profile's ranks {self.ranks.tolist()}")
        return int(si[0]), int(ri[0])


def _memory_table(dims: TransformerDims, splits, ranks, b: int, L: int, targets, dtype: str) -> np.ndarray:
    return np.array([[client_memory_bytes(dims, s, r, b, L, targets, dtype) for r in ranks] for s in splits], float)


def scenario_profile(scenario, *, source: str = "counted", progress: bool = True, model=None,
                     echo=print) -> tuple[SplitRankProfile, dict]:
    """Profile over every split 1..J-1 and the scenario's candidate ranks; also returns its provenance."""
    tr, lora = scenario.training, scenario.lora
    key = (source, scenario.model.name, scenario.model.dtype, tr.batch_size, tr.seq_len, tr.activation_precision,
           tr.adapter_precision, tuple(lora.ranks), lora.target_modules, scenario.split.layer, scenario.split.min_layer)
    if model is None and key in _MEMO:
        return _MEMO[key]
    result = _scenario_profile(scenario, source=source, progress=progress, model=model, echo=echo)
    if model is None:
        _MEMO[key] = result
    return result


def _scenario_profile(scenario, *, source, progress, model, echo) -> tuple[SplitRankProfile, dict]:
    from .training.models import load_model
    from .training.wire import payload_bits

    if source not in PROFILE_SOURCES:
        raise ConfigError(f"profile source {source!r} is not one of {', '.join(PROFILE_SOURCES)}")
    tr, lora = scenario.training, scenario.lora
    if progress and model is None:
        echo(f"loading model {scenario.model.name} ...")
    lm = model if model is not None else load_model(scenario.model.name)
    j = lm.num_blocks
    for field, value in (("split.layer", scenario.split.layer), ("split.min_layer", scenario.split.min_layer)):
        if not 1 <= value <= j - 1:
            raise ConfigError(f"{field}: {value} is out of range for {lm.name} with J={j} blocks (allowed: 1..{j - 1})")
    if tr.seq_len > lm.max_positions:
        raise ConfigError(f"training.seq_len: {tr.seq_len} exceeds the context of {lm.name} ({lm.max_positions})")
    splits = list(range(1, j))
    ranks = [int(r) for r in lora.ranks]
    targets = list(lora.target_modules) if lora.target_modules else None
    dims = TransformerDims.from_config(lm.config)
    b, L = tr.batch_size, tr.seq_len
    if source == "counted":
        from .training.flop_count import profile_table

        if progress:
            echo(f"counting FLOPs of {lm.name} with torch FlopCounterMode (cached after the first time) ...")
        t = profile_table(lm.name, splits, ranks, b, L, tr.activation_precision,
                          adapter_precision=tr.adapter_precision, target_modules=targets, model=lm)
        fwd, bwd, srv = t.client_forward_flops, t.client_backward_flops, t.server_flops
        act, adapter = t.activation_bits, t.adapter_bits
    else:
        shape = (len(splits), len(ranks))
        fwd, bwd, srv, act, adapter = (np.zeros(shape) for _ in range(5))
        n_targets = len(targets) if targets else len(DEFAULT_TARGETS[dims.family])
        for i, s in enumerate(splits):
            for k, r in enumerate(ranks):
                f = split_flops(dims, s, r, b, L, targets)
                fwd[i, k], bwd[i, k], srv[i, k] = f.client_forward, f.client_backward, f.server
                act[i, k] = payload_bits(b * L * dims.d_model, tr.activation_precision, channels=dims.d_model,
                                         outlier_rows=b)
                # two tensors (A and B) per targeted module per block
                adapter[i, k] = payload_bits(s * lora_params_per_block(dims, r, targets), tr.adapter_precision,
                                             2 * n_targets * s)
    profile = SplitRankProfile(
        splits=np.array(splits), ranks=np.array(ranks), client_forward_flops=np.asarray(fwd, float),
        client_backward_flops=np.asarray(bwd, float), server_flops=np.asarray(srv, float),
        activation_bits=np.asarray(act, float), adapter_bits=np.asarray(adapter, float),
        client_memory_bytes=_memory_table(dims, splits, ranks, b, L, targets, scenario.model.dtype),
    )
    meta = {"source": source, "model": lm.name, "model_source": lm.source, "num_blocks": j,
            "hidden_size": lm.hidden_size, "batch_size": b, "seq_len": L,
            "activation_precision": tr.activation_precision, "adapter_precision": tr.adapter_precision,
            "target_modules": targets}
    return profile, meta

