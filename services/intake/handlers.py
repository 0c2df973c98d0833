"""Intake's subscribers: validate (done by the consumer) -> call a use case."""

from __future__ import annotations

from services.intake.usecases import Intake
from shared import topics
from shared.events import CloudEvent
from shared.service import Runtime


def register(runtime: Runtime, intake: Intake) -> None:
    """Subscribe intake to the requests topic; intake owns its dead letters."""

    async def on_request_event(event: CloudEvent) -> None:
        if event.type == "gdpr.request.received":
            await intake.receive(event)
        else:
            await intake.follow_up(event)

    runtime.consumer.events(topics.REQUESTS, on_request_event)
