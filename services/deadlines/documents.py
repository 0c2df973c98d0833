"""The stored form of a timer and the events derived from it (no I/O)."""

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
from shared.outbox import outbox_entry
from shared.rules import Policy

SOURCE = "gardien/deadlines"
DEADLINE = "gardien.deadline."
PURGE_ACTIONS = {"delete": "erase", "delete_or_anonymise": "erase", "anonymise": "anonymise"}


@dataclass(frozen=True)
class Change:
    """What an inbound event does to one timer: its new spec, inputs and index fields."""

    spec: TimerSpec
    inputs: dict[str, Any]
    fields: dict[str, Any] = field(default_factory=dict)


def timer_fields(spec: TimerSpec, fired: set[str], policy: Policy) -> dict[str, Any]:
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


def new_timer(change: Change, policy: Policy, event_id: str) -> dict[str, Any]:
    """A complete new timer document (its outbox is added by the caller)."""
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
        "outbox": [],
        "outbox_pending": False,
    }


def spec_of(doc: dict[str, Any]) -> TimerSpec:
    """The spec a stored timer was built from."""
    due_ms = doc.get("due_ms")
    return TimerSpec(
        str(doc["_id"]), Kind(doc["kind"]), dict(doc["ref"]), tuple(doc["rules"]),
        Base(doc["base"]), from_ms(due_ms) if due_ms is not None else None,
        date.fromisoformat(doc["due_date"]) if doc.get("due_date") else None,
        dict(doc.get("details") or {}),
    )  # fmt: skip


def deadline_event(
    doc: dict[str, Any], kind: str, event_id: str, at: datetime, **extra: Any
) -> tuple[CloudEvent, str]:
    """A ``gardien.deadline.<kind>`` event of a timer, keyed by the timer id."""
    firing = extra.pop("firing", None)
    data = event_data(doc, firing, **extra)
    event = new_event(DEADLINE + kind, data, source=SOURCE, event_id=event_id, time=at)
    return event, str(doc["_id"])


def change_events(
    old: dict[str, Any] | None, new: dict[str, Any], cause: CloudEvent
) -> list[tuple[CloudEvent, str]]:
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


def firing_events(doc: dict[str, Any], emitted: list[Firing]) -> list[tuple[CloudEvent, str]]:
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


def purge_work(doc: dict[str, Any], at: datetime) -> tuple[CloudEvent, str]:
    """Erasure work for an expired retention period (R-RET-1: delete or anonymise)."""
    details, inputs = doc["details"], doc.get("inputs", {})
    case_id = f"ret:{doc['_id']}"
    data: dict[str, Any] = {
        "case_id": case_id,
        "origin": "retention",
        "timer_id": doc["_id"],
        "categories": [
            {
                "category": details["category"],
                "action": PURGE_ACTIONS.get(details.get("action", ""), "erase"),
                "ground": f"R-RET-1 retention expired ({details.get('category_basis')})",
                "retain_until": details.get("effective_retain_until"),
            }
        ],
        "due_by": doc.get("due_date"),
    }
    if inputs.get("subject"):
        data["subject"] = inputs["subject"]
    if inputs.get("contract_id"):
        data["contract_id"] = inputs["contract_id"]
    event_id = f"{doc['_id']}:purge:{doc.get('due_at')}"
    event = new_event(
        "gardien.erasure.work.requested", data, source=SOURCE, event_id=event_id, time=at
    )
    return event, case_id


def outbox_fields(events: list[tuple[CloudEvent, str]], wall_ms: int) -> dict[str, Any]:
    """``$set`` fields that go with queued events (the start-up sweep finds them)."""
    return {"outbox_pending": True, "outbox_at_ms": wall_ms} if events else {}


def entries(events: list[tuple[CloudEvent, str]]) -> list[dict[str, Any]]:
    return [outbox_entry(event, key) for event, key in events]
