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
from shared.persistence import TOKEN, Change, Saved, VersionedCollection, publish_all
from shared.subject_vault import SubjectVault

TIMERS = "timers"
HOLDS = "holds"
FREE: dict[str, Any] = {"lease_until_ms": 0, "lease_token": None}
DUE_PAGES = 3  # pages of due timers read for free ones before filtering leases on the server
RELAYED: dict[str, Any] = {"$set": {"outbox": [], "outbox_pending": False, **FREE}}

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
        """Publish the events of ``saved`` (from memory), then clear their outboxes and free
        their leases (never a newer writer's outbox): ``publish`` then ``clear``."""
        ...

    async def publish(self, saved: Sequence[Change]) -> int:
        """Publish the events of ``saved`` from memory, all in flight together; how many."""
        ...

    async def clear(self, published: Sequence[Change]) -> None:
        """Empty the outboxes of ``published`` (changes whose events went out) and free
        their leases, in one write; a newer writer's outbox is never touched."""
        ...

    async def relay_pending(self, older_than_ms: int) -> int:
        """Publish what a crash left in outboxes written before ``older_than_ms``."""
        ...

    async def due(self, now_ms: int, limit: int) -> list[Doc]:
        """Up to ``limit`` timers due at ``now_ms`` that no live lease holds, earliest first."""
        ...

    async def fire_many(self, changes: Sequence[Change], now_ms: int) -> Saved:
        """The scheduler's leased write: each change at its version, only while no live lease
        holds its timer at ``now_ms``, in one bulk write.

        A change with events sets its lease (``lease_until_ms``, ``lease_token``) in the
        same write; ``relay`` frees it once they are published. A holder that dies leaves
        the timer leased with its events in the outbox: the sweep relays them, and the
        timer's next firing can be taken after the lease.
        """
        ...

    async def next_due_ms(self, after_ms: int, before_ms: int) -> int | None:
        """The earliest ``next_fire_ms`` in ``(after_ms, before_ms]``, if any."""
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


class SubjectKeys(Protocol):
    """The subject keys one batch uses (``SubjectVault``): ``prepare`` reads (and creates)
    them in one go, then ``seal`` and ``open`` work from that read; ``destroy_many`` shreds
    a batch's keys together. Build one per batch: a key another member destroys afterwards
    is still used by a batch that read it before."""

    async def prepare(
        self, kids: Iterable[str], now: datetime | None, create: bool = True
    ) -> None: ...

    async def seal(
        self, kid: str, value: Any, aad: str, now: datetime | None = None
    ) -> dict[str, Any]: ...

    async def open(self, sealed: dict[str, Any], aad: str) -> Any | None: ...

    async def destroy_many(self, kids: Iterable[str], now: datetime) -> set[str]: ...


class Vault(Protocol):
    """Subject keys of the retention clocks (``shared/subject_vault.py``); ``keys`` gives a
    batch its own, the other methods are single operations (each reads the key afresh)."""

    def keys(self) -> SubjectKeys: ...

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


class PublishThenClear:
    """``relay`` as the scheduler splits it: ``publish``, then ``clear`` what had events."""

    async def publish(self, saved: Sequence[Change]) -> int:
        raise NotImplementedError

    async def clear(self, published: Sequence[Change]) -> None:
        raise NotImplementedError

    async def relay(self, saved: Sequence[Change]) -> int:
        sent = await self.publish(saved)
        await self.clear([c for c in saved if c.outbox])
        return sent


class MongoTimers(PublishThenClear, VersionedCollection):
    """Timers in the deadlines database, one document per clock (``_id`` = timer id)."""

    def __init__(self, db: AsyncDatabase[Doc], broker: Callable[[], KafkaBroker]) -> None:
        super().__init__(db[TIMERS])
        self._broker = broker

    async def publish(self, saved: Sequence[Change]) -> int:
        pairs = [pair for c in saved if c.outbox for pair in c.events]
        if pairs:
            await publish_all(self._broker(), pairs)
        return len(pairs)

    async def clear(self, published: Sequence[Change]) -> None:
        if not published:
            return
        ops = [UpdateOne({"_id": c.doc_id, TOKEN: c.token}, RELAYED) for c in published]
        cleared = await self.collection.bulk_write(ops, ordered=False)
        leases = sorted({str(c.fields["lease_token"]) for c in published if _leased(c)})
        if cleared.modified_count < len(published) and leases:
            # A newer writer changed some of them (it relays its own outbox): free our leases.
            ids = [c.doc_id for c in published]
            await self.collection.update_many(
                {"_id": {"$in": ids}, "lease_token": {"$in": leases}}, {"$set": FREE}
            )

    async def relay_pending(self, older_than_ms: int) -> int:
        found = self.collection.find({"outbox_pending": True}, {"outbox_at_ms": 1})
        ids = [
            str(d["_id"]) async for d in found if int(d.get("outbox_at_ms") or 0) <= older_than_ms
        ]
        return sum([await relay(self._broker(), self.collection, i) for i in ids])

    async def due(self, now_ms: int, limit: int) -> list[Doc]:
        # Only timers with ``next_fire_ms <= now`` are read, through the single-field index:
        # the cost grows with due timers, never with pending ones. Leases are checked here:
        # with a second condition nx-27017 sorts every due timer in Python before the limit
        # (~130 ms for 500 of 10,000 due, against ~45 ms for the one-condition query), so
        # pages are read until ``limit`` free ones, then the server-side filter takes over.
        free: dict[str, Doc] = {}
        for page in range(DUE_PAGES):
            found = self._due_page(now_ms, page * limit, limit)
            docs = [d async for d in found]
            free |= {d["_id"]: d for d in docs if int(d.get("lease_until_ms") or 0) < now_ms}
            if len(free) >= limit or len(docs) < limit:
                return list(free.values())[:limit]
        both = {"next_fire_ms": {"$lte": now_ms}, "lease_until_ms": {"$lt": now_ms}}
        cursor = self.collection.find(both).sort("next_fire_ms", ASCENDING).limit(limit)
        return [d async for d in cursor]  # many leased timers due (a member died): filtered

    def _due_page(self, now_ms: int, skip: int, limit: int) -> Any:
        due = self.collection.find({"next_fire_ms": {"$lte": now_ms}})
        return due.sort("next_fire_ms", ASCENDING).skip(skip).limit(limit)

    async def fire_many(self, changes: Sequence[Change], now_ms: int) -> Saved:
        if not changes:
            return Saved([], [])
        free = {"lease_until_ms": {"$lt": now_ms}}
        ops = [UpdateOne({**_versioned(c), **free}, {"$set": _body(c)}) for c in changes]
        written = await self.collection.bulk_write(ops, ordered=False)
        if written.modified_count == len(changes):  # every write landed: no token read
            return Saved(list(changes), [])
        return await self._settle(changes)

    async def next_due_ms(self, after_ms: int, before_ms: int) -> int | None:
        window = {"next_fire_ms": {"$gt": after_ms, "$lte": before_ms}}
        cursor = self.collection.find(window, {"next_fire_ms": 1})
        found = [d async for d in cursor.sort("next_fire_ms", ASCENDING).limit(1)]
        return int(found[0]["next_fire_ms"]) if found else None

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
    """The service's subject keys; a fresh ``SubjectVault`` per batch (``keys``) or per
    call, so a key another member destroyed is not used from a cache beyond one batch."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db

    def keys(self) -> SubjectKeys:
        return SubjectVault(self.db)

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


def _leased(change: Change) -> bool:
    return bool(change.fields.get("lease_token"))


def _versioned(change: Change) -> Doc:
    return {"_id": change.doc_id, "version": change.version}


def _body(change: Change) -> Doc:
    """What a firing sets: its fields, outbox, write token and the next version."""
    body = {**change.fields, TOKEN: change.token, "outbox": change.outbox}
    return {**body, "outbox_pending": bool(change.outbox), "version": int(change.version or 0) + 1}
