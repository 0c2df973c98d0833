"""Webhook subscriptions and deliveries on MongoDB (times are epoch milliseconds)."""

from __future__ import annotations

import contextlib
from datetime import datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from services.audit.repository import DELIVERY_STATES, Doc
from shared.figures import capped_count


class MongoWebhooks:
    """One document per subscription; ``secret`` is sealed under a vault key."""

    def __init__(self, webhooks: AsyncCollection[Doc]) -> None:
        self.webhooks = webhooks

    async def add(self, doc: Doc) -> None:
        await self.webhooks.insert_one(doc)

    async def get(self, sub_id: str) -> Doc | None:
        return await self.webhooks.find_one({"_id": sub_id})

    async def listed(self, *, active_only: bool = False) -> list[Doc]:
        query = {"state": "active"} if active_only else {}
        return [d async for d in self.webhooks.find(query, {"secret": 0}).sort("_id", 1)]

    async def remove(self, sub_id: str) -> bool:
        return bool((await self.webhooks.delete_one({"_id": sub_id})).deleted_count)

    async def enable(self, sub_id: str) -> None:
        await self.webhooks.update_one(
            {"_id": sub_id},
            {
                "$set": {"state": "active", "consecutive_failures": 0},
                "$unset": {"failing_since": ""},
            },
        )

    async def succeeded(self, sub_id: str) -> None:
        await self.webhooks.update_one(
            {"_id": sub_id},
            {"$set": {"consecutive_failures": 0}, "$unset": {"failing_since": ""}},
        )

    async def failed(self, sub_id: str, now_ms: int) -> Doc | None:
        updated = await self.webhooks.find_one_and_update(
            {"_id": sub_id},
            {"$inc": {"consecutive_failures": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if updated is not None and updated.get("failing_since") is None:
            await self.webhooks.update_one({"_id": sub_id}, {"$set": {"failing_since": now_ms}})
            updated["failing_since"] = now_ms
        return updated

    async def disable(self, sub_id: str, at: datetime) -> bool:
        done = await self.webhooks.update_one(
            {"_id": sub_id, "state": "active"},
            {"$set": {"state": "disabled", "disabled_at": at.isoformat()}},
        )
        return bool(done.modified_count)

    async def failing(self) -> dict[str, int]:
        found = self.webhooks.find({"state": "active"}, {"consecutive_failures": 1})
        return {str(d["_id"]): int(d.get("consecutive_failures") or 0) async for d in found}


class MongoDeliveries:
    """One document per (subscription, record); one per attempt in ``delivery_attempts``."""

    def __init__(self, deliveries: AsyncCollection[Doc], attempts: AsyncCollection[Doc]) -> None:
        self.deliveries, self.attempts = deliveries, attempts

    async def enqueue(self, docs: list[Doc]) -> None:
        if docs:
            with contextlib.suppress(BulkWriteError):  # queued by an earlier delivery
                await self.deliveries.insert_many(docs, ordered=False)

    async def claim(self, now_ms: int, lease_ms: int) -> Doc | None:
        return await self.deliveries.find_one_and_update(
            {"next_at": {"$lte": now_ms}},
            {"$set": {"next_at": now_ms + lease_ms}},
            sort=[("next_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def delivered(self, delivery_id: str, status: int) -> None:
        await self.deliveries.update_one(
            {"_id": delivery_id},
            {
                "$set": {"state": "delivered", "last_status": status},
                "$unset": {"next_at": ""},
                "$inc": {"attempts": 1},
            },
        )

    async def failed(
        self, delivery_id: str, attempts: int, status: int | None, error: str, next_at: int | None
    ) -> None:
        fields: Doc = {"attempts": attempts, "last_status": status, "last_error": error[:300]}
        change: Doc = {"$set": fields}
        if next_at is None:
            fields["state"] = "failed"
            change["$unset"] = {"next_at": ""}
        else:
            fields["next_at"] = next_at
        await self.deliveries.update_one({"_id": delivery_id}, change)

    async def close(self, delivery_id: str, state: str, why: str) -> None:
        await self.deliveries.update_one(
            {"_id": delivery_id},
            {"$set": {"state": state, "last_error": why}, "$unset": {"next_at": ""}},
        )

    async def replay(self, delivery_id: str, sub_id: str, now_ms: int) -> bool:
        done = await self.deliveries.update_one(
            {"_id": delivery_id, "sub_id": sub_id},
            {"$set": {"state": "pending", "next_at": now_ms}, "$inc": {"replays": 1}},
        )
        return bool(done.matched_count)

    async def of_subscription(self, sub_id: str) -> list[Doc]:
        return [d async for d in self.deliveries.find({"sub_id": sub_id})]

    async def log_attempt(self, doc: Doc) -> None:
        await self.attempts.insert_one(doc)

    async def attempts_of(self, delivery_ids: list[str]) -> list[Doc]:
        return [d async for d in self.attempts.find({"delivery_id": {"$in": delivery_ids}})]

    async def states(self, cap: int) -> dict[str, int]:
        return {s: await capped_count(self.deliveries, {"state": s}, cap) for s in DELIVERY_STATES}
