"""Pure rules of a request's life: which follow-up may move it, and where to."""

from __future__ import annotations

from enum import StrEnum

from shared.errors import TransitionRefused


class Status(StrEnum):
    RECEIVED = "received"
    AWAITING_IDENTITY = "awaiting_identity"
    AWAITING_INFORMATION = "awaiting_information"
    IN_PROGRESS = "in_progress"
    EXTENDED = "extended"
    RESPONDED = "responded"
    PARTLY_REFUSED = "partly_refused"
    REFUSED = "refused"
    CLOSED = "closed"


ACTIVE = {Status.RECEIVED, Status.IN_PROGRESS, Status.EXTENDED}
PAUSED = {Status.AWAITING_IDENTITY, Status.AWAITING_INFORMATION}
FINAL = {Status.RESPONDED, Status.PARTLY_REFUSED, Status.REFUSED, Status.CLOSED}

IDENTITY_REASONS = {"identity", "identity_verification"}


def after_info_requested(current: Status, reason: str | None) -> Status:
    """Status once the controller asks the subject for identity proof or information."""
    if current not in ACTIVE:
        raise TransitionRefused(f"cannot request information while the request is {current}")
    return Status.AWAITING_IDENTITY if reason in IDENTITY_REASONS else Status.AWAITING_INFORMATION


def after_info_received(current: Status, resume_to: Status) -> Status:
    """Status once the subject answers: the clock resumes where it was."""
    if current not in PAUSED:
        raise TransitionRefused(f"no information was awaited: the request is {current}")
    return resume_to


def after_identity_verified(current: Status, resume_to: Status) -> Status:
    """Status once identity is verified: work starts, or resumes after a pause."""
    if current is Status.RECEIVED:
        return Status.IN_PROGRESS
    if current is Status.AWAITING_IDENTITY:
        return Status.IN_PROGRESS if resume_to is Status.RECEIVED else resume_to
    raise TransitionRefused(f"identity cannot be verified while the request is {current}")


def after_extended(current: Status) -> Status:
    """Status once an extension is notified (its validity is checked by the rules engine)."""
    if current not in {Status.RECEIVED, Status.IN_PROGRESS}:
        raise TransitionRefused(f"a request that is {current} cannot be extended")
    return Status.EXTENDED


def after_responded(current: Status, outcome: str) -> Status:
    """Status once the controller has answered (fully, partly refused or refused)."""
    if current in FINAL:
        raise TransitionRefused(f"the request was already answered ({current})")
    if current in PAUSED:
        raise TransitionRefused(f"the request is paused ({current}); record the answer first")
    return Status(outcome)
