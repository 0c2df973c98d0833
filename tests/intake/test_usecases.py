"""Intake's update builders on stored documents (pure: no broker, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.intake import domain, state, updates
from services.intake.domain import Lifecycle, Status
from services.intake.http import view
from services.intake.messages import jsonable
from shared.events import new_event
from shared.events.inbound import RequestExtended, RequestStep
from shared.outbox import outbox_entry

AT = datetime(2027, 3, 8, 9, tzinfo=UTC)


def stored(**fields: Any) -> dict[str, Any]:
    lc = Lifecycle(Status.RECEIVED, AT.date())
    doc = {"_id": "R-1", "version": 3, "flags": [], "history": [], "outbox": []}
    return {**doc, **state.fields(lc), **fields}


def event(kind: str, **data: Any) -> Any:
    body = {"request_id": "R-1", "at": AT.isoformat(), **data}
    return new_event(f"gdpr.request.{kind}", body, source="t", event_id=f"e-{kind}", time=AT)


def test_refused_transition_keeps_state_and_queues_an_audited_event() -> None:
    doc = stored()
    ev = event("info_received")
    update = updates.appended(doc, updates.refusal(doc, ev, "nothing awaited"), ev.id)
    sets = update["$set"]
    assert "status" not in sets and sets["applied_events"] == ["e-info_received"]
    queued = sets["outbox"][0]["event"]
    assert queued["id"] == "e-info_received:refused"
    assert queued["type"] == "gardien.request.transition_refused"
    assert queued["data"]["reason"] == "nothing awaited"
    assert sets["refusals"][0]["cause"] == "gdpr.request.info_received"


def test_pause_emits_status_changed_with_a_paused_clock() -> None:
    doc = stored()
    ev = event("info_requested", reason="clarification")
    data = RequestStep.model_validate(ev.data)
    before = state.lifecycle(doc)
    after = domain.apply(before, updates.step_of(ev, data, "Europe/Paris"))
    update = updates.moved(doc, ev, data, before, after)
    assert update["$set"]["status"] == "awaiting_information"
    (entry,) = update["$push"]["outbox"]["$each"]
    assert entry["event"]["data"]["clock"]["state"] == "paused"
    assert entry["event"]["data"]["clock"]["due_date"] is None
    assert entry["event"]["data"]["at"] == AT.isoformat()


def test_identity_verification_releases_held_work() -> None:
    work = new_event("gardien.erasure.work.requested", {"case_id": "req:R-1"}, source="t")
    doc = stored(held_work=[outbox_entry(work, "req:R-1")])
    ev = event("identity_verified")
    data = RequestStep.model_validate(ev.data)
    before = state.lifecycle(doc)
    after = domain.apply(before, updates.step_of(ev, data, "Europe/Paris"))
    update = updates.moved(doc, ev, data, before, after)
    ids = [e["id"] for e in update["$push"]["outbox"]["$each"]]
    assert ids == ["e-identity_verified:status", work.id]
    assert update["$set"]["held_work"] == [] and update["$set"]["open_work"] == ["req"]


def test_extension_reasons_ride_on_the_status_event() -> None:
    doc = stored()
    ev = event("extended", reasons=["seven systems"])
    data = RequestExtended.model_validate(ev.data)
    before = state.lifecycle(doc)
    after = domain.apply(before, updates.step_of(ev, data, "Europe/Paris"))
    update = updates.moved(doc, ev, data, before, after)
    (entry,) = update["$push"]["outbox"]["$each"]
    assert entry["event"]["data"]["reasons"] == ["seven systems"]
    assert update["$set"]["extension"] == {
        "notified_on": "2027-03-08",
        "reasons": ["seven systems"],
    }


def test_extension_after_a_pause_is_on_the_status_event_and_the_request_view() -> None:
    # Issue 10 item 9: paused 8-18 Mar, extended on 12 Apr (past the unpaused end of 5 Apr,
    # within the paused one of 15 Apr): valid, and both ends move by the 10 paused days.
    pause = {"requested_on": "2027-03-08", "received_on": "2027-03-18", "reason": "clarification"}
    doc = stored(receipt_date="2027-03-05", status="in_progress", pauses=[pause])
    ev = new_event(
        "gdpr.request.extended",
        {"request_id": "R-1", "at": "2027-04-12T09:00:00+02:00", "reasons": ["volume"]},
        source="t",
        event_id="e-ext",
        time=AT,
    )
    data = RequestExtended.model_validate(ev.data)
    before = state.lifecycle(doc)
    after = domain.apply(before, updates.step_of(ev, data, "Europe/Paris"))
    update = updates.moved(doc, ev, data, before, after)
    (entry,) = update["$push"]["outbox"]["$each"]
    clock = entry["event"]["data"]["clock"]
    assert clock["base_due_date"] == "2027-04-15" and clock["extension_valid"] is True
    assert clock["extended_due_date"] == clock["effective_due_date"] == "2027-06-15"
    assert clock["extension_notified_on"] == "2027-04-12"
    request = {
        **doc,
        **update["$set"],
        "right": "access",
        "received_at": AT,
        "channel": "web",
        "subject": {"kind": "customer"},
    }
    shown = view(request)
    assert (shown.base_due_date, shown.extended_due_date) == ("2027-04-15", "2027-06-15")
    assert shown.extension_valid is True and shown.effective_due_date == "2027-06-15"


def test_closed_case_closes_an_answered_request() -> None:
    answered = jsonable(
        {
            "responded_on": "2027-03-20",
            "outcome": "responded",
            "reasons": [],
            "complaint_rights_given": False,
        }
    )
    doc = stored(status="responded", answer=answered, open_work=["req"])
    ev = new_event(
        "gardien.erasure.case.closed",
        {"case_id": "req:R-1", "systems": {"crm": {"state": "done"}}},
        source="gardien/erasure",
        event_id="c-1",
        time=AT,
    )
    update = updates.progress(doc, ev, "req")
    assert update is not None
    assert update["$set"]["status"] == "closed" and update["$set"]["open_work"] == []
    assert update["$set"]["progress.req"]["systems"] == [{"system": "crm", "state": "done"}]
    assert update["$push"]["outbox"]["event"]["data"]["to"] == "closed"


def test_late_progress_never_reopens_a_closed_case() -> None:
    doc = stored(progress={"req": {"state": "closed"}})
    ev = new_event("gardien.erasure.case.progressed", {"case_id": "req:R-1"}, source="t")
    assert updates.progress(doc, ev, "req") is None
