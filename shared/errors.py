"""The small hierarchy of errors every service raises and maps."""

from __future__ import annotations


class GardienError(Exception):
    """Base of every error Gardien raises on purpose."""


class PermanentError(GardienError):
    """Retrying cannot help: the message is dead-lettered and acknowledged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventRejected(PermanentError):
    """An inbound event failed validation; ``reason`` never carries payload values."""


class TransitionRefused(PermanentError):
    """A domain refusal: the event is valid but cannot apply to the current state."""


class TransientError(GardienError):
    """A failure worth retrying (a store or broker briefly unreachable)."""


class NotFound(GardienError):
    """The asked-for resource does not exist."""
