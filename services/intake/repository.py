"""Storage of requests and subject request history: Protocols and MongoDB implementations."""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any, Protocol

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.mongo import IndexPlan

REQUESTS, HISTORY = "requests", "subject_requests"

INDEXES = IndexPlan(
    {
        REQUESTS: [
            IndexModel([("source_event_id", ASCENDING)], unique=True, name="source_event_id"),
            IndexModel([("status", ASCENDING)], name="status"),
            IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
        ],
        # One document per (identifier hash, request): single-field index, queried with $in.
        HISTORY: [IndexModel([("subject_hash", ASCENDING)], name="subject_hash")],
    }
)


class RequestRepository(Protocol):
    async def add(self, doc: dict[str, Any]) -> bool: ...
    async def get(self, request_id: str) -> dict[str, Any] | None: ...
    async def update(self, request_id: str, version: int, update: dict[str, Any]) -> bool: ...
    async def page(
        self, status: str | None, after: str | None, limit: int
    ) -> list[dict[str, Any]]: ...


class SubjectHistory(Protocol):
    async def record(
        self, hashes: list[str], request_id: str, right: str, receipt: date
    ) -> None: ...
    async def requests_of(self, hashes: list[str]) -> list[str]: ...
    async def dates(self, hashes: list[str], right: str, exclude: str) -> list[date]: ...


class MongoRequests:
    """Requests in the intake database, one document per request (its id as ``_id``)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection: AsyncCollection[dict[str, Any]] = db[REQUESTS]

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

    async def page(self, status: str | None, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` requests by id after ``after``, optionally of one status."""
        query: dict[str, Any] = {}
        if status:
            query["status"] = status
        if after:
            query["_id"] = {"$gt": after}
        cursor = self.collection.find(query, {"outbox": 0, "applied_events": 0})
        return await cursor.sort("_id", ASCENDING).limit(limit).to_list(limit)


class MongoSubjectHistory:
    """Each subject's requests, keyed by a keyed hash of each identifier (no raw values)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection: AsyncCollection[dict[str, Any]] = db[HISTORY]

    async def record(self, hashes: list[str], request_id: str, right: str, receipt: date) -> None:
        """Remember the request under every identifier hash (idempotent)."""
        for subject_hash in hashes:
            doc = {
                "_id": f"{subject_hash}:{request_id}",
                "subject_hash": subject_hash,
                "request_id": request_id,
                "right": right,
                "receipt_date": receipt.isoformat(),
            }
            with contextlib.suppress(DuplicateKeyError):
                await self.collection.insert_one(doc)

    async def requests_of(self, hashes: list[str]) -> list[str]:
        """Ids of every request recorded under one of ``hashes`` (the same subject)."""
        found = self.collection.find({"subject_hash": {"$in": hashes}}, {"request_id": 1})
        return sorted({str(doc["request_id"]) async for doc in found})

    async def dates(self, hashes: list[str], right: str, exclude: str) -> list[date]:
        """Receipt dates of this subject's other requests of ``right`` (once per request)."""
        seen: dict[str, date] = {}
        async for doc in self.collection.find({"subject_hash": {"$in": hashes}}):
            if doc["right"] == right and doc["request_id"] != exclude:
                seen[doc["request_id"]] = date.fromisoformat(doc["receipt_date"])
        return list(seen.values())
