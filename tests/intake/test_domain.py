"""The request aggregate (pure): the change each event makes and the events it causes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.intake import domain, messages
from services.intake.decisions import Decided
from services.intake.domain import Request
from services.intake.http import view
from services.intake.lifecycle import Lifecycle, Status, fields
from shared.events import CloudEvent, new_event, parse_event
from shared.events.inbound import RequestReceived, RequestStep
from shared.events.internal import ErasureWorkRequested, RequestStatusChanged
from tests.support import example

AT = datetime(2027, 3, 8, 9, tzinfo=UTC)


def stored(**extra: Any) -> Request:
    lc = Lifecycle(Status.RECEIVED, AT.date())
    doc = {"_id": "R-1", "version": 3, "flags": [], "history": [], "outbox": [], "right": "access"}
    return Request.loaded({**doc, **fields(lc), "source_event_id": "e0", **extra})


def step(kind: str, at: str = "2027-03-08T09:00:00+01:00", **data: Any) -> tuple[CloudEvent, Any]:
    raw = {"request_id": "R-1", "at": at, **data}
    event = new_event(f"gdpr.request.{kind}", raw, source="t", event_id=f"e-{kind}", time=AT)
    return event, event.payload()


def test_a_refused_follow_up_keeps_the_state_records_and_audits_it() -> None:
    req = stored()
    event, data = step("info_received")
    domain.follow_up(req, event, data, "Europe/Paris")
    assert set(req.changed) == {"refusals", "applied_events"}
    (refused,) = req.events
    assert refused.id == "e-info_received:refused"
    assert refused.data["status"] == "received" and refused.data["cause"] == event.type
    domain.follow_up(req, event, data, "Europe/Paris")  # the same event again: nothing more
    assert len(req.events) == 1 and len(req.doc["refusals"]) == 1


def test_a_pause_moves_the_status_and_publishes_a_paused_clock() -> None:
    req = stored()
    event, data = step("info_requested", reason="clarification")
    domain.follow_up(req, event, data, "Europe/Paris")
    (moved,) = req.events
    assert (moved.data["from"], moved.data["to"]) == ("received", "awaiting_information")
    assert moved.data["clock"]["state"] == "paused" and moved.data["clock"]["due_date"] is None
    assert moved.data["at"] == "2027-03-08T09:00:00+01:00"
    RequestStatusChanged.model_validate(moved.data)  # the published form is the model's


def test_an_extension_after_a_pause_shows_on_the_event_and_the_view() -> None:
    pause = {"requested_on": "2027-03-08", "received_on": "2027-03-18", "reason": "clarification"}
    req = stored(receipt_date="2027-03-05", status="in_progress", pauses=[pause])
    event, data = step("extended", "2027-04-12T09:00:00+02:00", reasons=["volume"])
    domain.follow_up(req, event, data, "Europe/Paris")
    (moved,) = req.events
    clock = moved.data["clock"]
    assert clock["base_due_date"] == "2027-04-15" and clock["extension_valid"] is True
    assert clock["extended_due_date"] == clock["effective_due_date"] == "2027-06-15"
    assert moved.data["reasons"] == ["volume"]
    shown = view({**req.doc, "_id": req.id, "received_at": AT, "channel": "web",
                  "subject": {"kind": "customer"}})  # fmt: skip
    assert (shown.base_due_date, shown.extended_due_date) == ("2027-04-15", "2027-06-15")


def test_identity_releases_held_work_and_a_refusal_drops_it() -> None:
    held = {"id": "w", "key": "req:R-1", "event": {"id": "w"}}
    released = stored(held_work=[json.dumps(held)], work_case="req")
    event, data = step("identity_verified")
    domain.follow_up(released, event, data, "Europe/Paris")
    assert released.released == [held] and released.doc["held_work"] == []
    assert released.doc["open_work"] == ["req"]
    pause = {"requested_on": "2027-03-08", "reason": "identity_verification"}
    dropped = stored(held_work=[held], status="awaiting_identity", pauses=[pause])
    event, data = step("responded", outcome="refused", reasons=["no proof of identity"])
    domain.follow_up(dropped, event, data, "Europe/Paris")
    assert dropped.released == [] and dropped.doc["held_work"] == []
    assert dropped.doc["status"] == "closed"


def received(**data: Any) -> tuple[CloudEvent, RequestReceived]:
    event = parse_event(json.dumps(example("request-erasure-received.json", **data)).encode())
    payload = event.payload()
    assert isinstance(payload, RequestReceived)
    return event, payload


def test_work_is_held_only_when_the_details_ask() -> None:
    from shared.rules import default_policy

    policy = default_policy()
    for wait, held in ((False, 0), (True, 1)):
        details = {"contract_status": "terminated", "await_identity": wait}
        event, data = received(details=details)
        decision, parsed = domain.screen(data, policy, [])
        new = domain.NewRequest(event, data, decision, parsed, ["h"], {"sealed": 1}, {})
        req = domain.new_request(new, policy, AT)
        assert len(req.held) == held and domain.holds_work(decision, parsed) is bool(held)
        types = [e.type for e in req.events]
        assert types[:2] == ["gardien.request.accepted", "gardien.request.decided"]
        assert ("gardien.erasure.work.requested" in types) is not wait


def test_a_closed_erasure_case_shreds_the_subjects_other_requests_an_objection_only_its_own() -> (
    None
):
    erasure = stored(right="erasure", subject_refs=["h"])
    assert domain.keys_to_shred(erasure, ["R-0", "R-1"]) == {"R-0", "R-1"}
    objection = stored(right="objection", subject_refs=["h"])
    assert domain.keys_to_shred(objection, ["R-0", "R-1"]) == {"R-1"}


def test_the_work_event_is_checked_when_built() -> None:
    event, data = received()
    work = [{"category": "profile", "action": "erase", "ground": "Art 17(1)(a)"}]
    built = messages.work_requested(
        event, "R-1", data.subject, Decided(work=work, work_case="req"), "2027-04-05"
    )
    assert ErasureWorkRequested.model_validate(built.data).due_by is not None
    assert built.data["subject"]["identifiers"] == data.subject.identifiers.present()
    bad = [{"category": "profile", "action": "shred", "ground": "x"}]
    with pytest.raises(ValidationError):
        messages.work_requested(
            event, "R-1", data.subject, Decided(work=bad, work_case="req"), None
        )
    assert isinstance(step("identity_verified")[1], RequestStep)
