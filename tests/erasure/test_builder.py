"""Access packages built apart from the answers' path (``services/erasure/builder.py``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace

from fastapi import FastAPI

from services.erasure import gauges
from services.erasure.builder import PackageQueue
from services.erasure.collection import BUILD_GRACE
from shared.events.inbound import ExportResult
from shared.metrics import Metrics
from tests.erasure.test_collection import Rig, access_work, rig
from tests.shared.test_metrics import samples
from tests.support import wait_for


def queued(r: Rig) -> PackageQueue:
    """The rig with the deployed wiring: ready cases are offered to a queue."""
    queue = PackageQueue(r.collector.build_ready)
    r.erasure.on_ready = queue.offer
    return queue


async def finish_collection(r: Rig, rid: str = "R-1") -> None:
    """Open a collection and have every reachable system answer that it holds nothing."""
    await r.collector.open([(f"w-{rid}", access_work(rid=rid))])
    for system in ("crm", "newsletter", "vendor"):
        data = {"command_id": f"acc:{rid}:{system}", "system": system, "outcome": "not_found"}
        event = ExportResult.model_validate({**data, "records": 0})
        assert await r.collector.results([(f"ev-{rid}-{system}", event)]) == {}


async def test_the_last_answer_leaves_the_package_to_the_builder() -> None:
    r = rig()
    queue = queued(r)
    await finish_collection(r)
    assert r.packages.orders == [] and queue.backlog() == 1  # not built on the answers' path
    case = await r.case()
    assert case.state == "open" and case.next_due_at == r.clock.now() + BUILD_GRACE
    assert await queue.drain_once() == 1
    ((order, _),) = r.packages.orders
    assert order.request_id == "R-1" and queue.backlog() == 0
    case = await r.case()
    assert case.state == "closed" and case.next_due_at is None
    assert case.collection.package_id == "package:R-1"


async def test_a_package_lost_with_its_process_is_offered_again_by_the_sweeper() -> None:
    r = rig()
    queued(r)  # this queue dies with its process: nothing is built
    await finish_collection(r)
    fresh = queued(r)
    await r.erasure.sweep()
    assert fresh.backlog() == 0  # still within the grace
    r.clock.advance(BUILD_GRACE + timedelta(seconds=1))
    await r.erasure.sweep()
    assert fresh.backlog() == 1
    await fresh.drain_once()
    assert len(r.packages.orders) == 1 and (await r.case()).state == "closed"


async def test_offers_are_taken_once_and_bounded() -> None:
    r = rig()
    queue = PackageQueue(r.collector.build_ready, limit=2)
    for rid in ("R-1", "R-2", "R-3"):
        await r.collector.open([(f"w-{rid}", access_work(rid=rid))])
    cases = [await r.case(f"acc:{rid}") for rid in ("R-1", "R-2", "R-3")]
    await queue.offer(cases[:1])
    await queue.offer(cases[:1])
    assert queue.backlog() == 1
    await queue.offer(cases)
    assert list(queue.waiting) == ["acc:R-1", "acc:R-2"]  # R-3 is left to the sweeper


async def test_the_running_builder_builds_what_is_offered_and_a_failure_is_retried() -> None:
    r = rig()
    queue = queued(r)
    task = asyncio.create_task(queue.run())
    try:
        r.packages.failing = True
        await finish_collection(r)

        async def built_or_failed() -> bool:
            return queue.backlog() == 0

        await wait_for(built_or_failed, timeout=5)
        case = await r.case()
        assert case.state == "open" and case.collection.build_after is not None
        r.packages.failing = False
        r.clock.advance(timedelta(seconds=61))
        await r.erasure.sweep()

        async def closed() -> bool:
            return bool((await r.case()).state == "closed")

        await wait_for(closed, timeout=5)
        assert len(r.packages.orders) == 1
    finally:
        task.cancel()


async def test_the_waiting_packages_are_a_gauge() -> None:
    r = rig()
    queue = queued(r)
    await finish_collection(r)
    app, metrics = FastAPI(), Metrics("erasure")
    app.state.runtime = SimpleNamespace(metrics=metrics)
    app.state.erasure = r.erasure
    app.state.package_queue = queue
    gauges.register(app)
    await metrics.refresh()
    assert samples(metrics.exposition().decode(), "gardien_erasure_packages_waiting") == [({}, 1)]
