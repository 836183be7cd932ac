"""Exceptions of the CAT engine: every one is an `EngineError`, itself a `ValueError`."""

from __future__ import annotations


class EngineError(ValueError):
    """Base class of the engine's errors (bad input to a session or a configuration)."""


class UnknownItemError(EngineError):
    """An item id that is not in the session's item pool."""


class NotServedError(EngineError):
    """A response to an item other than the one the session served."""


class AlreadyAnsweredError(EngineError):
    """A second response to an item already answered in this session."""


class ResponseOutOfRangeError(EngineError):
    """A response outside the item's categories ``0 … K − 1``."""


class SessionFinishedError(EngineError):
    """A response recorded after the session stopped."""


class ConfigurationError(EngineError):
    """An invalid blueprint, strategy setting or item pool."""
