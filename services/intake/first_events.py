"""The first events of a request (accepted, decided, work) and the stored decision they are
built from, so that a re-delivered first receipt publishes them again identically (pure).

``decision_fields`` is what a new request keeps of its decision (no personal data: decisions,
flags, categories and actions); ``stored_decision`` reads it back.
"""

from __future__ import annotations

from typing import Any

from services.intake import messages
from services.intake.decisions import Decided
from shared.events import CloudEvent
from shared.events.inbound import RequestReceived

Doc = dict[str, Any]


def first_events(
    doc: Doc, event: CloudEvent, data: RequestReceived, decision: Decided
) -> tuple[list[CloudEvent], CloudEvent | None]:
    """The accepted/decided events of a new request, and its work event if it has work."""
    rid = data.request_id
    events = [messages.accepted(event, data, doc["clock"], doc["flags"])]
    if decision.anything:
        events.append(messages.decided(event, rid, doc["right"], decision))
    if not decision.has_work:
        return events, None
    due = doc["clock"]["effective_due_date"]
    if decision.work:
        return events, messages.work_requested(event, rid, data.subject, decision, due)
    return events, messages.access_work(event, data, decision, due)


def decision_fields(d: Decided) -> Doc:
    return {
        "decisions": d.decisions,
        "flags": d.flags,
        "frequency": d.frequency,
        "objection": d.objection,
        "post_mortem": d.post_mortem,
        "details_error": d.details_error,
        "work_case": d.work_case if d.has_work else None,
        "work": d.work,
        "collect": d.collect,
        "open_work": [],
    }


def stored_decision(doc: Doc) -> Decided:
    """The decision a request was recorded with (``decision_fields``), to publish it again.

    A request stored before ``work`` and ``collect`` were kept has no work to publish again.
    """
    return Decided(
        decisions=list(doc.get("decisions") or []),
        flags=list(doc.get("flags") or []),
        frequency=doc.get("frequency"),
        objection=doc.get("objection"),
        post_mortem=doc.get("post_mortem"),
        work=list(doc.get("work") or []),
        work_case=doc.get("work_case"),
        details_error=doc.get("details_error"),
        collect=doc.get("collect"),
    )
