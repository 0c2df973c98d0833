"""Where access packages are recorded: a Protocol, MongoDB, and the in-memory fake.

One document per request (``_id`` = request id) in ``packages``: its state (collecting,
built, deleted), what was built (size, digest, per-system status, the upload blob ids it
was read from), deliveries and links, and an outbox of its events, all written together
under a version check (``shared/persistence.py``). Shapes for nx-27017: instants as ISO
text plus epoch milliseconds where a query compares them, no booleans, arrays of strings
written whole.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from faststream.kafka import KafkaBroker
from pydantic import BaseModel
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from shared.events import CloudEvent
from shared.outbox import outbox_entry, relay_all
from shared.persistence import Change, VersionedCollection, publish_all, relay_saved

PACKAGES = "packages"
PACKAGE_INDEXES = {
    PACKAGES: [
        IndexModel([("expires_ms", ASCENDING)], name="expires_ms"),
        IndexModel([("subject", ASCENDING)], name="subject"),
    ]
}
Events = list[tuple[CloudEvent, str]]
State = Literal["collecting", "built", "deleted"]


class PackageState(BaseModel):
    """One request's package as recorded (no subject data: ids, counts, digests)."""

    request_id: str
    state: State = "collecting"
    right: str | None = None
    kid: str | None = None
    subject: str | None = None  # keyed pseudonym, for Art 15(3) further copies
    uploads: list[str] = []
    built_at: str | None = None
    size: int = 0
    sha256: str | None = None
    systems: dict[str, str] = {}
    records: int = 0
    delivered_at: str | None = None
    delivered_ms: int | None = None
    downloads: int = 0
    expires_ms: int | None = None  # delivered + the keep period; the sweeper deletes after
    deleted_at: str | None = None
    links: list[str] = []
    links_used: list[str] = []
    version: int = 0  # 0: not stored yet
    outbox: list[dict[str, Any]] = []  # events stored and not yet relayed (a crash left them)

    @property
    def package_id(self) -> str:
        """The blob id of the ZIP."""
        return f"package:{self.request_id}"


class PackageRepository(Protocol):
    """The packages of the erasure service (one contract suite for every backend)."""

    async def get(self, request_id: str) -> PackageState | None:
        """The package of ``request_id``, or None."""
        ...

    async def save(self, state: PackageState, events: Events) -> Change | None:
        """Store ``state`` from the version it was read at, with ``events``; None if lost."""
        ...

    async def ensure(self, request_ids: Sequence[str]) -> None:
        """Record a collecting package for each id that has none yet (one read, one write)."""
        ...

    async def relay(self, broker: KafkaBroker, change: Change) -> int:
        """Publish the events of a saved change and clear them."""
        ...

    async def relay_left(self, broker: KafkaBroker) -> int:
        """Publish events a crash left behind."""
        ...

    async def due(self, now_ms: int, limit: int) -> list[PackageState]:
        """Built packages whose keep period ended by ``now_ms``."""
        ...

    async def delivered_since(self, subject: str, since_ms: int, other_than: str) -> bool:
        """True when another package of ``subject`` was delivered at or after ``since_ms``."""
        ...


def _fields(state: PackageState) -> dict[str, Any]:
    return state.model_dump(exclude={"request_id", "version", "outbox"})


def _change(state: PackageState, events: Events) -> Change:
    """The write of ``state``: events a crash left are kept and sent with the new ones."""
    left = [json.loads(e) if isinstance(e, str) else e for e in state.outbox]
    earlier = [(CloudEvent.model_validate(e["event"]), str(e["key"])) for e in left]
    sent = [*earlier, *events]
    entries = [outbox_entry(e, k) for e, k in sent]
    return Change(state.request_id, state.version or None, _fields(state), entries, sent)


class MongoPackages:
    """Packages in the service's ``packages`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = db[PACKAGES]
        self.versioned = VersionedCollection(self.collection)

    async def get(self, request_id: str) -> PackageState | None:
        doc = await self.collection.find_one({"_id": request_id})
        return None if doc is None else _state(doc)

    async def save(self, state: PackageState, events: Events) -> Change | None:
        saved = await self.versioned.save_many([_change(state, events)])
        return saved.saved[0] if saved.saved else None

    async def ensure(self, request_ids: Sequence[str]) -> None:
        known = await self.versioned.load_many(request_ids)
        new = [PackageState(request_id=r) for r in sorted(set(request_ids) - set(known))]
        # A package another member recorded meanwhile is a lost insert: it exists, as wanted.
        await self.versioned.save_many([_change(s, []) for s in new])

    async def relay(self, broker: KafkaBroker, change: Change) -> int:
        return await relay_saved(broker, self.collection, [change])

    async def relay_left(self, broker: KafkaBroker) -> int:
        return await relay_all(broker, self.collection)

    async def due(self, now_ms: int, limit: int) -> list[PackageState]:
        found = self.collection.find({"expires_ms": {"$lte": now_ms}}).limit(limit)
        return [s for s in [_state(d) async for d in found] if s.state == "built"]

    async def delivered_since(self, subject: str, since_ms: int, other_than: str) -> bool:
        found = self.collection.find({"subject": subject}, {"delivered_ms": 1})
        docs = [d async for d in found]
        return any(
            d["_id"] != other_than and int(d.get("delivered_ms") or -1) >= since_ms for d in docs
        )


def _state(doc: dict[str, Any]) -> PackageState:
    known = set(PackageState.model_fields)
    body = {k: v for k, v in doc.items() if k in known}
    return PackageState.model_validate({**body, "request_id": doc["_id"]})


@dataclass
class MemoryPackages:
    """Packages in a dict, losing races as the MongoDB one does."""

    rows: dict[str, PackageState] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    async def get(self, request_id: str) -> PackageState | None:
        row = self.rows.get(request_id)
        return None if row is None else copy.deepcopy(row)

    async def save(self, state: PackageState, events: Events) -> Change | None:
        row = self.rows.get(state.request_id)
        if (row.version if row else 0) != state.version:
            return None
        change = _change(state, events)
        update = {"version": state.version + 1, "outbox": change.outbox}
        self.rows[state.request_id] = state.model_copy(deep=True, update=update)
        self.tokens[state.request_id] = change.token
        return change

    async def ensure(self, request_ids: Sequence[str]) -> None:
        for rid in sorted(set(request_ids) - set(self.rows)):
            await self.save(PackageState(request_id=rid), [])

    async def relay(self, broker: KafkaBroker, change: Change) -> int:
        if not change.events:
            return 0
        await publish_all(broker, change.events)
        row = self.rows.get(change.doc_id)
        if row is not None and self.tokens.get(change.doc_id) == change.token:
            row.outbox = []
        return len(change.events)

    async def relay_left(self, broker: KafkaBroker) -> int:
        sent = 0
        for row in self.rows.values():
            if row.outbox:
                sent += await self.relay(broker, _change(row, []))
                row.outbox = []
        return sent

    async def due(self, now_ms: int, limit: int) -> list[PackageState]:
        due = [
            s
            for s in self.rows.values()
            if s.state == "built" and s.expires_ms is not None and s.expires_ms <= now_ms
        ]
        return [copy.deepcopy(s) for s in due[:limit]]

    async def delivered_since(self, subject: str, since_ms: int, other_than: str) -> bool:
        return any(
            s.subject == subject
            and s.request_id != other_than
            and (s.delivered_ms or -1) >= since_ms
            for s in self.rows.values()
        )
