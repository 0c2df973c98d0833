"""The stored form of a timer and the events derived from it (no I/O).

Outgoing events are built from the typed models of deadlines' section of
``shared/events/internal.py`` (``DeadlineEvent``, ``RetentionPurgeRequested``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from services.deadlines.domain import (
    CLOSED,
    Base,
    Firing,
    Kind,
    TimerSpec,
    event_data,
    firing_plan,
    from_ms,
    iso_utc,
    next_fire_ms,
    shown_state,
    sort_key,
    to_ms,
)
from shared.events import CloudEvent, new_event
from shared.events.internal import DeadlineEvent, RetentionPurgeRequested, WorkCategory
from shared.outbox import outbox_entry
from shared.rules import Policy

SOURCE = "gardien/deadlines"
DEADLINE = "gardien.deadline."
PURGE = "gardien.erasure.work.requested"
PURGE_ACTIONS = {"delete": "erase", "delete_or_anonymise": "erase", "anonymise": "anonymise"}
Doc = dict[str, Any]
Outgoing = tuple[CloudEvent, str]


@dataclass(frozen=True)
class Recompute:
    """What an inbound event does to one timer: its new spec, inputs and index fields."""

    spec: TimerSpec
    inputs: Doc
    fields: Doc = field(default_factory=dict)


def timer_fields(spec: TimerSpec, fired: set[str], policy: Policy) -> Doc:
    """The computed fields of a timer document for ``spec`` (plan, next firing, state)."""
    plan = firing_plan(spec, policy.rights.reminder_days(), policy.breach.reminder_hours())
    due_ms = to_ms(spec.due_at) if spec.due_at is not None else None
    return {
        "kind": spec.kind.value,
        "ref": spec.ref,
        "rules": list(spec.rules),
        "basis": spec.basis,
        "base": spec.base.value,
        "state": shown_state(spec.base, plan, fired, due_ms).value,
        "due_at": iso_utc(spec.due_at) if spec.due_at is not None else None,
        "due_ms": due_ms,
        "due_date": spec.due_date.isoformat() if spec.due_date else None,
        "plan": [f.to_doc() for f in plan],
        "next_fire_ms": next_fire_ms(plan, fired, due_ms),
        "sort_key": sort_key(due_ms, spec.timer_id),
        "details": spec.details,
    }


def new_timer(change: Recompute, policy: Policy, event_id: str, at: datetime | None = None) -> Doc:
    """A complete new timer document (free, nothing fired, no outbox).

    ``first_event_time`` keeps the time ``at`` of the event ``event_id`` that created it, so
    that its first events can be rebuilt identically (``first_events_again``).
    """
    return {
        "_id": change.spec.timer_id,
        "version": 1,
        "inputs": change.inputs,
        **timer_fields(change.spec, set(), policy),
        **change.fields,
        "fired": [],
        "lease_until_ms": 0,
        "lease_token": None,
        "applied_events": [event_id],
        "first_event_time": at.isoformat() if at is not None else None,
        "outbox": [],
        "outbox_pending": False,
    }


def spec_of(doc: Doc) -> TimerSpec:
    """The spec a stored timer was built from."""
    due_ms = doc.get("due_ms")
    return TimerSpec(
        str(doc["_id"]), Kind(doc["kind"]), dict(doc["ref"]), tuple(doc["rules"]),
        Base(doc["base"]), from_ms(due_ms) if due_ms is not None else None,
        date.fromisoformat(doc["due_date"]) if doc.get("due_date") else None,
        dict(doc.get("details") or {}),
    )  # fmt: skip


def deadline_event(doc: Doc, kind: str, event_id: str, at: datetime, **extra: Any) -> Outgoing:
    """A ``gardien.deadline.<kind>`` event of a timer, keyed by the timer id."""
    firing = extra.pop("firing", None)
    data = DeadlineEvent.model_validate(event_data(doc, firing, **extra))
    payload = data.model_dump(mode="json", exclude_none=True)
    event = new_event(DEADLINE + kind, payload, source=SOURCE, event_id=event_id, time=at)
    return event, str(doc["_id"])


def change_events(old: Doc | None, new: Doc, cause: CloudEvent) -> list[Outgoing]:
    """Events an inbound change causes: ``scheduled`` when the deadline moves, ``met`` or
    ``missed`` when the obligation closes."""
    tid, events = str(new["_id"]), []
    old_base = Base(old["base"]) if old else None
    opened = new["base"] == Base.OPEN and new.get("due_at")
    moved = old is None or old.get("due_at") != new.get("due_at") or old_base is not Base.OPEN
    if opened and moved:
        event_id = f"{cause.id}:{tid}:scheduled"
        events.append(deadline_event(new, "scheduled", event_id, cause.time, state=new["state"]))
    closing = Base(new["base"]) in (Base.MET, Base.MISSED)
    if closing and old_base not in CLOSED:
        kind = new["base"]
        extra = {k: v for k, v in new["details"].items() if k in CLOSE_DETAILS}
        event_id = f"{cause.id}:{tid}:{kind}"
        events.append(deadline_event(new, kind, event_id, cause.time, stage="closed", **extra))
    return events


def in_first_state(doc: Doc, event_id: str) -> bool:
    """True while ``doc`` is as the event ``event_id`` created it: no later inbound event
    applied (``applied_events`` is that event alone) and nothing fired by the scheduler."""
    return list(doc.get("applied_events") or []) == [event_id] and not doc.get("fired")


def first_events_again(doc: Doc, cause: CloudEvent, queued: set[str]) -> list[Outgoing]:
    """The events the creation of ``doc`` caused, rebuilt identically (ids, data, time),
    when ``cause`` (the event that created it) is delivered again while the timer is in its
    first state (``in_first_state``); none of the ids in ``queued`` (still in the outbox
    or already caused by this batch). The broker may have lost them after the outbox was
    cleared; consumers keep an event id once (docs/reliability.md §3)."""
    if not in_first_state(doc, cause.id):
        return []
    stored = doc.get("first_event_time")
    at = datetime.fromisoformat(stored) if stored else cause.time
    events = change_events(None, doc, cause.model_copy(update={"time": at}))
    return [(e, key) for e, key in events if e.id not in queued]


CLOSE_DETAILS = {
    "notified_at",
    "late",
    "reasons_for_delay_required",
    "reasons_for_delay_given",
    "responded_on",
    "on_time",
    "certified_on",
    "status",
}


def firing_events(doc: Doc, emitted: list[Firing]) -> list[Outgoing]:
    """The events of firings emitted by the scheduler (ids ``<timer>:<firing>:<due_at>``)."""
    events = []
    for firing in emitted:
        event_id = f"{doc['_id']}:{firing.name}:{doc.get('due_at')}"
        at = from_ms(firing.at_ms)
        extra: dict[str, Any] = {"firing": firing}
        if firing.type == "missed":
            extra["stage"] = "deadline_passed"
        events.append(deadline_event(doc, firing.type, event_id, at, **extra))
        if doc["kind"] == Kind.RETENTION and firing.type == "due":
            events.append(purge_work(doc, at))
    return events


def purge_work(doc: Doc, at: datetime) -> Outgoing:
    """Erasure work for an expired retention period (R-RET-1: delete or anonymise).

    The subject stays as stored (sealed); the scheduler opens it for the copy it sends.
    """
    details, inputs = doc["details"], doc.get("inputs", {})
    category = WorkCategory(
        category=details["category"],
        action=PURGE_ACTIONS.get(details.get("action", ""), "erase"),
        ground=f"R-RET-1 retention expired ({details.get('category_basis')})",
        retain_until=details.get("effective_retain_until"),
    )
    work = RetentionPurgeRequested(
        case_id=f"ret:{doc['_id']}",
        timer_id=str(doc["_id"]),
        categories=[category],
        due_by=doc.get("due_date"),
        subject=inputs.get("subject") or None,
        contract_id=inputs.get("contract_id") or None,
    )
    data = work.model_dump(mode="json", exclude_none=True)
    event_id = f"{doc['_id']}:purge:{doc.get('due_at')}"
    return new_event(PURGE, data, source=SOURCE, event_id=event_id, time=at), work.case_id


def entries(events: list[Outgoing]) -> list[Doc]:
    """The stored (outbox) form of ``events``."""
    return [outbox_entry(event, key) for event, key in events]
