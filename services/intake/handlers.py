"""Intake's subscribers: one batch subscriber per topic, validate -> call a use case."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from pydantic import ValidationError

from services.intake.messages import CaseReport, PackageDelivered
from services.intake.usecases import Arrival, Delivery, Intake, Report
from shared import topics
from shared.errors import EventRejected
from shared.events import CloudEvent
from shared.events.inbound import RequestReceived, RequestStep
from shared.service import Runtime

log = logging.getLogger(__name__)
PACKAGE_DELIVERED = "gardien.access.package.delivered"


def arrival(event: CloudEvent) -> Arrival:
    """A ``gdpr.request.*`` event with its typed data (validated once, here)."""
    data = event.payload()
    if not isinstance(data, RequestReceived | RequestStep):
        raise EventRejected(f"intake does not handle {event.type}")
    return event, data


def deliveries(events: Sequence[CloudEvent]) -> list[Delivery]:
    """The access packages delivered; unreadable ones are skipped (erasure owns the topic)."""
    out: list[Delivery] = []
    for event in events:
        if event.type != PACKAGE_DELIVERED:
            continue
        try:
            out.append((event, event.data_as(PackageDelivered)))
        except ValidationError:
            log.warning("package delivery %s skipped: unexpected data shape", event.id)
    return out


def reports(events: Sequence[CloudEvent]) -> list[Report]:
    """The case reports intake can read; others are skipped (erasure owns the topic)."""
    out: list[Report] = []
    for event in events:
        if not event.type.startswith("gardien.erasure.case."):
            continue
        try:
            out.append((event, event.data_as(CaseReport)))
        except ValidationError:
            log.warning("case report %s skipped: unexpected data shape", event.id)
    return out


def register(runtime: Runtime, intake: Callable[[], Awaitable[Intake]]) -> None:
    """Intake owns the requests topic (and its dead letters) and reads erasure case reports."""

    async def on_requests(events: Sequence[CloudEvent]) -> None:
        await (await intake()).requests_arrived([arrival(e) for e in events])

    async def on_cases(events: Sequence[CloudEvent]) -> None:
        uses = await intake()
        await uses.cases_reported(reports(events))
        await uses.packages_delivered(deliveries(events))

    runtime.consumer.batches(topics.REQUESTS, on_requests)
    runtime.consumer.batches(topics.ERASURE_CASES, on_cases, dead_letters=False)
