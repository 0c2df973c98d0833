"""Batched publishing on the real broker: records as FastStream sent them, the order per key,
one span per batch whose context the consumer continues, failures raised and outboxes kept."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import topics
from shared.deliveries import consuming, delivery
from shared.events import CloudEvent, new_event, topic_for_type
from shared.messaging import create_broker, publish_event
from shared.outbox import outbox_entry, relay
from shared.persistence import Change, VersionedCollection, relay_saved
from shared.publishing import producer_of, publish_batch
from shared.settings import Settings
from tests.support import topic_reader, wait_for

pytestmark = pytest.mark.integration
ACCEPTED, OTHER = "gardien.request.accepted", "gardien.operation.dlq_redriven"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def broker(settings: Settings, exporter: InMemorySpanExporter) -> AsyncIterator[KafkaBroker]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    kafka = create_broker(settings, "publish-test", provider)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


def batch(tag: str) -> list[tuple[CloudEvent, str]]:
    """Three events on two keys, a second topic in the middle (``a`` before ``b``)."""
    one, two = f"REQ-{tag}-1", f"REQ-{tag}-2"
    return [
        (new_event(ACCEPTED, {"request_id": one, "n": 0}, source="test"), one),
        (new_event(ACCEPTED, {"request_id": two, "n": 1}, source="test"), two),
        (new_event(OTHER, {"request_id": one, "n": 2}, source="test"), one),
        (new_event(ACCEPTED, {"request_id": one, "n": 3}, source="test"), one),
    ]


async def received(settings: Settings, keys: set[bytes], count: int) -> list[Any]:
    """The records of ``keys`` on the request topics, in offset order per topic."""
    names = sorted({topic_for_type(ACCEPTED), topic_for_type(OTHER)})
    found: list[Any] = []
    async with topic_reader(settings.kafka_bootstrap_servers, *names) as reader:

        async def enough() -> bool:
            for records in (await reader.getmany(timeout_ms=200)).values():
                found.extend(r for r in records if r.key in keys)
            return len(found) >= count

        await wait_for(enough, timeout=15)
    return found


def names(record: Any) -> list[str]:
    return [name for name, _ in record.headers]


def envelope(record: Any) -> tuple[str, Any]:
    """The event id and data of a record, in either mode."""
    body = json.loads(record.value)
    if dict(record.headers).get("ce_id"):
        return dict(record.headers)["ce_id"].decode(), body
    return body["id"], body["data"]


@pytest.mark.parametrize("binary", [False, True])
async def test_a_batch_arrives_with_its_topics_keys_values_headers_and_order(
    broker: KafkaBroker, settings: Settings, binary: bool
) -> None:
    events = batch(uuid.uuid4().hex[:6])
    await publish_batch(broker, events, binary=binary)
    records = await received(settings, {k.encode() for _, k in events}, len(events))
    by_id = {envelope(r)[0]: r for r in records}
    assert set(by_id) == {e.id for e, _ in events}
    for event, key in events:
        record = by_id[event.id]
        assert (record.topic, record.key) == (topic_for_type(event.type), key.encode())
        headers = dict(record.headers)
        if binary:
            ce_headers, value = event.to_binary()
            assert record.value == value
            assert names(record) == ["content-type", "correlation_id"] + [
                n for n, _ in ce_headers if n != "content-type"
            ] + ["traceparent"]
            assert set(ce_headers) <= set(record.headers)
        else:
            assert record.value == event.to_json()
            assert names(record) == ["content-type", "correlation_id", "ce_type", "traceparent"]
            assert headers["content-type"] == b"application/cloudevents+json"
            assert headers["ce_type"] == event.type.encode()
    same = [
        r for r in records if (r.key, r.topic) == (events[0][1].encode(), topics.REQUEST_EVENTS)
    ]
    assert [envelope(r)[1]["n"] for r in same] == [0, 3]  # one key: the published order


async def test_one_span_per_batch_and_the_consumer_continues_its_trace(
    broker: KafkaBroker, settings: Settings, exporter: InMemorySpanExporter
) -> None:
    events = batch(uuid.uuid4().hex[:6])
    await publish_batch(broker, events)
    spans = exporter.get_finished_spans()
    publishes = [s for s in spans if s.kind is SpanKind.PRODUCER]
    assert [s.name for s in publishes] == ["gardien.publish"]  # not one span per event
    span = publishes[0]
    attributes = dict(span.attributes or {})
    assert attributes["messaging.batch.message_count"] == len(events)
    assert set(attributes["gardien.publish.topics"]) == {  # type: ignore[arg-type]
        topic_for_type(ACCEPTED),
        topic_for_type(OTHER),
    }
    assert "REQ-" not in repr(attributes)  # no keys, no data in the span
    records = await received(settings, {k.encode() for _, k in events}, len(events))
    provider = TracerProvider()
    consumed = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(consumed))
    with consuming(provider.get_tracer("test"), [delivery(records[0])], "kafka"):
        pass
    child = consumed.get_finished_spans()[0]
    assert child.parent is not None and child.parent.span_id == span.context.span_id
    assert child.context.trace_id == span.context.trace_id


async def test_a_single_event_is_a_batch_of_one(
    broker: KafkaBroker, settings: Settings, exporter: InMemorySpanExporter
) -> None:
    rid = f"REQ-ONE-{uuid.uuid4().hex[:6]}"
    event = new_event(ACCEPTED, {"request_id": rid}, source="test")
    await publish_event(broker, event, rid)
    [record] = await received(settings, {rid.encode()}, 1)
    assert record.value == event.to_json()
    [span] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert span.name == "gardien.publish"


async def test_a_failed_delivery_raises_and_the_outbox_stays_pending(
    broker: KafkaBroker, settings: Settings, mongo_client: Any
) -> None:
    store = VersionedCollection(
        mongo_client[settings.database_name("kit")][f"docs_{uuid.uuid4().hex[:8]}"]
    )
    rid = f"REQ-FAIL-{uuid.uuid4().hex[:6]}"
    event = new_event(ACCEPTED, {"request_id": rid}, source="test")
    entry = {"id": event.id, "key": rid, "event": event.model_dump(mode="json")}
    saved = await store.save_many([Change(rid, None, {}, outbox=[entry], events=[(event, rid)])])
    await producer_of(broker).stop()  # the producer can no longer deliver anything
    with pytest.raises(KafkaError):  # transient for the consumer: the batch is handed again
        await relay_saved(broker, store.collection, saved.saved)
    doc = (await store.load_many([rid]))[rid]
    assert doc["outbox_pending"] and [e["id"] for e in doc["outbox"]] == [event.id]


async def test_the_outbox_relay_sends_a_documents_events_as_one_batch_or_keeps_them(
    broker: KafkaBroker, settings: Settings, mongo_client: Any, exporter: InMemorySpanExporter
) -> None:
    collection = mongo_client[settings.database_name("kit")][f"box_{uuid.uuid4().hex[:8]}"]
    rid = f"REQ-BOX-{uuid.uuid4().hex[:6]}"
    events = [new_event(ACCEPTED, {"request_id": rid, "n": n}, source="test") for n in range(3)]
    outbox = [outbox_entry(e, rid) for e in events]
    await collection.insert_one({"_id": rid, "version": 1, "outbox": outbox, "outbox_pending": 1})
    assert await relay(broker, collection, rid) == 3
    records = await received(settings, {rid.encode()}, 3)
    assert [envelope(r)[1]["n"] for r in records] == [0, 1, 2]  # oldest first
    assert len([s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]) == 1
    doc = await collection.find_one({"_id": rid})
    assert doc["outbox"] == [] and not doc["outbox_pending"]
    await collection.update_one({"_id": rid}, {"$set": {"outbox": outbox, "outbox_pending": 1}})
    await producer_of(broker).stop()
    with pytest.raises(KafkaError):
        await relay(broker, collection, rid)
    doc = await collection.find_one({"_id": rid})
    assert [e["id"] for e in doc["outbox"]] == [e.id for e in events] and doc["outbox_pending"]
