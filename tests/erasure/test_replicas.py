"""Two erasure members in one consumer group: every effect once, answers applied in key order.

Answers of one case arrive keyed by command id, so on several partitions: the two members
decide on the same case concurrently and the loser of each race decides again
(``retry_lost``). Work items and answers are also delivered twice.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from services.erasure.app import create_app
from services.erasure.registry import Registry
from shared import topics
from shared.settings import Settings
from tests.erasure.test_flow import SETTINGS, cloud_event
from tests.support import event_bytes, produce, running, topic_reader, wait_for

pytestmark = pytest.mark.integration

CASES = 20
REGISTRY = Registry.model_validate(
    {
        "systems": [
            {"id": name, "categories": {"profile": {}}, "identifiers": ["email"]}
            for name in ("alpha", "beta")
        ]
    }
)


def work(case_id: str) -> dict[str, Any]:
    return cloud_event("gardien.erasure.work.requested", {
        "case_id": case_id, "origin": "request", "request_id": case_id[4:],
        "subject": {"kind": "customer", "identifiers": {"email": f"{case_id[4:]}@example.org"}},
        "categories": [{"category": "profile", "action": "erase", "ground": "Art 17(1)(b)"}],
    })  # fmt: skip


def answer(case_id: str, system: str, outcome: str) -> tuple[bytes, bytes]:
    data = {"command_id": f"{case_id}:{system}", "system": system, "outcome": outcome}
    return f"{case_id}:{system}".encode(), event_bytes(cloud_event("gdpr.erasure.result", data))


async def read_all(bootstrap: str, topic: str, prefix: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` about cases of ``prefix`` (read until quiet)."""
    found: list[dict[str, Any]] = []
    async with topic_reader(bootstrap, topic) as reader:
        while batch := await reader.getmany(timeout_ms=1500):
            found += [
                json.loads(r.value)
                for rs in batch.values()
                for r in rs
                if prefix in json.loads(r.value)["data"].get("case_id", "")
            ]
    return found


async def test_two_members_issue_each_command_once_and_apply_answers_in_key_order(
    own_broker: Settings,
) -> None:
    settings = own_broker
    prefix = f"req:RR{uuid.uuid4().hex[:6]}"
    ids = [f"{prefix}-{i:02d}" for i in range(CASES)]
    first = create_app(settings, erasure_settings=SETTINGS, registry=REGISTRY)
    second = create_app(settings, erasure_settings=SETTINGS, registry=REGISTRY)
    bootstrap = settings.kafka_bootstrap_servers
    async with running(first):
        db = first.state.runtime.db
        async with running(second):
            items = [(i.encode(), event_bytes(work(i))) for i in ids]
            await produce(bootstrap, topics.ERASURE_WORK, items + items)  # each twice
            await wait_for(lambda: _count(db, {"_id": {"$in": ids}}, CASES), timeout=60)
            # alpha says not_found then erased (same key: the first must win); beta erased.
            answers = [answer(i, "alpha", "not_found") for i in ids]
            answers += [answer(i, "alpha", "erased") for i in ids]
            answers += [answer(i, "beta", "erased") for i in ids] * 2
            await produce(bootstrap, topics.ERASURE_RESULTS, answers)
            closed = {"_id": {"$in": ids}, "state": "closed"}
            await wait_for(lambda: _count(db, closed, CASES), timeout=90)
        # The survivor takes every partition back before it stops too: a member that stops
        # during a rebalance stays in the group on the embedded broker, and stopping the
        # other then can hang past the test's timeout (docs/devstack.md).
        late = [f"req:RL{uuid.uuid4().hex[:6]}-{i:02d}" for i in range(12)]  # every partition
        await produce(
            bootstrap, topics.ERASURE_WORK, [(i.encode(), event_bytes(work(i))) for i in late]
        )
        await wait_for(lambda: _count(db, {"_id": {"$in": late}}, len(late)), timeout=60)
    commands = await read_all(bootstrap, topics.ERASURE_COMMANDS, prefix)
    assert sorted(c["id"] for c in commands) == sorted(
        f"{i}:{s}:1" for i in ids for s in ("alpha", "beta")
    )
    cases = await read_all(bootstrap, topics.ERASURE_CASES, prefix)
    closings = [c for c in cases if c["type"] == "gardien.erasure.case.closed"]
    assert sorted(c["data"]["case_id"] for c in closings) == sorted(ids)
    outcomes = {c["data"]["case_id"]: c["data"]["systems"] for c in closings}
    assert {o["alpha"]["outcome"] for o in outcomes.values()} == {"not_found"}
    assert {o["beta"]["outcome"] for o in outcomes.values()} == {"erased"}
    progressed = [c["id"] for c in cases if c["type"] == "gardien.erasure.case.progressed"]
    assert len(set(progressed)) == 2 * CASES  # one per system and case, whatever the races


async def _count(db: Any, query: dict[str, Any], expected: int) -> bool:
    await asyncio.sleep(0.2)
    return len([d async for d in db["cases"].find(query, {"_id": 1})]) == expected
