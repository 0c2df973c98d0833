"""Erasure's subscribers: validate (done by the consumer) -> call a use case."""

from __future__ import annotations

from services.erasure import holdcases
from services.erasure.usecases import Erasure
from shared import topics
from shared.errors import TransitionRefused
from shared.events import CloudEvent
from shared.service import Runtime

OWNED = [topics.PROCESSORS, topics.ERASURE_RESULTS, topics.ERASURE_WORK]


def register(runtime: Runtime, erasure: Erasure) -> None:
    """Subscribe erasure to the topics it owns (it dead-letters their poison events)."""

    async def on_work_event(event: CloudEvent) -> None:
        if event.type == "gardien.erasure.work.requested":
            await erasure.open_work(event)
        else:
            raise TransitionRefused(f"erasure does not handle {event.type}")

    async def on_processor_event(event: CloudEvent) -> None:
        if event.type == "gdpr.processor.replaced":
            await erasure.replace_processor(event)
        else:
            await erasure.certify_deletion(event)

    async def on_erasure_result(event: CloudEvent) -> None:
        await erasure.record_result(event)

    runtime.consumer.events(topics.ERASURE_WORK, on_work_event)
    runtime.consumer.events(topics.PROCESSORS, on_processor_event)
    runtime.consumer.events(topics.ERASURE_RESULTS, on_erasure_result)

    async def on_legal_hold(event: CloudEvent) -> None:
        if event.type == "gdpr.legal_hold.placed":
            await holdcases.placed(erasure, event)
        elif event.type == "gdpr.legal_hold.released":
            await holdcases.released(erasure, event)

    # Deadlines owns the holds topic and dead-letters it; erasure reads it as the last gate.
    runtime.consumer.events(topics.LEGAL_HOLDS, on_legal_hold, dead_letters=False)
