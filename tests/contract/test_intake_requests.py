"""The intake request repository contract, run on the in-memory fake and on MongoDB."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from faststream.kafka import KafkaBroker

from services.intake.memory import MemoryRequests
from services.intake.repository import INDEXES, MongoRequests, Requests
from shared.events import CloudEvent, new_event
from shared.mongo import service_database
from shared.outbox import outbox_entry
from shared.persistence import Change
from shared.settings import Settings
from tests.support import SendRecorder


def event(n: int) -> CloudEvent:
    return new_event(
        "gardien.request.accepted", {"request_id": f"R-{n}"}, source="t", event_id=f"e{n}"
    )


def change(doc_id: str, version: int | None, *events: CloudEvent, **fields: Any) -> Change:
    pairs = [(e, doc_id) for e in events]
    outbox = [outbox_entry(e, doc_id) for e in events]
    return Change(doc_id, version, {"status": "received", **fields}, outbox, pairs)


class RequestsContract:
    """Behaviour every ``Requests`` implementation has."""

    def sent(self, repo: Any) -> list[str]:
        raise NotImplementedError

    async def test_new_requests_are_inserted_once(self, repo: Requests) -> None:
        first = await repo.save_many([change("A", None, n=1), change("B", None, n=1)])
        assert sorted(c.doc_id for c in first.saved) == ["A", "B"] and first.lost == []
        again = await repo.save_many([change("A", None, n=2)])
        assert again.saved == [] and again.lost == ["A"]
        found = await repo.load_many(["A", "B", "C"])
        assert sorted(found) == ["A", "B"]
        assert found["A"]["version"] == 1 and found["A"]["n"] == 1

    async def test_an_update_at_a_stale_version_loses_its_race(self, repo: Requests) -> None:
        await repo.save_many([change("A", None, n=1), change("B", None, n=1)])
        done = await repo.save_many([change("A", 1, n=2), change("B", 7, n=2)])
        assert [c.doc_id for c in done.saved] == ["A"] and done.lost == ["B"]
        found = await repo.load_many(["A", "B"])
        assert (found["A"]["version"], found["A"]["n"]) == (2, 2)
        assert (found["B"]["version"], found["B"]["n"]) == (1, 1)
        assert found["A"]["status"] == "received"  # fields not in the change stay

    async def test_relay_publishes_and_clears_only_its_own_outbox(self, repo: Requests) -> None:
        ours = await repo.save_many([change("A", None, event(1)), change("B", None, event(2))])
        newer = await repo.save_many([change("B", 1, event(2), event(3))])  # a newer writer
        assert await repo.relay(ours.saved) == 2
        assert sorted(self.sent(repo)) == ["e1", "e2"]
        found = await repo.load_many(["A", "B"])
        assert found["A"]["outbox"] == [] and not found["A"]["outbox_pending"]
        assert [e["id"] for e in found["B"]["outbox"]] == ["e2", "e3"]
        assert await repo.relay(newer.saved) == 2
        assert (await repo.load_many(["B"]))["B"]["outbox"] == []

    async def test_relay_pending_sends_what_a_crash_left(self, repo: Requests) -> None:
        await repo.save_many([change("A", None, event(1)), change("B", None)])
        assert await repo.relay_pending() == 1
        assert self.sent(repo) == ["e1"]
        assert (await repo.get("A") or {})["outbox"] == []

    async def test_outbox_backlog_counts_events_left_unsent(self, repo: Requests) -> None:
        ours = await repo.save_many([change("A", None, event(1), event(2)), change("B", None)])
        assert await repo.outbox_backlog(100) == 2
        await repo.relay(ours.saved)
        assert await repo.outbox_backlog(100) == 0
        assert await repo.outbox_backlog(0) == 0

    async def test_pages_by_id_and_status(self, repo: Requests) -> None:
        await repo.save_many(
            [
                change(i, None, status=s)
                for i, s in [("A", "received"), ("B", "closed"), ("C", "received")]
            ]
        )
        assert [d["_id"] for d in await repo.page(None, None, 2)] == ["A", "B"]
        assert [d["_id"] for d in await repo.page(None, "B", 10)] == ["C"]
        assert [d["_id"] for d in await repo.page("received", None, 10)] == ["A", "C"]
        assert await repo.get("Z") is None
        assert (await repo.get("B") or {})["status"] == "closed"


class TestMemoryRequests(RequestsContract):
    @pytest.fixture
    def repo(self) -> MemoryRequests:
        return MemoryRequests()

    def sent(self, repo: Any) -> list[str]:
        return [e.id for e, _ in repo.sent]


class RecordingBroker(SendRecorder):
    """Stands for the Kafka broker: records what the relay publishes."""

    def __init__(self) -> None:
        self.published: list[str] = []

    def record(self, topic: str, key: bytes, value: bytes) -> None:
        self.published.append(json.loads(value)["id"])


@pytest.mark.integration
class TestMongoRequests(RequestsContract):
    @pytest.fixture
    async def repo(self, mongo_client: Any, settings: Settings) -> MongoRequests:
        db = service_database(mongo_client, settings, "intake")
        await INDEXES.apply(db)
        return MongoRequests(db, cast(KafkaBroker, RecordingBroker()))

    def sent(self, repo: Any) -> list[str]:
        return list(repo.broker.published)
