"""A redelivered first receipt of a request still ``received`` publishes its first events again
(docs/reliability.md §3: the broker lost them after intake's outbox was cleared)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, cast

import pytest
from faststream.kafka import KafkaBroker

from services.intake.handlers import arrival, reports
from services.intake.memory import MemorySubjectHistory, MemorySubjectKeys
from services.intake.repository import INDEXES, MongoRequests
from services.intake.usecases import Intake, Repositories
from shared.clock import FakeClock
from shared.events import CloudEvent
from shared.mongo import service_database
from shared.pseudonyms import Pseudonymiser
from shared.rules import default_policy
from shared.settings import Settings
from tests.intake.test_usecases import (
    NOW,
    case,
    erasure,
    ev,
    feed,
    intake,
    received,
    sent,
    step,
)
from tests.support import SendRecorder

FIRST = (
    "gardien.request.accepted",
    "gardien.request.decided",
    "gardien.erasure.work.requested",
    "gardien.access.work.requested",
)


def published(it: Any, since: int = 0) -> list[tuple[str, str, dict[str, Any], str]]:
    """(id, type, data, key) of what was relayed, from position ``since``."""
    return [(e.id, e.type, e.data, key) for e, key in it.requests.sent[since:]]


def objection(rid: str) -> CloudEvent:
    details = {"purpose": "direct_marketing"}
    return ev("request-objection-received.json", request_id=rid, details=details)


CASES: dict[str, Callable[[str], CloudEvent]] = {
    "access": lambda tag: received(f"R-A{tag}"),
    "erasure": lambda tag: erasure(f"R-E{tag}"),
    "objection": lambda tag: objection(f"R-O{tag}"),
    "post-mortem": lambda tag: ev("request-postmortem-received.json", request_id=f"R-P{tag}"),
    "invalid-details": lambda tag: erasure(f"R-X{tag}", contract_end_date="not a date"),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_the_same_receipt_again_while_received_publishes_the_same_events(name: str) -> None:
    it = intake()
    first = CASES[name]("")
    await feed(it, first)
    before = published(it)
    assert {t for _, t, *_ in before} >= {"gardien.request.accepted"}
    await feed(it, first)  # the broker lost the first events; the source re-sends
    again = published(it, len(before))
    assert again == [p for p in before if p[1] in FIRST]
    assert sent(it, "gardien.request.transition_refused") == []
    doc = await it.requests.get(first.data["request_id"])
    assert doc is not None and doc["outbox"] == [] and doc["status"] == "received"


async def test_the_first_events_again_carry_the_work_and_the_decision() -> None:
    it = intake()
    first = erasure("R-E")
    await feed(it, first)
    await feed(it, first)
    works = sent(it, "gardien.erasure.work.requested", "R-E")
    assert len(works) == 2 and works[0] == works[1] and works[0]["categories"]
    assert works[1]["subject"]["identifiers"]["email"] == "alice.martin@example.org"
    doc = await it.requests.get("R-E")
    assert doc is not None and "alice" not in str(doc["work"]) + str(doc.get("collect"))


async def test_the_decision_published_again_is_the_first_not_a_new_screening() -> None:
    it = intake()
    subject = {"kind": "customer", "identifiers": {"email": "alice.martin@example.org"}}
    days = ["2026-04-01", "2026-06-01", "2026-09-01", "2026-12-01", "2027-03-15"]
    batch = [
        received(f"R-{i}", received_at=f"{d}T10:00:00+01:00", subject=subject)
        for i, d in enumerate(days)
    ]
    await feed(it, *batch)
    (first,) = sent(it, "gardien.request.decided", "R-4")
    assert first["frequency"]["count_in_window"] == 5
    await feed(it, received("R-5", received_at="2027-03-20T10:00:00+01:00", subject=subject))
    await feed(it, batch[4])
    assert sent(it, "gardien.request.decided", "R-4") == [first, first]


async def test_the_same_receipt_after_the_request_moved_on_publishes_nothing() -> None:
    it = intake()
    first = erasure("R-E")
    await feed(it, first, step("identity-verified", "R-E", "2027-03-06T10:00:00+01:00"))
    count = len(published(it))
    await feed(it, first)
    assert published(it, count) == []


@pytest.mark.parametrize("kind", ["progressed", "closed"])
async def test_the_same_receipt_after_its_case_reported_publishes_nothing(kind: str) -> None:
    # Found by make chaos (broker_restart): a case closed (the subject keys shredded) while
    # the request was still `received`; re-publishing then failed on the destroyed key and
    # blocked the partition. A case report proves the first events arrived.
    it = intake()
    first = erasure("R-E")
    await feed(it, first)
    await it.cases_reported(reports([case("R-E", kind)]))
    doc = await it.requests.get("R-E")
    assert doc is not None and doc["status"] == "received"
    count = len(published(it))
    await feed(it, first)
    assert published(it, count) == []


async def test_a_new_event_for_the_same_request_stays_a_refused_duplicate() -> None:
    it = intake()
    await feed(it, erasure("R-E"))
    count = len(published(it))
    again = erasure("R-E")  # same request id, new event id
    await feed(it, again)
    assert [t for _, t, *_ in published(it, count)] == ["gardien.request.transition_refused"]


async def test_held_work_is_not_published_again() -> None:
    it = intake()
    first = erasure("R-H", await_identity=True)
    await feed(it, first)
    count = len(published(it))
    await feed(it, first)
    types = [t for _, t, *_ in published(it, count)]
    assert types == ["gardien.request.accepted", "gardien.request.decided"]
    doc = await it.requests.get("R-H")
    assert doc is not None and len(doc["held_work"]) == 1
    await feed(it, step("identity-verified", "R-H", "2027-03-06T10:00:00+01:00"))
    assert len(sent(it, "gardien.erasure.work.requested", "R-H")) == 1


async def test_the_same_receipt_twice_in_one_batch_publishes_once() -> None:
    it = intake()
    first = erasure("R-E")
    await feed(it, first, first)
    assert len(sent(it, "gardien.request.accepted", "R-E")) == 1
    assert it.requests.saves == 1  # type: ignore[attr-defined]


class Recorder(SendRecorder):
    """Stands for the Kafka broker: records each relayed event as it went on the wire."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(self, topic: str, key: bytes, value: bytes) -> None:
        self.events.append({"key": key.decode(), **json.loads(value)})


@pytest.mark.integration
async def test_after_a_mongodb_round_trip_the_events_again_are_the_same(
    mongo_client: Any, settings: Settings
) -> None:
    db = service_database(mongo_client, settings, "intake")
    await INDEXES.apply(db)
    broker = Recorder()
    repos = Repositories(
        MongoRequests(db, cast(KafkaBroker, broker)), MemorySubjectHistory(), MemorySubjectKeys()
    )
    it = Intake(repos, Pseudonymiser(b"k" * 32), default_policy(), FakeClock(NOW))
    tag = uuid.uuid4().hex[:8]
    firsts = [CASES[name](tag) for name in sorted(CASES)]  # the session database is shared
    await it.requests_arrived([arrival(e) for e in firsts])
    before = list(broker.events)
    await it.requests_arrived([arrival(e) for e in firsts])
    again = broker.events[len(before) :]
    want = [e for e in before if e["type"] in FIRST]  # per request in order; requests in any
    assert sorted(again, key=by_id) == sorted(want, key=by_id) and len(again) > len(firsts)


def by_id(event: dict[str, Any]) -> str:
    return str(event["id"])
