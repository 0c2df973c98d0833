"""The events intake publishes (docs/events.md), with deterministic derived ids (pure)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from services.intake.decisions import Decided
from shared.events import CloudEvent, new_event

SOURCE = "gardien/intake"


def jsonable(value: Any) -> Any:
    """Dates as ``YYYY-MM-DD``, instants as ISO 8601, containers recursively."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def derived(cause: CloudEvent, suffix: str, event_type: str, data: dict[str, Any]) -> CloudEvent:
    """An event caused by ``cause``: its id is ``<cause id>:<suffix>``, its time the cause's."""
    return new_event(
        event_type,
        jsonable(data),
        source=SOURCE,
        event_id=f"{cause.id}:{suffix}",
        time=cause.time,
    )


def accepted(cause: CloudEvent, doc: dict[str, Any]) -> CloudEvent:
    """``gardien.request.accepted``: the request is recorded and its clock runs."""
    data = {
        "request_id": doc["_id"],
        "right": doc["right"],
        "status": doc["status"],
        "received_at": doc["received_at"],
        "channel": doc["channel"],
        "subject_kind": doc["subject"]["kind"],
        "clock": doc["clock"],
        "flags": doc["flags"],
    }
    return derived(cause, "accepted", "gardien.request.accepted", data)


def decided(cause: CloudEvent, request_id: str, right: str, d: Decided) -> CloudEvent:
    """``gardien.request.decided``: per-category decisions, flags and screening results."""
    data: dict[str, Any] = {
        "request_id": request_id,
        "right": right,
        "decisions": d.decisions,
        "flags": d.flags,
    }
    extras = {
        "frequency": d.frequency,
        "objection": d.objection,
        "post_mortem": d.post_mortem,
        "details_error": d.details_error,
    }
    data.update({k: v for k, v in extras.items() if v is not None})
    return derived(cause, "decided", "gardien.request.decided", data)


def work_requested(
    cause: CloudEvent, request_id: str, subject: dict[str, Any], d: Decided, due_by: str | None
) -> CloudEvent:
    """``gardien.erasure.work.requested`` for the erasure service (case ``req:``/``obj:``)."""
    origin = "objection" if d.work_case == "obj" else "request"
    data = {
        "case_id": f"{d.work_case}:{request_id}",
        "origin": origin,
        "request_id": request_id,
        "subject": subject,
        "categories": d.work,
        "due_by": due_by,
    }
    return derived(cause, "work", "gardien.erasure.work.requested", data)


def status_changed(
    cause: CloudEvent, suffix: str, request_id: str, moved: tuple[str, str], extra: dict[str, Any]
) -> CloudEvent:
    """``gardien.request.status_changed`` with the recomputed clock in ``extra``."""
    data = {"request_id": request_id, "from": moved[0], "to": moved[1], "cause": cause.type}
    return derived(cause, suffix, "gardien.request.status_changed", {**data, **extra})


def transition_refused(cause: CloudEvent, request_id: str, status: str, reason: str) -> CloudEvent:
    """``gardien.request.transition_refused``: audited; the request's state is unchanged."""
    data = {"request_id": request_id, "cause": cause.type, "status": status, "reason": reason}
    return derived(cause, "refused", "gardien.request.transition_refused", data)
