"""The scheduler: fire due timers in batches under a lease, once each, and advance them.

A timer's plan, what has fired and its lease are in its document. A batch is up to
``batch`` due timers that no live lease holds (one read through the ``next_fire_ms``
index); its firings are decided in memory (a purge about to fire reads ``holds`` once for
the batch, ``holdgate.py``) and written in one bulk write, each at the version it was
decided from and only while its lease is free: that write is the claim. It records the
fired state and the events in the timer's outbox and leases the timer to this batch until
the events are published; then all of them are produced at once. The outboxes are cleared
and the leases freed afterwards, at the end of each round (or once ``CLEAR_EVERY`` firings
or half a lease have gone by), so the events of a burst go out before that housekeeping. A
write that loses its race (an inbound event or another member changed the timer) is decided
again from the fresh timer if it is still due and free.

A holder that dies after its write leaves the events in the outbox (the sweep relays them)
and the timer leased: its next firing is taken after the lease. One that dies after
publishing, before the clear, leaves the same: the sweep publishes those events again, as
an inbound event written to such a timer meanwhile does. Event ids
``<timer_id>:<firing>:<due_at>`` make any re-publication recognisable.

Claim loops (``workers``) take turns at the read and the write, so they never share a timer,
and overlap one batch's publication with the next batch's claim. ``run`` wakes at the next
timer due before the end of its interval rather than at the interval.
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
from services.deadlines.repository import Repositories, SubjectKeys
from services.deadlines.usecases import Tracer, as_sent, left_events, outgoing, sealed_kids
from shared.clock import Clock
from shared.persistence import Change, retry_lost
from shared.rules import Policy, default_policy

log = logging.getLogger(__name__)
Doc = dict[str, Any]
SWEEP_GRACE_MS = 10_000
CLEAR_EVERY = 20_000  # published firings whose outboxes are cleared together, at most
MIN_WAIT = 0.005


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

        Rounds of claim loops: a round's published timers stay leased until their outboxes
        are cleared (see the module's description), and a timer due again after its firing
        is taken by the next round once cleared."""
        now_ms, budget = to_ms(self.clock.now()), [self.max_per_tick]
        fired = 0
        while budget[0] > 0:
            got = await self._round(now_ms, budget)
            fired += got
            if not got:
                break
        return fired

    async def _round(self, now_ms: int, budget: list[int]) -> int:
        claiming = asyncio.Lock()  # one claim loop at a time reads and writes
        published: list[Change] = []

        async def worker() -> int:
            fired = 0
            while budget[0] > 0:
                async with claiming:
                    size = min(self.batch, budget[0])
                    docs = await self.repos.timers.due(now_ms, size)
                    budget[0] -= len(docs)
                    saved = await self._write(docs, now_ms) if docs else []
                if not docs:
                    break
                fired += await self._relay(saved, len(docs))
                if not published:
                    oldest[0] = loop.time()
                published.extend(_to_clear(saved))
                if len(published) >= CLEAR_EVERY or loop.time() - oldest[0] >= clear_after:
                    await self._clear(published)
            return fired

        loop, oldest = asyncio.get_running_loop(), [0.0]
        clear_after = self.lease_ms / 2000  # well before another member may take them
        fired = sum(await asyncio.gather(*(worker() for _ in range(self.workers))))
        await self._clear(published)
        return fired

    async def _clear(self, published: list[Change]) -> None:
        taken = published[:]
        del published[:]
        await self.repos.timers.clear(taken)

    async def fire(self, docs: list[Doc], now_ms: int) -> int:
        """Fire ``docs`` (read by ``due``) in one leased write, one publish and one clear;
        how many emitted."""
        saved = await self._write(docs, now_ms)
        fired = await self._relay(saved, len(docs))
        await self.repos.timers.clear(_to_clear(saved))
        return fired

    async def _write(self, docs: list[Doc], now_ms: int) -> list[Change]:
        """The batch's leased write; lost races decided again while still due and free."""
        held: dict[str, Doc] = {str(d["_id"]): d for d in docs}
        token, saved = f"{self.owner}:{uuid.uuid4().hex[:12]}", []

        async def attempt(ids: list[str]) -> list[str]:
            changes = await self._decide([held[i] for i in ids], now_ms, token)
            result = await self.repos.timers.fire_many(changes, now_ms)
            saved.extend(result.saved)
            if not result.lost:
                return []
            fresh = await self.repos.timers.load_many(result.lost)
            again = [i for i in result.lost if i in fresh and _free_and_due(fresh[i], now_ms)]
            held.update({i: fresh[i] for i in again})  # an inbound event changed them: redo
            return again

        await retry_lost(held, attempt)
        return saved

    async def _relay(self, saved: list[Change], claimed: int) -> int:
        """Publish what the batch's write decided (its outboxes are cleared later)."""
        with self.span("deadlines.fire") as span:
            sent = await self.repos.timers.publish(saved)
            if span is not None:
                span.set_attribute("gardien.timers", claimed)
                span.set_attribute("gardien.events_sent", sent)
        return sum(1 for change in saved if change.events)

    async def _decide(self, docs: list[Doc], now_ms: int, token: str) -> list[Change]:
        """The saves of a batch; a purge about to fire loses to a hold not yet on its timer."""
        advanced = [(doc, *advance(doc, now_ms)) for doc in docs]
        purging = [doc for doc, _, events in advanced if holdgate.fires_purge(events)]
        refs = sorted({r for doc in purging for r in doc.get("subject_refs", [])})
        holds = await self.repos.holds.active(refs) if purging else []
        decided = []
        for doc, fields, events in advanced:
            blocking = holdgate.unapplied(doc, holds) if holdgate.fires_purge(events) else []
            if blocking:  # a hold recorded before this fire wins (R-RET-4)
                fields, events = holdgate.held_fields(doc, blocking, self.policy), []
            decided.append((doc, fields, events))
        # The keys of the subjects the batch sends (its purges, outboxes left over): one read.
        keys = self.repos.vault.keys()
        sent = [[*left_events(doc), *(e for e, _ in events)] for doc, _, events in decided]
        await keys.prepare(sealed_kids(e for group in sent for e in group), None, create=False)
        return [await self._change(*d, now_ms, token, keys) for d in decided]

    async def _change(
        self,
        doc: Doc,
        fields: Doc,
        events: list[Outgoing],
        now_ms: int,
        token: str,
        keys: SubjectKeys,
    ) -> Change:
        left, left_sent = await outgoing(doc, keys)
        if events:
            fields = {**fields, "outbox_at_ms": to_ms(self.clock.now())}
        if events or left:  # leased to this batch until its events are published
            fields = {**fields, "lease_until_ms": now_ms + self.lease_ms, "lease_token": token}
        sent = [(await as_sent(event, keys), key) for event, key in events]
        return Change(
            str(doc["_id"]), int(doc["version"]), fields, left + entries(events), left_sent + sent
        )

    async def run(self, interval: float, sweep_every: float = 5.0) -> None:
        """Tick until cancelled, at most ``interval`` seconds apart and at the next timer due
        before that; sweep stale outboxes every ``sweep_every`` seconds."""
        swept = asyncio.get_running_loop().time() - sweep_every  # the first tick sweeps
        while True:
            wait = interval
            try:
                await self.tick()
                if asyncio.get_running_loop().time() - swept >= sweep_every:
                    swept = asyncio.get_running_loop().time()
                    older = to_ms(self.clock.now()) - SWEEP_GRACE_MS
                    await self.repos.timers.relay_pending(older)
                wait = await self.until_next(interval)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A store or broker hiccup: the timers stay due and the next tick retries.
                log.exception("deadlines scheduler tick failed")
            await asyncio.sleep(wait)

    async def until_next(self, interval: float) -> float:
        """Seconds until the next timer due within ``interval`` (else ``interval``)."""
        now_ms = to_ms(self.clock.now())
        nxt = await self.repos.timers.next_due_ms(now_ms, now_ms + int(interval * 1000))
        return interval if nxt is None else max(MIN_WAIT, (nxt - now_ms) / 1000)


def _to_clear(saved: list[Change]) -> list[Change]:
    """What clearing needs of the published changes: no events, no outbox held in memory."""
    return [
        Change(c.doc_id, c.version, {"lease_token": c.fields.get("lease_token")}, token=c.token)
        for c in saved
        if c.outbox
    ]


def _free_and_due(doc: Doc, now_ms: int) -> bool:
    nxt = doc.get("next_fire_ms")
    return nxt is not None and nxt <= now_ms and int(doc.get("lease_until_ms") or 0) < now_ms


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
