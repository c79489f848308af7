"""Errors that the CLIs turn into a one-line message and a non-zero exit code.

Anything a user can cause (a missing dataset, an impossible option, a foreign checkpoint) raises a
subclass of :class:`MixlabError` with a message written for that user; a traceback means a bug.
"""


class MixlabError(Exception):
    """Base class of every user-facing error."""


class DatasetError(MixlabError):
    """A dataset is unknown, missing, malformed, or its split/option is impossible."""


class ConfigError(MixlabError):
    """An option value is impossible (a negative LR, a batch not divisible by the repetitions...)."""


class CheckpointError(MixlabError):
    """A checkpoint is missing, corrupt, or was written by another method or model."""


class RunDirError(MixlabError):
    """A run directory exists already, or cannot be resumed."""
