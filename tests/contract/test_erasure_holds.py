"""One contract for erasure's HoldRepository, run on the in-memory fake and on MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.erasure.holds import Hold
from services.erasure.memory import MemoryHolds
from services.erasure.mongo import MongoHolds
from services.erasure.repository import HoldRepository
from shared.mongo import service_database
from shared.settings import Settings

AT = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def hold(hold_id: str, *refs: str, categories: tuple[str, ...] = ("accounting",)) -> Hold:
    return Hold(hold_id, f"matter-{hold_id}", frozenset(refs), frozenset(categories))


class HoldContract:
    @pytest.fixture
    def repo(self) -> HoldRepository:
        raise NotImplementedError

    async def test_a_hold_is_recorded_once(self, repo: HoldRepository) -> None:
        assert await repo.add(hold("H1", "ref-a"), AT) == hold("H1", "ref-a")
        again = await repo.add(hold("H1", "ref-b", categories=()), AT)
        assert again == hold("H1", "ref-a")  # a redelivery keeps the first scope

    async def test_active_holds_name_the_subject_or_nobody(self, repo: HoldRepository) -> None:
        await repo.add(hold("H1", "ref-a"), AT)
        await repo.add(hold("H2", "ref-b"), AT)
        await repo.add(hold("ALL"), AT)
        assert sorted(h.hold_id for h in await repo.active_for(["ref-a"])) == ["ALL", "H1"]
        assert [h.hold_id for h in await repo.active_for([])] == ["ALL"]

    async def test_a_released_hold_is_no_longer_active(self, repo: HoldRepository) -> None:
        await repo.add(hold("H1", "ref-a"), AT)
        assert await repo.release("H1", AT) is True
        assert await repo.release("NEVER", AT) is False
        assert await repo.active_for(["ref-a"]) == []


class TestMemoryHolds(HoldContract):
    @pytest.fixture
    def repo(self) -> HoldRepository:
        return MemoryHolds()


@pytest.mark.integration
class TestMongoHolds(HoldContract):
    @pytest.fixture
    def repo(self, settings: Settings, mongo_client: Any) -> HoldRepository:
        return MongoHolds(service_database(mongo_client, settings, "erasure"))
