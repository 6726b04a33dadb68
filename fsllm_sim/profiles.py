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
from .memory import client_memory_bytes, unsplit_memory_bytes

PROFILE_SOURCES = ("counted", "analytic")
UNSPLIT_FIELDS = ("unsplit_forward_flops", "unsplit_backward_flops", "unsplit_adapter_bits")
# Profiles depend only on the model and a few training fields, so sweeps over radio parameters reuse them.
_MEMO: dict = {}


@dataclass(frozen=True)
class SplitRankProfile:
    """Per-(split, rank) costs of one mini-batch iteration, from the training engine or the analytic model.

    Arrays are indexed ``[split_index, rank_index]`` over ``splits`` (ℓ values) and ``ranks`` (r values).
    ``client_memory_bytes`` is optional; when given, pairs that exceed a client's memory are infeasible.

    The ``unsplit_*`` arrays (indexed ``[rank_index]``, optional) are the costs of training the whole model on
    one device (``protocol: fl``): forward and backward FLOPs of the embedding, all ``num_blocks`` = J blocks,
    the head and the loss, the adapter of all J blocks (S_c at split J, the same accounting as
    ``adapter_bits``) and the memory that takes; :meth:`unsplit` turns them into a one-split profile.
    """

    splits: np.ndarray
    ranks: np.ndarray
    client_forward_flops: np.ndarray
    client_backward_flops: np.ndarray
    server_flops: np.ndarray
    activation_bits: np.ndarray
    adapter_bits: np.ndarray
    client_memory_bytes: Optional[np.ndarray] = None
    num_blocks: Optional[int] = None
    unsplit_forward_flops: Optional[np.ndarray] = None
    unsplit_backward_flops: Optional[np.ndarray] = None
    unsplit_adapter_bits: Optional[np.ndarray] = None
    unsplit_memory_bytes: Optional[np.ndarray] = None

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
        for name in UNSPLIT_FIELDS + ("unsplit_memory_bytes",):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=float)
            if arr.shape != (ranks.size,) or np.any(~np.isfinite(arr)) or np.any(arr < 0):
                raise SolverError(f"profile.{name} must hold len(ranks) = {ranks.size} finite values >= 0")
            object.__setattr__(self, name, arr)
        given = [getattr(self, name) is not None for name in UNSPLIT_FIELDS]
        if any(given) and not (all(given) and self.num_blocks is not None):
            raise SolverError(f"profile: give num_blocks and all of {', '.join(UNSPLIT_FIELDS)}, or none of them")

    @property
    def has_unsplit(self) -> bool:
        """Whether the profile knows the unsplit model's costs (needed by ``protocol: fl``)."""
        return self.unsplit_forward_flops is not None

    def unsplit(self) -> "SplitRankProfile":
        """The profile of federated LoRA without a split: one 'split' J (the device holds every block), the
        unsplit model's FLOPs as the client's, and no server work, no activations (S_a = 0) on the air."""
        if not self.has_unsplit:
            raise SolverError("protocol fl needs the unsplit model's costs; this profile has none (num_blocks and "
                              "unsplit_* are unset)")
        zeros = np.zeros((1, self.ranks.size))
        row = lambda a: np.asarray(a, dtype=float)[None, :]  # noqa: E731
        return SplitRankProfile(
            splits=np.array([int(self.num_blocks)]), ranks=self.ranks,
            client_forward_flops=row(self.unsplit_forward_flops),
            client_backward_flops=row(self.unsplit_backward_flops), server_flops=zeros,
            activation_bits=zeros.copy(), adapter_bits=row(self.unsplit_adapter_bits),
            client_memory_bytes=None if self.unsplit_memory_bytes is None else row(self.unsplit_memory_bytes),
        )

    def index(self, split: int, rank: int) -> tuple[int, int]:
        si = np.flatnonzero(self.splits == split)
        ri = np.flatnonzero(self.ranks == rank)
        if si.size == 0:
            raise SolverError(f"split={split} is not in the profile's splits {self.splits.tolist()}")
        if ri.size == 0:
            raise SolverError(f"rank={rank} is not in the profile's ranks {self.ranks.tolist()}")
        return int(si[0]), int(ri[0])


def memoised_profiles() -> dict:
    """The profiles computed so far in this process, to hand to worker processes (see :func:`adopt_profiles`)."""
    return dict(_MEMO)


def adopt_profiles(memo: dict) -> None:
    """Take profiles computed in another process (a sweep's parent), so a worker never loads the model itself."""
    _MEMO.update(memo)


def _tied_head(lm) -> bool:
    """Whether the LM head shares the embedding's weights (SmolLM2, GPT-2): it then costs no memory of its own."""
    return bool(getattr(lm.config, "tie_word_embeddings", True))


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
        # the whole model = client part + server part at the last split (the counts compose block by block)
        full_fwd = t.client_forward_flops[-1] + t.server_forward_flops[-1]
        full_bwd = t.client_backward_flops[-1] + t.server_backward_flops[-1]
        full_adapter = [payload_bits(j * t.components[r]["adapter_numel_per_block"], tr.adapter_precision,
                                     j * t.components[r]["adapter_tensors_per_block"]) for r in ranks]
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
        full = [split_flops(dims, j - 1, r, b, L, targets) for r in ranks]
        full_fwd = [f.client_forward + f.server_forward for f in full]
        full_bwd = [f.client_backward + f.server_backward for f in full]
        full_adapter = [payload_bits(j * lora_params_per_block(dims, r, targets), tr.adapter_precision,
                                     2 * n_targets * j) for r in ranks]
    profile = SplitRankProfile(
        splits=np.array(splits), ranks=np.array(ranks), client_forward_flops=np.asarray(fwd, float),
        client_backward_flops=np.asarray(bwd, float), server_flops=np.asarray(srv, float),
        activation_bits=np.asarray(act, float), adapter_bits=np.asarray(adapter, float),
        client_memory_bytes=_memory_table(dims, splits, ranks, b, L, targets, scenario.model.dtype),
        num_blocks=j, unsplit_forward_flops=np.asarray(full_fwd, float),
        unsplit_backward_flops=np.asarray(full_bwd, float), unsplit_adapter_bits=np.asarray(full_adapter, float),
        unsplit_memory_bytes=np.array([unsplit_memory_bytes(dims, r, b, L, targets, scenario.model.dtype,
                                                            _tied_head(lm)) for r in ranks], float),
    )
    meta = {"source": source, "model": lm.name, "model_source": lm.source, "num_blocks": j,
            "hidden_size": lm.hidden_size, "batch_size": b, "seq_len": L,
            "activation_precision": tr.activation_precision, "adapter_precision": tr.adapter_precision,
            "target_modules": targets}
    return profile, meta

