"""Deadlines' subscribers: route each event type to its use case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.deadlines import reactions, subjects
from services.deadlines.usecases import Deadlines
from shared import topics
from shared.events import CloudEvent
from shared.service import Runtime

Reaction = Callable[[Deadlines, CloudEvent], Awaitable[None]]

ROUTES: dict[str, Reaction] = {
    "gdpr.breach.detected": reactions.breach_detected,
    "gdpr.breach.authority_notified": reactions.breach_notified,
    "gdpr.breach.subjects_notified": reactions.breach_notified,
    "gdpr.contract.ended": reactions.retention_started,
    "gdpr.contact.recorded": reactions.retention_started,
    "gdpr.legal_hold.placed": reactions.hold_placed,
    "gdpr.legal_hold.released": reactions.hold_released,
    "gdpr.processor.replaced": reactions.processor_replaced,
    "gdpr.processor.deletion_certified": reactions.deletion_certified,
    subjects.CASE_CLOSED: subjects.case_closed,
}
# Deadlines dead-letters the topics it owns; intake owns the requests topics and erasure
# the processors topic, so invalid records there are dead-lettered by them only.
OWNED = [topics.BREACHES, topics.CONTRACTS, topics.LEGAL_HOLDS]
SHARED = [topics.PROCESSORS, topics.REQUEST_EVENTS, topics.ERASURE_CASES]


def register(runtime: Runtime, uses: Deadlines) -> None:
    """Subscribe to every topic whose events start, move or stop a clock."""

    async def on_event(event: CloudEvent) -> None:
        if event.type.startswith("gardien.request."):
            await reactions.request_event(uses, event)
            return
        reaction = ROUTES.get(event.type)
        if reaction is not None:
            await reaction(uses, event)

    for topic in OWNED:
        runtime.consumer.events(topic, on_event)
    for topic in SHARED:
        runtime.consumer.events(topic, on_event, dead_letters=False)
