"""Erasure's storage on MongoDB: cases (identifiers sealed), holds and processor routes.

Shapes chosen for MongoDB and the embedded nx-27017 server alike (docs/devstack.md): one
document per case written whole under its version (``shared/persistence.py``), ``$in`` on
arrays, single-field indexes only.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.erasure.domain import OPEN_STATES, Case
from services.erasure.holds import Hold
from services.erasure.repository import OpenCase, Repositories, Stored, Write, applied_after
from shared.clock import epoch_ms
from shared.events import CloudEvent
from shared.figures import outbox_backlog
from shared.mongo import IndexPlan
from shared.outbox import PERSONAL, opened_event, relay, relay_all, stored_entries
from shared.persistence import Change, Saved, VersionedCollection, relay_saved
from shared.subject_vault import KeyShredded, SubjectVault, is_sealed

CASES, HOLDS, ROUTES = "cases", "holds", "routes"
Doc = dict[str, Any]
INDEXES = IndexPlan(
    {
        CASES: [
            # The sweeper's query: epoch ms, since nx-27017 serves a range on a datetime
            # field by decoding every document (docs/devstack.md).
            IndexModel([("next_due_ms", ASCENDING)], name="next_due_ms"),
            IndexModel([("state", ASCENDING)], name="state"),
            IndexModel([("processor_old", ASCENDING)], name="processor_old"),
            IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
            IndexModel([("holds_pending", ASCENDING)], name="holds_pending"),
            IndexModel([("subject_refs", ASCENDING)], name="subject_refs"),
        ],
        HOLDS: [IndexModel([("subject_refs", ASCENDING)], name="subject_refs")],
    },
    retired={CASES: ["next_due_at"]},  # replaced by next_due_ms
)
OPEN = {"state": {"$in": list(OPEN_STATES)}}
GAUGE_PAGE = 200  # cases decoded at once when the gauges read every open case


def key_id(case_id: str) -> str:
    """The subject key of one case (destroyed when the case closes)."""
    return f"case:{case_id}"


def mongo_repositories(db: AsyncDatabase[Doc]) -> Repositories:
    """Erasure's repositories on its own database."""
    return Repositories(MongoCases(db), MongoHolds(db), MongoRoutes(db))


class MongoCases:
    """Cases in erasure's database, one document per case (its id as ``_id``).

    Each system's identifiers are stored sealed under the case key (bound to the case part);
    they are opened only when a command is to be sent (``reveal``), and queued commands
    are stored with their identifiers sealed too. A vault per call, so a key another
    replica destroyed is not used from a cache.
    """

    def __init__(self, db: AsyncDatabase[Doc], page_size: int = GAUGE_PAGE) -> None:
        self.db, self.page_size = db, page_size
        self.collection: AsyncCollection[Doc] = db[CASES]
        self.versioned = VersionedCollection(self.collection)
        self._backfilled = False

    async def get_many(self, ids: Iterable[str], *, reveal: bool = False) -> dict[str, Stored]:
        docs = await self.versioned.load_many(ids)
        vault = SubjectVault(self.db)
        if reveal:  # the batch's case keys in one read
            await vault.prepare([key_id(i) for i in docs], None, create=False)
        found = {}
        for case_id, doc in docs.items():
            parts = copy.deepcopy(doc.get("systems") or {})
            if reveal:
                await _open_identifiers(doc, vault)
            applied = list(doc.get("applied") or [])
            found[case_id] = Stored(Case.model_validate(doc), applied, _pending(doc), parts)
        return found

    async def save_many(self, writes: Sequence[Write]) -> Saved:
        vault = SubjectVault(self.db)  # the batch's case keys: one read, one insert of new ones
        await vault.prepare([key_id(w.case.case_id) for w in writes if _needs_key(w)], None)
        built = [await _sealed_change(w, vault) for w in writes]
        saved = await self.versioned.save_many([c for c in built if c is not None])
        for change in saved.saved:
            write = next(w for w in writes if w.case.case_id == change.doc_id)
            write.case.version = (change.version or 0) + 1
        return saved

    async def relay(self, broker: KafkaBroker, saved: Saved) -> int:
        return await relay_saved(broker, self.collection, saved.saved)

    async def relay_left(self, broker: KafkaBroker, ids: Iterable[str] | None = None) -> int:
        if ids is None:
            return await relay_all(broker, self.collection)
        return sum([await relay(broker, self.collection, case_id) for case_id in ids])

    async def destroy_keys(self, ids: Iterable[str], now: datetime) -> None:
        await SubjectVault(self.db).destroy_many([key_id(i) for i in ids], now)

    async def due(self, now: datetime, limit: int) -> list[str]:
        if not self._backfilled:  # once per process: cases stored before ``next_due_ms``
            await self._backfill_due_ms()
        query = {"next_due_ms": {"$lte": epoch_ms(now)}}
        cursor = self.collection.find(query, {"_id": 1}).limit(limit)
        return [str(doc["_id"]) async for doc in cursor]

    async def _backfill_due_ms(self) -> None:
        """Give the cases stored without ``next_due_ms`` theirs (one scan, at start)."""
        legacy = {"next_due_ms": {"$exists": False}, "next_due_at": {"$ne": None}}
        async for doc in self.collection.find(legacy, {"next_due_at": 1}):
            update = {"$set": {"next_due_ms": epoch_ms(doc["next_due_at"])}}
            await self.collection.update_one({"_id": doc["_id"]}, update)
        self._backfilled = True

    async def for_processor(self, old: str) -> list[str]:
        return await self._ids({"processor_old": old})

    async def open_for_subjects(self, refs: list[str]) -> list[str]:
        return await self._ids({"subject_refs": {"$in": refs}, **OPEN} if refs else OPEN)

    async def open_held_by(self, hold_id: str) -> list[str]:
        return await self._ids({"holds_pending": {"$in": [hold_id]}, **OPEN})

    async def page(self, state: str | None, cursor: str | None, limit: int) -> list[Case]:
        query: Doc = {}
        if state:
            query["state"] = state
        if cursor:
            query["_id"] = {"$gt": cursor}
        found = self.collection.find(query, {"outbox": 0, "applied": 0})
        docs = [doc async for doc in found.sort("_id", ASCENDING).limit(limit)]
        for doc in docs:  # a listing shows no identifiers: they stay sealed, unread
            for progress in (doc.get("systems") or {}).values():
                progress["identifiers"] = {}
        return [Case.model_validate(doc) for doc in docs]

    async def open_cases(self, cap: int) -> list[OpenCase]:
        """Read a page of documents at a time: only the small ``OpenCase`` of each is kept.

        The parts are the bulk of a case (~9 KB with ten systems): the whole read at once
        (``to_list``) decoded up to ``cap`` of them together, +110 MiB for 3,000 open cases
        once a minute (the fan-out's peak, docs/performance.md).
        """
        if cap <= 0:
            return []
        found = self.collection.find(OPEN, {"state": 1, "systems": 1}).limit(cap)
        return [_open_case(doc) async for doc in found.batch_size(self.page_size)]

    async def outbox_backlog(self, cap: int) -> int:
        return await outbox_backlog(self.collection, cap)

    async def _ids(self, query: Doc) -> list[str]:
        return [str(d["_id"]) async for d in self.collection.find(query, {"_id": 1})]


def _open_case(doc: Doc) -> OpenCase:
    """The states of one case (interned: 10,000 cases repeat a handful of words)."""
    parts = {}
    for name, part in (doc.get("systems") or {}).items():
        progress = json.loads(part) if isinstance(part, str) else part
        system = sys.intern(str(progress.get("system") or name))
        parts[system] = sys.intern(str(progress.get("state") or "pending"))
    return OpenCase(sys.intern(str(doc.get("state"))), parts)


def _needs_key(write: Write) -> bool:
    """True when storing ``write`` seals or opens something under its case key.

    Plain identifiers (a new case, revealed ones), events naming the subject, and events a
    crash left sealed in the outbox. Answers that seal nothing read no key.
    """
    parts = write.case.systems.values()
    if any(p.identifiers and not is_sealed(p.identifiers) for p in parts):
        return True
    if any(n in e.data for e, _ in write.events for n in PERSONAL):
        return True
    left = write.loaded.outbox if write.loaded else []
    return any(is_sealed((e["event"].get("data") or {}).get(n)) for e in left for n in PERSONAL)


async def _sealed_change(write: Write, vault: SubjectVault) -> Change | None:
    try:
        return await _change(write, vault)
    except KeyShredded:
        return None  # the case closed and its key is gone: nothing may be stored again


async def _change(write: Write, vault: SubjectVault) -> Change:
    """The stored form of ``write``: identifiers sealed, outbox sealed, events as sent."""
    case, kid = write.case, key_id(write.case.case_id)
    fields = case.model_dump(mode="python", exclude={"version"})
    for name, progress in fields["systems"].items():
        ids = progress.get("identifiers") or {}
        if ids and not is_sealed(ids):
            progress["identifiers"] = await vault.seal(kid, ids, f"identifiers|{name}")
    if case.processor is not None:
        fields["processor_old"] = case.processor.old
    fields["next_due_ms"] = epoch_ms(case.next_due_at) if case.next_due_at else None
    fields["applied"] = applied_after(write.loaded, write.applied)
    if write.loaded is not None:
        fields = _changed_parts(fields, write.loaded.stored_parts)
    earlier = write.loaded.outbox if write.loaded else []
    sent = [*[await _left_event(e, vault) for e in earlier], *write.events]
    outbox = [*earlier, *await stored_entries(write.events, vault, kid, None)]
    version = write.loaded.case.version if write.loaded else None
    return Change(case.case_id, version, fields, outbox, sent)


def _changed_parts(fields: Doc, stored: Doc) -> Doc:
    """``fields`` with only the parts that differ from ``stored`` set (``systems.<key>``).

    An answer changes one part of ten: the update then carries that part, not the case.
    Parts added or removed, or keys a dotted path cannot name, set ``systems`` whole.
    """
    parts: Doc = fields["systems"]
    if set(parts) != set(stored) or any("." in k or k.startswith("$") for k in parts):
        return fields
    changed = {f"systems.{k}": v for k, v in parts.items() if stored.get(k) != v}
    return {**{k: v for k, v in fields.items() if k != "systems"}, **changed}


async def _left_event(entry: Doc, vault: SubjectVault) -> tuple[CloudEvent, str]:
    event = CloudEvent.model_validate(entry["event"])
    return await opened_event(event, vault), str(entry["key"])


async def _open_identifiers(doc: Doc, vault: SubjectVault) -> None:
    """Open each part's identifiers in place ({} once the case key is destroyed)."""
    for name, progress in (doc.get("systems") or {}).items():
        ids = progress.get("identifiers")
        if is_sealed(ids):
            progress["identifiers"] = await vault.open(ids, f"identifiers|{name}") or {}


def _pending(doc: Doc) -> list[Doc]:
    entries = doc.get("outbox") or []
    return [json.loads(e) if isinstance(e, str) else dict(e) for e in entries]


class MongoHolds:
    """The holds erasure knows (``holds``: one document per hold, ``_id`` = hold id)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.collection: AsyncCollection[Doc] = db[HOLDS]

    async def add(self, hold: Hold, placed_at: datetime) -> Hold:
        doc = {
            "_id": hold.hold_id,
            "matter": hold.matter,
            "subject_refs": sorted(hold.subject_refs),
            "scope_all_subjects": not hold.subject_refs,
            "categories": sorted(hold.categories),
            "placed_at": placed_at.isoformat(),
            "active": True,
        }
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return Hold.from_doc(await self.collection.find_one({"_id": hold.hold_id}) or doc)
        return hold

    async def release(self, hold_id: str, at: datetime) -> bool:
        found = await self.collection.find_one({"_id": hold_id}, {"_id": 1})
        if found is not None:
            update = {"$set": {"active": False, "released_at": at.isoformat()}}
            await self.collection.update_one({"_id": hold_id}, update)
        return found is not None

    async def active_for(self, refs: list[str]) -> list[Hold]:
        found = [d async for d in self.collection.find({"scope_all_subjects": True})]
        if refs:
            found += [d async for d in self.collection.find({"subject_refs": {"$in": refs}})]
        unique = {str(d["_id"]): d for d in found if d.get("active")}
        return [Hold.from_doc(d) for d in unique.values()]


class MongoRoutes:
    """Processor routes (``routes``: one document per replaced processor)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.collection: AsyncCollection[Doc] = db[ROUTES]

    async def put(self, old: str, new: str, categories: list[str], since: datetime) -> None:
        await self.collection.update_one(
            {"_id": old},
            {"$set": {"new": new, "categories": categories, "since": since.isoformat()}},
            upsert=True,
        )

    async def all(self) -> dict[str, dict[str, Any]]:
        found = self.collection.find({})
        return {str(d["_id"]): {"new": d["new"], "categories": d.get("categories") or []}
                async for d in found}  # fmt: skip
