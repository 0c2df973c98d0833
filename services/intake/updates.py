"""Pure builders of request-document updates: transitions, refusals, case progress."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from services.intake import domain, messages, state
from services.intake.decisions import Decided
from services.intake.domain import Lifecycle, Status, Step
from shared import rules
from shared.events import CloudEvent
from shared.events.inbound import RequestExtended, RequestResponded, RequestStep
from shared.outbox import outbox_entry

Update = dict[str, Any]


def appended(doc: dict[str, Any], update: Update, event_id: str) -> Update:
    """Turn ``$push`` into ``$set`` of whole arrays (safe under the version lock).

    The embedded MongoDB server stores objects pushed with ``$push`` as JSON strings, so
    arrays of objects are always written whole.
    """
    pushes = update.pop("$push", {})
    sets = update.setdefault("$set", {})
    for name, value in pushes.items():
        items = value["$each"] if isinstance(value, dict) and "$each" in value else [value]
        sets[name] = [*doc.get(name, []), *items]
    sets["applied_events"] = [*doc.get("applied_events", []), event_id][-500:]
    return update


def moved(
    doc: dict[str, Any], event: CloudEvent, data: RequestStep, before: Lifecycle, after: Lifecycle
) -> Update:
    """The update of a transition: new state, history, status events, released work."""
    outgoing: list[CloudEvent] = []
    sets: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    flags = list(doc.get("flags", []))
    if after.answer is not None and before.answer is None:
        flags += [f for f in domain.answer_flags(after.answer) if f not in flags]
    held = doc.get("held_work", [])
    if held and event.type.endswith("identity_verified"):
        after = replace(after, open_work=after.open_work | {"req"})
        sets["held_work"] = []
    elif held and after.status is Status.REFUSED:
        sets["held_work"], held = [], []  # a refused request's work is never sent
    else:
        held = []
    closed = domain.close_if_done(after)
    extra = _step_extra(event)
    for suffix, src, dst in (("status", before, after), ("closed", after, closed)):
        if src.status is dst.status:
            continue
        fields = state.fields(dst)
        moved = (src.status.value, dst.status.value)
        outgoing.append(
            messages.status_changed(
                event,
                suffix,
                doc["_id"],
                moved,
                {"at": data.at, "clock": fields["clock"], "flags": flags, **extra},
            )
        )
        history.append(entry(dst.status, event, data.at, extra))
    sets.update({**state.fields(closed), "flags": flags})
    entries = [outbox_entry(e, doc["_id"]) for e in outgoing] + list(held)
    return {
        "$set": {**sets, "outbox_pending": True},
        "$push": {"outbox": {"$each": entries}, "history": {"$each": history}},
    }


def refusal(doc: dict[str, Any], event: CloudEvent, reason: str) -> Update:
    """The update of a refused transition: state unchanged, the refusal audited."""
    refused = messages.transition_refused(event, doc["_id"], doc["status"], reason)
    record = {"cause": event.type, "event_id": event.id, "reason": reason, "at": event.time}
    return {
        "$set": {"outbox_pending": True},
        "$push": {"outbox": outbox_entry(refused, doc["_id"]), "refusals": record},
    }


def progress(doc: dict[str, Any], event: CloudEvent, kind: str) -> Update | None:
    """The update of an erasure case report: per-system progress, maybe closing."""
    case_state = event.type.removeprefix("gardien.erasure.case.")
    current = doc.get("progress", {}).get(kind, {})
    if current.get("state") == "closed" and case_state != "closed":
        return None  # a late report never reopens a closed case
    systems = event.data.get("systems") or {}
    report = {
        "case_id": event.data.get("case_id"),
        "state": case_state,
        "systems": [{"system": k, **v} for k, v in systems.items() if isinstance(v, dict)],
        "closed_at": event.data.get("closed_at"),
        "art19": event.data.get("art19"),
        "updated_at": event.time,
    }
    update: Update = {"$set": {f"progress.{kind}": report}}
    if case_state != "closed":
        return update
    before = state.lifecycle(doc)
    lc = replace(before, open_work=before.open_work - {kind})
    closed = domain.close_if_done(lc)
    update["$set"].update(state.fields(closed))
    if closed.status is not lc.status:
        fields = state.fields(closed)
        moved = (lc.status.value, closed.status.value)
        changed = messages.status_changed(
            event, "closed", doc["_id"], moved, {"at": event.time, "clock": fields["clock"]}
        )
        update["$set"]["outbox_pending"] = True
        update["$push"] = {
            "outbox": outbox_entry(changed, doc["_id"]),
            "history": entry(closed.status, event, event.time),
        }
    return update


def step_of(event: CloudEvent, data: RequestStep, tz: str) -> Step:
    kind = event.type.removeprefix("gdpr.request.")
    on = rules.local_date(data.at, tz)
    if isinstance(data, RequestExtended):
        return Step(kind, on, data.reason, tuple(data.reasons))
    if isinstance(data, RequestResponded):
        return Step(
            kind,
            on,
            data.reason,
            tuple(data.reasons),
            data.outcome.value,
            data.complaint_rights_given,
        )
    return Step(kind, on, data.reason)


def _step_extra(event: CloudEvent) -> dict[str, Any]:
    keys = ("reasons", "reason", "outcome", "complaint_rights_given")
    return {k: event.data[k] for k in keys if k in event.data}


def decision_fields(d: Decided) -> dict[str, Any]:
    return {
        "decisions": d.decisions,
        "flags": d.flags,
        "frequency": d.frequency,
        "objection": d.objection,
        "post_mortem": d.post_mortem,
        "details_error": d.details_error,
        "work_case": d.work_case if d.work else None,
        "open_work": [],
    }


def entry(status: Status, event: CloudEvent, at: Any, extra: dict[str, Any] | None = None) -> Any:
    return {
        "status": status.value,
        "at": at,
        "event_id": event.id,
        "cause": event.type,
        **(extra or {}),
    }
