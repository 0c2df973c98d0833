"""The lifecycle of a request (pure): which follow-up may move it, where to, and its clock.

No I/O and no clock reads: dates come in as parameters; every legal computation is the
rules engine's (``shared.rules``), this module only keeps the state machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

from services.intake.messages import jsonable
from shared import rules
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


ACTIVE = frozenset({Status.RECEIVED, Status.IN_PROGRESS, Status.EXTENDED})
PAUSED = frozenset({Status.AWAITING_IDENTITY, Status.AWAITING_INFORMATION})
ANSWERED = frozenset({Status.RESPONDED, Status.PARTLY_REFUSED, Status.REFUSED})
FINAL = ANSWERED | {Status.CLOSED}

IDENTITY_REASONS = frozenset({"identity", "identity_verification"})
FOLLOW_UPS = ("identity_verified", "info_requested", "info_received", "extended", "responded")


@dataclass(frozen=True)
class Answer:
    """The controller's answer: outcome, reasons and complaint rights (Art 12(4))."""

    responded_on: date
    outcome: Status
    reasons: tuple[str, ...] = ()
    complaint_rights_given: bool = False


@dataclass(frozen=True)
class Lifecycle:
    """Everything the state machine and the clock need to know about one request."""

    status: Status
    receipt: date
    calendar: str = "FR-metropole"
    resume_to: Status = Status.RECEIVED
    pauses: tuple[rules.Pause, ...] = ()
    extension: rules.Extension | None = None
    extension_reasons: tuple[str, ...] = ()
    answer: Answer | None = None
    open_work: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Step:
    """One follow-up as the state machine reads it (dates already local to Europe/Paris)."""

    kind: str
    on: date
    reason: str | None = None
    reasons: tuple[str, ...] = ()
    outcome: str = "responded"
    complaint_rights_given: bool = False


def clock(lc: Lifecycle) -> dict[str, Any]:
    """The request's clock as published in events (docs/events.md), via R-DSR-1..3.

    ``due_date`` and ``base_due_date`` are the one-month end (with paused days);
    ``effective_due_date`` is the extended end when ``extension_valid``, else the base.
    """
    ext = rules.extension(lc.receipt, lc.extension, lc.calendar, lc.pauses)
    base = ext.base
    state = "stopped" if lc.answer else "paused" if base.paused_since else "running"
    out: dict[str, Any] = {
        "receipt_date": base.receipt_date,
        "raw_due_date": base.raw_due_date,
        "due_date": base.due_date,
        "base_due_date": base.due_date,
        "extension_valid": ext.extension_valid,
        "extension_notified_on": lc.extension.notified_on if lc.extension else None,
        "extended_due_date": ext.extended_due_date,
        "effective_due_date": ext.effective_due_date,
        "paused_days": base.paused_days,
        "paused_since": base.paused_since,
        "state": state,
        "calendar": lc.calendar,
        "basis": "R-DSR-2" if ext.extension_valid else "R-DSR-1",
        "late_information_requests": list(base.late_information_requests),
    }
    if lc.answer is not None:
        out["responded_on"] = lc.answer.responded_on
        due = ext.effective_due_date
        out["on_time"] = None if due is None else rules.on_time(lc.answer.responded_on, due)
    return out


def apply(lc: Lifecycle, step: Step) -> Lifecycle:
    """The request after ``step``, or TransitionRefused with the reason it cannot apply."""
    if lc.status is Status.CLOSED:
        raise TransitionRefused(f"{step.kind}: the request is closed")
    if step.on < lc.receipt:
        raise TransitionRefused(f"{step.kind} on {step.on} is before receipt on {lc.receipt}")
    moves = {
        "info_requested": _info_requested,
        "info_received": _info_received,
        "identity_verified": _identity_verified,
        "extended": _extended,
        "responded": _responded,
    }
    if step.kind not in moves:
        raise TransitionRefused(f"intake does not handle {step.kind}")
    return moves[step.kind](lc, step)


def close_if_done(lc: Lifecycle) -> Lifecycle:
    """An answered request whose erasure work is all closed is closed."""
    if lc.status in ANSWERED and not lc.open_work:
        return replace(lc, status=Status.CLOSED)
    return lc


def _info_requested(lc: Lifecycle, step: Step) -> Lifecycle:
    if lc.status not in ACTIVE:
        raise TransitionRefused(f"cannot request information while the request is {lc.status}")
    identity = step.reason in IDENTITY_REASONS
    reason = "identity_verification" if identity else (step.reason or "clarification")
    pause = rules.Pause(step.on, None, reason)
    status = Status.AWAITING_IDENTITY if identity else Status.AWAITING_INFORMATION
    return replace(lc, status=status, resume_to=lc.status, pauses=(*lc.pauses, pause))


def _end_pause(lc: Lifecycle, on: date) -> tuple[rules.Pause, ...]:
    last = lc.pauses[-1]
    if on < last.requested_on:
        raise TransitionRefused(f"answer on {on} predates the request for it ({last.requested_on})")
    return (*lc.pauses[:-1], replace(last, received_on=on))


def _info_received(lc: Lifecycle, step: Step) -> Lifecycle:
    if lc.status not in PAUSED:
        raise TransitionRefused(f"no information was awaited: the request is {lc.status}")
    return replace(lc, status=lc.resume_to, pauses=_end_pause(lc, step.on))


def _identity_verified(lc: Lifecycle, step: Step) -> Lifecycle:
    if lc.status is Status.RECEIVED:
        return replace(lc, status=Status.IN_PROGRESS)
    if lc.status is Status.AWAITING_IDENTITY:
        resume = Status.IN_PROGRESS if lc.resume_to is Status.RECEIVED else lc.resume_to
        return replace(lc, status=resume, pauses=_end_pause(lc, step.on))
    raise TransitionRefused(f"identity cannot be verified while the request is {lc.status}")


def _extended(lc: Lifecycle, step: Step) -> Lifecycle:
    if lc.status is Status.EXTENDED:
        raise TransitionRefused("the request was already extended (Art 12(3) allows one period)")
    if lc.status not in ACTIVE:
        raise TransitionRefused(f"a request that is {lc.status} cannot be extended")
    if not step.reasons:
        raise TransitionRefused("an extension needs reasons (GDPR Art 12(3))")
    notice = rules.Extension(step.on, reasons_given=True)
    result = rules.extension(lc.receipt, notice, lc.calendar, lc.pauses)
    if not result.extension_valid:
        raise TransitionRefused(
            f"extension notified on {step.on} after the one-month limit "
            f"{result.base.due_date} (R-DSR-2, GDPR Art 12(3)); the due date stands"
        )
    return replace(lc, status=Status.EXTENDED, extension=notice, extension_reasons=step.reasons)


def _responded(lc: Lifecycle, step: Step) -> Lifecycle:
    if lc.status in ANSWERED:
        raise TransitionRefused(f"the request was already answered ({lc.status})")
    outcome = Status(step.outcome)
    pauses = lc.pauses
    if lc.status in PAUSED:
        if outcome is not Status.REFUSED:
            raise TransitionRefused(
                f"the request is {lc.status}: only a refusal can answer it before the data "
                "subject replies"
            )
        pauses = _end_pause(lc, step.on)
    if outcome is not Status.RESPONDED and not step.reasons:
        raise TransitionRefused("a refusal needs reasons (GDPR Art 12(4))")
    answer = Answer(step.on, outcome, step.reasons, step.complaint_rights_given)
    return replace(lc, status=outcome, pauses=pauses, answer=answer)


def answer_flags(answer: Answer) -> list[str]:
    """Flags an answer raises: a refusal without complaint rights breaches Art 12(4)."""
    refused = answer.outcome is not Status.RESPONDED
    return (
        ["art12_4_complaint_rights_missing"]
        if refused and not answer.complaint_rights_given
        else []
    )


# ---- stored form ----------------------------------------------------------------------


def _entries(raw: Any) -> list[dict[str, Any]]:
    return [json.loads(e) if isinstance(e, str) else dict(e) for e in raw or []]


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


def lifecycle_of(doc: dict[str, Any]) -> Lifecycle:
    """The lifecycle stored in a request document."""
    ext, ans = doc.get("extension"), doc.get("answer")
    pauses = tuple(
        rules.Pause(date.fromisoformat(p["requested_on"]), _day(p.get("received_on")), p["reason"])
        for p in _entries(doc.get("pauses"))
    )
    answer = None
    if ans:
        reasons = tuple(ans.get("reasons", []))
        rights = bool(ans.get("complaint_rights_given"))
        answer = Answer(
            date.fromisoformat(ans["responded_on"]), Status(ans["outcome"]), reasons, rights
        )
    return Lifecycle(
        status=Status(doc["status"]),
        receipt=date.fromisoformat(doc["receipt_date"]),
        calendar=doc.get("calendar", "FR-metropole"),
        resume_to=Status(doc.get("resume_to", Status.RECEIVED)),
        pauses=pauses,
        extension=(rules.Extension(date.fromisoformat(ext["notified_on"]), True) if ext else None),
        extension_reasons=tuple(ext["reasons"]) if ext else (),
        answer=answer,
        open_work=frozenset(doc.get("open_work", [])),
    )


def fields(lc: Lifecycle) -> dict[str, Any]:
    """The document fields that hold ``lc``, its clock included."""
    answer = None
    if lc.answer is not None:
        a = lc.answer
        answer = {
            "responded_on": a.responded_on,
            "outcome": a.outcome.value,
            "reasons": list(a.reasons),
            "complaint_rights_given": a.complaint_rights_given,
        }
    extension = None
    if lc.extension is not None:
        extension = {"notified_on": lc.extension.notified_on, "reasons": list(lc.extension_reasons)}
    pauses = [
        {"requested_on": p.requested_on, "received_on": p.received_on, "reason": p.reason}
        for p in lc.pauses
    ]
    out: dict[str, Any] = jsonable(
        {
            "status": lc.status.value,
            "resume_to": lc.resume_to.value,
            "receipt_date": lc.receipt,
            "calendar": lc.calendar,
            "pauses": pauses,
            "extension": extension,
            "answer": answer,
            "open_work": sorted(lc.open_work),
            "clock": clock(lc),
        }
    )
    return out
