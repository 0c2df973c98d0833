"""Intake's subscribers: validate (done by the consumer) -> call a use case."""

from __future__ import annotations

from services.intake.usecases import Intake
from shared import topics
from shared.events import CloudEvent
from shared.service import Runtime


def register(runtime: Runtime, intake: Intake) -> None:
    """Intake owns the requests topic (and its dead letters) and reads erasure case reports."""

    async def on_request_event(event: CloudEvent) -> None:
        if event.type == "gdpr.request.received":
            await intake.receive(event)
        else:
            await intake.follow_up(event)

    async def on_case_event(event: CloudEvent) -> None:
        await intake.case_reported(event)

    runtime.consumer.events(topics.REQUESTS, on_request_event)
    runtime.consumer.events(topics.ERASURE_CASES, on_case_event, dead_letters=False)
