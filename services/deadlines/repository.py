"""Storage of timers, legal holds and subject keys: the Protocols use cases depend on, and
their MongoDB implementations (the in-memory ones are in ``memory.py``).

Shapes chosen to work on MongoDB and on the embedded nx-27017 server alike: instants that
are compared are integer milliseconds; ``lease_until_ms`` is always an integer (0 = free),
so the claim filter needs no ``$or``; arrays are written whole; queries on arrays use ``$in``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from shared.figures import outbox_backlog
from shared.mongo import IndexPlan
from shared.outbox import relay
from shared.persistence import Change, Saved, VersionedCollection, relay_saved
from shared.subject_vault import SubjectVault

TIMERS = "timers"
HOLDS = "holds"
CLAIM_ROUNDS = 5

INDEXES = IndexPlan(
    {
        TIMERS: [
            IndexModel([("next_fire_ms", ASCENDING)], name="next_fire_ms"),
            IndexModel([("sort_key", ASCENDING)], name="sort_key"),
            IndexModel([("subject_refs", ASCENDING)], name="subject_refs"),
            IndexModel([("processor", ASCENDING)], name="processor"),
            IndexModel([("category", ASCENDING)], name="category"),
            IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
            IndexModel([("base", ASCENDING)], name="base"),  # open clocks (gauges.py)
        ],
        HOLDS: [IndexModel([("subject_refs", ASCENDING)], name="subject_refs")],
    }
)

Doc = dict[str, Any]


@dataclass(frozen=True)
class Listing:
    """A page of the clock listing: filters, the cursor (last sort key seen) and its size."""

    states: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    due_before_ms: int | None = None
    after: str | None = None
    limit: int = 100


class TimerRepository(Protocol):
    """Timers, one document per clock, versioned; events wait in each document's outbox."""

    async def load_many(self, ids: Iterable[str]) -> dict[str, Doc]:
        """The timers of ``ids`` that exist, in one read."""
        ...

    async def save_many(self, changes: Sequence[Change]) -> Saved:
        """New timers inserted, others updated at their version, in one write."""
        ...

    async def relay(self, saved: Sequence[Change]) -> int:
        """Publish the events of ``saved`` (from memory), then clear their outboxes."""
        ...

    async def relay_pending(self, older_than_ms: int) -> int:
        """Publish what a crash left in outboxes written before ``older_than_ms``."""
        ...

    async def claim_due(self, now_ms: int, lease_ms: int, token: str, limit: int) -> list[Doc]:
        """Lease up to ``limit`` due, unleased timers under ``token``; those this claim got.

        A claim bumps the version, so a save decided from an older read (another member's
        expired claim, an inbound writer) loses its race.
        """
        ...

    async def page(self, listing: Listing) -> list[Doc]:
        """Timers in listing order (deadline, then id) after the cursor, ``limit`` at most."""
        ...

    async def retention_for(self, refs: list[str], categories: list[str]) -> list[str]:
        """Ids of retention timers a hold scope may cover (by subject, category, or all)."""
        ...

    async def for_processor(self, processor: str) -> list[str]:
        """Ids of the processor-deletion timers of ``processor``."""
        ...

    async def open_clocks(self, cap: int) -> list[Doc]:
        """Open clocks with a deadline (``kind``, ``state``, ``due_ms`` only), ``cap`` at most."""
        ...

    async def outbox_backlog(self, cap: int) -> int:
        """Events left in the timers' outboxes (of at most ``cap`` timers)."""
        ...


class HoldRepository(Protocol):
    """Legal holds as recorded (``_id`` = hold id or matter)."""

    async def get_many(self, keys: Iterable[str]) -> dict[str, Doc]:
        """The holds of ``keys`` that exist, in one read."""
        ...

    async def save_many(self, new: Sequence[Doc], released: dict[str, str]) -> None:
        """One write: insert ``new`` holds (one stored already is kept: a re-delivery) and
        mark ``released`` ones (key -> release date) inactive."""
        ...

    async def listed(self, limit: int) -> list[Doc]:
        """Holds in key order, active and released."""
        ...

    async def active(self, refs: list[str]) -> list[Doc]:
        """Active holds naming one of ``refs`` or naming no subject at all."""
        ...


class Vault(Protocol):
    """Subject keys of the retention clocks (``shared/subject_vault.py``)."""

    async def seal(
        self, kid: str, value: Any, aad: str, now: datetime | None = None
    ) -> dict[str, Any]: ...

    async def open(self, sealed: dict[str, Any], aad: str) -> Any | None: ...

    async def destroy(self, kid: str, now: datetime) -> bool: ...

    async def destroyed(self, kid: str) -> bool: ...


@dataclass(frozen=True)
class Repositories:
    """What the use cases and the scheduler store through (built once, at start-up)."""

    timers: TimerRepository
    holds: HoldRepository
    vault: Vault


class MongoTimers(VersionedCollection):
    """Timers in the deadlines database, one document per clock (``_id`` = timer id)."""

    def __init__(self, db: AsyncDatabase[Doc], broker: Callable[[], KafkaBroker]) -> None:
        super().__init__(db[TIMERS])
        self._broker = broker

    async def relay(self, saved: Sequence[Change]) -> int:
        return await relay_saved(self._broker(), self.collection, saved)

    async def relay_pending(self, older_than_ms: int) -> int:
        found = self.collection.find({"outbox_pending": True}, {"outbox_at_ms": 1})
        ids = [
            str(d["_id"]) async for d in found if int(d.get("outbox_at_ms") or 0) <= older_than_ms
        ]
        return sum([await relay(self._broker(), self.collection, i) for i in ids])

    async def claim_due(self, now_ms: int, lease_ms: int, token: str, limit: int) -> list[Doc]:
        # Only timers with ``next_fire_ms <= now`` are read, through the single-field index:
        # the cost grows with due timers, never with pending ones.
        due = {"next_fire_ms": {"$lte": now_ms}, "lease_until_ms": {"$lt": now_ms}}
        lease = {"$set": {"lease_until_ms": now_ms + lease_ms, "lease_token": token}}
        for _ in range(CLAIM_ROUNDS):  # another member may take the timers found first
            cursor = self.collection.find(due).sort("next_fire_ms", ASCENDING).limit(limit)
            found = [d async for d in cursor]
            if not found:
                return []
            ids = [d["_id"] for d in found]
            ours = {"_id": {"$in": ids}, **due}
            claimed = await self.collection.update_many(ours, {**lease, "$inc": {"version": 1}})
            if claimed.modified_count == len(found):  # all ours: no need to read them again
                return [{**d, **lease["$set"], "version": d["version"] + 1} for d in found]
            if claimed.modified_count:
                mine = self.collection.find({"_id": {"$in": ids}, "lease_token": token})
                return [d async for d in mine]
        return []

    async def page(self, listing: Listing) -> list[Doc]:
        query: Doc = {}
        if listing.states:
            query["state"] = {"$in": list(listing.states)}
        if listing.kinds:
            query["kind"] = {"$in": list(listing.kinds)}
        if listing.due_before_ms is not None:
            query["due_ms"] = {"$lt": listing.due_before_ms}
        if listing.after is not None:
            query["sort_key"] = {"$gt": listing.after}
        cursor = self.collection.find(query).sort("sort_key", ASCENDING).limit(listing.limit)
        return [doc async for doc in cursor]

    async def retention_for(self, refs: list[str], categories: list[str]) -> list[str]:
        if refs:
            query: Doc = {"subject_refs": {"$in": refs}}
        elif categories:
            query = {"category": {"$in": categories}}
        else:
            query = {"kind": "retention"}
        found = self.collection.find(query, {"_id": 1, "kind": 1})
        return [str(d["_id"]) async for d in found if d.get("kind") == "retention"]

    async def for_processor(self, processor: str) -> list[str]:
        found = self.collection.find({"processor": {"$in": [processor]}}, {"_id": 1})
        return [str(d["_id"]) async for d in found]

    async def open_clocks(self, cap: int) -> list[Doc]:
        if cap <= 0:
            return []
        shown = {"_id": 0, "kind": 1, "state": 1, "due_ms": 1}
        found = await self.collection.find({"base": "open"}, shown).limit(cap).to_list(cap)
        return [d for d in found if d.get("due_ms") is not None]

    async def outbox_backlog(self, cap: int) -> int:
        return await outbox_backlog(self.collection, cap)


class MongoHolds:
    """Legal holds in the deadlines database."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.collection: AsyncCollection[Doc] = db[HOLDS]

    async def get_many(self, keys: Iterable[str]) -> dict[str, Doc]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        return {str(d["_id"]): d async for d in self.collection.find({"_id": {"$in": wanted}})}

    async def save_many(self, new: Sequence[Doc], released: dict[str, str]) -> None:
        if new:
            with contextlib.suppress(BulkWriteError):  # a hold stored before: a re-delivery
                await self.collection.insert_many([dict(d) for d in new], ordered=False)
        ops = [
            UpdateOne({"_id": k}, {"$set": {"released_on": on, "active": False}})
            for k, on in released.items()
        ]
        if ops:
            await self.collection.bulk_write(ops, ordered=True)

    async def listed(self, limit: int) -> list[Doc]:
        return [d async for d in self.collection.find({}).sort("_id", 1).limit(limit)]

    async def active(self, refs: list[str]) -> list[Doc]:
        named = self.collection.find({"subject_refs": {"$in": refs}}) if refs else None
        found = [d async for d in named] if named is not None else []
        found += [d async for d in self.collection.find({"scope_all_subjects": True})]
        return [d for d in found if d.get("active")]


class MongoVault:
    """The service's subject keys; a fresh ``SubjectVault`` per call, so a key another
    member destroyed is never used from a cache."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db

    async def seal(
        self, kid: str, value: Any, aad: str, now: datetime | None = None
    ) -> dict[str, Any]:
        return await SubjectVault(self.db).seal(kid, value, aad, now)

    async def open(self, sealed: dict[str, Any], aad: str) -> Any | None:
        return await SubjectVault(self.db).open(sealed, aad)

    async def destroy(self, kid: str, now: datetime) -> bool:
        return await SubjectVault(self.db).destroy(kid, now)

    async def destroyed(self, kid: str) -> bool:
        return await SubjectVault(self.db).destroyed(kid)


def mongo_repositories(db: AsyncDatabase[Doc], broker: Callable[[], KafkaBroker]) -> Repositories:
    """The MongoDB repositories of the deadlines database."""
    return Repositories(MongoTimers(db, broker), MongoHolds(db), MongoVault(db))
