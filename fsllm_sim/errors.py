"""Exceptions that reach the user as one line.

The CLI catches :class:`FsllmError` and :class:`ChannelModelError`, prints ``error: <message>`` and
exits with status 2, so every message must stand on its own: name the field or argument, the bad
value and what is allowed.

``ValidityRangeError`` and its base ``ChannelModelError`` are defined in :mod:`channel_models.errors`
(the channel models import nothing of the project) and re-exported here, so
``fsllm_sim.errors.ValidityRangeError`` is the very class the channel models raise. It is a
``ValueError`` but not an ``FsllmError``: code that must catch every user-facing error catches
``(FsllmError, ChannelModelError)`` (``USER_ERRORS``).
"""

from channel_models.errors import ChannelModelError, ValidityRangeError


class FsllmError(Exception):
    """Base class of the project's errors the user is meant to read (never a traceback); the channel
    models' own are :class:`ChannelModelError`."""


class ConfigError(FsllmError, ValueError):
    """A scenario field is unknown, of the wrong type or outside its allowed range."""


class DataError(FsllmError):
    """Training data is missing, empty or inconsistent with the model (e.g. sequence too long)."""


class ModelLoadError(FsllmError):
    """A model cannot be loaded (unknown name, missing file, hub download needed while offline)."""


class SolverError(FsllmError, ValueError):
    """An optimisation problem is malformed or infeasible (e.g. more clients than subchannels)."""


# Every error meant for the user as one line: ``except USER_ERRORS as exc`` prints ``exc``.
USER_ERRORS = (FsllmError, ChannelModelError)

__all__ = ["FsllmError", "ConfigError", "ValidityRangeError", "ChannelModelError", "DataError", "ModelLoadError",
           "SolverError", "USER_ERRORS"]
