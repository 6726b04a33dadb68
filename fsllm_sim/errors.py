"""Exceptions that reach the user as one line.

The CLI catches :class:`FsllmError`, prints ``error: <message>`` and exits with status 2, so every
message must stand on its own: name the field or argument, the bad value and what is allowed.
"""


class FsllmError(Exception):
    """Base class of every error the user is meant to read (never a traceback)."""


class ConfigError(FsllmError, ValueError):
    """A scenario field is unknown, of the wrong type or outside its allowed range."""


class ValidityRangeError(FsllmError, ValueError):
    """A physical model was asked for outside the range its source (e.g. 3GPP TR 38.901) validates."""


class DataError(FsllmError):
    """Training data is missing, empty or inconsistent with the model (e.g. sequence too long)."""


class ModelLoadError(FsllmError):
    """A model cannot be loaded (unknown name, missing file, hub download needed while offline)."""


class SolverError(FsllmError, ValueError):
    """An optimisation problem is malformed or infeasible (e.g. more clients than subchannels)."""
