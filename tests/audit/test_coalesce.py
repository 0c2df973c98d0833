"""Group commit of concurrent batches' writes (pure asyncio, no I/O)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.audit.coalesce import Coalescer


async def test_writes_submitted_together_leave_in_one_call_and_later_ones_in_the_next() -> None:
    calls: list[list[dict[str, Any]]] = []
    gate = asyncio.Event()

    async def write(docs: list[dict[str, Any]]) -> None:
        calls.append(docs)
        await gate.wait()

    c = Coalescer(write)
    first = [asyncio.create_task(c.submit([{"n": i}])) for i in range(3)]
    await asyncio.sleep(0.01)
    late = [asyncio.create_task(c.submit([{"n": i}])) for i in (3, 4)]  # while one is in flight
    await asyncio.sleep(0.01)
    assert calls == [[{"n": 0}, {"n": 1}, {"n": 2}]] and not any(t.done() for t in first)
    gate.set()
    await asyncio.gather(*first, *late)
    assert calls == [[{"n": 0}, {"n": 1}, {"n": 2}], [{"n": 3}, {"n": 4}]]


async def test_a_failed_shared_write_fails_every_submitter_of_it() -> None:
    async def write(docs: list[dict[str, Any]]) -> None:
        raise ValueError("refused")

    c = Coalescer(write)
    results = await asyncio.gather(
        c.submit([{"a": 1}]), c.submit([{"b": 2}]), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)
    await c.submit([])  # nothing to write: returns at once
    with pytest.raises(ValueError):
        await c.submit([{"c": 3}])
