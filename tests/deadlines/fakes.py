"""The deadlines use cases and scheduler over the in-memory repositories (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import trace

from services.deadlines.app import bootstrap
from services.deadlines.handlers import typed
from services.deadlines.memory import MemoryHolds, MemoryTimers, MemoryVault
from services.deadlines.repository import Repositories
from services.deadlines.scheduler import Scheduler
from services.deadlines.usecases import Deadlines, Inbound
from shared.clock import FakeClock
from shared.events import CloudEvent, new_event
from shared.pseudonyms import Pseudonymiser
from shared.rules import default_policy

KEY = b"deadlines-use-case-tests-key-32b"


class CountingTimers(MemoryTimers):
    """In-memory timers that count the calls a batch makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def load_many(self, ids: Any) -> dict[str, Any]:
        self.count("load_many")
        return await super().load_many(ids)

    async def save_many(self, changes: Any) -> Any:
        self.count("save_many")
        return await super().save_many(changes)

    async def relay(self, saved: Any) -> int:
        self.count("relay")
        return await super().relay(saved)


@dataclass
class World:
    """Use cases, scheduler, fake clock and the in-memory stores they share."""

    uses: Deadlines
    scheduler: Scheduler
    clock: FakeClock
    timers: CountingTimers
    holds: MemoryHolds
    vault: MemoryVault

    async def handle(self, *events: CloudEvent) -> None:
        await self.uses.handle([typed(e) for e in events])

    def sent(self, kind: str = "") -> list[CloudEvent]:
        return [e for e, _ in self.timers.sent if e.type.endswith(kind)]

    def doc(self, timer_id: str) -> dict[str, Any]:
        return self.timers.docs[timer_id]


def world(now: datetime) -> World:
    timers, holds, vault = CountingTimers(), MemoryHolds(), MemoryVault()
    repos = Repositories(timers, holds, vault)
    clock, policy = FakeClock(now), default_policy()
    span = trace.get_tracer("tests").start_as_current_span
    uses = bootstrap(repos, policy, clock, Pseudonymiser(KEY), span)
    scheduler = Scheduler(repos, clock, policy=policy, batch=2)
    return World(uses, scheduler, clock, timers, holds, vault)


def event(event_type: str, data: dict[str, Any], at: str, event_id: str) -> CloudEvent:
    """An inbound event as another system publishes it."""
    return new_event(
        event_type, data, source="test", event_id=event_id, time=datetime.fromisoformat(at)
    )


def items(*events: CloudEvent) -> list[Inbound]:
    return [typed(e) for e in events]
