"""Access and portability at intake: the collection work, held until identity when asked,
and the request answered (its clock met) when the package is delivered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.intake.handlers import deliveries, reports
from shared.events import CloudEvent, new_event
from shared.outbox import PERSONAL
from shared.subject_vault import is_sealed
from tests.intake.test_usecases import EMAIL, intake, received, sent, step

WORK = "gardien.access.work.requested"


def work_events(it: Any, rid: str) -> list[CloudEvent]:
    return [e for e, _ in it.requests.sent if e.type == WORK and e.data["request_id"] == rid]


def delivered(rid: str, at: str, event_id: str = "d-1", chargeable: bool = False) -> CloudEvent:
    data = {"request_id": rid, "package_id": f"package:{rid}", "delivered_at": at}
    data |= {"actor": "dpo", "via": "api"}  # the whole contract (shared/events/internal.py)
    return new_event(
        "gardien.access.package.delivered",
        {**data, "chargeable": chargeable},
        source="gardien/erasure",
        event_id=event_id,
        time=datetime.fromisoformat(at),
    )


async def test_an_access_request_asks_for_its_collection_at_once() -> None:
    it = intake()
    await it.requests_arrived([_arrival(received("R-A"))])
    (work,) = work_events(it, "R-A")
    assert work.data["case_id"] == "acc:R-A" and work.data["right"] == "access"
    assert work.data["subject"]["identifiers"]["email"] == EMAIL  # as sent, opened
    assert work.data["categories"] == [] and work.data["due_by"] == "2027-04-05"
    doc = await it.requests.get("R-A")
    assert doc is not None and doc["open_work"] == [] and doc["work_case"] == "acc"
    stored = [e["event"]["data"] for e in doc.get("outbox") or [] if e["event"]["type"] == WORK]
    assert all(is_sealed(d[name]) for d in stored for name in PERSONAL if name in d)


async def test_collection_work_waits_for_identity_when_the_details_ask() -> None:
    it = intake()
    details = {"await_identity": True, "categories": ["profile"]}
    await it.requests_arrived([_arrival(received("R-H", right="portability", details=details))])
    assert work_events(it, "R-H") == []
    doc = await it.requests.get("R-H")
    assert doc is not None and len(doc["held_work"]) == 1
    assert is_sealed(doc["held_work"][0]["event"]["data"]["subject"])
    await it.requests_arrived(
        [_arrival(step("identity-verified", "R-H", "2027-03-08T09:00:00+01:00"))]
    )
    (work,) = work_events(it, "R-H")
    assert work.data["right"] == "portability" and work.data["categories"] == ["profile"]
    assert work.data["subject"]["identifiers"]["email"] == EMAIL


async def test_the_delivered_package_answers_the_request_on_that_day() -> None:
    it = intake()
    await it.requests_arrived([_arrival(received("R-D"))])
    closed = _case_closed("R-D")
    await it.cases_reported(reports([closed]))
    doc = await it.requests.get("R-D")
    assert doc is not None and doc["status"] == "received"  # built is not delivered
    assert doc["progress"]["acc"]["state"] == "closed"
    event = delivered("R-D", "2027-03-20T10:00:00+01:00", chargeable=True)
    await it.packages_delivered(deliveries([event]))
    await it.packages_delivered(deliveries([event]))  # redelivered: changes nothing
    doc = await it.requests.get("R-D")
    assert doc is not None and doc["status"] == "closed"
    assert doc["clock"]["responded_on"] == "2027-03-20" and doc["clock"]["on_time"] is True
    assert "art15_3_chargeable_copy" in doc["flags"]
    moves = [(d["from"], d["to"], d["cause"]) for d in sent(it, "gardien.request.status_changed")]
    assert moves == [
        ("received", "responded", "gardien.access.package.delivered"),
        ("responded", "closed", "gardien.access.package.delivered"),
    ]


async def test_a_delivery_after_the_answer_or_for_a_stranger_changes_nothing() -> None:
    it = intake()
    await it.requests_arrived([_arrival(received("R-E"))])
    await it.requests_arrived([_arrival(step("responded", "R-E", "2027-03-10T10:00:00+01:00"))])
    before = await it.requests.get("R-E")
    await it.packages_delivered(deliveries([delivered("R-E", "2027-03-20T10:00:00+01:00")]))
    await it.packages_delivered(deliveries([delivered("R-NONE", "2027-03-20T10:00:00+01:00")]))
    after = await it.requests.get("R-E")
    assert before is not None and after is not None
    assert after["clock"]["responded_on"] == before["clock"]["responded_on"] == "2027-03-10"
    assert sent(it, "gardien.request.transition_refused") == []


def test_unreadable_deliveries_are_skipped() -> None:
    bad = new_event(
        "gardien.access.package.delivered", {"request_id": "R"}, source="x", event_id="b"
    )
    assert deliveries([bad]) == []
    assert reports([bad]) == []


def _arrival(event: CloudEvent) -> Any:
    from services.intake.handlers import arrival

    return arrival(event)


def _case_closed(rid: str) -> CloudEvent:
    data = {
        "case_id": f"acc:{rid}",
        "origin": "access",
        "state": "closed",
        "request_id": rid,
        "systems": {"crm": {"state": "acknowledged", "outcome": "exported", "attempts": 1}},
        "closed_at": datetime(2027, 3, 9, tzinfo=UTC).isoformat(),
        "package_id": f"package:{rid}",
    }
    return new_event(
        "gardien.erasure.case.closed", data, source="gardien/erasure", event_id=f"{rid}:closed"
    )
