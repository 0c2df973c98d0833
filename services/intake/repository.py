"""Intake's storage behind Protocols: requests (versioned, with outbox), the subjects' request
history, and the subject keys; their MongoDB implementations (in-memory ones: ``memory``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from shared.errors import TransientError
from shared.figures import outbox_backlog
from shared.mongo import IndexPlan, find_any
from shared.outbox import relay_all
from shared.persistence import DUPLICATE_KEY, Change, Saved, VersionedCollection, relay_saved
from shared.subject_vault import SubjectVault

Doc = dict[str, Any]
REQUESTS, HISTORY, VAULT = "requests", "subject_requests", "vault"

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


class Requests(Protocol):
    """Request documents: versioned, each with the outbox of the events it caused."""

    async def load_many(self, ids: Iterable[str]) -> dict[str, Doc]: ...
    async def save_many(self, changes: Sequence[Change]) -> Saved: ...
    async def relay(self, saved: Sequence[Change]) -> int: ...
    async def relay_pending(self) -> int: ...
    async def get(self, request_id: str) -> Doc | None: ...
    async def page(self, status: str | None, after: str | None, limit: int) -> list[Doc]: ...
    async def outbox_backlog(self, cap: int) -> int:
        """Events left in the requests' outboxes (of at most ``cap`` requests)."""
        ...


@dataclass(frozen=True)
class HistoryEntry:
    """One request remembered under one pseudonym of its subject."""

    subject_hash: str
    request_id: str
    right: str
    receipt_date: date


class SubjectHistory(Protocol):
    """Each subject's requests by pseudonym (``shared.pseudonyms``), never raw identifiers."""

    async def record_many(self, entries: Sequence[HistoryEntry]) -> None: ...
    async def of_subjects(self, hashes: Iterable[str]) -> list[HistoryEntry]: ...


class KeyRing(Protocol):
    """Subject keys read for one batch: seal and open under them."""

    async def seal(
        self, kid: str, value: Any, aad: str, now: datetime | None = None
    ) -> dict[str, Any]: ...
    async def open(self, sealed: dict[str, Any], aad: str) -> Any | None: ...


class SubjectKeys(Protocol):
    """The per-request subject keys (crypto-shredding, ``shared.subject_vault``)."""

    async def ring(self, new: Iterable[str], now: datetime) -> KeyRing: ...
    async def destroy_many(self, kids: Iterable[str], now: datetime) -> int: ...
    async def destroyed(self, kid: str) -> bool: ...
    async def retire_secret(self, name: str) -> bool:
        """Forget a vault secret no longer used; whether it was still there."""
        ...


class MongoRequests:
    """Requests in the intake database, one document per request (its id as ``_id``)."""

    def __init__(self, db: AsyncDatabase[Doc], broker: KafkaBroker) -> None:
        self.collection: AsyncCollection[Doc] = db[REQUESTS]
        self.versioned = VersionedCollection(self.collection)
        self.broker = broker

    async def load_many(self, ids: Iterable[str]) -> dict[str, Doc]:
        return await self.versioned.load_many(ids)

    async def save_many(self, changes: Sequence[Change]) -> Saved:
        return await self.versioned.save_many(changes)

    async def relay(self, saved: Sequence[Change]) -> int:
        """Publish the saved changes' events from memory, then clear their outboxes."""
        return await relay_saved(self.broker, self.collection, saved)

    async def relay_pending(self) -> int:
        """Publish events a crash left in request documents (opening sealed entries)."""
        return await relay_all(self.broker, self.collection)

    async def get(self, request_id: str) -> Doc | None:
        return await self.collection.find_one({"_id": request_id})

    async def page(self, status: str | None, after: str | None, limit: int) -> list[Doc]:
        """Up to ``limit`` requests by id after ``after``, optionally of one status."""
        query: Doc = {}
        if status:
            query["status"] = status
        if after:
            query["_id"] = {"$gt": after}
        cursor = self.collection.find(query, {"outbox": 0, "applied_events": 0})
        return await cursor.sort("_id", ASCENDING).limit(limit).to_list(limit)

    async def outbox_backlog(self, cap: int) -> int:
        return await outbox_backlog(self.collection, cap)


def _only_duplicates(exc: BulkWriteError) -> list[int]:
    """Indexes of the duplicate-key failures; any other failure is raised as transient."""
    errors = exc.details.get("writeErrors", [])
    if any(e.get("code") != DUPLICATE_KEY for e in errors):
        raise TransientError("bulk insert refused") from exc
    return [int(e.get("index", -1)) for e in errors]


class MongoSubjectHistory:
    """Each subject's requests, one document per (pseudonym, request) (no raw values)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.collection: AsyncCollection[Doc] = db[HISTORY]

    async def record_many(self, entries: Sequence[HistoryEntry]) -> None:
        """Remember every entry in one insert (idempotent: an entry already there stays)."""
        docs = [
            {
                "_id": f"{e.subject_hash}:{e.request_id}",
                "subject_hash": e.subject_hash,
                "request_id": e.request_id,
                "right": e.right,
                "receipt_date": e.receipt_date.isoformat(),
            }
            for e in entries
        ]
        if not docs:
            return
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            _only_duplicates(exc)

    async def of_subjects(self, hashes: Iterable[str]) -> list[HistoryEntry]:
        """Every entry recorded under one of ``hashes`` (one ``$in`` read on MongoDB)."""
        found = await find_any(self.collection, "subject_hash", list(hashes))
        return [
            HistoryEntry(
                str(d["subject_hash"]),
                str(d["request_id"]),
                str(d["right"]),
                date.fromisoformat(str(d["receipt_date"])),
            )
            for d in found
        ]


class MongoSubjectKeys:
    """Subject keys in ``subject_keys`` (``shared.subject_vault``), read once per batch."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.keys: AsyncCollection[Doc] = SubjectVault(db).keys

    async def ring(self, new: Iterable[str], now: datetime) -> KeyRing:
        """A vault with the keys of ``new`` read (one ``$in``) or created (one insert).

        Other keys are read by the vault when first used. A fresh vault per batch, so a key
        destroyed by another replica is not used for long.
        """
        vault = SubjectVault(self.db)
        await vault.prepare(new, now)
        return vault

    async def destroy_many(self, kids: Iterable[str], now: datetime) -> int:
        """Destroy every key of ``kids`` (never created ones get a tombstone too); how many
        were destroyed by this call."""
        return len(await SubjectVault(self.db).destroy_many(kids, now))

    async def destroyed(self, kid: str) -> bool:
        return await SubjectVault(self.db).destroyed(kid)

    async def retire_secret(self, name: str) -> bool:
        return bool((await self.db[VAULT].delete_one({"_id": name})).deleted_count)
