"""The persistence kit every service uses: versioned documents saved in bulk, lost races found
and redone alone, and the outbox relayed from memory.

A batch handler loads the aggregates its events touch in one read (``load_many``), decides in
memory (pure domain code), and saves every new state in one ``bulk_write``
(``save_many``). Each saved document carries a write token (``_w``): after the bulk write,
the documents whose token is not ours are the races we lost, and only those are redone
(``retry_lost``). A document's outgoing events travel in the same single-document write
(``outbox`` array, ``outbox_pending: true``); once the write is acknowledged they are published
from memory, all of the batch at once, and the outboxes are cleared in one more bulk write,
guarded by the same token so a newer writer's events are never cleared unsent.

Shapes chosen for MongoDB and the embedded nx-27017 server alike (docs/devstack.md): arrays
written whole with ``$set``; ``$in`` on ``_id``; ordered bulk writes.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from shared.errors import TransientError
from shared.events import CloudEvent
from shared.publishing import publish_batch

Doc = dict[str, Any]
TOKEN = "_w"  # noqa: S105 - the field holding the last writer's token, not a secret
DUPLICATE_KEY = 11000
MAX_ROUNDS = 8


@dataclass
class Change:
    """The new state of one document and the events it causes.

    ``version`` is the version the decision was made from (None: the document is new).
    ``fields`` are set whole (``$set``); ``outbox`` is the stored form of every event still to
    publish (earlier pending entries included); ``events`` are the same events as sent, kept
    in memory so the relay needs no read (they may differ from ``outbox`` when the stored
    form is sealed under a subject key).
    """

    doc_id: str
    version: int | None
    fields: Doc
    outbox: list[Doc] = field(default_factory=list)
    events: list[tuple[CloudEvent, str]] = field(default_factory=list)
    token: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass(frozen=True)
class Saved:
    """What ``save_many`` stored, and the ids whose race it lost (to decide again)."""

    saved: list[Change]
    lost: list[str]


class VersionedCollection:
    """Documents with a ``version`` that only the writer who read it may bump."""

    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self.collection = collection

    async def load_many(self, ids: Iterable[str]) -> dict[str, Doc]:
        """The documents of ``ids`` that exist, in one read."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        found = self.collection.find({"_id": {"$in": wanted}})
        return {str(d["_id"]): d async for d in found}

    async def save_many(self, changes: Sequence[Change]) -> Saved:
        """Insert the new documents and update the others at their version, in one bulk write."""
        if not changes:
            return Saved([], [])
        ops: list[InsertOne[Doc] | UpdateOne] = [_operation(c) for c in changes]
        try:
            written = await self.collection.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise TransientError("bulk write refused: " + _codes(errors)) from exc
        else:
            if written.inserted_count + written.modified_count == len(ops):
                return Saved(list(changes), [])  # every write landed: no token read
        return await self._settle(changes)

    async def _settle(self, changes: Sequence[Change]) -> Saved:
        """Which changes are stored: the documents that carry our write token."""
        ids = [c.doc_id for c in changes]
        found = self.collection.find({"_id": {"$in": ids}}, {TOKEN: 1})
        tokens = {str(d["_id"]): d.get(TOKEN) async for d in found}
        saved = [c for c in changes if tokens.get(c.doc_id) == c.token]
        lost = [c.doc_id for c in changes if tokens.get(c.doc_id) != c.token]
        return Saved(saved, lost)


def _operation(change: Change) -> InsertOne[Doc] | UpdateOne:
    body = {**change.fields, TOKEN: change.token, "outbox": change.outbox}
    body["outbox_pending"] = bool(change.outbox)
    if change.version is None:
        return InsertOne({"_id": change.doc_id, **body, "version": 1})
    return UpdateOne(
        {"_id": change.doc_id, "version": change.version},
        {"$set": {**body, "version": change.version + 1}},
    )


def _codes(errors: list[Doc]) -> str:
    return ", ".join(sorted({str(e.get("code")) for e in errors}))


async def retry_lost(
    ids: Iterable[str], attempt: Callable[[list[str]], Awaitable[list[str]]]
) -> None:
    """Run ``attempt`` on ``ids``, then again on the ids it lost, until none is lost.

    ``attempt`` loads, decides and saves the given aggregates and returns the ids whose race
    it lost; after ``MAX_ROUNDS`` rounds the batch is handed back as a transient failure.
    """
    pending = sorted(set(ids))
    for _ in range(MAX_ROUNDS):
        if not pending:
            return
        pending = sorted(set(await attempt(pending)))
    if pending:
        raise TransientError(f"{len(pending)} document(s) kept changing under other writers")


async def publish_all(broker: KafkaBroker, events: Sequence[tuple[CloudEvent, str]]) -> None:
    """Publish every ``(event, key)`` in one batch and wait until the broker acknowledged all.

    Raises when any delivery failed: the caller then keeps its outboxes (the batch is retried).
    """
    await publish_batch(broker, events)


async def relay_saved(
    broker: KafkaBroker, collection: AsyncCollection[Doc], saved: Sequence[Change]
) -> int:
    """Publish the events of ``saved`` from memory, then clear their outboxes in one write."""
    with_events = [c for c in saved if c.outbox]
    if not with_events:
        return 0
    await publish_all(broker, [pair for c in with_events for pair in c.events])
    clear = {"$set": {"outbox": [], "outbox_pending": False}}
    await collection.bulk_write(
        [UpdateOne({"_id": c.doc_id, TOKEN: c.token}, clear) for c in with_events], ordered=False
    )
    return sum(len(c.events) for c in with_events)
