"""Exactly-once firing with several scheduler members claiming in batches, and take-over
after a lease, on the embedded stack."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.deadlines import clocks
from services.deadlines.app import create_app
from services.deadlines.domain import end_of_day, to_ms
from services.deadlines.messages import Recompute, new_timer
from services.deadlines.repository import MongoTimers, Repositories, mongo_repositories
from services.deadlines.scheduler import Scheduler
from services.deadlines.usecases import STORED
from shared import topics
from shared.clock import FakeClock
from shared.mongo import create_client, service_database
from shared.persistence import Change
from shared.rules import default_policy
from shared.settings import Settings
from tests.deadlines.helpers import inbound, stored, token
from tests.support import event_bytes, produce, running, topic_reader, wait_for

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
        # Every timer fired by one member only (which member takes how many batches is a race:
        # one may take them all before the other reads; the records below count doubles).
        assert sum(fired) == 1000, fired
        records, distinct = await count_fired(settings.kafka_bootstrap_servers, prefix, 1000)
        assert (records, distinct) == (1000, 1000)
        after = await repos.timers.load_many([str(d["_id"]) for d in docs])
        assert len(after) == 1000
        for doc in after.values():
            assert doc["state"] == "due" and doc["outbox"] == [] and doc["lease_token"] is None


async def test_a_member_that_dies_after_its_leased_write_is_taken_over_after_the_lease(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"D{token()}"
    [doc] = request_timers(prefix, 1)
    tid = str(doc["_id"])
    due = end_of_day(date.fromisoformat(str(doc["due_date"])))
    clock = FakeClock(due)
    app = create_app(settings, clock=clock, run_scheduler=False, lease_seconds=30)
    async with running(app):
        repos: Repositories = app.state.repositories
        scheduler: Scheduler = app.state.scheduler
        await seed(repos, [doc])

        async def dies(self: MongoTimers, saved: Any) -> int:
            raise ConnectionError("the member died after its write, before publishing")

        with monkeypatch.context() as patched:  # fires everything due now (others' too)
            patched.setattr(MongoTimers, "publish", dies)
            with pytest.raises(ConnectionError):
                await scheduler.tick()
        written = await stored(app, tid) or {}
        assert written["lease_token"] and written["outbox_pending"]  # decided, kept, leased
        await scheduler.tick()
        assert await stored(app, tid) == written  # its lease is live: left alone
        # The sweep sends what the dead member's write decided; after the lease the timer's
        # next firing (`missed`, 31 s past the deadline) is taken over.
        assert await repos.timers.relay_pending(to_ms(clock.now())) >= 1
        clock.advance(timedelta(seconds=31))
        assert await scheduler.tick() >= 1
        await scheduler.tick()
        records, distinct = await count_fired(settings.kafka_bootstrap_servers, prefix, 2)
        assert (records, distinct) == (2, 2)  # `due` and `missed`, each once
        # A late write decided from the dead member's version cannot land.
        late = await repos.timers.save_many([Change(tid, written["version"], {"state": "x"})])
        assert late.lost == [tid] and late.saved == []
        after = await stored(app, tid)
        assert after is not None and after["state"] == "missed" and after["next_fire_ms"] is None
        assert after["lease_token"] is None and after["outbox"] == []
        assert sorted(after["fired"]) == sorted(
            f"{n}@{to_ms(due)}" for n in ("approaching:P7D", "approaching:P1D", "due", "missed")
        )


async def test_two_members_of_the_group_apply_each_request_event_once_in_order(
    own_broker: Settings,
) -> None:
    settings = own_broker
    # 40 requests, each accepted then paused then resumed, spread over the 6 partitions of
    # the requests topic, read by two members of one group. Every clock ends open with the moved due
    # date (order kept per key) and each event scheduled each clock once (no double effect).
    clock = FakeClock(datetime(2027, 3, 5, tzinfo=UTC))
    one = create_app(settings, clock=clock, run_scheduler=False)
    two = create_app(settings, clock=clock, run_scheduler=False)
    t = token()
    rids = [f"REQ-G{t}-{i:02d}" for i in range(40)]
    async with (
        running(one),
        topic_reader(settings.kafka_bootstrap_servers, topics.DEADLINES) as reader,
    ):
        async with running(two):
            records: list[tuple[bytes, bytes]] = []
            for rid in rids:
                records += [(rid.encode(), event_bytes(e)) for e in request_story(rid)]
            await produce(settings.kafka_bootstrap_servers, topics.REQUEST_EVENTS, records)

            async def settled() -> dict[str, Any] | None:
                timers = one.state.repositories.timers
                found = await timers.load_many(f"request:{r}" for r in rids)
                done = [d for d in found.values() if d["due_date"] == "2027-04-15"]
                return found if len(done) == len(rids) else None

            found = await wait_for(settled, timeout=60)
            assert all(
                len(d["applied_events"]) == 3 and d["state"] == "open" for d in found.values()
            )
            scheduled = await read_scheduled(reader, t, 2 * len(rids))
            assert len(scheduled) == len(set(scheduled)) == 2 * len(rids)
        # The embedded broker keeps a group rebalancing when both members leave at once,
        # and the next member's join then hangs: the second member leaves first, alone.
        await asyncio.sleep(2 * settings.gardien_kafka_session_timeout_ms / 1000)


STEPS = [
    ("received", "awaiting_identity", "2027-03-10T10:00:00+01:00"),
    ("awaiting_identity", "in_progress", "2027-03-20T10:00:00+01:00"),
]


def request_story(rid: str) -> list[dict[str, Any]]:
    """Accepted, paused for identity, resumed: the clock ends due 2027-04-15 (R-DSR-3)."""
    accepted = {"request_id": rid, "right": "access", "status": "received",
                "received_at": "2027-03-05T16:45:00+01:00", "subject_kind": "customer",
                "channel": "web"}  # fmt: skip
    story = [inbound("gardien.request.accepted", accepted)]
    for frm, to, at in STEPS:
        step = {"request_id": rid, "from": frm, "to": to, "cause": "x", "at": at}
        story.append(inbound("gardien.request.status_changed", step))
    return story


async def read_scheduled(reader: Any, t: str, expected: int) -> list[str]:
    """Ids of this test's ``scheduled`` events: until ``expected`` came and 2 s were quiet."""
    ids: list[str] = []
    quiet, loop = 0, asyncio.get_running_loop()
    deadline = loop.time() + 45
    while (len(ids) < expected or quiet < 4) and loop.time() < deadline:
        batch = await reader.getmany(timeout_ms=500)
        got = [json.loads(r.value) for rs in batch.values() for r in rs]
        mine = [e["id"] for e in got if e["type"].endswith("scheduled") and f"REQ-G{t}" in e["id"]]
        ids += mine
        quiet = quiet + 1 if not mine else 0
    return ids
