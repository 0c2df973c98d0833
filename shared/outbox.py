"""Transactional outbox on single documents: state and outgoing events change together.

A use case writes its new state and the events it causes in one document update
(``outbox`` array); ``relay`` then publishes them and removes each once sent. A crash
between the two leaves the events in the document, and the next relay sends them: the
events have deterministic ids, so consumers that see one twice ignore it.
"""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.collection import AsyncCollection

from shared.events import CloudEvent
from shared.messaging import publish_event


def outbox_entry(event: CloudEvent, key: str) -> dict[str, Any]:
    """The stored form of an event waiting to be published."""
    return {"id": event.id, "key": key, "event": event.model_dump(mode="json", exclude_none=True)}


def outbox_push(events: list[tuple[CloudEvent, str]]) -> dict[str, Any]:
    """Update fragment that queues ``events`` (event, key) in the document's outbox."""
    return {
        "$push": {"outbox": {"$each": [outbox_entry(event, key) for event, key in events]}},
        "$set": {"outbox_pending": True},
    }


async def relay(
    broker: KafkaBroker, collection: AsyncCollection[dict[str, Any]], doc_id: str
) -> int:
    """Publish the pending events of one document, oldest first; return how many."""
    doc = await collection.find_one({"_id": doc_id}, {"outbox": 1})
    pending = (doc or {}).get("outbox", [])
    for entry in pending:
        await publish_event(broker, CloudEvent.model_validate(entry["event"]), entry["key"])
        await collection.update_one({"_id": doc_id}, {"$pull": {"outbox": {"id": entry["id"]}}})
    after = await collection.find_one({"_id": doc_id}, {"outbox": 1})
    if after is not None and not after.get("outbox"):
        # The writer that queues an event always relays it itself; this flag only
        # lets the start-up sweep find documents a crash left with pending events.
        await collection.update_one({"_id": doc_id}, {"$set": {"outbox_pending": False}})
    return len(pending)


async def relay_all(broker: KafkaBroker, collection: AsyncCollection[dict[str, Any]]) -> int:
    """Relay every document with pending events (run at start-up after a crash)."""
    sent = 0
    async for doc in collection.find({"outbox_pending": True}, {"_id": 1}):
        sent += await relay(broker, collection, str(doc["_id"]))
    return sent
