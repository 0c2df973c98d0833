"""Changes of the register of processing, audited: a new hash at start-up becomes an event.

The erasure service is the one component that holds both halves of the register (the
policy profile's activities and retention pointers, the registry's system pointers), so it
keeps the last recorded hash in its own database (collection ``register_state``, one
document) and, when it starts with another one, publishes ``gardien.register.changed``
through that document's outbox. The audit service records the event like any other. The
event carries hashes and activity ids only, never personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.events import CloudEvent, new_event
from shared.outbox import outbox_entry, relay
from shared.rules.register import (
    CONTROLLER_PART,
    RegisterDocument,
    part_hashes,
    register_changes,
)
from shared.service import Runtime

COLLECTION = "register_state"
DOC_ID = "register"
EVENT_TYPE = "gardien.register.changed"
SOURCE = "gardien/erasure"


def changed_event(
    doc: RegisterDocument, previous: dict[str, Any] | None, now: datetime
) -> CloudEvent:
    """``gardien.register.changed`` from the stored state ``previous`` (None: first one)."""
    old_parts: dict[str, str] = dict((previous or {}).get("parts") or {})
    new_parts = part_hashes(doc)
    diff = register_changes(old_parts, new_parts)
    seq = int((previous or {}).get("seq", 0)) + 1
    data = {
        "register_hash": doc.hash,
        "previous_hash": (previous or {}).get("hash"),
        "policy": doc.policy,
        "sequence": seq,
        "activities": [a.id for a in doc.activities],
        "added": [i for i in diff["added"] if i != CONTROLLER_PART],
        "removed": [i for i in diff["removed"] if i != CONTROLLER_PART],
        "changed": [i for i in diff["changed"] if i != CONTROLLER_PART],
        "controller_changed": previous is not None and CONTROLLER_PART in diff["changed"],
    }
    return new_event(
        EVENT_TYPE, data, source=SOURCE, event_id=f"register:{seq}:{doc.hash[:16]}", time=now
    )


async def record_register(runtime: Runtime, doc: RegisterDocument, now: datetime) -> bool:
    """Publish a change of the register once; True when this start recorded one."""
    coll: AsyncCollection[dict[str, Any]] = runtime.db[COLLECTION]
    previous = await coll.find_one({"_id": DOC_ID})
    if previous is not None and previous.get("hash") == doc.hash:
        await relay(runtime.broker, coll, DOC_ID)  # a crash may have left the event unsent
        return False
    event = changed_event(doc, previous, now)
    state = {
        "hash": doc.hash,
        "parts": part_hashes(doc),
        "seq": event.data["sequence"],
        "updated_at": now,
        # Entries a crash left unsent are kept ahead of the new one.
        "outbox": [*((previous or {}).get("outbox") or []), outbox_entry(event, DOC_ID)],
        "outbox_pending": True,
    }
    if not await _store(coll, previous, state):
        return False  # another replica recorded this start's change first
    await relay(runtime.broker, coll, DOC_ID)
    return True


async def _store(
    coll: AsyncCollection[dict[str, Any]], previous: dict[str, Any] | None, state: dict[str, Any]
) -> bool:
    """Write the new state if nobody changed it since it was read."""
    if previous is None:
        try:
            await coll.insert_one({"_id": DOC_ID, "version": 1, **state})
        except DuplicateKeyError:
            return False
        return True
    version = previous.get("version")
    guard = {"_id": DOC_ID, "version": version if version is not None else {"$exists": False}}
    done = await coll.update_one(guard, {"$set": state, "$inc": {"version": 1}})
    return done.matched_count == 1
