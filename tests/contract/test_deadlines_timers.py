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


def leased(doc_id: str, version: int, token: str, at: int = NOW + 1) -> Change:
    """A firing decided at ``at`` from ``version``: the timer moves on, leased 30 s."""
    fields = {"next_fire_ms": NOW + 50, "lease_until_ms": at + 30_000, "lease_token": token}
    return Change(doc_id, version, fields)


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

    async def test_due_lists_free_due_timers_earliest_first_up_to_the_limit(
        self, repo: TimerRepository
    ) -> None:
        await repo.save_many([timer(i) for i in range(5, 0, -1)] + [timer(99, next_fire_ms=None)])
        assert [d["_id"] for d in await repo.due(NOW + 4, 3)] == ["t1", "t2", "t3"]
        assert [d["_id"] for d in await repo.due(NOW + 4, 10)] == ["t1", "t2", "t3", "t4"]
        await repo.fire_many([leased("t2", 1, "me")], NOW + 4)
        assert [d["_id"] for d in await repo.due(NOW + 4, 10)] == ["t1", "t3", "t4"]
        assert await repo.next_due_ms(NOW + 1, NOW + 4) == NOW + 3  # t2 moved to NOW + 50
        assert await repo.next_due_ms(NOW + 5, NOW + 49) is None

    async def test_due_passes_over_leased_timers_few_or_many_earliest_free_first(
        self, repo: TimerRepository
    ) -> None:
        def held(n: int) -> Change:  # leased, and due again before every free timer
            lease = {"next_fire_ms": NOW - 100 + n, "lease_until_ms": NOW + 30_000}
            return Change(f"t{n}", 1, {**lease, "lease_token": "me"})

        await repo.save_many([timer(i) for i in range(1, 21)])
        await repo.fire_many([held(1)], NOW)
        assert [d["_id"] for d in await repo.due(NOW + 60, 3)] == ["t2", "t3", "t4"]
        await repo.fire_many([held(i) for i in range(2, 15)], NOW)  # more than pages hold
        assert [d["_id"] for d in await repo.due(NOW + 60, 3)] == ["t15", "t16", "t17"]
        assert [d["_id"] for d in await repo.due(NOW + 60, 10)] == [f"t{i}" for i in range(15, 21)]

    async def test_a_leased_write_keeps_other_writes_out_until_the_lease_ends(
        self, repo: TimerRepository
    ) -> None:
        await repo.save_many([timer(1)])
        first = await repo.fire_many([leased("t1", 1, "me")], NOW + 1)
        assert [c.doc_id for c in first.saved] == ["t1"] and first.lost == []
        doc = (await repo.load_many(["t1"]))["t1"]
        assert (doc["version"], doc["lease_token"]) == (2, "me")
        assert doc["lease_until_ms"] == NOW + 30_001
        live = await repo.fire_many([leased("t1", 2, "you", at=NOW + 2)], NOW + 2)
        assert live.lost == ["t1"] and live.saved == []  # the lease is live
        stale = await repo.fire_many([leased("t1", 1, "late", at=NOW + 40_000)], NOW + 40_000)
        assert stale.lost == ["t1"]  # decided from a version the first write moved
        after = await repo.fire_many([leased("t1", 2, "next", at=NOW + 40_000)], NOW + 40_000)
        assert [c.doc_id for c in after.saved] == ["t1"]  # the lease ended: taken over

    async def test_racing_leased_writes_never_both_win(self, repo: TimerRepository) -> None:
        await repo.save_many([timer(i) for i in range(200)])
        a, b = await asyncio.gather(
            repo.fire_many([leased(f"t{i}", 1, "a") for i in range(150)], NOW + 500),
            repo.fire_many([leased(f"t{i}", 1, "b") for i in range(50, 200)], NOW + 500),
        )
        ids_a, ids_b = {c.doc_id for c in a.saved}, {c.doc_id for c in b.saved}
        assert not ids_a & ids_b and len(ids_a | ids_b) == 200
        assert sorted(a.lost + b.lost) == sorted(f"t{i}" for i in range(50, 150))

    async def test_relay_publishes_then_frees_the_lease_and_clears_the_outbox(
        self, repo: TimerRepository
    ) -> None:
        await repo.save_many([timer(1)])
        change = leased("t1", 1, "me")
        event = new_event("gardien.deadline.due", {"timer_id": "t1"}, source="test")
        change.outbox = [{"id": event.id, "key": "t1", "event": event.model_dump(mode="json")}]
        change.events = [(event, "t1")]
        fired = await repo.fire_many([change], NOW + 1)
        assert (await repo.load_many(["t1"]))["t1"]["outbox_pending"]
        assert await repo.relay(fired.saved) == 1
        doc = (await repo.load_many(["t1"]))["t1"]
        assert doc["outbox"] == [] and not doc["outbox_pending"]
        assert doc["lease_token"] is None and doc["lease_until_ms"] == 0

    async def test_publish_leaves_the_outbox_until_clear_empties_it_and_frees_the_lease(
        self, repo: TimerRepository
    ) -> None:
        await repo.save_many([timer(1), timer(2)])
        changes = []
        for n in (1, 2):
            change = leased(f"t{n}", 1, "me")
            event = new_event("gardien.deadline.due", {"timer_id": f"t{n}"}, source="test")
            entry = {"id": event.id, "key": f"t{n}", "event": event.model_dump(mode="json")}
            change.outbox, change.events = [entry], [(event, f"t{n}")]
            changes.append(change)
        fired = await repo.fire_many(changes, NOW + 1)
        assert await repo.publish(fired.saved) == 2
        docs = await repo.load_many(["t1", "t2"])
        assert all(d["outbox_pending"] and d["lease_token"] == "me" for d in docs.values())
        await repo.save_many([Change("t2", 2, {"state": "newer"})])  # a newer writer's t2
        slim = [Change(c.doc_id, c.version, {"lease_token": "me"}, token=c.token) for c in changes]
        await repo.clear(slim)
        docs = await repo.load_many(["t1", "t2"])
        assert docs["t1"]["outbox"] == [] and not docs["t1"]["outbox_pending"]
        assert docs["t1"]["lease_token"] is None and docs["t1"]["lease_until_ms"] == 0
        assert docs["t2"]["state"] == "newer" and docs["t2"]["lease_token"] is None

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
