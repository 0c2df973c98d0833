"""Idempotent handling: the processed event id is written with the state it produced."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

# How many event ids a document remembers; older ones are beyond any redelivery window.
MAX_REMEMBERED = 200


def already_applied(document: dict[str, Any] | None, event_id: str) -> bool:
    """True when ``document`` records that ``event_id`` was applied to it."""
    return document is not None and event_id in document.get("applied_events", [])


def applied_update(event_id: str, update: dict[str, Any]) -> dict[str, Any]:
    """``update`` extended to record ``event_id`` in the same single-document write."""
    merged = {k: dict(v) for k, v in update.items()}
    merged.setdefault("$push", {})["applied_events"] = {
        "$each": [event_id],
        "$slice": -MAX_REMEMBERED,
    }
    return merged


async def apply_once(
    collection: AsyncCollection[dict[str, Any]],
    key: dict[str, Any],
    event_id: str,
    update: dict[str, Any],
    *,
    upsert: bool = False,
) -> dict[str, Any] | None:
    """Apply ``update`` to the document at ``key`` unless ``event_id`` was applied already.

    Returns the updated document, or None when the event had been applied before (or, with
    ``upsert=False``, when no document matches).
    """
    query = {**key, "applied_events": {"$nin": [event_id]}}
    try:
        return await collection.find_one_and_update(
            query,
            applied_update(event_id, update),
            upsert=upsert,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:
        # The upsert met the document that already holds this event id: applied before.
        return None
