"""Intake's batch subscribers under the consumer's contract, on the in-memory repositories:
a batch that fails is replayed one event at a time, and only the poison one is refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from services.intake import handlers
from services.intake.usecases import Intake
from shared import topics
from shared.errors import PermanentError, RefusedEvents
from shared.events import CloudEvent
from shared.service import Runtime
from tests.intake.test_usecases import case, intake, received, sent, step

Batch = Callable[[Sequence[CloudEvent]], Awaitable[None]]


class ContractConsumer:
    """Delivers like ``shared.messaging.Consumer.batches``: refusals dead-lettered, a failed
    batch then one by one."""

    def __init__(self) -> None:
        self.routes: dict[str, Batch] = {}
        self.dead: list[tuple[str, str]] = []

    def batches(self, topic: str, handler: Batch, *, dead_letters: bool = True) -> None:
        self.routes[topic] = handler

    async def deliver(self, topic: str, events: Sequence[CloudEvent]) -> None:
        try:
            await self.routes[topic](events)
        except RefusedEvents as exc:  # the others are stored: only these are dead-lettered
            self.dead.extend((e.id, exc.refusals[e.id]) for e in events if e.id in exc.refusals)
        except Exception:
            for event in events:
                try:
                    await self.routes[topic]([event])
                except PermanentError as exc:
                    self.dead.append((event.id, exc.reason))


def wired() -> tuple[Intake, ContractConsumer]:
    it, consumer = intake(), ContractConsumer()

    async def get() -> Intake:
        return it

    runtime = cast(Runtime, type("R", (), {"consumer": consumer})())
    handlers.register(runtime, get)
    return it, consumer


async def test_a_poison_follow_up_is_refused_alone_and_the_batch_applied_once() -> None:
    it, consumer = wired()
    ghost = step("identity-verified", "R-GHOST", "2027-03-06T09:00:00+01:00")
    batch = [received("R-1"), ghost, step("info-requested", "R-1", "2027-03-08T09:00:00+01:00")]
    await consumer.deliver(topics.REQUESTS, batch)
    assert consumer.dead == [(ghost.id, "unknown request R-GHOST")]
    assert len(sent(it, "gardien.request.accepted")) == 1  # replayed, applied once
    assert len(sent(it, "gardien.request.status_changed", "R-1")) == 1
    doc = await it.requests.get("R-1")
    assert doc is not None and doc["status"] == "awaiting_identity"


async def test_case_reports_intake_cannot_read_are_skipped() -> None:
    it, consumer = wired()
    await consumer.deliver(topics.REQUESTS, [received("R-1")])
    odd = CloudEvent.model_validate(  # past the consumer's check: a producer's bug
        {**case("R-1", "progressed").model_dump(), "data": {"systems": ["not", "a", "map"]}}
    )
    await consumer.deliver(topics.ERASURE_CASES, [odd, case("R-1", "progressed")])
    doc = await it.requests.get("R-1")
    assert doc is not None and doc["progress"]["req"]["state"] == "progressed"
    assert consumer.dead == []
