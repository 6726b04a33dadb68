"""Exceptions of the channel models (this package imports nothing of the rest of the project).

Every message is one line that names the function, the argument, the first offending value and the
allowed range, so a front end can print it as the whole error report. ``fsllm_sim.errors`` re-exports
both classes; its CLI catches :class:`ChannelModelError` next to its own ``FsllmError``.
"""


class ChannelModelError(ValueError):
    """Base class of the errors a channel model raises for bad arguments."""


class ValidityRangeError(ChannelModelError):
    """A physical model was asked for outside the range its source (e.g. 3GPP TR 38.901) validates."""


__all__ = ["ChannelModelError", "ValidityRangeError"]
