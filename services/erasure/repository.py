"""Storage of cases and processor routes: a Protocol and its MongoDB implementation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.erasure.domain import Case
from shared.events import CloudEvent
from shared.mongo import IndexPlan
from shared.outbox import stored_entries
from shared.subject_vault import KeyShredded, SubjectVault, is_sealed

CASES = "cases"
ROUTES = "routes"
APPLIED_KEPT = 500

# Single-field indexes only: the sweeper asks for due work by ``next_due_at`` alone.
INDEXES = IndexPlan(
    {
        CASES: [
            IndexModel([("next_due_at", ASCENDING)], name="next_due_at"),
            IndexModel([("state", ASCENDING)], name="state"),
            IndexModel([("processor_old", ASCENDING)], name="processor_old"),
            IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
        ]
    }
)

Events = list[tuple[CloudEvent, str]]


def key_id(case_id: str) -> str:
    """The subject key of one case (destroyed when the case closes)."""
    return f"case:{case_id}"


@dataclass(frozen=True)
class Loaded:
    """A case as read: its state, the events already applied, its unsent outbox."""

    case: Case
    applied: list[str]
    outbox: list[dict[str, Any]]


class CaseRepository(Protocol):
    async def add(self, case: Case, events: Events) -> bool: ...
    async def load(self, case_id: str) -> Loaded | None: ...
    async def save(
        self, case: Case, version: int, outbox: list[dict[str, Any]], applied: str | None = None
    ) -> bool: ...
    async def due(self, now: datetime, limit: int) -> list[str]: ...


def _fields(case: Case) -> dict[str, Any]:
    doc = case.model_dump(mode="python")
    if case.processor is not None:
        doc["processor_old"] = case.processor.old
    return doc


class MongoCases:
    """Cases in erasure's database, one document per case (its id as ``_id``)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection: AsyncCollection[dict[str, Any]] = db[CASES]
        self.routes_collection: AsyncCollection[dict[str, Any]] = db[ROUTES]
        self.vault = SubjectVault(db)

    async def add(self, case: Case, events: Events) -> bool:
        """Insert a new case with its first events; False when it exists already."""
        try:
            doc = {
                "_id": case.case_id,
                **await self._stored(case),
                "applied": [],
                "outbox": await self.entries(case.case_id, events),
                "outbox_pending": bool(events),
            }
        except KeyShredded:
            return False  # the case closed and its key is gone: a redelivered work item
        if case.next_due_at is None:
            doc.pop("next_due_at")
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def entries(self, case_id: str, events: Events) -> list[dict[str, Any]]:
        """Outbox entries of ``events``, identifiers sealed under the case's subject key."""
        return await stored_entries(events, self.vault, key_id(case_id), None)

    async def _stored(self, case: Case) -> dict[str, Any]:
        """The case's fields as stored: each system's identifiers sealed under the case key."""
        doc = _fields(case)
        for name, progress in doc["systems"].items():
            ids = progress.get("identifiers") or {}
            aad = f"identifiers|{name}"
            progress["identifiers"] = (
                await self.vault.seal(key_id(case.case_id), ids, aad) if ids else {}
            )
        return doc

    async def _opened(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A stored case with its identifiers opened ({} once the case key is destroyed)."""
        for name, progress in (doc.get("systems") or {}).items():
            ids = progress.get("identifiers")
            if is_sealed(ids):
                progress["identifiers"] = await self.vault.open(ids, f"identifiers|{name}") or {}
        return doc

    async def load(self, case_id: str) -> Loaded | None:
        """The case, the ids of the events already applied to it and its unsent events."""
        doc = await self.collection.find_one({"_id": case_id})
        if doc is None:
            return None
        return Loaded(
            Case.model_validate(await self._opened(doc)),
            list(doc.get("applied", [])),
            list(doc.get("outbox", [])),
        )

    async def destroy_key(self, case_id: str, now: datetime) -> bool:
        """Crypto-shred the identifiers of a closed case (its stored copies and outbox)."""
        return await self.vault.destroy(key_id(case_id), now)

    async def save(
        self, case: Case, version: int, outbox: list[dict[str, Any]], applied: str | None = None
    ) -> bool:
        """Write the case and its whole outbox in one update if still at ``version``.

        The outbox is set whole, not pushed: the embedded wire server stores documents
        pushed with ``$push`` as JSON strings. The version check makes the set safe.
        """
        fields = {
            **await self._stored(case),
            "version": version + 1,
            "outbox": outbox,
            "outbox_pending": bool(outbox),
        }
        update: dict[str, Any] = {"$set": fields}
        if case.next_due_at is None:
            fields.pop("next_due_at")
            update["$unset"] = {"next_due_at": ""}
        if applied is not None:
            update["$push"] = {"applied": {"$each": [applied], "$slice": -APPLIED_KEPT}}
        result = await self.collection.update_one({"_id": case.case_id, "version": version}, update)
        if result.matched_count == 1:
            case.version = version + 1
        return result.matched_count == 1

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of cases with work due at ``now`` (retries, escalations, certificates)."""
        cursor = self.collection.find({"next_due_at": {"$lte": now}}, {"_id": 1}).limit(limit)
        return [str(doc["_id"]) async for doc in cursor]

    async def for_processor(self, old: str) -> list[str]:
        """Ids of the cases opened for the replacement of processor ``old``."""
        cursor = self.collection.find({"processor_old": old}, {"_id": 1})
        return [str(doc["_id"]) async for doc in cursor]

    async def page(self, state: str | None, cursor: str | None, limit: int) -> list[dict[str, Any]]:
        """Cases ordered by id, after ``cursor``, optionally in one state."""
        query: dict[str, Any] = {}
        if state:
            query["state"] = state
        if cursor:
            query["_id"] = {"$gt": cursor}
        found = self.collection.find(query, {"outbox": 0, "applied": 0})
        docs = [doc async for doc in found.sort("_id", ASCENDING).limit(limit)]
        for doc in docs:  # a listing shows no identifiers: they stay sealed, unread
            for progress in (doc.get("systems") or {}).values():
                progress["identifiers"] = {}
        return docs

    async def put_route(self, old: str, new: str, categories: list[str], since: datetime) -> None:
        """Route ``old``'s categories to ``new`` from now on (idempotent)."""
        await self.routes_collection.update_one(
            {"_id": old},
            {"$set": {"new": new, "categories": categories, "since": since}},
            upsert=True,
        )

    async def routes(self) -> dict[str, dict[str, Any]]:
        """Every processor route, by old processor id."""
        return {str(d["_id"]): d async for d in self.routes_collection.find({})}
