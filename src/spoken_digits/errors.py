"""The exceptions spoken-digits raises: one base class, one subclass per kind of bad input."""

from __future__ import annotations


class SpokenDigitsError(Exception):
    """Base of every error the library raises on purpose; the CLI prints its message on one line."""


class ParameterError(SpokenDigitsError, ValueError):
    """A malformed argument or configuration value (unknown model name, negative epochs, ...)."""


class AudioError(SpokenDigitsError):
    """An audio file that cannot be used: missing, empty, corrupt, not audio, silent or non-finite."""


class DatasetError(SpokenDigitsError):
    """FSDD cannot be found, downloaded, verified or indexed."""


class CheckpointError(SpokenDigitsError):
    """A model file that is not a spoken-digits checkpoint, is damaged or of an unknown version."""
