"""Pure decisions: what one inbound event does to one timer (no I/O, no clock reads).

Each function takes the timer as stored (or as the events before it in the batch left it;
None when it does not exist yet) and returns its recomputed spec and inputs, or None when
the event leaves it alone. A closed clock (met, missed after closure, done) is final.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

from services.deadlines import clocks, holdgate
from services.deadlines.domain import CLOSED, Base, TimerSpec
from services.deadlines.messages import Recompute, spec_of
from shared.events.inbound import BreachNotified
from shared.rules import Policy, local_date

Doc = dict[str, Any]


def is_closed(doc: Doc | None) -> bool:
    """True once a timer's obligation is met, missed or done: such a timer is final."""
    return doc is not None and Base(doc["base"]) in CLOSED


def request_change(doc: Doc | None, event_type: str, data: Doc, calendar: str) -> Recompute | None:
    """Request clocks from intake's events: its ``clock`` if sent, else the rules engine."""
    if is_closed(doc):
        return None
    rid = str(data["request_id"])
    inputs: Doc = dict(doc["inputs"]) if doc else {}
    if doc is None and data.get("received_at"):
        received = datetime.fromisoformat(data["received_at"])
        inputs = {"receipt_date": local_date(received).isoformat(), "pauses": []}
    elif doc is not None and event_type.endswith("status_changed") and data.get("at"):
        inputs = clocks.request_inputs_after(inputs, data)
    clock = data.get("clock")
    if isinstance(clock, dict) and clock:
        return Recompute(clocks.request_from_clock(rid, clock), {**inputs, "clock": clock})
    if not inputs.get("receipt_date"):
        return None  # nothing to compute from: intake's accepted event comes first
    return Recompute(clocks.request_from_inputs(rid, inputs, calendar), inputs)


def opened(
    doc: Doc | None, spec: TimerSpec, inputs: Doc, fields: Doc | None = None
) -> Recompute | None:
    """A clock (re)computed from its start event, unless it is closed already."""
    return None if is_closed(doc) else Recompute(spec, inputs, fields or {})


def notified_change(doc: Doc | None, data: BreachNotified) -> Recompute | None:
    """Authority or subjects notified: met, or late with reasons required (R-BR-3)."""
    if doc is None or is_closed(doc):
        return None
    spec = clocks.notified(spec_of(doc), data.at, data.reasons_for_delay)
    return Recompute(spec, doc["inputs"])


def retention_change(
    doc: Doc | None, start: Doc, holds: list[Doc], policy: Policy
) -> Recompute | None:
    """A retention clock started (or restarted) by a contract end or a contact (R-RET-1/2).

    ``start``: timer_id, category, start_date, contract_id, subject_refs, sealed subject.
    """
    if is_closed(doc):
        return None
    inputs = dict(doc["inputs"]) if doc else {"holds": []}
    # A later contact restarts the period; a re-sent older one never shortens it.
    inputs["start_date"] = max(start["start_date"], inputs.get("start_date", start["start_date"]))
    inputs.update(category=start["category"], contract_id=start["contract_id"])
    if start.get("subject") is not None:
        inputs["subject"] = start["subject"]  # opened only when the purge work is relayed
    refs, known = start["subject_refs"], {h["key"] for h in inputs["holds"]}
    inputs["holds"] = inputs["holds"] + [
        holdgate.hold_entry(h) for h in holds
        if h["_id"] not in known and clocks.hold_applies(h, refs, start["category"])
    ]  # fmt: skip
    spec = clocks.retention_clock(start["timer_id"], inputs, policy)
    return Recompute(spec, inputs, {"subject_refs": refs, "category": start["category"]})


def rehold_change(doc: Doc | None, hold: Doc, policy: Policy) -> Recompute | None:
    """Record ``hold`` (placed or released) on a retention timer it covers (R-RET-4)."""
    if doc is None or doc.get("kind") != "retention":
        return None
    if not clocks.hold_applies(hold, doc.get("subject_refs", []), doc.get("category", "")):
        return None
    if is_closed(doc):  # too late to block: recorded only
        spec = spec_of(doc)
        late = sorted({*spec.details.get("late_holds", []), hold["matter"]})
        return Recompute(replace(spec, details={**spec.details, "late_holds": late}), doc["inputs"])
    entry = holdgate.hold_entry(hold)
    inputs = dict(doc["inputs"])
    others = [h for h in inputs.get("holds", []) if h["key"] != entry["key"]]
    inputs["holds"] = [*others, entry]
    return Recompute(clocks.retention_clock(str(doc["_id"]), inputs, policy), inputs)


def certified_change(doc: Doc | None, certified_on: date) -> Recompute | None:
    """A certificate closes an open processor clock: closed, or closed late (R-PROC-1)."""
    if doc is None or is_closed(doc) or Base(doc["base"]) is not Base.OPEN:
        return None
    return Recompute(clocks.processor_clock(doc["inputs"], certified_on), doc["inputs"])


def known_category(category: str, policy: Policy) -> None:
    """Refuse a category the policy's retention schedule does not know (R-RET-2)."""
    clocks.retention_clock(
        "check", {"category": category, "start_date": "2000-01-01", "holds": []}, policy
    )
