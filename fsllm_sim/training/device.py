"""Where the real training runs: the torch device and the compute precision (``training.device``,
``training.dtype``).

* ``device``: ``cpu``, ``cuda`` (``cuda:N`` for one card of several) or ``auto`` (CUDA when this torch build sees a
  card, else the CPU). A device this host does not have is one line, before any model is loaded.
* ``dtype``: ``float32`` (no autocast: the CPU path of every earlier release, bit for bit), ``bfloat16`` or
  ``float16`` under :func:`torch.autocast`. The frozen base weights, the LoRA adapters and the optimiser state stay
  float32 (master weights); matrix products run in the lower precision. ``float16`` has no loss scaling here:
  LoRA gradients far below 6e-8 flush to zero, so ``bfloat16`` (float32's exponent range) is the one to use on
  hardware that has it. The wire precision of activations (``training.activation_precision``) is a separate
  fact: it is what the radio carries, this is what the processor computes in.

Wall-clock measurements of CUDA work (``simulation.timing: measured``, the training benchmark) synchronise the
device first, since kernel launches return before the kernels finish.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from fsllm_sim.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Compute:
    """A resolved device and compute dtype, with the few operations the training code needs of them."""

    device: torch.device
    dtype: torch.dtype

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        """The region the parts' forward runs in: nothing for float32, autocast to ``dtype`` otherwise."""
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def put(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """``tensor`` on this device (a no-op, not a copy, when it is there already)."""
        return None if tensor is None else tensor.to(self.device, non_blocking=False)

    def synchronize(self) -> None:
        """Wait for every queued kernel (CUDA); nothing on the CPU."""
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak_memory(self) -> None:
        if self.is_cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory_bytes(self) -> int | None:
        """torch's CUDA peak allocation counter since the last reset; None on the CPU (no such counter: the
        benchmark measures the process's resident set there)."""
        if self.is_cuda:
            return int(torch.cuda.max_memory_allocated(self.device))
        return None


CPU_FLOAT32 = Compute(torch.device("cpu"), torch.float32)


def cuda_available() -> bool:
    return bool(torch.cuda.is_available())


def resolve_compute(device: str = "cpu", dtype: str = "float32", *, field: str = "training") -> Compute:
    """The :class:`Compute` for a configured device and dtype; ConfigError (one line, naming the field and what
    is allowed on this host) for an unknown or unavailable device or an unknown dtype."""
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ConfigError(f"{field}.dtype={dtype!r} is invalid; allowed: {', '.join(DTYPES)}")
    if not isinstance(device, str):
        raise ConfigError(f"{field}.device={device!r} is invalid; allowed: {', '.join(DEVICES)} (or cuda:N)")
    name = device.strip().lower()
    if name == "auto":
        name = "cuda" if cuda_available() else "cpu"
    if name == "cpu":
        dev = torch.device("cpu")
    elif name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not cuda_available():
            build = torch.__version__ + ("" if torch.version.cuda else ", a build without CUDA")
            raise ConfigError(f"{field}.device={device!r}: this host has no CUDA device torch can use (torch "
                              f"{build}); allowed here: auto, cpu")
        index = int(name[5:]) if ":" in name else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"{field}.device={device!r}: this host has {count} CUDA device(s); allowed: "
                              f"cuda:0..cuda:{count - 1}")
        dev = torch.device("cuda", index)
    else:
        raise ConfigError(f"{field}.device={device!r} is invalid; allowed: {', '.join(DEVICES)} (or cuda:N)")
    wanted = DTYPES[dtype]
    if dev.type == "cpu" and wanted == torch.float16 and not _cpu_autocast_supports(torch.float16):
        raise ConfigError(f"{field}.dtype='float16' has no CPU autocast in torch {torch.__version__}; allowed on "
                          f"the CPU: float32, bfloat16")
    if dev.type == "cuda" and wanted == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{field}.dtype='bfloat16': {torch.cuda.get_device_name(dev)} has no bfloat16; allowed "
                          f"on it: float32, float16")
    return Compute(dev, wanted)


def _cpu_autocast_supports(dtype: torch.dtype) -> bool:
    try:
        with torch.autocast(device_type="cpu", dtype=dtype):
            pass
    except (RuntimeError, ValueError):
        return False
    return True


def process_peak_rss_bytes() -> int | None:
    """Linux peak resident set size (VmHWM) of this process, resettable with :func:`reset_process_peak_rss`;
    None where /proc is absent. (``getrusage().ru_maxrss`` survives fork+exec, so a child of a large process
    would report its parent's peak: VmHWM does not.)"""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_process_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter to the current resident set (Linux ``clear_refs``); False elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False
