"""LoRA through peft, and the per-client adapter states swapped into the one shared frozen base.

One frozen copy of the base weights serves every client: peft injects LoRA layers once into the single
model; each client (and, in SplitFed-V1, each client's server copy) owns only its adapter tensors — a dict of
``nn.Parameter`` (an :data:`AdapterState`) — and its optimiser state. Before a phase runs,
:meth:`AdapterSlots.use` puts that client's Parameter *objects* into the LoRA modules (``module._parameters``),
and takes them out afterwards. Because whole Parameter objects are swapped (not ``.data``), the autograd graph of
a client's forward keeps pointing at that client's leaves: phases of different clients can be interleaved in any
order (forward of k, forward of j, server step of k, backward of j, ...) and every gradient lands in the right
client's ``.grad``.

Adapter keys are global: ``blocks.<j>.<path inside the block>`` with j the 0-based index of the block in the
whole model, so a client state (blocks < ℓ) and a server state (blocks ≥ ℓ) together name the full adapter.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from fsllm_sim.errors import ConfigError

AdapterState = dict[str, nn.Parameter]

#: LoRA target modules per family (spec: attention projections; q and v for Llama, the fused c_attn for GPT-2).
DEFAULT_TARGET_MODULES: dict[str, tuple[str, ...]] = {"llama": ("q_proj", "v_proj"), "gpt2": ("c_attn",)}
#: Attention/MLP projections that may be targeted, per family.
ALLOWED_TARGET_MODULES: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
}
ADAPTER_NAME = "default"
#: LoRA scaling of the update B A: standard alpha / r, or rank-stabilised (rsLoRA) alpha / sqrt(r).
LORA_SCALINGS = ("standard", "rslora")


@dataclass(frozen=True)
class LoraSpec:
    """LoRA hyper-parameters. ``alpha`` None means α = 2r (spec default).

    ``scaling``: the factor applied to B A — ``"standard"`` α / r, ``"rslora"`` α / √r (peft ``use_rslora``).
    """

    rank: int = 8
    alpha: float | None = None
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None
    scaling: str = "standard"

    def scaling_factor(self) -> float:
        """The effective multiplier of B A in every LoRA layer."""
        import math

        a = self.resolved_alpha()
        return a / math.sqrt(self.rank) if self.scaling == "rslora" else a / self.rank

    def resolved_alpha(self) -> float:
        return float(2 * self.rank if self.alpha is None else self.alpha)

    def resolved_targets(self, family: str) -> tuple[str, ...]:
        return tuple(self.target_modules) if self.target_modules else DEFAULT_TARGET_MODULES[family]

    def validate(self, family: str) -> LoraSpec:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"rank={self.rank!r} is invalid; allowed: an integer >= 1")
        if self.alpha is not None and not self.alpha > 0:
            raise ConfigError(f"lora_alpha={self.alpha!r} is invalid; allowed: a number > 0 (or unset for 2r)")
        if self.scaling not in LORA_SCALINGS:
            raise ConfigError(f"lora_scaling={self.scaling!r} is not supported; allowed: {', '.join(LORA_SCALINGS)}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"lora_dropout={self.dropout!r} is invalid; allowed: 0 <= dropout < 1")
        allowed = ALLOWED_TARGET_MODULES[family]
        targets = self.resolved_targets(family)
        bad = [t for t in targets if t not in allowed]
        if bad or not targets:
            raise ConfigError(f"target_modules={list(targets)!r} is invalid for the {family} family; "
                              f"allowed: a non-empty subset of {list(allowed)}")
        return self


def make_lora_config(family: str, spec: LoraSpec):
    from peft import LoraConfig

    spec.validate(family)
    return LoraConfig(
        r=spec.rank,
        lora_alpha=spec.resolved_alpha(),
        lora_dropout=float(spec.dropout),
        target_modules=list(spec.resolved_targets(family)),
        fan_in_fan_out=(family == "gpt2"),  # GPT-2 Conv1D stores weights transposed
        bias="none",
        use_rslora=(spec.scaling == "rslora"),
    )


def has_lora(model: nn.Module) -> bool:
    return any("lora_" in n for n, _ in model.named_parameters())


def attach_lora(hf_model: nn.Module, family: str, spec: LoraSpec, *, seed: int = 0):
    """Inject LoRA into ``hf_model`` in place (peft ``get_peft_model``); base frozen, adapters trainable.

    The initial adapter (peft default: A Kaiming-uniform, B = 0, so the model starts equal to the base) is drawn
    from a private RNG seeded with ``seed``.
    """
    import warnings

    from peft import get_peft_model

    if has_lora(hf_model):
        raise ConfigError("model already carries LoRA layers; load a fresh model (load_model) for each system")
    cfg = make_lora_config(family, spec)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.manual_seed(seed)
        peft_model = get_peft_model(hf_model, cfg)
    for name, p in peft_model.named_parameters():
        p.requires_grad_("lora_" in name)
    peft_model.eval()
    return peft_model


def set_lora_dropout_training(module: nn.Module, training: bool) -> None:
    """Switch only the LoRA dropout modules between train and eval (the frozen base stays in eval mode)."""
    for name, m in module.named_modules():
        if name.endswith(f"lora_dropout.{ADAPTER_NAME}"):
            m.train(training)


def has_lora_dropout(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Dropout) and m.p > 0 for n, m in module.named_modules() if "lora_dropout" in n)


_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


class AdapterSlots:
    """The LoRA parameter slots of one part (client or server), addressed by global adapter keys."""

    def __init__(self, part: nn.Module, block_offset: int = 0):
        self.part = part
        self.block_offset = block_offset
        self._slots: dict[str, tuple[nn.Module, str]] = {}
        for name, param in part.named_parameters():
            if "lora_" not in name:
                continue
            m = _BLOCK_RE.match(name)
            if m is None:
                raise ConfigError(f"LoRA parameter {name!r} is outside the decoder blocks; only block adapters "
                                  f"are supported")
            key = f"blocks.{int(m.group(1)) + block_offset}.{m.group(2)}"
            mod_name, attr = name.rsplit(".", 1)
            self._slots[key] = (part.get_submodule(mod_name), attr)

    @property
    def keys(self) -> list[str]:
        return list(self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def current_state(self) -> AdapterState:
        """A fresh, independent copy of the tensors now in the slots, as trainable Parameters."""
        return {k: nn.Parameter(m._parameters[a].detach().clone(), requires_grad=True)
                for k, (m, a) in self._slots.items()}

    def new_state_like(self, values: Mapping[str, torch.Tensor]) -> AdapterState:
        self.check_state(values)
        return {k: nn.Parameter(values[k].detach().to(torch.float32).clone(), requires_grad=True) for k in self._slots}

    def check_state(self, state: Mapping[str, torch.Tensor]) -> None:
        missing = [k for k in self._slots if k not in state]
        if missing:
            raise ConfigError(f"adapter state lacks {len(missing)} keys of this part (e.g. {missing[0]!r})")
        for k, (m, a) in self._slots.items():
            if tuple(state[k].shape) != tuple(m._parameters[a].shape):
                raise ConfigError(f"adapter tensor {k!r} has shape {tuple(state[k].shape)}, expected "
                                  f"{tuple(m._parameters[a].shape)} (different rank or model?)")

    @contextlib.contextmanager
    def use(self, state: Mapping[str, torch.Tensor]) -> Iterator[None]:
        """Put ``state``'s tensors into the LoRA modules for the duration of the block, then restore."""
        saved = []
        try:
            for k, (m, a) in self._slots.items():
                saved.append((m, a, m._parameters[a]))
                m._parameters[a] = state[k]
            yield
        finally:
            for m, a, p in saved:
                m._parameters[a] = p


# --------------------------------------------------------------------------------------------- state helpers


def detached_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


def copy_into(state: Mapping[str, torch.Tensor], values: Mapping[str, torch.Tensor]) -> None:
    """In-place copy (keeps the Parameter objects, hence the optimiser's per-parameter state)."""
    with torch.no_grad():
        for k, p in state.items():
            p.copy_(values[k])


_LORA_A_RE = re.compile(r"^(.*)\.lora_A\.(.+)$")


def lora_factor_pairs(keys) -> tuple[list[tuple[str, str]], list[str]]:
    """Pair the A and B factors of each LoRA module by key.

    ``blocks.<j>.<path>.lora_A.<adapter>.weight`` goes with ``blocks.<j>.<path>.lora_B.<adapter>.weight``
    (A: r × in, B: out × r, so the module's update is ΔW = scaling · B A). Returns ((A key, B key) pairs, the
    keys that belong to no pair).
    """
    keys = list(keys)
    present = set(keys)
    pairs, paired = [], set()
    for k in keys:
        m = _LORA_A_RE.match(k)
        if m is None:
            continue
        b = f"{m.group(1)}.lora_B.{m.group(2)}"
        if b in present:
            pairs.append((k, b))
            paired.update((k, b))
    return pairs, [k for k in keys if k not in paired]


def state_num_params(state: Mapping[str, torch.Tensor]) -> int:
    return sum(int(v.numel()) for v in state.values())


def state_nbytes(state: Mapping[str, torch.Tensor]) -> int:
    return sum(int(v.numel()) * v.element_size() for v in state.values())


def split_state_keys(keys, split: int) -> tuple[list[str], list[str]]:
    """Global adapter keys of the client side (block index < ℓ) and the server side."""
    client, server = [], []
    for k in keys:
        m = _BLOCK_RE.match(k)
        (client if int(m.group(1)) < split else server).append(k)
    return client, server


def peft_name_to_key(name: str) -> str:
    """Map a peft parameter name (``...layers.3.self_attn...`` / ``...h.3.attn...``) to the global adapter key."""
    m = re.search(r"(?:\.layers\.|\.h\.)(\d+)\.(.+)$", name)
    if m is None:
        raise ConfigError(f"parameter {name!r} is not inside a decoder block")
    return f"blocks.{m.group(1)}.{m.group(2)}"
