"""Deadlines' subscribers: one batch subscriber per topic; each validates the batch's events
into their typed data and hands the batch to ``Deadlines.handle``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.deadlines.usecases import Deadlines, Inbound
from shared import topics
from shared.events import CloudEvent
from shared.messaging import Consumer

# Deadlines dead-letters the topics it owns; intake owns the requests topics and erasure
# the processors topic, so invalid records there are dead-lettered by them only.
OWNED = [topics.BREACHES, topics.CONTRACTS, topics.LEGAL_HOLDS]
SHARED = [topics.PROCESSORS, topics.REQUEST_EVENTS, topics.ERASURE_CASES]


def typed(event: CloudEvent) -> Inbound:
    """The event with its typed data (the registry's model, built once by the consumer)."""
    return Inbound(event, event.payload())


def register(consumer: Consumer, uses: Callable[[], Deadlines], plans: Mapping[str, Any]) -> None:
    """Subscribe to every topic whose events start, move or stop a clock (``plans``)."""

    async def on_batch(events: Sequence[CloudEvent]) -> None:
        wanted = [typed(e) for e in events if e.type in plans]
        if wanted:
            await uses().handle(wanted)

    for topic in OWNED:
        consumer.batches(topic, on_batch)
    for topic in SHARED:
        consumer.batches(topic, on_batch, dead_letters=False)
