"""User-facing errors.

Every error a user can cause derives from :class:`OVDetError` and also from the builtin exception a Python user
would expect (``ValueError``, ``FileNotFoundError``, ...), so ``except ValueError`` keeps working. Messages name the
problem and the fix. The CLI prints them as one line and exits with status 2; anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "OVDetError",
    "ConfigError",
    "UnknownModelError",
    "CheckpointError",
    "VocabularyError",
    "SourceError",
    "WeightsUnavailableError",
    "PickleRefusedError",
    "DatasetError",
    "DisplayError",
    "FusedModelError",
    "OutputError",
]


class OVDetError(Exception):
    """Base class of every error ovdet raises for bad input."""


class ConfigError(OVDetError, ValueError):
    """A configuration file or value is invalid."""


class UnknownModelError(OVDetError, KeyError):
    """A model or weights name is not known; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0]) if self.args else ""


class CheckpointError(OVDetError, ValueError):
    """A saved model folder is missing, incomplete or of an unsupported format."""


class VocabularyError(OVDetError, ValueError):
    """Classes or class embeddings are missing or malformed."""


class SourceError(OVDetError, FileNotFoundError):
    """An image, video or stream source cannot be found, opened or decoded."""


class WeightsUnavailableError(OVDetError, FileNotFoundError):
    """Pretrained weights are needed but cannot be downloaded (typically: no network)."""


class PickleRefusedError(OVDetError, PermissionError):
    """A pickle file would have to be unpickled, and the caller did not say it trusts it."""


class DatasetError(OVDetError, ValueError):
    """A dataset description or its annotations are invalid."""


class DisplayError(OVDetError, RuntimeError):
    """A window was asked for (``--show``) where there is no display, or OpenCV was built without GUI support."""


class FusedModelError(OVDetError, RuntimeError):
    """A model fused for inference (``model.fuse()``) was asked to train, load or save weights."""


class OutputError(OVDetError, OSError):
    """An output path cannot be used: a file where a folder goes (or the reverse), a folder holding files ovdet did
    not write, or a place that cannot be written. Raised before any work starts."""
