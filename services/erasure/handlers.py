"""Erasure's subscribers: each event is recorded once in the service's inbox.

The erasure logic (issue-tracked separately) consumes the inbox; until then the service
already validates, dead-letters what it owns and commits only after the durable write.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.errors import DuplicateKeyError

from shared import topics
from shared.events import CloudEvent
from shared.service import Runtime

OWNED = [topics.PROCESSORS, topics.ERASURE_RESULTS, topics.ERASURE_WORK]
SHARED = [topics.CONTRACTS]


def register(runtime: Runtime) -> None:
    """Subscribe to the topics erasure reacts to; it dead-letters only the ones it owns."""

    async def on_event(event: CloudEvent) -> None:
        doc = {
            "_id": event.id,
            "type": event.type,
            "received_at": datetime.now(UTC),
            "time": event.time,
            "state": "pending",
        }
        try:
            await runtime.db["inbox"].insert_one(doc)
        except DuplicateKeyError:
            return  # a re-delivery: already recorded

    for topic in OWNED:
        runtime.consumer.events(topic, on_event)
    for topic in SHARED:
        runtime.consumer.events(topic, on_event, dead_letters=False)
