"""Transactional outbox on single documents: state and outgoing events change together.

A use case writes its new state and the events it causes in one versioned document update
(the whole ``outbox`` array is set, with ``outbox_pending: true``); ``relay`` then publishes
every pending event, oldest first, and empties the array in one update under the same
version check (when a writer changed the document meanwhile, it reads it again and sends
only the events it has not sent yet). A crash between the two leaves the events in the
document, and the next relay (or the start-up sweep) sends them: the events have
deterministic ids, so consumers that see one twice ignore it.

The array is only ever replaced whole with ``$set``, never changed with ``$push`` or
``$pull``, which the embedded MongoDB server mishandles on arrays of sub-documents
(docs/devstack.md); entries that come back as JSON strings are decoded.
"""

from __future__ import annotations

import json
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.collection import AsyncCollection

from shared.events import CloudEvent
from shared.messaging import publish_event

MAX_RACES = 20


def outbox_entry(event: CloudEvent, key: str) -> dict[str, Any]:
    """The stored form of an event waiting to be published."""
    return {"id": event.id, "key": key, "event": event.model_dump(mode="json", exclude_none=True)}


def _entries(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    entries = (doc or {}).get("outbox") or []
    return [json.loads(e) if isinstance(e, str) else dict(e) for e in entries]


def _version_filter(doc_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    version = doc.get("version")
    return {"_id": doc_id, "version": version if version is not None else {"$exists": False}}


async def relay(
    broker: KafkaBroker, collection: AsyncCollection[dict[str, Any]], doc_id: str
) -> int:
    """Publish the pending events of one document, oldest first; return how many."""
    sent: set[str] = set()
    for _ in range(MAX_RACES):
        doc = await collection.find_one({"_id": doc_id}, {"outbox": 1, "version": 1})
        if doc is None:
            return len(sent)
        entries = _entries(doc)
        for entry in entries:
            if entry["id"] not in sent:
                event = CloudEvent.model_validate(entry["event"])
                await publish_event(broker, event, entry["key"])
                sent.add(entry["id"])
        if not entries and not doc.get("outbox_pending"):
            return len(sent)
        cleared = await collection.update_one(
            _version_filter(doc_id, doc),
            {"$set": {"outbox": [], "outbox_pending": False}, "$inc": {"version": 1}},
        )
        if cleared.matched_count == 1:
            return len(sent)
        # A writer changed the document meanwhile (maybe adding events): read it again;
        # events already published are not sent twice.
    return len(sent)


async def relay_all(broker: KafkaBroker, collection: AsyncCollection[dict[str, Any]]) -> int:
    """Relay every document with pending events (run at start-up after a crash)."""
    sent = 0
    ids = [str(doc["_id"]) async for doc in collection.find({"outbox_pending": True}, {"_id": 1})]
    for doc_id in ids:
        sent += await relay(broker, collection, doc_id)
    return sent
