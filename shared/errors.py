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


class RefusedEvents(PermanentError):
    """Some events of a batch were refused; the handler stored the others.

    ``refusals`` maps each refused event's id to its reason (never payload values). The
    consumer dead-letters exactly those events and commits the poll: the others are not
    handed over again.
    """

    def __init__(self, refusals: dict[str, str]) -> None:
        super().__init__(next(iter(refusals.values()), "refused"))
        self.refusals = dict(refusals)


class TransientError(GardienError):
    """A failure worth retrying (a store or broker briefly unreachable)."""


class NotFound(GardienError):
    """The asked-for resource does not exist."""
