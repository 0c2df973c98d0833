"""One contract for the access-package repository, on the fake and on MongoDB."""

from __future__ import annotations

from typing import Any

import pytest

from services.erasure.package_repo import (
    MemoryPackages,
    MongoPackages,
    PackageRepository,
    PackageState,
)
from shared.events import new_event
from shared.mongo import service_database
from shared.settings import Settings
from tests.erasure.fakes import FakeBroker


def event(n: int) -> tuple[Any, str]:
    data = {"request_id": "R-1", "package_id": "package:R-1", "n": n}
    return new_event("gardien.access.package.built", data, source="t", event_id=f"e{n}"), "R-1"


class PackageContract:
    @pytest.fixture
    def repo(self) -> PackageRepository:
        raise NotImplementedError

    async def test_saved_states_read_back_with_their_version(self, repo: PackageRepository) -> None:
        assert await repo.get("R-1") is None
        assert await repo.save(PackageState(request_id="R-1"), []) is not None
        stored = await repo.get("R-1")
        assert stored is not None and stored.version == 1 and stored.state == "collecting"
        stored.state, stored.systems, stored.links = "built", {"crm": "answered"}, ["l1"]
        assert await repo.save(stored, []) is not None
        again = await repo.get("R-1")
        assert again is not None and again.version == 2 and again.systems == {"crm": "answered"}
        assert again.links == ["l1"] and again.package_id == "package:R-1"

    async def test_a_stale_write_loses(self, repo: PackageRepository) -> None:
        await repo.save(PackageState(request_id="R-1"), [])
        assert await repo.save(PackageState(request_id="R-1"), []) is None  # insert again
        first, second = await repo.get("R-1"), await repo.get("R-1")
        assert first is not None and second is not None
        assert await repo.save(first, []) is not None
        assert await repo.save(second, []) is None

    async def test_events_are_relayed_once_and_left_ones_after_a_crash(
        self, repo: PackageRepository
    ) -> None:
        broker = FakeBroker()
        change = await repo.save(PackageState(request_id="R-1"), [event(1)])
        assert change is not None and await repo.relay(broker.as_broker(), change) == 1
        assert (await repo.get("R-1")).outbox == []  # type: ignore[union-attr]
        stored = await repo.get("R-1")
        assert stored is not None
        await repo.save(stored, [event(2)])  # "crash": never relayed
        stored = await repo.get("R-1")
        assert stored is not None and len(stored.outbox) == 1
        later = await repo.save(stored, [event(3)])  # the left event travels with the new one
        assert later is not None and [e.id for e, _ in later.events] == ["e2", "e3"]
        assert await repo.relay_left(broker.as_broker()) == 2
        assert broker.ids() == ["e1", "e2", "e3"]
        assert await repo.relay_left(broker.as_broker()) == 0

    async def test_due_lists_built_packages_past_their_end(self, repo: PackageRepository) -> None:
        for rid, state, end in [("A", "built", 100), ("B", "built", 300), ("C", "deleted", None)]:
            await repo.save(PackageState(request_id=rid, state=state, expires_ms=end), [])  # type: ignore[arg-type]
        await repo.save(PackageState(request_id="D", state="built"), [])
        assert [s.request_id for s in await repo.due(200, 10)] == ["A"]
        assert sorted(s.request_id for s in await repo.due(300, 10)) == ["A", "B"]

    async def test_delivered_since_looks_at_the_subjects_other_packages(
        self, repo: PackageRepository
    ) -> None:
        await repo.save(PackageState(request_id="A", subject="s1", delivered_ms=1000), [])
        await repo.save(PackageState(request_id="B", subject="s1"), [])
        assert await repo.delivered_since("s1", 500, "B")
        assert not await repo.delivered_since("s1", 500, "A")  # only itself
        assert not await repo.delivered_since("s1", 1001, "B")
        assert not await repo.delivered_since("s2", 0, "B")

    async def test_ensure_records_only_the_packages_not_recorded_yet(
        self, repo: PackageRepository
    ) -> None:
        await repo.save(PackageState(request_id="A", state="built", size=7), [])
        await repo.ensure(["A", "B", "C", "B"])
        a, b, c = [await repo.get(r) for r in "ABC"]
        assert a is not None and (a.state, a.size, a.version) == ("built", 7, 1)  # untouched
        assert b is not None and c is not None
        assert (b.state, b.version, c.state, c.version) == ("collecting", 1, "collecting", 1)
        await repo.ensure(["B", "C"])  # redelivered: nothing changes
        again = await repo.get("B")
        assert again is not None and again.version == 1
        await repo.ensure([])


class TestMemoryPackages(PackageContract):
    @pytest.fixture
    def repo(self) -> PackageRepository:
        return MemoryPackages()


@pytest.mark.integration
class TestMongoPackages(PackageContract):
    @pytest.fixture
    def repo(self, settings: Settings, mongo_client: Any) -> PackageRepository:
        return MongoPackages(service_database(mongo_client, settings, "erasure"))
