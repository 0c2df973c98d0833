"""One use case per inbound event type: which timers it touches and how they change."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from services.deadlines import clocks, holdgate
from services.deadlines.documents import Change, spec_of
from services.deadlines.domain import Base
from services.deadlines.subjects import sealed_subject
from services.deadlines.usecases import Deadlines, is_closed, known_category, require_timer
from shared.errors import TransitionRefused
from shared.events import CloudEvent
from shared.events.common import Subject
from shared.events.inbound import (
    BreachNotified,
    ContactRecorded,
    ContractEnded,
    LegalHold,
    ProcessorDeletionCertified,
    ProcessorReplaced,
)
from shared.rules import local_date

Doc = dict[str, Any]
REQUEST_TYPES = {"gardien.request.accepted", "gardien.request.status_changed"}


async def request_event(uses: Deadlines, event: CloudEvent) -> None:
    """Request clocks from intake's events: its ``clock`` if sent, else the rules engine."""
    data, rid = event.data, event.data.get("request_id")
    if event.type not in REQUEST_TYPES or not isinstance(rid, str):
        return  # decisions and refusals do not move the clock

    def compute(doc: Doc | None) -> Change | None:
        if is_closed(doc):
            return None
        inputs: Doc = dict(doc["inputs"]) if doc else {}
        if doc is None and data.get("received_at"):
            received = datetime.fromisoformat(data["received_at"])
            inputs = {"receipt_date": local_date(received).isoformat(), "pauses": []}
        elif doc is not None and event.type.endswith("status_changed") and data.get("at"):
            inputs = clocks.request_inputs_after(inputs, data)
        clock = data.get("clock")
        if isinstance(clock, dict) and clock:
            return Change(clocks.request_from_clock(rid, clock), {**inputs, "clock": clock})
        if not inputs.get("receipt_date"):
            return None  # nothing to compute from: intake's accepted event comes first
        calendar = uses.policy.holiday_calendar
        return Change(clocks.request_from_inputs(rid, inputs, calendar), inputs)

    await uses.apply(f"request:{rid}", event, compute)


async def breach_detected(uses: Deadlines, event: CloudEvent) -> None:
    """The 72 h authority clock and, for a high risk, the data-subject clock (R-BR-1..4)."""
    inputs = {k: event.data.get(k) for k in ("aware_at", "reported_by", "processor_aware_at")}
    for spec in clocks.breach_clocks(event.data, uses.policy):

        def compute(doc: Doc | None, spec: Any = spec) -> Change | None:
            return None if is_closed(doc) else Change(spec, {**inputs, "risk": event.data["risk"]})

        await uses.apply(spec.timer_id, event, compute)


async def breach_notified(uses: Deadlines, event: CloudEvent) -> None:
    """Authority or subjects notified: met, or late with reasons required (R-BR-3)."""
    data = BreachNotified.model_validate(event.data)
    which = "authority" if event.type.endswith("authority_notified") else "subjects"
    timer_id = f"breach:{data.breach_id}:{which}"
    require_timer(await uses.timers.get(timer_id), f"breach {data.breach_id}")

    def compute(doc: Doc | None) -> Change | None:
        if doc is None or is_closed(doc):
            return None
        spec = clocks.notified(spec_of(doc), data.at, data.reasons_for_delay)
        return Change(spec, doc["inputs"])

    await uses.apply(timer_id, event, compute)


async def retention_started(uses: Deadlines, event: CloudEvent) -> None:
    """Retention clocks per category from a contract end or a prospect's contact (R-RET-1/2)."""
    contract_id: str | None = None
    subject: Subject | None
    if event.type == "gdpr.contract.ended":
        ended = ContractEnded.model_validate(event.data)
        contract_id, subject, at = ended.contract_id, ended.subject, ended.ended_at
        categories = ended.categories or ["customer"]
    else:
        contact = ContactRecorded.model_validate(event.data)
        subject, at, categories = contact.subject, contact.contacted_at, contact.categories
        categories = categories or ["prospect"]
    for category in categories:
        known_category(category, uses.policy)  # refuse before writing anything
    identifiers = subject.identifiers.present() if subject else {}
    refs = uses.pseudonyms.refs(identifiers)
    owner = contract_id or clocks.subject_key(refs)
    holds = await uses.timers.active_holds(refs)
    start = local_date(at).isoformat()
    for category in categories:
        timer_id = f"retention:{owner}:{category}"
        sealed = await sealed_subject(uses, timer_id, subject)

        def compute(
            doc: Doc | None, category: str = category, tid: str = timer_id, sealed: Any = sealed
        ) -> Change | None:
            if is_closed(doc):
                return None
            inputs = dict(doc["inputs"]) if doc else {"holds": []}
            # A later contact restarts the period; a re-sent older one never shortens it.
            inputs["start_date"] = max(start, inputs.get("start_date", start))
            inputs.update(category=category, contract_id=contract_id)
            if sealed is not None:
                inputs["subject"] = sealed  # opened only when the purge work is relayed
            known = {h["key"] for h in inputs["holds"]}
            inputs["holds"] = inputs["holds"] + [
                _hold_entry(h) for h in holds
                if h["_id"] not in known and clocks.hold_applies(h, refs, category)
            ]  # fmt: skip
            spec = clocks.retention_clock(tid, inputs, uses.policy)
            return Change(spec, inputs, {"subject_refs": refs, "category": category})

        await uses.apply(timer_id, event, compute)


_hold_entry = holdgate.hold_entry


async def hold_placed(uses: Deadlines, event: CloudEvent) -> None:
    """An active hold blocks every purge in its scope (R-RET-4)."""
    data = LegalHold.model_validate(event.data)
    refs = sorted({r for s in data.scope.subjects for r in uses.pseudonyms.refs(_ids(s))})
    hold = {
        "_id": data.hold_id or data.matter,
        "matter": data.matter,
        "subject_refs": refs,
        "scope_all_subjects": not refs,
        "categories": list(data.scope.categories),
        "opened_on": local_date(data.at).isoformat(),
        "released_on": None,
        "active": True,
        "event_id": event.id,
    }
    if not await uses.timers.add_hold(hold):
        hold = await uses.timers.get_hold(str(hold["_id"])) or hold
    await _rehold(uses, event, hold)


async def hold_released(uses: Deadlines, event: CloudEvent) -> None:
    """A release recomputes: retention ends at the later of normal end and release."""
    data = LegalHold.model_validate(event.data)
    key = data.hold_id or data.matter
    hold = await uses.timers.get_hold(key)
    if hold is None:
        raise TransitionRefused(f"release of unknown legal hold {key}")
    released_on = local_date(data.at).isoformat()
    await uses.timers.release_hold(key, released_on)
    await _rehold(uses, event, {**hold, "released_on": released_on, "active": False})


async def _rehold(uses: Deadlines, event: CloudEvent, hold: Doc) -> None:
    """Record ``hold`` (placed or released) on every retention timer it covers."""
    entry = _hold_entry(hold)
    for found in await uses.timers.retention_for(hold["subject_refs"], hold["categories"]):
        if found.get("kind") != "retention":
            continue

        def compute(doc: Doc | None) -> Change | None:
            if doc is None or not clocks.hold_applies(
                hold, doc.get("subject_refs", []), doc.get("category", "")
            ):
                return None
            if is_closed(doc):
                spec = spec_of(doc)
                late = [*spec.details.get("late_holds", []), hold["matter"]]
                return Change(_with(spec, late_holds=sorted(set(late))), doc["inputs"])
            inputs = dict(doc["inputs"])
            others = [h for h in inputs.get("holds", []) if h["key"] != entry["key"]]
            inputs["holds"] = [*others, entry]
            spec = clocks.retention_clock(str(doc["_id"]), inputs, uses.policy)
            return Change(spec, inputs)

        await uses.apply(str(found["_id"]), event, compute)


def _with(spec: Any, **details: Any) -> Any:
    return replace(spec, details={**spec.details, **details})


def _ids(subject: Subject) -> dict[str, str]:
    return subject.identifiers.present()


async def processor_replaced(uses: Deadlines, event: CloudEvent) -> None:
    """The old processor must delete or return the data by end + contractual days."""
    data = ProcessorReplaced.model_validate(event.data)
    contractual = uses.policy.contractual
    inputs = {
        "old_processor": data.old_processor,
        "new_processor": data.new_processor,
        "effective_on": local_date(data.effective_at).isoformat(),
        "contractual_days": (
            data.contractual_days
            if data.contractual_days is not None
            else contractual.processor_deletion_days
        ),
        "controller_choice": (
            data.controller_choice.value
            if data.controller_choice
            else contractual.processor_end_choice
        ),
    }
    spec = clocks.processor_clock(inputs)

    def compute(doc: Doc | None) -> Change | None:
        return None if is_closed(doc) else Change(spec, inputs, {"processor": data.old_processor})

    await uses.apply(spec.timer_id, event, compute)


async def deletion_certified(uses: Deadlines, event: CloudEvent) -> None:
    """A certificate closes the processor's clocks: closed, or closed late (R-PROC-1)."""
    data = ProcessorDeletionCertified.model_validate(event.data)
    certified_on = local_date(data.at)
    for timer_id in await uses.timers.for_processor(data.processor):

        def compute(doc: Doc | None) -> Change | None:
            if doc is None or is_closed(doc) or Base(doc["base"]) is not Base.OPEN:
                return None
            return Change(clocks.processor_clock(doc["inputs"], certified_on), doc["inputs"])

        await uses.apply(timer_id, event, compute)
