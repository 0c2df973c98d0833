"""The contract of deadlines' ``TimerRepository``: one suite, run on the in-memory fake and
on MongoDB (the embedded nx-27017 server)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from services.deadlines.memory import MemoryTimers
from services.deadlines.repository import INDEXES, Listing, MongoTimers, TimerRepository
from shared.events import new_event
from shared.persistence import Change
from shared.settings import Settings

NOW = 1_900_000_000_000


def timer(n: int, **fields: Any) -> Change:
    """A new timer ``t<n>`` due at ``NOW + n`` (free, nothing fired)."""
    base = {
        "kind": "request", "state": "open", "due_ms": NOW + n, "next_fire_ms": NOW + n,
        "sort_key": f"{NOW + n:015d}|t{n}", "lease_until_ms": 0, "lease_token": None,
        "subject_refs": [], "category": None, "processor": None,
    }  # fmt: skip
    return Change(f"t{n}", None, {**base, **fields})


def queued(doc_id: str, version: int | None, name: str) -> Change:
    event = new_event("gardien.deadline.due", {"timer_id": doc_id}, source="test")
    entry = {"id": event.id, "key": doc_id, "event": event.model_dump(mode="json")}
    return Change(doc_id, version, {"outbox_at_ms": NOW, "n": name}, [entry], [(event, doc_id)])


class TimerContract:
    """Behaviour every ``TimerRepository`` keeps; subclasses provide the ``repo`` fixture."""

    async def test_new_timers_are_saved_and_loaded_in_one_call(self, repo: TimerRepository) -> None:
        result = await repo.save_many([timer(1), timer(2)])
        assert sorted(c.doc_id for c in result.saved) == ["t1", "t2"] and result.lost == []
        docs = await repo.load_many(["t1", "t2", "missing"])
        assert set(docs) == {"t1", "t2"} and docs["t1"]["version"] == 1
        assert docs["t1"]["next_fire_ms"] == NOW + 1

    async def test_a_save_from_a_stale_version_loses_its_race(self, repo: TimerRepository) -> None:
        await repo.save_many([timer(1), timer(2)])
        await repo.save_many([Change("t2", 1, {"state": "theirs"})])
        result = await repo.save_many(
            [Change("t1", 1, {"state": "ours"}), Change("t2", 1, {"state": "ours"}), timer(2)]
        )
        assert [c.doc_id for c in result.saved] == ["t1"] and sorted(result.lost) == ["t2", "t2"]
        docs = await repo.load_many(["t1", "t2"])
        assert (docs["t1"]["state"], docs["t2"]["state"]) == ("ours", "theirs")
        assert docs["t2"]["version"] == 2

    async def test_relay_clears_the_outbox_but_never_a_newer_writers(
        self, repo: TimerRepository
    ) -> None:
        first = await repo.save_many([queued("a", None, "1"), queued("b", None, "1")])
        newer = queued("b", 1, "2")
        newer.outbox = [*first.saved[1].outbox, *newer.outbox]
        await repo.save_many([newer])
        assert await repo.relay(first.saved) == 2
        docs = await repo.load_many(["a", "b"])
        assert docs["a"]["outbox"] == [] and not docs["a"]["outbox_pending"]
        assert len(docs["b"]["outbox"]) == 2 and docs["b"]["outbox_pending"]

    async def test_claims_lease_due_free_timers_up_to_the_limit_and_bump_versions(
        self, repo: TimerRepository
    ) -> None:
        await repo.save_many([timer(i) for i in range(1, 6)] + [timer(99, next_fire_ms=None)])
        got = await repo.claim_due(NOW + 4, 30_000, "me", 3)
        assert [d["_id"] for d in got] == ["t1", "t2", "t3"]
        assert all(d["lease_token"] == "me" and d["version"] == 2 for d in got)
        assert [d["_id"] for d in await repo.claim_due(NOW + 4, 30_000, "you", 10)] == ["t4"]
        assert await repo.claim_due(NOW + 4, 30_000, "late", 10) == []  # live leases
        retaken = await repo.claim_due(NOW + 40_000, 30_000, "later", 10)
        assert sorted(d["_id"] for d in retaken) == ["t1", "t2", "t3", "t4", "t5"]
        stale = await repo.save_many([Change("t1", 2, {"state": "fired by me"})])
        assert stale.lost == ["t1"]  # the expired claim's save loses to the new claim

    async def test_racing_claims_never_share_a_timer(self, repo: TimerRepository) -> None:
        await repo.save_many([timer(i) for i in range(200)])
        a, b = await asyncio.gather(
            repo.claim_due(NOW + 500, 30_000, "a", 150), repo.claim_due(NOW + 500, 30_000, "b", 150)
        )
        ids_a, ids_b = {d["_id"] for d in a}, {d["_id"] for d in b}
        assert not ids_a & ids_b and len(ids_a | ids_b) == 200

    async def test_pages_follow_deadline_order_filters_and_cursor(
        self, repo: TimerRepository
    ) -> None:
        await repo.save_many(
            [timer(3), timer(1, state="met"), timer(2, kind="retention"), timer(4)]
        )
        page = await repo.page(Listing(limit=2))
        assert [d["_id"] for d in page] == ["t1", "t2"]
        rest = await repo.page(Listing(after=page[-1]["sort_key"], limit=10))
        assert [d["_id"] for d in rest] == ["t3", "t4"]
        met = await repo.page(Listing(states=("met",), due_before_ms=NOW + 2))
        assert [d["_id"] for d in met] == ["t1"]
        assert [d["_id"] for d in await repo.page(Listing(kinds=("retention",)))] == ["t2"]

    async def test_finds_retention_and_processor_timers(self, repo: TimerRepository) -> None:
        await repo.save_many([
            timer(1, kind="retention", subject_refs=["r1"], category="customer"),
            timer(2, kind="retention", subject_refs=["r2"], category="prospect"),
            timer(3, kind="processor_deletion", processor="P-1"),
        ])  # fmt: skip
        assert await repo.retention_for(["r2", "rx"], []) == ["t2"]
        assert await repo.retention_for([], ["customer"]) == ["t1"]
        assert sorted(await repo.retention_for([], [])) == ["t1", "t2"]
        assert await repo.for_processor("P-1") == ["t3"]

    async def test_stale_outboxes_are_relayed_once_old_enough(self, repo: TimerRepository) -> None:
        await repo.save_many([queued("a", None, "1")])
        assert await repo.relay_pending(NOW - 1) == 0
        assert await repo.relay_pending(NOW) == 1
        assert (await repo.load_many(["a"]))["a"]["outbox"] == []

    async def test_open_clocks_show_kind_state_and_deadline_only(
        self, repo: TimerRepository
    ) -> None:
        await repo.save_many([
            timer(1, base="open", subject_refs=["r1"]),
            timer(2, base="open", kind="breach_authority", state="approaching"),
            timer(3, base="met"),
            timer(4, base="open", due_ms=None),
        ])  # fmt: skip
        found = await repo.open_clocks(10)
        assert sorted(found, key=lambda d: d["due_ms"]) == [
            {"kind": "request", "state": "open", "due_ms": NOW + 1},
            {"kind": "breach_authority", "state": "approaching", "due_ms": NOW + 2},
        ]
        assert len(await repo.open_clocks(1)) == 1

    async def test_outbox_backlog_counts_events_left_unsent(self, repo: TimerRepository) -> None:
        first = await repo.save_many([queued("a", None, "1"), queued("b", None, "1"), timer(1)])
        two = queued("b", 1, "2")
        two.outbox = [*first.saved[1].outbox, *two.outbox]
        await repo.save_many([two])
        assert await repo.outbox_backlog(100) == 3
        await repo.relay([first.saved[0]])
        assert await repo.outbox_backlog(100) == 2
        assert await repo.outbox_backlog(0) == 0


class TestMemoryTimers(TimerContract):
    @pytest.fixture
    def repo(self) -> TimerRepository:
        return MemoryTimers()


@pytest.mark.integration
class TestMongoTimers(TimerContract):
    @pytest.fixture
    async def repo(self, mongo_client: Any, settings: Settings) -> AsyncIterator[TimerRepository]:
        db = mongo_client[settings.database_name(f"dlct{uuid.uuid4().hex[:8]}")]
        await INDEXES.apply(db)
        async with KafkaBroker(settings.kafka_bootstrap_servers) as kafka:  # connected
            yield MongoTimers(db, lambda: kafka)
