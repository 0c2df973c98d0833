"""Deadlines use cases: load a timer -> recompute (clocks, rules engine) -> save -> relay."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker

from services.deadlines import clocks
from services.deadlines.documents import (
    Change,
    change_events,
    entries,
    new_timer,
    outbox_fields,
    timer_fields,
)
from services.deadlines.domain import CLOSED, Base
from services.deadlines.repository import MongoTimers
from shared.errors import TransientError, TransitionRefused
from shared.events import CloudEvent
from shared.pseudonyms import Pseudonymiser
from shared.rules import Policy
from shared.service import Runtime
from shared.subject_vault import SubjectVault

Compute = Callable[[dict[str, Any] | None], Change | None]
ATTEMPTS = 5


def wall_ms() -> int:
    """Wall-clock milliseconds: only to age the outbox for the crash sweep, never a deadline."""
    return int(time.time() * 1000)


@dataclass
class Deadlines:
    """Applies inbound events to timers, each event once, under an optimistic version lock."""

    runtime: Runtime
    policy: Policy

    @property
    def timers(self) -> MongoTimers:
        return MongoTimers(self.runtime.db)

    @property
    def broker(self) -> KafkaBroker:
        return self.runtime.broker

    @property
    def vault(self) -> SubjectVault:
        """Subject keys of the retention clocks (``services/deadlines/subjects.py``)."""
        return SubjectVault(self.runtime.db)

    @property
    def pseudonyms(self) -> Pseudonymiser:
        """The deployment's subject pseudonyms (the same in every service)."""
        return self.runtime.pseudonyms

    async def apply(self, timer_id: str, event: CloudEvent, compute: Compute) -> None:
        """Apply ``compute`` to one timer unless ``event`` was applied to it already."""
        with self.runtime.span("deadlines.apply") as span:
            span.set_attribute("gardien.timer_id", timer_id)
            span.set_attribute("gardien.event_type", event.type)
            for _ in range(ATTEMPTS):
                if await self._attempt(timer_id, event, compute):
                    break
            else:
                raise TransientError(f"timer {timer_id} kept changing under a concurrent writer")
            await self.timers.relay(self.broker, timer_id)

    async def _attempt(self, timer_id: str, event: CloudEvent, compute: Compute) -> bool:
        doc = await self.timers.get(timer_id)
        if doc is not None and event.id in doc.get("applied_events", []):
            return True
        change = compute(doc)
        if change is None:
            return True
        fired = set(doc.get("fired", [])) if doc else set()
        fields = {**timer_fields(change.spec, fired, self.policy), **change.fields}
        events = change_events(doc, {"_id": timer_id, **fields}, event)
        if doc is None:
            new = new_timer(change, self.policy, event.id)
            new.update(outbox=entries(events), **outbox_fields(events, wall_ms()))
            return await self.timers.add(new)
        sets = {"inputs": change.inputs, **fields, **outbox_fields(events, wall_ms())}
        if events:
            # The whole array is set under the version lock: nx-27017 stores sub-documents
            # pushed with ``$each`` as JSON strings.
            sets["outbox"] = [*doc.get("outbox", []), *entries(events)]
        update = {
            "$set": sets,
            "$push": {"applied_events": {"$each": [event.id], "$slice": -200}},
        }
        return await self.timers.update(timer_id, doc["version"], update)

    async def relay_stale(self, grace_ms: int = 10_000) -> int:
        """Publish events a crashed writer left queued for longer than ``grace_ms``."""
        return await self.timers.relay_pending(self.broker, wall_ms() - grace_ms)


def is_closed(doc: dict[str, Any] | None) -> bool:
    """True once a timer's obligation is met, missed or done: such a timer is final."""
    return doc is not None and Base(doc["base"]) in CLOSED


def require_timer(doc: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """The timer, or a domain refusal naming what is unknown (dead-lettered, audited)."""
    if doc is None:
        raise TransitionRefused(f"unknown {what}")
    return doc


def known_category(category: str, policy: Policy) -> None:
    """Refuse a category the policy's retention schedule does not know (R-RET-2)."""
    clocks.retention_clock(
        "check", {"category": category, "start_date": "2000-01-01", "holds": []}, policy
    )
