"""The scheduler: claim due timers with a lease, fire them once, advance them.

Nothing lives in process memory: a timer's plan, what has fired and its lease are in its
document. A claim is one atomic ``find_one_and_update`` on ``next_fire_ms <= now`` and an
expired lease; the fired state and the outgoing events are written in one single-document
update that only succeeds while this claim's lease token is still on the document. A
replica that dies mid-claim leaves the lease to expire and another replica takes over;
event ids ``<timer_id>:<firing>:<due_at>`` make any re-publication recognisable.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from faststream.kafka import KafkaBroker

from services.deadlines import holdgate
from services.deadlines.documents import entries, firing_events, outbox_fields
from services.deadlines.domain import (
    Base,
    Firing,
    Kind,
    after_firing,
    next_fire_ms,
    pending,
    shown_state,
    to_ms,
)
from services.deadlines.repository import MongoTimers
from services.deadlines.usecases import wall_ms
from shared.clock import Clock
from shared.rules import Policy, default_policy

log = logging.getLogger(__name__)
ATTEMPTS = 5


class Scheduler:
    """Fires due timers; several replicas may run on the same database."""

    def __init__(
        self,
        timers: Callable[[], MongoTimers],
        broker: Callable[[], KafkaBroker],
        clock: Clock,
        *,
        lease_seconds: float = 30.0,
        owner: str | None = None,
        max_per_tick: int = 10_000,
        concurrency: int = 1,
        policy: Policy | None = None,
    ) -> None:
        self._timers, self._broker, self.clock = timers, broker, clock
        self.lease_ms = int(lease_seconds * 1000)
        self.owner = owner or uuid.uuid4().hex[:12]
        self.max_per_tick = max_per_tick
        self.concurrency = max(1, concurrency)
        self.policy = policy or default_policy()

    async def tick(self) -> int:
        """Fire every timer due now that no live lease holds; return how many were fired."""
        now_ms = to_ms(self.clock.now())
        budget = [self.max_per_tick]

        async def worker() -> int:
            # Each claim is one atomic update, so workers (like replicas) never share a timer;
            # running several overlaps the round trips of a large batch coming due.
            fired = 0
            while budget[0] > 0:
                budget[0] -= 1
                token = f"{self.owner}:{uuid.uuid4().hex[:12]}"
                doc = await self._timers().claim_due(now_ms, self.lease_ms, token)
                if doc is None:
                    break
                fired += await self.fire(doc, token, now_ms)
            return fired

        return sum(await asyncio.gather(*(worker() for _ in range(self.concurrency))))

    async def fire(self, doc: dict[str, Any], token: str, now_ms: int) -> int:
        """Emit the due firings of a claimed timer and advance it; 0 if the lease was lost."""
        timers = self._timers()
        for _ in range(ATTEMPTS):
            update, events = self._advance(doc, now_ms)
            if holdgate.fires_purge(events):
                held = holdgate.unapplied(
                    doc, await timers.active_holds(doc.get("subject_refs", []))
                )
                if held:  # a hold recorded before this fire wins (R-RET-4)
                    update, events = holdgate.held_update(doc, held, self.policy), []
            if await timers.update_leased(str(doc["_id"]), doc["version"], token, update):
                if events:
                    await timers.relay(self._broker(), str(doc["_id"]))
                return 1 if events else 0
            fresh = await timers.get(str(doc["_id"]))
            if fresh is None or fresh.get("lease_token") != token:
                log.warning("lease on %s lost before firing; another replica fires it", doc["_id"])
                return 0
            doc = fresh  # an inbound event changed the timer meanwhile: recompute
        return 0

    def _advance(self, doc: dict[str, Any], now_ms: int) -> tuple[dict[str, Any], list[Any]]:
        plan = [Firing.from_doc(p) for p in doc.get("plan", [])]
        fired, due_ms = set(doc.get("fired", [])), doc.get("due_ms")
        emit, mark = pending(plan, fired, due_ms, now_ms)
        fired |= set(mark)
        base = after_firing(Kind(doc["kind"]), Base(doc["base"]), emit)
        events = firing_events(doc, emit)
        sets = {
            "fired": sorted(fired),
            "base": base.value,
            "state": shown_state(base, plan, fired, due_ms).value,
            "next_fire_ms": next_fire_ms(plan, fired, due_ms) if base is Base.OPEN else None,
            "lease_until_ms": 0,
            "lease_token": None,
            **outbox_fields(events, wall_ms()),
        }
        if events:  # set whole under the lease and version lock (see usecases.apply)
            sets["outbox"] = [*doc.get("outbox", []), *entries(events)]
        return {"$set": sets}, events

    async def run(self, interval: float, sweep_every: float = 5.0) -> None:
        """Tick every ``interval`` seconds until cancelled; sweep stale outboxes now and then."""
        since_sweep = sweep_every
        while True:
            try:
                await self.tick()
                since_sweep += interval
                if since_sweep >= sweep_every:
                    since_sweep = 0.0
                    await self._timers().relay_pending(self._broker(), wall_ms() - 10_000)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A store or broker hiccup: the timers stay due and the next tick retries.
                log.exception("deadlines scheduler tick failed")
            await asyncio.sleep(interval)
