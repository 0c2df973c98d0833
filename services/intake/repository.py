"""Storage of requests: a Protocol and its MongoDB implementation."""

from __future__ import annotations

from typing import Any, Protocol

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.mongo import IndexPlan

REQUESTS = "requests"

INDEXES = IndexPlan(
    {
        REQUESTS: [
            IndexModel([("source_event_id", ASCENDING)], unique=True, name="source_event_id"),
            IndexModel([("status", ASCENDING)], name="status"),
            IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
        ]
    }
)


class RequestRepository(Protocol):
    async def add(self, doc: dict[str, Any]) -> bool: ...
    async def get(self, request_id: str) -> dict[str, Any] | None: ...
    async def update(self, request_id: str, version: int, update: dict[str, Any]) -> bool: ...


class MongoRequests:
    """Requests in the intake database, one document per request (its id as ``_id``)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = db[REQUESTS]

    async def add(self, doc: dict[str, Any]) -> bool:
        """Insert a new request; False when its id or its source event id exists already."""
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def get(self, request_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": request_id})

    async def update(self, request_id: str, version: int, update: dict[str, Any]) -> bool:
        """Apply ``update`` only if the document is still at ``version`` (optimistic lock)."""
        update = {**update, "$inc": {**update.get("$inc", {}), "version": 1}}
        result = await self.collection.update_one({"_id": request_id, "version": version}, update)
        return result.matched_count == 1
