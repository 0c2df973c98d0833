"""Group commit: the writes of batches handled at once go to MongoDB as one command.

The partitions of one poll are audited concurrently; each would send its own insert. A
``Coalescer`` keeps at most one write of its kind in flight: what is submitted meanwhile
waits and leaves together in the next one, so a poll costs a handful of commands in all,
not a handful per partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Doc = dict[str, Any]


class Coalescer:
    """Submits lists of documents to ``write``, several submissions per call."""

    def __init__(self, write: Callable[[list[Doc]], Awaitable[None]]) -> None:
        self._write = write
        self._pending: list[tuple[list[Doc], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, docs: list[Doc]) -> None:
        """Return once ``docs`` are written; raise what the shared write raised."""
        if not docs:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((docs, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        await asyncio.shield(done)

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # let the partitions ready in this turn join
            batch, self._pending = self._pending, []
            try:
                await self._write([d for docs, _ in batch for d in docs])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
