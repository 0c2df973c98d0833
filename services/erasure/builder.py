"""The package builder: builds the access packages of ready collection cases in the
background, apart from the path that takes the systems' answers.

A ZIP is many round trips (read the uploads, write the blob's chunks, record the package,
publish ``built``); built inline, a wave of collections finishing together held up the
answers of every other case behind it (``make chaos`` kill -9: ~1 erasure case closed per
second while 6,666 packages were built). The answers' path now only offers the ready cases
here and returns; this task builds a few at a time and closes each case on its package.

Nothing is lost if the process dies with cases waiting: a ready case is saved with a
``next_due_at`` (``collection.hold_for_build``), so the sweeper offers it again after
``collection.BUILD_GRACE``. Offers are deduplicated by case id, and the waiting list is
bounded: past ``limit``, an offer is left to the sweeper.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from services.erasure.domain import Case

log = logging.getLogger(__name__)
BATCH = 4  # packages built together: the rest of the service keeps most of the store
LIMIT = 20_000


class PackageQueue:
    """Ready cases waiting for their package, in the order they became ready."""

    def __init__(self, build: Callable[[list[Case]], Awaitable[None]], limit: int = LIMIT) -> None:
        self.build, self.limit = build, limit
        self.waiting: dict[str, Case] = {}
        self._wake = asyncio.Event()

    async def offer(self, cases: list[Case]) -> None:
        """Take the ready cases (the ones already waiting are not taken twice); never blocks."""
        for case in cases:
            if case.case_id not in self.waiting and len(self.waiting) < self.limit:
                self.waiting[case.case_id] = case
        if self.waiting:
            self._wake.set()

    def backlog(self) -> int:
        """How many packages wait to be built in this process."""
        return len(self.waiting)

    async def drain_once(self) -> int:
        """Build the next few packages; how many were taken."""
        taken = list(self.waiting.values())[:BATCH]
        if taken:
            try:
                await self.build(taken)
            finally:  # a failed build is retried by the sweeper (``build_failed``)
                for case in taken:
                    self.waiting.pop(case.case_id, None)
        return len(taken)

    async def run(self) -> None:
        """Build whatever waits, for ever; never dies quietly."""
        while True:
            if not self.waiting:
                self._wake.clear()
                await self._wake.wait()
            try:
                await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store may be briefly away: the sweeper offers them again
                log.exception("package building failed")
                await asyncio.sleep(1)
