"""The scheduler: claim due timers in batches under a lease, fire them once, advance them.

Nothing lives in process memory: a timer's plan, what has fired and its lease are in its
document. A claim leases up to ``batch`` due timers at once (their ids found through the
``next_fire_ms`` index, then one ``update_many`` that sets the lease and this claim's token
and bumps their version, then one read of those carrying the token). The firings of the
batch are decided in memory and written in one ``save_many`` at the claimed versions, the
events in each timer's outbox; then all of them are published at once and the outboxes
cleared (``relay``). A save that loses its race (an inbound event changed the timer) is
decided again from the fresh timer while the lease is still this claim's; a member whose
lease expired loses to the member that claimed it next (the claim bumped the version).
Event ids ``<timer_id>:<firing>:<due_at>`` make any re-publication recognisable.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from services.deadlines import holdgate
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
from services.deadlines.messages import Outgoing, entries, firing_events
from services.deadlines.repository import Repositories
from services.deadlines.usecases import Tracer, as_sent, outgoing
from shared.clock import Clock
from shared.persistence import Change, retry_lost
from shared.rules import Policy, default_policy

log = logging.getLogger(__name__)
Doc = dict[str, Any]
SWEEP_GRACE_MS = 10_000


def _no_span(name: str) -> AbstractContextManager[Any]:
    return nullcontext()


class Scheduler:
    """Fires due timers; several members may run on the same database."""

    def __init__(
        self,
        repos: Repositories,
        clock: Clock,
        *,
        lease_seconds: float = 30.0,
        owner: str | None = None,
        batch: int = 1000,
        max_per_tick: int = 100_000,
        workers: int = 1,
        policy: Policy | None = None,
        span: Tracer | None = None,
    ) -> None:
        self.repos, self.clock = repos, clock
        self.lease_ms = int(lease_seconds * 1000)
        self.owner = owner or uuid.uuid4().hex[:12]
        self.batch, self.max_per_tick = max(1, batch), max_per_tick
        self.workers = max(1, workers)
        self.policy = policy or default_policy()
        self.span = span or _no_span

    async def tick(self) -> int:
        """Fire every timer due now that no live lease holds; return how many fired.

        ``workers`` claim loops run at once (like members, they never share a timer), so
        one batch's publication overlaps the next batch's claim.
        """
        now_ms, budget = to_ms(self.clock.now()), [self.max_per_tick]

        async def worker() -> int:
            fired = 0
            while budget[0] > 0:
                size = min(self.batch, budget[0])
                budget[0] -= size
                token = f"{self.owner}:{uuid.uuid4().hex[:12]}"
                docs = await self.repos.timers.claim_due(now_ms, self.lease_ms, token, size)
                if not docs:
                    break
                fired += await self.fire(docs, now_ms)
            return fired

        return sum(await asyncio.gather(*(worker() for _ in range(self.workers))))

    async def fire(self, docs: list[Doc], now_ms: int) -> int:
        """Fire a claimed batch in one save and one relay; how many timers emitted events."""
        held: dict[str, Doc] = {str(d["_id"]): d for d in docs}
        saved: list[Change] = []

        async def attempt(ids: list[str]) -> list[str]:
            result = await self.repos.timers.save_many(
                await self._decide([held[i] for i in ids], now_ms)
            )
            saved.extend(result.saved)
            if not result.lost:
                return []
            fresh = await self.repos.timers.load_many(result.lost)
            again = [i for i in result.lost if i in fresh and _same_lease(fresh[i], held[i])]
            if len(again) < len(result.lost):
                log.warning("%d lease(s) lost before firing", len(result.lost) - len(again))
            held.update({i: fresh[i] for i in again})  # an inbound event changed them: redo
            return again

        with self.span("deadlines.fire") as span:
            await retry_lost(held, attempt)
            sent = await self.repos.timers.relay(saved)
            if span is not None:
                span.set_attribute("gardien.timers", len(docs))
                span.set_attribute("gardien.events_sent", sent)
        return sum(1 for change in saved if change.events)

    async def _decide(self, docs: list[Doc], now_ms: int) -> list[Change]:
        """The saves of a batch; a purge about to fire loses to a hold not yet on its timer."""
        advanced = [(doc, *advance(doc, now_ms)) for doc in docs]
        purging = [doc for doc, _, events in advanced if holdgate.fires_purge(events)]
        refs = sorted({r for doc in purging for r in doc.get("subject_refs", [])})
        holds = await self.repos.holds.active(refs) if purging else []
        changes = []
        for doc, fields, events in advanced:
            blocking = holdgate.unapplied(doc, holds) if holdgate.fires_purge(events) else []
            if blocking:  # a hold recorded before this fire wins (R-RET-4)
                fields, events = holdgate.held_fields(doc, blocking, self.policy), []
            changes.append(await self._change(doc, fields, events))
        return changes

    async def _change(self, doc: Doc, fields: Doc, events: list[Outgoing]) -> Change:
        left, left_sent = await outgoing(doc, self.repos)
        if events:
            fields = {**fields, "outbox_at_ms": to_ms(self.clock.now())}
        sent = [(await as_sent(event, self.repos), key) for event, key in events]
        return Change(
            str(doc["_id"]), int(doc["version"]), fields, left + entries(events), left_sent + sent
        )

    async def run(self, interval: float, sweep_every: float = 5.0) -> None:
        """Tick every ``interval`` seconds until cancelled; sweep stale outboxes now and then."""
        since_sweep = sweep_every
        while True:
            try:
                await self.tick()
                since_sweep += interval
                if since_sweep >= sweep_every:
                    since_sweep = 0.0
                    older = to_ms(self.clock.now()) - SWEEP_GRACE_MS
                    await self.repos.timers.relay_pending(older)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A store or broker hiccup: the timers stay due and the next tick retries.
                log.exception("deadlines scheduler tick failed")
            await asyncio.sleep(interval)


def _same_lease(fresh: Doc, claimed: Doc) -> bool:
    return bool(fresh.get("lease_token")) and fresh.get("lease_token") == claimed.get("lease_token")


def advance(doc: Doc, now_ms: int) -> tuple[Doc, list[Outgoing]]:
    """The fields a firing at ``now_ms`` sets (lease freed) and the events it emits."""
    plan = [Firing.from_doc(p) for p in doc.get("plan", [])]
    fired, due_ms = set(doc.get("fired", [])), doc.get("due_ms")
    emit, mark = pending(plan, fired, due_ms, now_ms)
    fired |= set(mark)
    base = after_firing(Kind(doc["kind"]), Base(doc["base"]), emit)
    fields = {
        "fired": sorted(fired),
        "base": base.value,
        "state": shown_state(base, plan, fired, due_ms).value,
        "next_fire_ms": next_fire_ms(plan, fired, due_ms) if base is Base.OPEN else None,
        "lease_until_ms": 0,
        "lease_token": None,
    }
    return fields, firing_events(doc, emit)
