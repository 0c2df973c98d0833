"""The scheduler's claim path before 2026-12-01's leased firing write, kept to measure both
in one run (``python -m bench.timers --compare``).

Per batch it made: a read of the due timers, an ``update_many`` leasing them (and bumping
their version), a ``bulk_write`` of the fired state and outbox at the claimed versions, a
read of the write tokens, the publication, and a ``bulk_write`` clearing the outboxes.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pymongo import ASCENDING

from services.deadlines.repository import FREE
from services.deadlines.scheduler import Scheduler
from shared.persistence import Change, relay_saved, retry_lost

Doc = dict[str, Any]


class BeforeScheduler(Scheduler):
    """Claim (``update_many`` lease), then save, token read, publish, clear."""

    async def tick(self) -> int:
        now_ms, budget = int(self.clock.now().timestamp() * 1000), [self.max_per_tick]

        async def worker() -> int:
            fired = 0
            while budget[0] > 0:
                size = min(self.batch, budget[0])
                budget[0] -= size
                token = f"{self.owner}:{uuid.uuid4().hex[:12]}"
                coll = self.repos.timers.collection  # type: ignore[attr-defined]
                docs = await claim_due(coll, now_ms, self.lease_ms, token, size)
                if not docs:
                    break
                fired += await self.fire_before(docs, now_ms, token)
            return fired

        return sum(await asyncio.gather(*(worker() for _ in range(self.workers))))

    async def fire_before(self, docs: list[Doc], now_ms: int, token: str) -> int:
        held, saved = {str(d["_id"]): d for d in docs}, []

        async def attempt(ids: list[str]) -> list[str]:
            changes = [free(c) for c in await self._decide([held[i] for i in ids], now_ms, token)]
            result = await self.repos.timers.save_many(changes)  # the kit's, with token read
            saved.extend(result.saved)
            return []  # no race in the benchmark (one member)

        await retry_lost(held, attempt)
        timers = self.repos.timers
        await relay_saved(timers._broker(), timers.collection, saved)  # type: ignore[attr-defined]
        await self.fired_hook(saved)
        return sum(1 for change in saved if change.events)

    async def fired_hook(self, saved: list[Change]) -> None:
        """Called with a batch once published and cleared (the benchmark times it)."""


def free(change: Change) -> Change:
    change.fields = {**change.fields, **FREE}  # the claim held the lease; the save freed it
    return change


async def claim_due(coll: Any, now_ms: int, lease_ms: int, token: str, limit: int) -> list[Doc]:
    due = {"next_fire_ms": {"$lte": now_ms}, "lease_until_ms": {"$lt": now_ms}}
    lease = {"$set": {"lease_until_ms": now_ms + lease_ms, "lease_token": token}}
    found = [d async for d in coll.find(due).sort("next_fire_ms", ASCENDING).limit(limit)]
    if not found:
        return []
    ids = [d["_id"] for d in found]
    bump = {**lease, "$inc": {"version": 1}}
    claimed = await coll.update_many({"_id": {"$in": ids}, **due}, bump)
    if claimed.modified_count == len(found):
        return [{**d, **lease["$set"], "version": d["version"] + 1} for d in found]
    return [d async for d in coll.find({"_id": {"$in": ids}, "lease_token": token})]
