"""One contract for audit's DeliveryRepository, run on the in-memory fake and on MongoDB."""

from __future__ import annotations

from typing import Any

import pytest

from services.audit.memory_webhooks import MemoryDeliveries
from services.audit.mongo import ATTEMPTS, DELIVERIES, INDEXES
from services.audit.mongo_webhooks import MongoDeliveries
from services.audit.repository import DeliveryRepository
from shared.mongo import service_database
from shared.settings import Settings


def queued(delivery_id: str, sub_id: str = "wh_a", next_at: int = 100) -> dict[str, Any]:
    return {
        "_id": delivery_id,
        "sub_id": sub_id,
        "state": "pending",
        "attempts": 0,
        "next_at": next_at,
        "created_at": next_at,
    }


async def one(repo: DeliveryRepository, delivery_id: str, sub_id: str = "wh_a") -> dict[str, Any]:
    [doc] = [d for d in await repo.of_subscription(sub_id) if d["_id"] == delivery_id]
    return doc


class DeliveryContract:
    @pytest.fixture
    def repo(self) -> DeliveryRepository:
        raise NotImplementedError

    async def test_queued_once_claimed_in_due_order_under_a_lease(
        self, repo: DeliveryRepository
    ) -> None:
        await repo.enqueue([queued("d2", next_at=200), queued("d1", next_at=100)])
        await repo.enqueue([{**queued("d1"), "state": "other"}])  # queued before: kept
        assert (await one(repo, "d1"))["state"] == "pending"
        claimed = await repo.claim(300, 1000)
        assert claimed is not None and (claimed["_id"], claimed["next_at"]) == ("d1", 1300)
        second = await repo.claim(300, 1000)
        assert second is not None and second["_id"] == "d2"
        assert await repo.claim(300, 1000) is None  # both leased

    async def test_outcomes(self, repo: DeliveryRepository) -> None:
        await repo.enqueue([queued("ok"), queued("retry"), queued("gave_up"), queued("gone")])
        await repo.delivered("ok", 204)
        await repo.failed("retry", 1, 500, "x" * 400, 5000)
        await repo.failed("gave_up", 5, None, "ConnectError", None)
        await repo.close("gone", "cancelled", "subscription gone")
        ok, retry = await one(repo, "ok"), await one(repo, "retry")
        assert (ok["state"], ok["attempts"], ok["last_status"], "next_at" in ok) == (
            "delivered",
            1,
            204,
            False,
        )
        assert (retry["next_at"], retry["attempts"], len(retry["last_error"])) == (5000, 1, 300)
        gave_up, gone = await one(repo, "gave_up"), await one(repo, "gone")
        assert (gave_up["state"], "next_at" in gave_up) == ("failed", False)
        assert (gone["state"], gone["last_error"], "next_at" in gone) == (
            "cancelled",
            "subscription gone",
            False,
        )
        assert await repo.claim(10**6, 1000) is not None  # only "retry" is due
        assert await repo.claim(10**6, 1000) is None

    async def test_replay_only_through_its_subscription(self, repo: DeliveryRepository) -> None:
        await repo.enqueue([queued("d1")])
        await repo.delivered("d1", 200)
        assert await repo.replay("d1", "wh_other", 50) is False
        assert await repo.replay("d1", "wh_a", 50) is True
        doc = await one(repo, "d1")
        assert (doc["state"], doc["next_at"], doc["replays"]) == ("pending", 50, 1)

    async def test_attempts_are_logged_per_delivery(self, repo: DeliveryRepository) -> None:
        for i, did in enumerate(("d1", "d1", "d2")):
            await repo.log_attempt({"_id": f"{did}@{i}", "delivery_id": did, "at": i})
        assert sorted(a["at"] for a in await repo.attempts_of(["d1"])) == [0, 1]
        assert await repo.attempts_of([]) == []

    async def test_states_are_counted_up_to_a_cap(self, repo: DeliveryRepository) -> None:
        await repo.enqueue([queued(f"d{i}") for i in range(3)] + [queued("ok")])
        await repo.delivered("ok", 200)
        assert await repo.states(2) == {"pending": 2, "delivered": 1, "failed": 0, "cancelled": 0}


class TestMemoryDeliveries(DeliveryContract):
    @pytest.fixture
    def repo(self) -> DeliveryRepository:
        return MemoryDeliveries()


@pytest.mark.integration
class TestMongoDeliveries(DeliveryContract):
    @pytest.fixture
    async def repo(self, settings: Settings, mongo_client: Any) -> DeliveryRepository:
        db = service_database(mongo_client, settings, "audit")
        await INDEXES.apply(db)
        return MongoDeliveries(db[DELIVERIES], db[ATTEMPTS])
