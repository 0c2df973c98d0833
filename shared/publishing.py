"""Publishing events: every send goes through one batched produce on the broker's producer.

A batch of ``(event, key)`` pairs is enqueued with aiokafka's ``send`` in order (one
producer, so the order per key is kept) and the delivery futures are awaited together; any
failure is raised once all have settled, so the caller keeps its outbox and the batch is
retried. One ``gardien.publish`` span covers the batch, and its W3C trace context
(``traceparent``, ``tracestate``, ``baggage``) travels in every record's headers, where a
consumer's ``propagate.extract`` finds it (``shared.deliveries.consuming``).

The records are those FastStream's ``publish`` sent: structured mode
(``content-type: application/cloudevents+json``, ``ce_type``, the JSON envelope as value)
or binary mode (``ce_*`` headers, the data as value), with a ``correlation_id`` header.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Sequence
from typing import cast

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from shared.events import CloudEvent, topic_for_type

Header = tuple[str, bytes]
STRUCTURED = b"application/cloudevents+json"
_tracers: weakref.WeakKeyDictionary[KafkaBroker, trace.Tracer] = weakref.WeakKeyDictionary()


def trace_publishes(broker: KafkaBroker, provider: trace.TracerProvider) -> None:
    """Record the publish spans of ``broker`` with ``provider`` (else the global provider)."""
    _tracers[broker] = provider.get_tracer("gardien.publish")


def producer_of(broker: KafkaBroker) -> AIOKafkaProducer:
    """The started broker's aiokafka producer (FastStream's publish re-encodes headers as text,
    and traces and awaits each message alone)."""
    return cast(AIOKafkaProducer, broker.config.producer._producer.producer)  # type: ignore[attr-defined]


def record_of(event: CloudEvent, *, binary: bool = False) -> tuple[list[Header], bytes]:
    """Headers (without trace context) and value of ``event``'s record, in either mode."""
    if binary:
        ce_headers, body = event.to_binary()
        content = [h for h in ce_headers if h[0] == "content-type"]
        rest = [h for h in ce_headers if h[0] != "content-type"]
        return [*content, _correlation(), *rest], body
    headers = [("content-type", STRUCTURED), _correlation(), ("ce_type", event.type.encode())]
    return headers, event.to_json()


def _correlation() -> Header:
    return ("correlation_id", str(uuid.uuid4()).encode())


async def publish_batch(
    broker: KafkaBroker, events: Sequence[tuple[CloudEvent, str]], *, binary: bool = False
) -> None:
    """Publish every ``(event, key)`` in order; return once the broker acknowledged all.

    Raises the first failure (an aiokafka error) after every delivery has settled.
    """
    if not events:
        return
    names = sorted({topic_for_type(e.type) for e, _ in events})
    tracer = _tracers.get(broker) or trace.get_tracer("gardien.publish")
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.operation": "publish",
        "messaging.batch.message_count": len(events),
        "gardien.publish.topics": names,
    }
    with tracer.start_as_current_span(
        "gardien.publish", kind=SpanKind.PRODUCER, attributes=attributes, record_exception=False
    ) as span:
        try:
            await _send_all(producer_of(broker), events, binary, _trace_headers())
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


async def publish_event(
    broker: KafkaBroker, event: CloudEvent, key: str, *, binary: bool = False
) -> None:
    """Publish ``event`` to the topic of its type, keyed by its aggregate id (a batch of one).

    Structured mode by default; ``binary`` sends the attributes as ``ce_*`` headers and the
    data as the value (both modes are read alike, see ``shared.events.binding``).
    """
    await publish_batch(broker, [(event, key)], binary=binary)


def _trace_headers() -> list[Header]:
    """The current trace context as record headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()]


async def _send_all(
    producer: AIOKafkaProducer,
    events: Sequence[tuple[CloudEvent, str]],
    binary: bool,
    context: list[Header],
) -> None:
    """Enqueue every record in order, then wait for all deliveries; raise the first failure."""
    deliveries: list[asyncio.Future[object]] = []
    refused: Exception | None = None
    try:
        for event, key in events:
            headers, value = record_of(event, binary=binary)
            topic = topic_for_type(event.type)
            sent = await producer.send(
                topic, value=value, key=key.encode(), headers=[*headers, *context]
            )
            deliveries.append(sent)
    except Exception as exc:  # the records already enqueued still settle before raising
        refused = exc
    outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, Exception)]
    if refused is not None or failures:
        raise refused or failures[0]
