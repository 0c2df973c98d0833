"""Intake's batch use cases on the in-memory repositories (no broker, no database)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from services.intake.domain import STORAGE
from services.intake.handlers import arrival, reports
from services.intake.memory import MemoryRequests, MemorySubjectHistory, MemorySubjectKeys
from services.intake.repository import HistoryEntry
from services.intake.usecases import Intake, Repositories
from shared.clock import FakeClock
from shared.errors import PermanentError, RefusedEvents, TransientError
from shared.events import CloudEvent, parse_event
from shared.persistence import Change, Saved
from shared.pseudonyms import Pseudonymiser
from shared.rules import default_policy
from tests.support import example

NOW = datetime(2027, 3, 5, 16, tzinfo=UTC)
EMAIL = "alice.martin@example.org"


class CountingHistory(MemorySubjectHistory):
    def __init__(self) -> None:
        super().__init__()
        self.reads = self.writes = 0

    async def of_subjects(self, hashes: Iterable[str]) -> list[HistoryEntry]:
        self.reads += 1
        return await super().of_subjects(hashes)

    async def record_many(self, entries: Sequence[HistoryEntry]) -> None:
        self.writes += 1
        await super().record_many(entries)


class CountingRequests(MemoryRequests):
    def __init__(self) -> None:
        super().__init__()
        self.loads = self.saves = 0

    async def load_many(self, ids: Iterable[str]) -> dict[str, Any]:
        self.loads += 1
        return await super().load_many(ids)

    async def save_many(self, changes: Sequence[Change]) -> Saved:
        self.saves += 1
        return await super().save_many(changes)


def intake(requests: MemoryRequests | None = None) -> Intake:
    repos = Repositories(requests or CountingRequests(), CountingHistory(), MemorySubjectKeys())
    return Intake(repos, Pseudonymiser(b"k" * 32), default_policy(), FakeClock(NOW))


def ev(name: str, **data: Any) -> CloudEvent:
    raw = example(name, **data)
    if "at" in data:
        raw["time"] = data["at"]
    return parse_event(json.dumps(raw).encode())


def received(rid: str, **data: Any) -> CloudEvent:
    return ev("request-received.json", request_id=rid, **data)


def step(name: str, rid: str, at: str, **data: Any) -> CloudEvent:
    return ev(f"request-{name}.json", request_id=rid, at=at, **data)


def sent(it: Intake, event_type: str, rid: str | None = None) -> list[dict[str, Any]]:
    out = it.requests.sent  # type: ignore[attr-defined]
    return [
        e.data
        for e, _ in out
        if e.type == event_type and (rid is None or e.data.get("request_id") == rid)
    ]


async def feed(it: Intake, *events: CloudEvent) -> None:
    await it.requests_arrived([arrival(e) for e in events])


async def test_a_batch_of_new_requests_is_screened_with_one_history_read_and_one_insert() -> None:
    it = intake()
    days = ["2026-04-01", "2026-06-01", "2026-09-01", "2026-12-01", "2027-03-15"]
    subject = {"kind": "customer", "identifiers": {"email": EMAIL}}
    batch = [
        received(f"R-{i}", received_at=f"{d}T10:00:00+01:00", subject=subject)
        for i, d in enumerate(days)
    ]
    await feed(it, *batch)
    history, requests = it.history, it.requests
    assert (history.reads, history.writes) == (1, 1)  # type: ignore[attr-defined]
    assert (requests.loads, requests.saves) == (1, 1)  # type: ignore[attr-defined]
    fifth = await it.requests.get("R-4")
    assert fifth is not None and fifth["flags"] == ["art12_5_review"]
    assert fifth["frequency"]["count_in_window"] == 5
    assert [d["request_id"] for d in sent(it, "gardien.request.accepted")] == [
        f"R-{i}" for i in range(5)
    ]
    assert sent(it, "gardien.request.decided", "R-3") == []
    assert fifth["outbox"] == [] and not fifth["outbox_pending"]


async def test_later_batches_see_the_subject_history_and_redelivery_changes_nothing() -> None:
    it = intake()
    first = received("R-1")
    await feed(it, first)
    stored = await it.requests.get("R-1")
    await feed(it, first)  # redelivered: the same accepted again (tests/intake/test_reemit.py)
    accepted = [e.id for e, _ in it.requests.sent if e.type == "gardien.request.accepted"]  # type: ignore[attr-defined]
    assert accepted == [f"{first.id}:accepted"] * 2
    again = await it.requests.get("R-1")
    assert stored is not None and again is not None
    assert {k: v for k, v in again.items() if k not in STORAGE} == {
        k: v for k, v in stored.items() if k not in STORAGE
    }
    assert sent(it, "gardien.request.transition_refused") == []
    again = received("R-1")  # same request id, new event id
    await feed(it, again, received("R-2"))
    (refused,) = sent(it, "gardien.request.transition_refused")
    assert refused["reason"] == "duplicate request_id: the first request stands"
    doc = await it.requests.get("R-1")
    assert doc is not None and doc["refusals"][0]["event_id"] == again.id
    assert doc["source_event_id"] == first.id


async def test_follow_ups_of_one_request_in_one_batch_are_folded_in_order() -> None:
    it = intake()
    rid = "R-FOLD"
    await feed(
        it,
        received(rid),
        step("info-requested", rid, "2027-03-08T09:00:00+01:00"),
        step("identity-verified", rid, "2027-03-18T11:00:00+01:00"),
        step("extended", rid, "2027-03-25T09:00:00+01:00"),
        step("responded", rid, "2027-04-20T15:00:00+02:00"),
    )
    assert it.requests.saves == 1  # type: ignore[attr-defined]
    moves = [(d["from"], d["to"]) for d in sent(it, "gardien.request.status_changed", rid)]
    assert moves == [
        ("received", "awaiting_identity"),
        ("awaiting_identity", "in_progress"),
        ("in_progress", "extended"),
        ("extended", "responded"),
        ("responded", "closed"),
    ]
    doc = await it.requests.get(rid)
    assert doc is not None and doc["status"] == "closed"
    assert doc["clock"]["due_date"] == "2027-04-15"  # 10 paused days
    assert len(doc["applied_events"]) == 5


async def test_a_refused_transition_keeps_the_state_and_is_audited() -> None:
    it = intake()
    await feed(it, received("R-1"), step("info-received", "R-1", "2027-03-06T09:00:00+01:00"))
    (refused,) = sent(it, "gardien.request.transition_refused", "R-1")
    assert refused["status"] == "received" and "no information was awaited" in refused["reason"]
    doc = await it.requests.get("R-1")
    assert doc is not None and doc["status"] == "received"


async def test_an_unknown_request_is_refused_after_the_others_are_stored() -> None:
    it = intake()
    ghost = step("identity-verified", "R-GHOST", "2027-03-06T09:00:00+01:00")
    with pytest.raises(RefusedEvents) as refused:
        await feed(it, received("R-1"), ghost)
    assert refused.value.refusals == {ghost.id: "unknown request R-GHOST"}  # that one only
    assert await it.requests.get("R-1") is not None
    assert len(sent(it, "gardien.request.accepted")) == 1
    with pytest.raises(PermanentError, match="unknown request R-GHOST"):
        await feed(it, ghost)


def erasure(rid: str, **details: Any) -> CloudEvent:
    base = {"contract_status": "terminated", "contract_end_date": "2026-06-30"}
    return ev("request-erasure-received.json", request_id=rid, details={**base, **details})


async def test_work_held_until_identity_is_sealed_then_released_opened() -> None:
    it = intake()
    await feed(it, erasure("R-E", await_identity=True))
    assert sent(it, "gardien.erasure.work.requested") == []
    doc = await it.requests.get("R-E")
    assert doc is not None and doc["held_work"][0]["event"]["data"]["subject"]["sealed"] == 1
    await feed(it, step("identity-verified", "R-E", "2027-03-06T10:00:00+01:00"))
    (work,) = sent(it, "gardien.erasure.work.requested")
    assert work["subject"]["identifiers"]["email"] == EMAIL
    assert work["case_id"] == "req:R-E" and work["due_by"] == "2027-04-05"
    doc = await it.requests.get("R-E")
    assert doc is not None and doc["held_work"] == [] and doc["open_work"] == ["req"]


async def test_held_objection_work_opens_the_objection_case() -> None:
    it = intake()
    details = {"purpose": "direct_marketing", "await_identity": True}
    await feed(it, ev("request-objection-received.json", request_id="R-O", details=details))
    await feed(it, step("identity-verified", "R-O", "2027-06-15T10:00:00+02:00"))
    (work,) = sent(it, "gardien.erasure.work.requested")
    assert work["case_id"] == "obj:R-O"
    doc = await it.requests.get("R-O")
    assert doc is not None and doc["open_work"] == ["obj"]


def case(rid: str, kind: str = "closed", **data: Any) -> CloudEvent:
    raw = {
        "specversion": "1.0", "id": f"case-{rid}-{kind}", "source": "gardien/erasure",
        "type": f"gardien.erasure.case.{kind}", "time": "2027-03-20T10:00:00+01:00",
        "data": {"case_id": f"req:{rid}", "origin": "request", "request_id": rid,
                 "state": "closed" if kind == "closed" else "open",
                 "systems": {"crm": {"state": "acknowledged", "attempts": 1}}, **data},
    }  # fmt: skip
    return parse_event(json.dumps(raw).encode())


async def test_a_closed_case_closes_the_answered_request_and_shreds_the_subject_keys() -> None:
    it = intake()
    subject = {"kind": "customer", "identifiers": {"email": EMAIL.upper()}}
    await feed(it, received("R-OLD", subject=subject), erasure("R-E"))
    await feed(it, step("responded", "R-E", "2027-03-19T10:00:00+01:00"))
    await it.cases_reported(reports([case("R-E", "progressed"), case("R-E")]))
    doc = await it.requests.get("R-E")
    assert doc is not None and doc["status"] == "closed"
    assert doc["progress"]["req"]["systems"] == [
        {"system": "crm", "state": "acknowledged", "attempts": 1}
    ]
    (closing,) = [
        d for d in sent(it, "gardien.request.status_changed", "R-E") if d["to"] == "closed"
    ]
    assert closing["cause"] == "gardien.erasure.case.closed"
    assert await it.keys.destroyed("request:R-E") and await it.keys.destroyed("request:R-OLD")
    await it.cases_reported(reports([case("R-E", "progressed")]))  # late: never reopens
    doc = await it.requests.get("R-E")
    assert doc is not None and doc["progress"]["req"]["state"] == "closed"


async def test_an_objection_case_shreds_only_its_own_key_and_other_cases_are_ignored() -> None:
    it = intake()
    await feed(it, received("R-OLD"), ev("request-objection-received.json", request_id="R-O"))
    obj = case("R-O", case_id="obj:R-O")
    retention = case("X", case_id="ret:timer-1", request_id=None)
    await it.cases_reported(reports([obj, retention]))
    assert await it.keys.destroyed("request:R-O")
    assert not await it.keys.destroyed("request:R-OLD")


class RacedRequests(CountingRequests):
    """Another writer bumps one request's version just before our first save."""

    def __init__(self, victim: str) -> None:
        super().__init__()
        self.victim, self.raced = victim, False

    async def save_many(self, changes: Sequence[Change]) -> Saved:
        if not self.raced and self.victim in self.docs:
            self.raced = True
            self.docs[self.victim]["version"] += 1
        return await super().save_many(changes)


async def test_a_lost_race_is_redone_alone_and_applied_once() -> None:
    requests = RacedRequests("R-1")
    it = intake(requests)
    await feed(it, received("R-1"), received("R-2"))
    requests.saves = 0
    await feed(
        it,
        step("info-requested", "R-1", "2027-03-08T09:00:00+01:00"),
        step("info-requested", "R-2", "2027-03-08T09:00:00+01:00"),
    )
    assert requests.saves == 2  # the batch, then R-1 alone
    for rid in ("R-1", "R-2"):
        (moved,) = sent(it, "gardien.request.status_changed", rid)
        assert moved["to"] == "awaiting_identity"
        doc = await it.requests.get(rid)
        assert doc is not None and doc["status"] == "awaiting_identity"


class FailingRelay(CountingRequests):
    """The broker is unreachable for the first relay."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def relay(self, saved: Sequence[Change]) -> int:
        if not self.failed:
            self.failed = True
            raise TransientError("broker unreachable")
        return await super().relay(saved)


async def test_events_a_failed_relay_left_are_sent_when_the_batch_comes_again() -> None:
    it = intake(FailingRelay())
    first = received("R-1")
    with pytest.raises(TransientError):
        await feed(it, first)
    doc = await it.requests.get("R-1")
    assert doc is not None and doc["outbox_pending"] and sent(it, "gardien.request.accepted") == []
    await feed(it, first)  # redelivered: nothing new to apply, the pending events go out
    assert len(sent(it, "gardien.request.accepted")) == 1
    doc = await it.requests.get("R-1")
    assert doc is not None and doc["outbox"] == [] and doc["applied_events"] == [first.id]
