"""The events intake publishes and reads (docs/events.md), built from the typed models of
``shared.events.internal`` with deterministic derived ids (pure)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from services.intake.decisions import Decided
from shared.events import CloudEvent, new_event
from shared.events.common import Data, Subject
from shared.events.inbound import RequestReceived
from shared.events.internal import (
    AccessWorkRequested,
    CaseEvent,
    ErasureWorkRequested,
    RequestAccepted,
    RequestDecided,
    RequestStatusChanged,
    RequestTransitionRefused,
)

SOURCE = "gardien/intake"
WORK_REQUESTED = "gardien.erasure.work.requested"
ACCESS_WORK_REQUESTED = "gardien.access.work.requested"


CaseReport = CaseEvent  # erasure's case event (shared/events/internal.py), as intake reads it


class PackageDelivered(Data):
    """What intake reads of ``gardien.access.package.delivered`` (producer: erasure)."""

    request_id: str
    package_id: str = ""
    delivered_at: datetime
    chargeable: bool = False


def jsonable(value: Any) -> Any:
    """Dates as ``YYYY-MM-DD``, instants as ISO 8601, containers recursively."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def wire(data: BaseModel) -> dict[str, Any]:
    """The JSON form of an event's data: the fields given, instants as ``isoformat``."""
    out: dict[str, Any] = jsonable(data.model_dump(by_alias=True, exclude_unset=True))
    return out


def derived(cause: CloudEvent, suffix: str, event_type: str, data: BaseModel) -> CloudEvent:
    """An event caused by ``cause``: its id is ``<cause id>:<suffix>``, its time the cause's."""
    return new_event(
        event_type, wire(data), source=SOURCE, event_id=f"{cause.id}:{suffix}", time=cause.time
    )


def accepted(
    cause: CloudEvent, data: RequestReceived, clock: dict[str, Any], flags: list[str]
) -> CloudEvent:
    """``gardien.request.accepted``: the request is recorded and its clock runs."""
    accepted = RequestAccepted.model_validate(
        {
            **data.model_dump(include={"request_id", "right", "received_at", "channel"}),
            "status": "received",
            "subject_kind": data.subject.kind,
            "clock": clock,
            "flags": flags,
        }
    )
    return derived(cause, "accepted", "gardien.request.accepted", accepted)


def decided(cause: CloudEvent, request_id: str, right: str, d: Decided) -> CloudEvent:
    """``gardien.request.decided``: per-category decisions, flags and screening results."""
    extras = {
        "frequency": d.frequency,
        "objection": d.objection,
        "post_mortem": d.post_mortem,
        "details_error": d.details_error,
    }
    data = RequestDecided.model_validate(
        {
            "request_id": request_id,
            "right": right,
            "decisions": d.decisions,
            "flags": d.flags,
            **{k: jsonable(v) for k, v in extras.items() if v is not None},
        }
    )
    return derived(cause, "decided", "gardien.request.decided", data)


def work_requested(
    cause: CloudEvent, request_id: str, subject: Subject, d: Decided, due_by: str | None
) -> CloudEvent:
    """``gardien.erasure.work.requested`` for the erasure service (case ``req:``/``obj:``)."""
    data = ErasureWorkRequested.model_validate(
        {
            "case_id": f"{d.work_case}:{request_id}",
            "origin": "objection" if d.work_case == "obj" else "request",
            "request_id": request_id,
            "subject": {"kind": subject.kind, "identifiers": subject.identifiers.present()},
            "categories": d.work,
            "due_by": due_by,
        }
    )
    return derived(cause, "work", WORK_REQUESTED, data)


def access_work(
    cause: CloudEvent, data: RequestReceived, d: Decided, due_by: str | None
) -> CloudEvent:
    """``gardien.access.work.requested``: collect the subject's data (case ``acc:<id>``)."""
    work = AccessWorkRequested.model_validate(
        {
            "case_id": f"acc:{data.request_id}",
            "request_id": data.request_id,
            "right": data.right.value,
            "subject": {
                "kind": data.subject.kind,
                "identifiers": data.subject.identifiers.present(),
            },
            "categories": d.collect or [],
            "received_at": data.received_at,
            "due_by": due_by,
        }
    )
    return derived(cause, "work", ACCESS_WORK_REQUESTED, work)


def status_changed(
    cause: CloudEvent, suffix: str, request_id: str, moved: tuple[str, str], extra: dict[str, Any]
) -> CloudEvent:
    """``gardien.request.status_changed`` with the recomputed clock in ``extra``."""
    data = RequestStatusChanged.model_validate(
        {"request_id": request_id, "from": moved[0], "to": moved[1], "cause": cause.type, **extra}
    )
    return derived(cause, suffix, "gardien.request.status_changed", data)


def transition_refused(cause: CloudEvent, request_id: str, status: str, reason: str) -> CloudEvent:
    """``gardien.request.transition_refused``: audited; the request's state is unchanged."""
    data = RequestTransitionRefused.model_validate(
        {"request_id": request_id, "cause": cause.type, "status": status, "reason": reason[:4000]}
    )
    return derived(cause, "refused", "gardien.request.transition_refused", data)
