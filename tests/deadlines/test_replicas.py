"""Exactly-once firing with several scheduler replicas, and take-over after a lease."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

import pytest

from services.deadlines import clocks
from services.deadlines.app import create_app
from services.deadlines.documents import Change, new_timer
from services.deadlines.domain import end_of_day
from services.deadlines.repository import MongoTimers
from services.deadlines.scheduler import Scheduler
from shared import topics
from shared.clock import FakeClock
from shared.mongo import create_client, service_database
from shared.rules import default_policy
from shared.settings import Settings
from tests.deadlines.helpers import token
from tests.support import running, topic_reader

pytestmark = pytest.mark.integration

RECEIPT = date(2027, 3, 5)


def request_timers(prefix: str, count: int) -> list[dict[str, object]]:
    """``count`` request timers due at the same instant, built as the use cases build them."""
    policy, docs = default_policy(), []
    for i in range(count):
        spec = clocks.request_from_inputs(
            f"{prefix}-{i:04d}", {"receipt_date": RECEIPT.isoformat()}, "FR-metropole"
        )
        docs.append(new_timer(Change(spec, {}), policy, f"seed-{prefix}-{i}"))
    return docs


async def count_fired(bootstrap: str, prefix: str, expected: int) -> tuple[int, int]:
    """(records, distinct ids) on the deadlines topic for timers of ``prefix``."""
    ids: list[str] = []
    async with topic_reader(bootstrap, topics.DEADLINES) as reader:
        idle = 0
        while idle < 5:  # read until the topic has been quiet for ~1 s after the expected count
            batch = await reader.getmany(timeout_ms=200)
            got = [
                json.loads(r.value)["id"]
                for rs in batch.values()
                for r in rs
                if r.key and r.key.decode().startswith(f"request:{prefix}")
            ]
            ids += got
            idle = idle + 1 if not got and len(ids) >= expected else 0
    return len(ids), len(set(ids))


async def test_two_replicas_fire_each_of_1000_timers_once(settings: Settings) -> None:
    prefix = f"R{token()}"
    docs = request_timers(prefix, 1000)
    due = end_of_day(date.fromisoformat(str(docs[0]["due_date"])))
    clock = FakeClock(due)  # at the deadline: each timer fires exactly its `due`
    app = create_app(settings, clock=clock, run_scheduler=False)
    async with running(app):
        runtime = app.state.deadlines.runtime
        await MongoTimers(runtime.db).collection.insert_many(docs)
        other = create_client(settings)
        try:
            second = Scheduler(
                lambda: MongoTimers(service_database(other, settings, "deadlines")),
                lambda: runtime.broker, clock, owner="replica-2",
            )  # fmt: skip
            first: Scheduler = app.state.scheduler
            fired = await asyncio.gather(first.tick(), second.tick())
        finally:
            await other.close()
        assert sum(fired) == 1000 and all(n > 0 for n in fired), fired
        records, distinct = await count_fired(settings.kafka_bootstrap_servers, prefix, 1000)
        assert (records, distinct) == (1000, 1000)
        stored = MongoTimers(runtime.db).collection.find({"_id": {"$gt": f"request:{prefix}"}})
        async for doc in stored:
            if str(doc["_id"]).startswith(f"request:{prefix}"):
                assert doc["state"] == "due" and doc["outbox"] == [] and doc["lease_token"] is None


async def test_a_replica_that_dies_mid_claim_is_taken_over_after_the_lease(
    settings: Settings,
) -> None:
    prefix = f"D{token()}"
    [doc] = request_timers(prefix, 1)
    due = end_of_day(date.fromisoformat(str(doc["due_date"])))
    clock = FakeClock(due)
    app = create_app(settings, clock=clock, run_scheduler=False, lease_seconds=30)
    async with running(app):
        timers = MongoTimers(app.state.deadlines.runtime.db)
        await timers.add(doc)
        now_ms = int(due.timestamp() * 1000)
        claimed = await timers.claim_due(now_ms, 30_000, "dead-replica:1")  # never completes
        assert claimed is not None and claimed["_id"] == doc["_id"]
        scheduler: Scheduler = app.state.scheduler
        assert await scheduler.tick() == 0  # the lease is live: nobody else fires it
        clock.advance(timedelta(seconds=31))
        assert await scheduler.tick() == 1
        assert await scheduler.tick() == 0
        # 31 s past the deadline: `due` and `missed` each fire once, nothing twice.
        records, distinct = await count_fired(settings.kafka_bootstrap_servers, prefix, 2)
        assert (records, distinct) == (2, 2)
        # The dead replica's late write cannot land: its lease token is gone.
        assert not await timers.update_leased(str(doc["_id"]), 1, "dead-replica:1", {"$set": {}})
        after = await timers.get(str(doc["_id"]))
        assert after is not None and after["state"] == "missed" and after["next_fire_ms"] is None
        assert sorted(after["fired"]) == sorted(
            f"{n}@{int(due.timestamp() * 1000)}"
            for n in ("approaching:P7D", "approaching:P1D", "due", "missed")
        )
