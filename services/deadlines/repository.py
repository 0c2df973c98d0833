"""Storage of timers and legal holds: a Protocol and its MongoDB implementation.

Shapes chosen to work on MongoDB and on the embedded nx-27017 server alike: instants that
are compared are integer milliseconds; ``lease_until_ms`` is always an integer (0 = free),
so the claim filter needs no ``$or``; outbox entries are pulled with ``$in``.
"""

from __future__ import annotations

from typing import Any, Protocol

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.events import CloudEvent
from shared.messaging import publish_event
from shared.mongo import IndexPlan
from shared.outbox import opened_event
from shared.subject_vault import SubjectVault

TIMERS = "timers"
HOLDS = "holds"

INDEXES = IndexPlan(
    {
        TIMERS: [
            IndexModel([("next_fire_ms", ASCENDING)], name="next_fire_ms"),
            IndexModel([("sort_key", ASCENDING)], name="sort_key"),
            IndexModel([("subject_refs", ASCENDING)], name="subject_refs"),
            IndexModel([("processor", ASCENDING)], name="processor"),
            IndexModel([("category", ASCENDING)], name="category"),
            IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
        ],
        HOLDS: [IndexModel([("subject_refs", ASCENDING)], name="subject_refs")],
    }
)

Doc = dict[str, Any]


class TimerRepository(Protocol):
    async def get(self, timer_id: str) -> Doc | None: ...
    async def add(self, doc: Doc) -> bool: ...
    async def update(self, timer_id: str, version: int, update: Doc) -> bool: ...
    async def claim_due(self, now_ms: int, lease_ms: int, token: str) -> Doc | None: ...


class MongoTimers:
    """Timers in the deadlines database, one document per clock (``_id`` = timer id)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.collection: AsyncCollection[Doc] = db[TIMERS]
        self.holds: AsyncCollection[Doc] = db[HOLDS]
        self.vault = SubjectVault(db)  # opens sealed subjects of purge work at relay

    async def get(self, timer_id: str) -> Doc | None:
        return await self.collection.find_one({"_id": timer_id})

    async def add(self, doc: Doc) -> bool:
        """Insert a new timer; False when one with that id exists already."""
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def update(self, timer_id: str, version: int, update: Doc) -> bool:
        """Apply ``update`` only if the timer is still at ``version`` (optimistic lock)."""
        update = {**update, "$inc": {**update.get("$inc", {}), "version": 1}}
        result = await self.collection.update_one({"_id": timer_id, "version": version}, update)
        return result.matched_count == 1

    async def update_leased(self, timer_id: str, version: int, token: str, update: Doc) -> bool:
        """Apply ``update`` only while this claim's lease token is on the timer at ``version``."""
        update = {**update, "$inc": {**update.get("$inc", {}), "version": 1}}
        query = {"_id": timer_id, "version": version, "lease_token": token}
        result = await self.collection.update_one(query, update)
        return result.matched_count == 1

    async def claim_due(self, now_ms: int, lease_ms: int, token: str) -> Doc | None:
        """Lease the earliest due, unleased timer in one atomic update (None if none).

        Only timers with ``next_fire_ms <= now`` are looked at, through the single-field
        index, so the cost grows with due timers, never with pending ones.
        """
        return await self.collection.find_one_and_update(
            {"next_fire_ms": {"$lte": now_ms}, "lease_until_ms": {"$lt": now_ms}},
            {"$set": {"lease_until_ms": now_ms + lease_ms, "lease_token": token}},
            sort=[("next_fire_ms", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def find(self, query: Doc, limit: int) -> list[Doc]:
        """Timers matching ``query`` in listing order (deadline, then id)."""
        cursor = self.collection.find(query).sort("sort_key", ASCENDING).limit(limit)
        return [doc async for doc in cursor]

    async def retention_for(self, refs: list[str], categories: list[str]) -> list[Doc]:
        """Retention timers a hold scope may cover (by subject, else by category, else all)."""
        if refs:
            query: Doc = {"subject_refs": {"$in": refs}}
        elif categories:
            query = {"category": {"$in": categories}}
        else:
            query = {"kind": "retention"}
        return [d async for d in self.collection.find(query, {"_id": 1, "kind": 1})]

    async def for_processor(self, processor: str) -> list[str]:
        """Ids of the processor-deletion timers of ``processor``."""
        found = self.collection.find({"processor": {"$in": [processor]}}, {"_id": 1})
        return [str(d["_id"]) async for d in found]

    async def relay(self, broker: KafkaBroker, timer_id: str) -> int:
        """Publish the pending events of one timer, oldest first; return how many."""
        doc = await self.collection.find_one({"_id": timer_id}, {"outbox": 1, "version": 1})
        pending = (doc or {}).get("outbox", [])
        for entry in pending:
            event = await opened_event(CloudEvent.model_validate(entry["event"]), self.vault)
            await publish_event(broker, event, entry["key"])
        if not pending or doc is None:
            return 0
        ids = [entry["id"] for entry in pending]
        done = {"$pull": {"outbox": {"id": {"$in": ids}}}}
        # Clear the flag only if nobody queued more since we read (every push bumps version).
        cleared = await self.collection.update_one(
            {"_id": timer_id, "version": doc["version"]},
            {**done, "$set": {"outbox_pending": False}},
        )
        if cleared.matched_count == 0:
            await self.collection.update_one({"_id": timer_id}, done)
        return len(pending)

    async def relay_pending(self, broker: KafkaBroker, older_than_ms: int) -> int:
        """Relay timers a crash left with queued events (queued before ``older_than_ms``)."""
        sent = 0
        async for doc in self.collection.find({"outbox_pending": True}, {"outbox_at_ms": 1}):
            if int(doc.get("outbox_at_ms") or 0) <= older_than_ms:
                sent += await self.relay(broker, str(doc["_id"]))
        return sent

    async def get_hold(self, key: str) -> Doc | None:
        return await self.holds.find_one({"_id": key})

    async def add_hold(self, doc: Doc) -> bool:
        """Record a hold; False when it exists already (a re-delivery)."""
        try:
            await self.holds.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def release_hold(self, key: str, released_on: str) -> None:
        await self.holds.update_one(
            {"_id": key}, {"$set": {"released_on": released_on, "active": False}}
        )

    async def active_holds(self, refs: list[str]) -> list[Doc]:
        """Active holds naming one of ``refs`` or naming no subject at all."""
        named = self.holds.find({"subject_refs": {"$in": refs}}) if refs else None
        found = [d async for d in named] if named is not None else []
        found += [d async for d in self.holds.find({"scope_all_subjects": True})]
        return [d for d in found if d.get("active")]
