"""The consumer's ack policy on a real broker: retry transient failures, dead-letter the rest."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.errors import AutoReconnect

from shared import topics
from shared.errors import RefusedEvents
from shared.events import CloudEvent
from shared.kafka_admin import ensure_topics
from shared.messaging import DLQ_REASON, MAX_UNEXPECTED_ATTEMPTS, Consumer, Delivery
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings
from tests.support import event_bytes, example, produce, read_all, running, topic_reader, wait_for

pytestmark = pytest.mark.integration


def probe_app(settings: Settings, calls: dict[str, int], handled: list[str]):  # type: ignore[no-untyped-def]
    """A service on the requests topic whose handler fails as each event asks it to."""

    def wire(runtime: Runtime) -> None:
        async def handle(event: CloudEvent) -> None:
            calls[event.id] = calls.get(event.id, 0) + 1
            mode = event.data.get("channel")
            if mode == "flaky" and calls[event.id] < 3:
                raise AutoReconnect("store briefly unreachable")
            if mode == "broken":
                raise KeyError("a bug")
            handled.append(event.id)

        runtime.consumer.events(topics.REQUESTS, handle)

    return create_service_app(ServiceSpec("probe", wire), settings)


async def test_transient_failure_is_retried_and_a_bug_is_dead_lettered(settings: Settings) -> None:
    calls: dict[str, int] = {}
    handled: list[str] = []
    flaky = example("request-received.json", channel="flaky", request_id="R-FLAKY")
    broken = example("request-received.json", channel="broken", request_id="R-BROKEN")
    after = example("request-received.json", channel="web", request_id="R-AFTER")
    misplaced = example("breach-detected.json")
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError on this
    async with running(probe_app(settings, calls, handled)):
        async with topic_reader(
            settings.kafka_bootstrap_servers, topics.dlq(topics.REQUESTS)
        ) as dlq:
            await produce(
                settings.kafka_bootstrap_servers,
                topics.REQUESTS,
                [
                    (b"R-FLAKY", event_bytes(flaky)),
                    (b"R-BROKEN", event_bytes(broken)),
                    (b"R-AFTER", event_bytes(after)),
                    (b"BR", event_bytes(misplaced)),
                    (b"DEEP", deep),
                ],
            )

            async def all_done() -> bool:
                return {flaky["id"], after["id"]} <= set(handled)

            await wait_for(all_done, timeout=30)
            assert calls[flaky["id"]] == 3 and handled.count(flaky["id"]) == 1
            dead = await read_all(
                dlq,
                {
                    "broken": lambda r: r.value == event_bytes(broken),
                    "misplaced": lambda r: r.value == event_bytes(misplaced),
                    "deep": lambda r: r.value == deep,
                },
                timeout=30,
            )
            reason = dict(dead["broken"].headers)[DLQ_REASON].decode()
            assert f"failed {MAX_UNEXPECTED_ATTEMPTS} times: KeyError" in reason
            assert calls[broken["id"]] == MAX_UNEXPECTED_ATTEMPTS
            wrong = dict(dead["misplaced"].headers)[DLQ_REASON].decode()
            assert "belongs on gdpr.breaches.v1" in wrong


# Batches ------------------------------------------------------------------------------------


def batch_app(settings: Settings, name: str, wire_consumer: Callable[[Consumer], None]):  # type: ignore[no-untyped-def]
    """A service named ``name`` (its own consumer group) wired by ``wire_consumer``."""
    return create_service_app(ServiceSpec(name, lambda rt: wire_consumer(rt.consumer)), settings)


async def fresh_topic(settings: Settings, partitions: int = 3) -> str:
    name = f"test.batch.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings.kafka_bootstrap_servers, {name: partitions})
    return name


async def committed(settings: Settings, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset of each partition of ``topic`` that has one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        found = await admin.list_consumer_group_offsets(group, partitions=tps)
        return {tp.partition: meta.offset for tp, meta in found.items() if meta.offset >= 0}
    finally:
        await admin.close()


def keyed(n: int) -> list[tuple[bytes | None, bytes]]:
    return [(f"k{i % 5}".encode(), f"v{i}".encode()) for i in range(n)]


async def test_a_poll_reaches_a_batch_handler_once_per_partition_in_offset_order(
    settings: Settings,
) -> None:
    topic = await fresh_topic(settings)
    calls: list[list[Delivery]] = []

    async def handle(batch: Sequence[Delivery]) -> None:
        calls.append(list(batch))

    await produce(settings.kafka_bootstrap_servers, topic, keyed(60))  # before the group joins
    name = f"probe-{uuid.uuid4().hex[:6]}"
    async with running(batch_app(settings, name, lambda c: c.raw_batches(topic, handle))):

        async def all_in() -> bool:
            return sum(len(c) for c in calls) >= 60

        await wait_for(all_in, timeout=30)
    assert sum(len(c) for c in calls) == 60
    partitions = [{d.partition for d in c} for c in calls]
    assert all(len(p) == 1 for p in partitions)  # one partition per call
    assert len(calls) == len({p.pop() for p in partitions})  # one call per partition
    for call in calls:
        offsets = [d.offset for d in call]
        assert offsets == sorted(offsets) == list(range(offsets[0], offsets[0] + len(call)))
        assert len({d.key for d in call}) >= 1 and all(d.body.startswith(b"v") for d in call)


async def test_poison_in_a_batch_is_dead_lettered_once_and_a_failing_event_alone(
    settings: Settings,
) -> None:
    run = uuid.uuid4().hex[:6]
    good = [example("request-received.json", request_id=f"R-{run}-{i}") for i in range(4)]
    bad = example("request-received.json", request_id=f"R-{run}-bad")
    order = [good[0], good[1], bad, good[2], good[3]]
    calls: list[list[str]] = []
    done: list[str] = []

    async def handle(batch: Sequence[CloudEvent]) -> None:
        ours = [e.data["request_id"] for e in batch if str(e.data["request_id"]).startswith("R-")]
        calls.append(ours)
        if f"R-{run}-bad" in ours:
            raise KeyError("a bug")
        done.extend(ours)

    poison_headers = [("x-origin", b"\xff not UTF-8"), ("x-null", None)]
    bootstrap = settings.kafka_bootstrap_servers
    async with topic_reader(bootstrap, topics.dlq(topics.REQUESTS)) as dlq:
        items: list[tuple[bytes | None, bytes]] = [
            (b"R-" + run.encode(), event_bytes(e)) for e in order[:2]
        ]
        await produce(bootstrap, topics.REQUESTS, items)
        await produce(bootstrap, topics.REQUESTS, [(run.encode(), b"{not json")], poison_headers)  # type: ignore[list-item]
        tail = [(b"R-" + run.encode(), event_bytes(e)) for e in order[2:]]
        await produce(bootstrap, topics.REQUESTS, tail)  # type: ignore[arg-type]
        name = f"probe-{uuid.uuid4().hex[:6]}"
        async with running(batch_app(settings, name, lambda c: c.batches(topics.REQUESTS, handle))):

            async def all_good() -> bool:
                return {g["data"]["request_id"] for g in good} <= set(done)

            await wait_for(all_good, timeout=60)
            dead = await read_all(
                dlq,
                {
                    "poison": lambda r: r.key == run.encode(),
                    "bad": lambda r: r.value == event_bytes(bad),
                },
                timeout=30,
            )
            extra = await dlq.getmany(timeout_ms=1500)
    again = [
        r for rs in extra.values() for r in rs if r.key in (run.encode(), b"R-" + run.encode())
    ]
    assert again == []  # each dead-lettered once, no good event dead-lettered
    poison = dead["poison"]
    assert list(poison.headers)[:2] == poison_headers and poison.value == b"{not json"
    reason = dict(dead["bad"].headers)[DLQ_REASON].decode()
    assert f"failed {MAX_UNEXPECTED_ATTEMPTS} times: KeyError" in reason
    assert sum(f"R-{run}-bad" in c for c in calls) == 1 + MAX_UNEXPECTED_ATTEMPTS
    assert any(len(c) >= 3 for c in calls)  # the batch was handed over whole first
    assert [r for r in done if r.startswith(f"R-{run}")] == [
        e["data"]["request_id"] for e in order if e is not bad
    ]


async def test_events_a_batch_handler_refuses_are_dead_lettered_alone_without_a_replay(
    settings: Settings,
) -> None:
    run = uuid.uuid4().hex[:6]
    events = [example("request-received.json", request_id=f"R-{run}-{i}") for i in range(6)]
    refused_ids = {events[1]["id"], events[4]["id"]}
    calls: list[list[str]] = []
    stored: list[str] = []

    async def handle(batch: Sequence[CloudEvent]) -> None:
        ours = [e for e in batch if str(e.data["request_id"]).startswith(f"R-{run}")]
        if ours:
            calls.append([str(e.data["request_id"]) for e in ours])
        stored.extend(str(e.data["request_id"]) for e in ours if e.id not in refused_ids)
        refusals = {e.id: f"refused {e.data['request_id']}" for e in ours if e.id in refused_ids}
        if refusals:
            raise RefusedEvents(refusals)

    bootstrap = settings.kafka_bootstrap_servers
    async with topic_reader(bootstrap, topics.dlq(topics.REQUESTS)) as dlq:
        items = [(b"R-" + run.encode(), event_bytes(e)) for e in events]  # one partition
        await produce(bootstrap, topics.REQUESTS, items)  # type: ignore[arg-type]
        name = f"probe-{uuid.uuid4().hex[:6]}"
        async with running(batch_app(settings, name, lambda c: c.batches(topics.REQUESTS, handle))):

            async def both_dead() -> bool:
                return len(stored) >= 4

            await wait_for(both_dead, timeout=60)
            dead = await read_all(
                dlq,
                {i: (lambda r, i=i: r.value == event_bytes(events[i])) for i in (1, 4)},
                timeout=30,
            )
            await asyncio.sleep(1.5)  # nothing handed over again
    assert sorted(stored) == sorted(f"R-{run}-{i}" for i in (0, 2, 3, 5))  # each once
    assert all(len(c) > 1 for c in calls), calls  # never replayed one by one
    reasons = {i: dict(dead[i].headers)[DLQ_REASON].decode() for i in (1, 4)}
    assert reasons == {1: f"refused R-{run}-1", 4: f"refused R-{run}-4"}


async def test_a_transient_failure_loses_nothing_and_commits_nothing(settings: Settings) -> None:
    topic = await fresh_topic(settings)
    failing = asyncio.Event()
    failing.set()
    attempts: list[int] = []
    seen: list[bytes] = []

    async def handle(batch: Sequence[Delivery]) -> None:
        attempts.append(len(batch))
        if failing.is_set():
            raise AutoReconnect("store briefly unreachable")
        seen.extend(d.body for d in batch)

    await produce(settings.kafka_bootstrap_servers, topic, keyed(30))
    name = f"probe-{uuid.uuid4().hex[:6]}"
    async with running(batch_app(settings, name, lambda c: c.raw_batches(topic, handle))):

        async def retried() -> bool:
            return len(attempts) >= 4

        await wait_for(retried, timeout=30)
        assert await committed(settings, f"gardien-{name}", topic, 3) == {}
        failing.clear()

        async def all_in() -> bool:
            return len(set(seen)) == 30

        await wait_for(all_in, timeout=30)

        async def all_committed() -> dict[int, int] | None:
            offsets = await committed(settings, f"gardien-{name}", topic, 3)
            return offsets if sum(offsets.values()) == 30 else None

        await wait_for(all_committed, timeout=15)
    assert sorted(set(seen)) == sorted(v for _, v in keyed(30))


async def test_a_crash_before_the_commit_redelivers_the_batch(settings: Settings) -> None:
    topic = await fresh_topic(settings)
    first: list[bytes] = []
    second: list[bytes] = []

    async def stuck(batch: Sequence[Delivery]) -> None:
        first.extend(d.body for d in batch)
        await asyncio.sleep(3600)  # the process dies before this returns

    async def handle(batch: Sequence[Delivery]) -> None:
        second.extend(d.body for d in batch)

    await produce(settings.kafka_bootstrap_servers, topic, keyed(20))
    name = f"probe-{uuid.uuid4().hex[:6]}"
    async with running(batch_app(settings, name, lambda c: c.raw_batches(topic, stuck))):

        async def started() -> bool:
            return bool(first)

        await wait_for(started, timeout=30)
    assert await committed(settings, f"gardien-{name}", topic, 3) == {}
    async with running(batch_app(settings, name, lambda c: c.raw_batches(topic, handle))):

        async def all_in() -> bool:
            return len(set(second)) == 20

        await wait_for(all_in, timeout=30)
    assert set(first) <= set(second)


async def test_a_concurrent_route_gets_the_partitions_of_a_poll_at_once_each_in_order(
    settings: Settings,
) -> None:
    topic = await fresh_topic(settings)
    in_flight: list[int] = [0]
    most: list[int] = [0]
    seen: list[Delivery] = []

    async def handle(batch: Sequence[Delivery]) -> None:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        await asyncio.sleep(0.3)
        seen.extend(batch)
        in_flight[0] -= 1

    await produce(settings.kafka_bootstrap_servers, topic, keyed(60))
    name = f"probe-{uuid.uuid4().hex[:6]}"
    route = lambda c: c.raw_batches(topic, handle, concurrent=True)  # noqa: E731
    async with running(batch_app(settings, name, route)):

        async def all_in() -> bool:
            return len(seen) >= 60

        await wait_for(all_in, timeout=30)
    assert most[0] > 1  # several partitions of one poll handled at the same time
    for p in {d.partition for d in seen}:
        offsets = [d.offset for d in seen if d.partition == p]
        assert offsets == sorted(offsets) and len(offsets) == len(set(offsets))
