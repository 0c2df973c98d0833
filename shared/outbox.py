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

Events that name a subject (``data.subject``, ``data.identifiers``) are stored with those
fields sealed under the subject's key (``seal_event``, ``shared/subject_vault.py``) in the
same database; ``relay`` opens them just before publishing. A field whose key was destroyed
meanwhile is left out of the published event (the subject was erased).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.collection import AsyncCollection

from shared.events import CloudEvent
from shared.publishing import publish_batch
from shared.subject_vault import SubjectVault, is_sealed

log = logging.getLogger(__name__)
MAX_RACES = 20
PERSONAL = ("subject", "identifiers")  # event data fields that name a subject


async def seal_event(
    event: CloudEvent, vault: SubjectVault, kid: str, now: datetime | None = None
) -> CloudEvent:
    """``event`` with the fields naming a subject sealed under key ``kid`` (for storage)."""
    names = [n for n in PERSONAL if n in event.data and not is_sealed(event.data[n])]
    if not names:
        return event
    data = dict(event.data)
    for name in names:
        data[name] = await vault.seal(kid, data[name], name, now)
    return event.model_copy(update={"data": data})


async def opened_event(event: CloudEvent, vault: SubjectVault) -> CloudEvent:
    """``event`` as published: sealed fields opened, those of destroyed keys left out."""
    names = [n for n in PERSONAL if is_sealed(event.data.get(n))]
    if not names:
        return event
    data = dict(event.data)
    for name in names:
        value = await vault.open(data[name], name)
        if value is None:
            log.warning("event %s: subject key destroyed, %s left out", event.id, name)
            data.pop(name)
        else:
            data[name] = value
    return event.model_copy(update={"data": data})


async def stored_entries(
    events: list[tuple[CloudEvent, str]], vault: SubjectVault, kid: str, now: datetime | None
) -> list[dict[str, Any]]:
    """Outbox entries of ``(event, key)`` pairs, subject fields sealed under ``kid``."""
    return [outbox_entry(await seal_event(e, vault, kid, now), key) for e, key in events]


def outbox_entry(event: CloudEvent, key: str) -> dict[str, Any]:
    """The stored form of an event waiting to be published."""
    return {"id": event.id, "key": key, "event": event.model_dump(mode="json", exclude_none=True)}


def _entries(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    entries = (doc or {}).get("outbox") or []
    return [json.loads(e) if isinstance(e, str) else dict(e) for e in entries]


def _version_filter(doc_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    version = doc.get("version")
    return {"_id": doc_id, "version": version if version is not None else {"$exists": False}}


async def _opened(entry: dict[str, Any], vault: SubjectVault) -> CloudEvent:
    return await opened_event(CloudEvent.model_validate(entry["event"]), vault)


async def relay(
    broker: KafkaBroker, collection: AsyncCollection[dict[str, Any]], doc_id: str
) -> int:
    """Publish the pending events of one document, oldest first, in one batch; return how many."""
    sent: set[str] = set()
    vault = SubjectVault(collection.database)
    for _ in range(MAX_RACES):
        doc = await collection.find_one({"_id": doc_id}, {"outbox": 1, "version": 1})
        if doc is None:
            return len(sent)
        entries = _entries(doc)
        fresh = [e for e in entries if e["id"] not in sent]
        await publish_batch(broker, [(await _opened(e, vault), e["key"]) for e in fresh])
        sent.update(e["id"] for e in fresh)
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
