"""The request aggregate (pure): its stored form and every change an event makes to it,
with the events the change causes.

Decisions taken here: screening a new request (through ``decisions``), holding its erasure
work until identity is verified, refusing impossible or duplicate events, progress and
closing on erasure case reports, and which subject keys a closed case shreds. The state
machine and the clock are ``lifecycle``'s. No I/O, no clock reads: ``now`` comes in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from services.intake import lifecycle, messages
from services.intake.decisions import Decided, decide
from services.intake.details import Details, parse_details
from services.intake.first_events import decision_fields, first_events, stored_decision
from services.intake.lifecycle import Lifecycle, Status, Step, fields, lifecycle_of
from services.intake.messages import CaseReport, PackageDelivered, jsonable
from shared import rules
from shared.errors import TransitionRefused
from shared.events import CloudEvent
from shared.events.inbound import RequestExtended, RequestReceived, RequestResponded, RequestStep

Doc = dict[str, Any]
STORAGE = frozenset({"_id", "version", "_w", "outbox", "outbox_pending"})
MAX_APPLIED = 500
DUPLICATE = "duplicate request_id: the first request stands"
GATING = frozenset({"req", "obj"})  # work cases a request stays open for until they close


def entries(raw: Any) -> list[Doc]:
    """Stored event entries (outbox, held work); the embedded server may return JSON text."""
    return [json.loads(e) if isinstance(e, str) else dict(e) for e in raw or []]


@dataclass
class Request:
    """One request during a batch: its fields, and what the batch's events made it cause.

    ``events`` are new events to publish (plain); ``held`` new work to keep until identity
    is verified; ``released`` held entries (stored form) to publish now; ``pending`` stored
    outbox entries an earlier writer left unsent.
    """

    id: str
    doc: Doc
    version: int | None = None
    original: Doc = field(default_factory=dict)
    pending: list[Doc] = field(default_factory=list)
    events: list[CloudEvent] = field(default_factory=list)
    held: list[CloudEvent] = field(default_factory=list)
    released: list[Doc] = field(default_factory=list)

    @classmethod
    def loaded(cls, stored: Doc) -> Request:
        """The aggregate of a stored request document."""
        doc = {k: v for k, v in stored.items() if k not in STORAGE}
        pending = entries(stored.get("outbox"))
        version = int(stored.get("version") or 0)
        return cls(str(stored["_id"]), doc, version, dict(doc), pending)

    @property
    def changed(self) -> Doc:
        """The fields to write: all of a new request, else those the batch changed."""
        if self.version is None:
            return self.doc
        return {
            k: v for k, v in self.doc.items() if k not in self.original or self.original[k] != v
        }

    def has_applied(self, event_id: str) -> bool:
        return event_id == self.doc.get("source_event_id") or event_id in self.doc.get(
            "applied_events", []
        )

    def mark_applied(self, event_id: str) -> None:
        self.doc["applied_events"] = [*self.doc.get("applied_events", []), event_id][-MAX_APPLIED:]

    @property
    def lifecycle(self) -> Lifecycle:
        return lifecycle_of(self.doc)


def receipt_of(data: RequestReceived, policy: rules.Policy) -> date:
    """The receipt date of a new request in the policy's time zone (R-DSR-1)."""
    return rules.receipt_date(data.received_at, policy.timezone)


def screen(
    data: RequestReceived, policy: rules.Policy, past: Sequence[date]
) -> tuple[Decided, Details | None]:
    """The rules engine's decision on a new request, and its details when they are valid.

    ``past``: receipt dates of the subject's other requests of the same right.
    """
    try:
        details = parse_details(data.details)
    except ValueError as exc:  # the request stands; a person reviews its details
        return Decided(flags=["details_invalid"], details_error=str(exc)[:500]), None
    receipt = receipt_of(data, policy)
    kind = data.subject.kind.value
    return decide(data.right.value, kind, details, receipt, policy, past), details


def holds_work(decision: Decided, details: Details | None) -> bool:
    """Hold-until-identity: the work waits for ``identity_verified`` when the details ask."""
    return decision.has_work and details is not None and details.await_identity


@dataclass(frozen=True)
class NewRequest:
    """What a new request is recorded from: its event, screening and sealed personal data."""

    event: CloudEvent
    data: RequestReceived
    decision: Decided
    details: Details | None
    subject_refs: list[str]
    sealed_identifiers: Doc
    sealed_details: Doc


def new_request(new: NewRequest, policy: rules.Policy, now: datetime) -> Request:
    """The request recorded from ``new``, with its accepted/decided/work events."""
    req = Request(new.data.request_id, _document(new, policy, now))
    events, work = first_events(req.doc, new.event, new.data, new.decision)
    req.events += events
    if work is not None and holds_work(new.decision, new.details):
        req.held.append(work)
    elif work is not None:
        req.events.append(work)
        req.doc["open_work"] = [new.decision.work_case] if new.decision.work else []
    return req


def _document(new: NewRequest, policy: rules.Policy, now: datetime) -> Doc:
    """The stored fields of a new request (identifiers and details sealed)."""
    data, event = new.data, new.event
    lc = Lifecycle(Status.RECEIVED, receipt_of(data, policy), policy.holiday_calendar)
    return {
        "source_event_id": event.id,
        "right": data.right.value,
        "received_at": data.received_at,
        "received_tz": data.received_at.isoformat(),
        "channel": data.channel,
        "subject": {"kind": data.subject.kind.value, "identifiers": new.sealed_identifiers},
        "subject_refs": new.subject_refs,
        "details": new.sealed_details,
        "created_at": now,
        **fields(lc),
        **jsonable(decision_fields(new.decision)),
        "history": [entry(Status.RECEIVED, event, data.received_at)],
        "refusals": [],
        "applied_events": [event.id],
        "held_work": [],
    }


def received_again(req: Request, event: CloudEvent, data: RequestReceived) -> None:
    """A second ``received`` for a recorded request: the first stands, a new one is refused.

    The first one again, while the request is still ``received`` and no case reported on it,
    publishes its first events again (same ids and content): the broker may have lost them
    after the outbox was cleared (docs/reliability.md §3). Work held until identity stays
    held. A case report proves they arrived (and a closed case destroyed the keys).
    """
    if event.id != req.doc.get("source_event_id"):
        if not req.has_applied(event.id):
            refuse(req, event, DUPLICATE)
        return
    if req.doc.get("status") != Status.RECEIVED.value or req.doc.get("progress"):
        return  # moved on, or a case reported: the first events arrived (its keys may be gone)
    events, work = first_events(req.doc, event, data, stored_decision(req.doc))
    if work is not None and not entries(req.doc.get("held_work")):
        events.append(work)
    unsent = {str(e["event"]["id"]) for e in req.pending}
    req.events += [e for e in events if e.id not in unsent]


def refuse(req: Request, event: CloudEvent, reason: str) -> None:
    """A refused event: state unchanged, the refusal recorded and audited."""
    status = req.doc["status"]
    req.events.append(messages.transition_refused(event, req.id, status, reason))
    record = {"cause": event.type, "event_id": event.id, "reason": reason, "at": event.time}
    req.doc["refusals"] = [*entries(req.doc.get("refusals")), jsonable(record)]
    req.mark_applied(event.id)


def follow_up(req: Request, event: CloudEvent, data: RequestStep, tz: str) -> None:
    """Move the request on a follow-up; an impossible one is refused (not applied)."""
    if req.has_applied(event.id):
        return
    before = req.lifecycle
    try:
        after = lifecycle.apply(before, step_of(event, data, tz))
    except TransitionRefused as exc:
        refuse(req, event, exc.reason)
        return
    _moved(req, event, data.at, before, after)
    req.mark_applied(event.id)


def _moved(
    req: Request, event: CloudEvent, at: datetime, before: Lifecycle, after: Lifecycle
) -> None:
    """The new state after a transition, its status events, held work released or dropped."""
    doc = req.doc
    flags = list(doc.get("flags", []))
    if after.answer is not None and before.answer is None:
        flags += [f for f in lifecycle.answer_flags(after.answer) if f not in flags]
    held = entries(doc.get("held_work"))
    if held and event.type.endswith("identity_verified"):
        kind = doc.get("work_case") or "req"
        if kind in GATING:  # the answer to an access request is its package, not its case
            after = replace(after, open_work=after.open_work | {kind})
        req.released += held
        doc["held_work"] = []
    elif held and after.status is Status.REFUSED:
        doc["held_work"] = []  # a refused request's work is never sent
    closed = lifecycle.close_if_done(after)
    extra = {"at": at, "flags": flags, **_step_extra(event)}
    history = entries(doc.get("history"))
    for suffix, src, dst in (("status", before, after), ("closed", after, closed)):
        if src.status is not dst.status:
            moved = (src.status.value, dst.status.value)
            clock = fields(dst)["clock"]
            req.events.append(
                messages.status_changed(event, suffix, req.id, moved, {**extra, "clock": clock})
            )
            history.append(entry(dst.status, event, at, _step_extra(event)))
    doc.update({**fields(closed), "flags": flags, "history": history})


def case_reported(req: Request, event: CloudEvent, report: CaseReport, kind: str) -> bool:
    """Per-system progress of the request's case ``kind``; True when it closed now."""
    if req.has_applied(event.id):
        return False
    state = event.type.removeprefix("gardien.erasure.case.")
    progress = dict(req.doc.get("progress") or {})
    if (progress.get(kind) or {}).get("state") == "closed" and state != "closed":
        req.mark_applied(event.id)
        return False  # a late report never reopens a closed case
    systems = {k: v.model_dump(exclude_none=True) for k, v in report.systems.items()}
    progress[kind] = jsonable(
        {
            "case_id": report.case_id,
            "state": state,
            "systems": [{"system": k, **v} for k, v in systems.items()],
            "closed_at": report.closed_at,
            "art19": report.art19,
            "updated_at": event.time,
        }
    )
    req.doc["progress"] = progress
    req.mark_applied(event.id)
    if state != "closed":
        return False
    before = req.lifecycle
    _moved(req, event, event.time, before, replace(before, open_work=before.open_work - {kind}))
    return True


def package_delivered(
    req: Request, event: CloudEvent, data: PackageDelivered, policy: rules.Policy
) -> None:
    """The access package reached the DPO: the request is answered on that day (Art 12(3)).

    A request answered already (by ``gdpr.request.responded``) stays as answered.
    """
    if req.has_applied(event.id):
        return
    before = req.lifecycle
    if before.answer is not None:
        req.mark_applied(event.id)
        return
    step = Step("responded", rules.local_date(data.delivered_at, policy.timezone))
    try:
        after = lifecycle.apply(before, step)
    except TransitionRefused as exc:
        refuse(req, event, exc.reason)
        return
    _moved(req, event, data.delivered_at, before, after)
    if data.chargeable and "art15_3_chargeable_copy" not in req.doc["flags"]:
        req.doc["flags"] = [*req.doc["flags"], "art15_3_chargeable_copy"]
    req.mark_applied(event.id)


def keys_to_shred(req: Request, subject_requests: Iterable[str]) -> set[str]:
    """Requests whose subject key a closed case ends: an erasure ends the subject's others."""
    ids = {req.id}
    if req.doc.get("right") == "erasure" and req.doc.get("subject_refs"):
        ids |= set(subject_requests)
    return ids


def step_of(event: CloudEvent, data: RequestStep, tz: str) -> Step:
    """A follow-up as the state machine reads it (its date local to ``tz``)."""
    kind = event.type.removeprefix("gdpr.request.")
    on = rules.local_date(data.at, tz)
    if isinstance(data, RequestResponded):
        outcome, rights = data.outcome.value, data.complaint_rights_given
        return Step(kind, on, data.reason, tuple(data.reasons), outcome, rights)
    if isinstance(data, RequestExtended):
        return Step(kind, on, data.reason, tuple(data.reasons))
    return Step(kind, on, data.reason)


def _step_extra(event: CloudEvent) -> Doc:
    keys = ("reasons", "reason", "outcome", "complaint_rights_given")
    return {k: event.data[k] for k in keys if k in event.data}


def entry(status: Status, event: CloudEvent, at: Any, extra: Doc | None = None) -> Doc:
    """One line of the request's history."""
    line = {"status": status.value, "at": at, "event_id": event.id, "cause": event.type}
    return jsonable({**line, **(extra or {})})  # type: ignore[no-any-return]
