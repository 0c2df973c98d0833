"""Exactly-once firing with several scheduler members claiming in batches, and take-over
after a lease, on the embedded stack."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from typing import Any

import pytest

from services.deadlines import clocks
from services.deadlines.app import create_app
from services.deadlines.domain import end_of_day, to_ms
from services.deadlines.messages import Recompute, new_timer
from services.deadlines.repository import Repositories, mongo_repositories
from services.deadlines.scheduler import Scheduler
from services.deadlines.usecases import STORED
from shared import topics
from shared.clock import FakeClock
from shared.mongo import create_client, service_database
from shared.persistence import Change
from shared.rules import default_policy
from shared.settings import Settings
from tests.deadlines.helpers import stored, token
from tests.support import running, topic_reader

pytestmark = pytest.mark.integration

RECEIPT = date(2027, 3, 5)


def request_timers(prefix: str, count: int) -> list[dict[str, Any]]:
    """``count`` request timers due at the same instant, built as the use cases build them."""
    policy, docs = default_policy(), []
    for i in range(count):
        spec = clocks.request_from_inputs(
            f"{prefix}-{i:04d}", {"receipt_date": RECEIPT.isoformat()}, "FR-metropole"
        )
        docs.append(new_timer(Recompute(spec, {}), policy, f"seed-{prefix}-{i}"))
    return docs


async def seed(repos: Repositories, docs: list[dict[str, Any]]) -> None:
    """Store new timers through the repository (one bulk insert)."""
    changes = [
        Change(d["_id"], None, {k: v for k, v in d.items() if k not in STORED}) for d in docs
    ]
    result = await repos.timers.save_many(changes)
    assert result.lost == []


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


async def test_two_members_claiming_in_batches_fire_each_of_1000_timers_once(
    settings: Settings,
) -> None:
    prefix = f"R{token()}"
    docs = request_timers(prefix, 1000)
    due = end_of_day(date.fromisoformat(str(docs[0]["due_date"])))
    clock = FakeClock(due)  # at the deadline: each timer fires exactly its `due`
    app = create_app(settings, clock=clock, run_scheduler=False)
    async with running(app):
        runtime = app.state.deadlines
        repos: Repositories = app.state.repositories
        await seed(repos, docs)
        other = create_client(settings)
        broker = app.state.runtime.broker
        try:
            theirs = mongo_repositories(
                service_database(other, settings, "deadlines"), lambda: broker
            )
            first = Scheduler(repos, clock, owner="member-1", batch=100, policy=runtime.policy)
            second = Scheduler(theirs, clock, owner="member-2", batch=100, policy=runtime.policy)
            fired = await asyncio.gather(first.tick(), second.tick())
        finally:
            await other.close()
        # Both members took batches; no timer was fired by both.
        assert sum(fired) == 1000 and all(n > 0 for n in fired), fired
        records, distinct = await count_fired(settings.kafka_bootstrap_servers, prefix, 1000)
        assert (records, distinct) == (1000, 1000)
        after = await repos.timers.load_many([str(d["_id"]) for d in docs])
        assert len(after) == 1000
        for doc in after.values():
            assert doc["state"] == "due" and doc["outbox"] == [] and doc["lease_token"] is None


async def test_a_member_that_dies_mid_claim_is_taken_over_after_the_lease(
    settings: Settings,
) -> None:
    prefix = f"D{token()}"
    [doc] = request_timers(prefix, 1)
    tid = str(doc["_id"])
    due = end_of_day(date.fromisoformat(str(doc["due_date"])))
    clock = FakeClock(due)
    app = create_app(settings, clock=clock, run_scheduler=False, lease_seconds=30)
    async with running(app):
        repos: Repositories = app.state.repositories
        await seed(repos, [doc])
        # Claims everything due now (other tests' timers too); it never completes.
        claimed = await repos.timers.claim_due(to_ms(due), 30_000, "dead-member:1", 10_000)
        mine = [c for c in claimed if c["_id"] == tid]
        assert mine and mine[0]["lease_token"] == "dead-member:1"
        scheduler: Scheduler = app.state.scheduler
        await scheduler.tick()
        assert (await stored(app, tid) or {})["fired"] == []  # the lease is live: not fired
        clock.advance(timedelta(seconds=31))
        assert await scheduler.tick() >= 1
        await scheduler.tick()
        # 31 s past the deadline: `due` and `missed` each fire once, nothing twice.
        records, distinct = await count_fired(settings.kafka_bootstrap_servers, prefix, 2)
        assert (records, distinct) == (2, 2)
        # The dead member's late save cannot land: the take-over's claim moved the version.
        late = await repos.timers.save_many([Change(tid, mine[0]["version"], {"state": "x"})])
        assert late.lost == [tid] and late.saved == []
        after = await stored(app, tid)
        assert after is not None and after["state"] == "missed" and after["next_fire_ms"] is None
        assert sorted(after["fired"]) == sorted(
            f"{n}@{to_ms(due)}" for n in ("approaching:P7D", "approaching:P1D", "due", "missed")
        )
