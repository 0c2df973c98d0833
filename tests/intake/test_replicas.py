"""Two intake members in one consumer group: each request stored once, its events once, and
the follow-ups of one request applied in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from services.intake.app import create_app
from shared import topics
from shared.settings import Settings
from tests.intake.test_integration import rid, send, step
from tests.support import example, running, topic_reader, wait_for

pytestmark = pytest.mark.integration
COUNT = 60


def counted(method: Callable[[Sequence[Any]], Awaitable[None]], seen: list[int]) -> Any:
    async def call(batch: Sequence[Any]) -> None:
        seen.append(len(batch))
        await method(batch)

    return call


async def test_two_members_apply_each_event_once_and_in_order(settings: Settings) -> None:
    ids = [rid(f"REP{i:03d}") for i in range(COUNT)]
    first, second = create_app(settings), create_app(settings)
    seen: tuple[list[int], list[int]] = ([], [])
    async with running(first):
        async with running(second):
            await _both_members(settings, first, second, ids, seen)
        # The survivor takes every partition back before it stops too: a member that stops
        # during a rebalance stays in the group on the embedded broker, and the next member
        # to join waits for it (docs/devstack.md).
        late = [rid(f"REP-LATE{i}") for i in range(12)]  # over every partition
        await send(settings, *(example("request-received.json", request_id=r) for r in late))
        repo = first.state.intake.requests

        async def all_stored() -> bool:
            return len(await repo.load_many(late)) == len(late)

        await wait_for(all_stored, timeout=60)
    assert seen[0] and seen[1], seen  # both members handled some of the requests


async def _both_members(
    settings: Settings, first: Any, second: Any, ids: list[str], seen: tuple[list[int], ...]
) -> None:
    async with topic_reader(settings.kafka_bootstrap_servers, topics.REQUEST_EVENTS) as out:
        for app, mine in zip((first, second), seen, strict=True):
            intake = app.state.intake
            intake.requests_arrived = counted(intake.requests_arrived, mine)
        await asyncio.sleep(4)  # both members joined and have their partitions
        events = []
        for r in ids:  # per request, in order; requests spread over the partitions
            events += [
                example("request-received.json", request_id=r),
                step("request-info-requested.json", r, "2027-03-08T09:00:00+01:00"),
                step("request-info-received.json", r, "2027-03-18T10:00:00+01:00"),
                step("request-responded.json", r, "2027-03-20T15:00:00+01:00"),
            ]
        await send(settings, *events)
        repo = first.state.intake.requests

        async def all_closed() -> bool:
            docs = await repo.load_many(ids)
            return len(docs) == COUNT and all(d["status"] == "closed" for d in docs.values())

        await wait_for(all_closed, timeout=90)
        docs = await repo.load_many(ids)
        order = ["received", "awaiting_identity", "received", "responded", "closed"]
        for doc in docs.values():
            assert [h["status"] for h in doc["history"]] == order
            assert len(doc["applied_events"]) == 4 and doc["refusals"] == []
        changed: dict[str, list[str]] = {r: [] for r in ids}
        accepted: set[str] = set()
        idle = 0
        while idle < 5 or sum(map(len, changed.values())) < 4 * COUNT:
            batch = await out.getmany(timeout_ms=200)
            records = [json.loads(r.value) for rs in batch.values() for r in rs]
            idle = 0 if records else idle + 1
            for e in records:
                request_id = e["data"].get("request_id")
                if request_id in changed and e["type"] == "gardien.request.status_changed":
                    if e["id"] not in changed[request_id]:
                        changed[request_id].append(e["id"])
                elif request_id in changed and e["type"] == "gardien.request.accepted":
                    accepted.add(e["id"])
            assert idle < 100, "status events missing"
    assert len(accepted) == COUNT
    assert all(len(v) == 4 for v in changed.values())  # each move once, under its own id
